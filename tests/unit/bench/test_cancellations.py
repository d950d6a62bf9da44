"""The cancellations bench's pure parts: a planned action of the bench's own, and one row per
run, each way named."""

from __future__ import annotations

from bench import cancellations as bc


def test_the_actions_are_distinct_persons_planned_in_a_month() -> None:
    a, b = bc.planned(1), bc.planned(2)
    assert a.pseudonyme != b.pseudonyme and a.action_id != b.action_id
    assert a.due_le > bc.NOW


def test_the_report_has_a_row_per_run_each_way_named() -> None:
    text = bc.report(2000, [{"together": False, "s": 23.6, "db_cpu_s": 16.0},
                            {"together": True, "s": 12.8, "db_cpu_s": 11.5}],
                     "python -m bench cancellations 2000")
    assert "| 2,000 | one at a time | 23.6 s | 11.80 ms | 16.0 s |" in text
    assert "| 2,000 | together, in batches of 500 | 12.8 s | 6.40 ms | 11.5 s |" in text

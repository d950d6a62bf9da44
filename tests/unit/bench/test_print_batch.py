"""The print-batch bench's pure parts: the records are those notification stores for a letter,
distinct and of one day; the report prints one row per size, both rewrites side by side."""

from __future__ import annotations

from bench import print_batch as pb


def test_a_letters_record_has_the_fields_of_the_manifest_and_the_bench_day() -> None:
    a, b = pb.record(1), pb.record(2)
    assert a["_id"] != b["_id"] and a["jour"] == b["jour"] == pb.DAY
    assert a["fichiers"] == [f"{a['_id']}.pdf", f"{a['_id']}-falc.pdf"]
    assert len(a["sha256"][0]) == 64 and a["pages"] == [1, 2]


def test_the_report_has_a_row_per_size_with_both_rewrites() -> None:
    row = {"letters": 20_000,
           "streamed": {"s": 4.3, "rss_before_mb": 87.0, "rss_peak_mb": 96.0,
                        "db_before_mb": 139.0, "db_peak_mb": 205.0},
           "at_once": {"s": 4.0, "rss_before_mb": 87.0, "rss_peak_mb": 181.0,
                       "db_before_mb": 0.0, "db_peak_mb": 0.0}}
    text = pb.report([row], "python -m bench print-batch 20000")
    assert "| 20,000 | 4.3 s | 87 → 96 MB | 139 → 205 MB | 4.0 s | 87 → 181 MB |" in text

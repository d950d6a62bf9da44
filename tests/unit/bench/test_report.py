"""The bench's arithmetic and report (no broker: the measured runs are in docs/performance.md):
the ratio to the bare relay, the percentiles, a service's CPU and memory counted with its child
processes, and a section of the performance document replaced without touching the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench import e2e


def test_the_table_gives_our_rate_divided_by_the_relays() -> None:
    r = e2e.Result(n=50_000, instances=1, e2e_s=50.0, baseline_s=2.5, demandes=50_000,
                   actions=30_000, with_actions=17_000)
    row = e2e.table([r]).splitlines()[-1]
    assert "| 1,000 |" in row and "20,000 ev/s" in row and "| 5.0 % |" in row
    alone = e2e.table([e2e.Result(n=10, instances=1, e2e_s=1.0)]).splitlines()[-1]
    assert "| - | - |" in alone  # no relay measured: no ratio


def test_percentiles_are_the_median_the_99th_and_the_largest() -> None:
    p50, p99, most = e2e.percentiles([float(v) for v in range(1, 101)])
    assert (round(p50), round(p99), most) == (50, 99, 100.0)
    assert e2e.percentiles([]) == (0.0, 0.0, 0.0)
    assert e2e.percentiles([3.0]) == (3.0, 3.0, 3.0)


def test_a_services_cpu_counts_its_child_processes() -> None:
    # notification's letters are rendered by a child process: its CPU is the service's too
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n" \
           "import sys; sys.stdout.write('done\\n'); sys.stdout.flush(); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "done\n"
        own = psutil.Process().cpu_times()
        stats = {"service": e2e.ProcStats("service")}
        e2e.finish_stats({"service": os.getpid()}, stats)
        assert stats["service"].cpu_s >= own.user + own.system + 0.5
        assert stats["service"].peak_rss_mb > psutil.Process().memory_info().rss / 2**20
    finally:
        child.kill()
        child.wait()


def test_writing_a_section_replaces_its_block_and_keeps_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nprose\n\n<!-- bench:e2e -->\nold\n<!-- /bench:e2e -->\n\n"
                   "more prose\n")
    monkeypatch.setattr(e2e, "DOC", doc)
    e2e.write_section("e2e", "new table")
    assert doc.read_text() == ("# Performance\n\nprose\n\n<!-- bench:e2e -->\nnew table\n"
                               "<!-- /bench:e2e -->\n\nmore prose\n")
    e2e.write_section("soak", "a month")
    assert doc.read_text().endswith("more prose\n\n<!-- bench:soak -->\na month\n"
                                    "<!-- /bench:soak -->\n")

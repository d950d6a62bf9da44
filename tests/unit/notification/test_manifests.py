"""The print batch of a large day is rewritten less often: never more than a tenth of the time
(pure: the letters' store replaced by one that takes its time)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo.errors import ConnectionFailure

from services.notification import letters, service
from services.notification.service import Manifests
from shared.clock import ManualClock

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class SlowDay:
    """A day whose letters take ``seconds`` to read, and when each read started."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.reads: list[float] = []
        self.changed = asyncio.Condition()

    async def letters_of_day(self, day: str) -> AsyncIterator[dict[str, Any]]:
        async with self.changed:
            self.reads.append(time.monotonic())
            self.changed.notify_all()
        await asyncio.sleep(self.seconds)
        return  # nothing to write: only the pace is looked at
        yield

    async def reached(self, n: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.reads) >= n), timeout)


async def test_the_next_rewrite_waits_ten_times_as_long_as_the_last_one_took(
        tmp_path: Path) -> None:
    store = SlowDay(0.1)
    deps: Any = SimpleNamespace(store=store, clock=ManualClock(NOW), letters_dir=tmp_path)
    m = Manifests(interval=0.01)
    m.start(deps)
    try:
        await store.reached(2)  # today and yesterday
        await asyncio.sleep(0.15)  # the read ends
        m.touch("2026-03-02")
        await asyncio.sleep(0.5)
        assert len(store.reads) == 2, "not before ten times the last rewrite (0.2 s) has passed"
        await store.reached(3)
        assert len(store.reads) == 3
        assert store.reads[2] - store.reads[1] >= 2.0
    finally:
        await m.stop(deps, grace=1)


class StreamedDay:
    """A day of ``n`` letters read one at a time, which notes how much of the manifest was
    already on disk when each letter was read."""

    def __init__(self, root: Path, day: str, n: int) -> None:
        self.root, self.day, self.n = root, day, n
        self.written_before: list[int] = []

    def _on_disk(self) -> int:
        return sum(p.stat().st_size for p in (self.root / self.day).glob(".lettres.json.*.tmp"))

    async def letters_of_day(self, day: str) -> AsyncIterator[dict[str, Any]]:
        for k in range(self.n):
            self.written_before.append(self._on_disk() if k else 0)
            await asyncio.sleep(0)
            yield {"_id": f"a{k:05d}", "jour": day, "fichiers": [f"a{k:05d}.pdf"],
                   "sha256": ["0" * 64], "pages": [1, 2], "parcours": "p", "modele": "m"}


async def test_a_days_letters_go_to_the_print_batch_as_they_are_read(tmp_path: Path) -> None:
    day = "2026-03-02"
    store = StreamedDay(tmp_path, day, 2000)
    deps: Any = SimpleNamespace(store=store, letters_dir=tmp_path)

    path = await service.rebuild_batch(day, deps)

    manifest = json.loads(path.read_text(encoding="utf-8"))
    assert (manifest["jour"], manifest["courriers"], manifest["feuilles"]) == (day, 2000, 6000)
    assert [e["action_id"] for e in manifest["lettres"]] == [f"a{k:05d}" for k in range(2000)]
    rows = (tmp_path / day / "manifest.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].split(";")[0] == "action_id" and len(rows) == 2001
    assert rows[1].split(";") == ["a00000", "a00000.pdf", "3", "p", "m"]
    # the entries reached the disk while the day was still being read, not at its end
    assert store.written_before[-1] > store.written_before[1000] > 0
    assert not list((tmp_path / day).glob(".*.tmp")), "no temporary file left"


async def test_a_read_that_fails_leaves_the_former_print_batch_and_no_temporary_file(
        tmp_path: Path) -> None:
    day = "2026-03-02"
    writer = letters.ManifestWriter(tmp_path, day)
    writer.add({"_id": "a1", "fichiers": ["a1.pdf", "a1-falc.pdf"], "sha256": ["0", "1"],
                "pages": [1, 1], "parcours": "p", "modele": "m"})
    before = writer.close().read_bytes()

    class Broken(StreamedDay):
        async def letters_of_day(self, day: str) -> AsyncIterator[dict[str, Any]]:
            async for doc in super().letters_of_day(day):
                if doc["_id"] == "a00500":
                    raise ConnectionFailure("database away")
                yield doc

    deps: Any = SimpleNamespace(store=Broken(tmp_path, day, 1000), letters_dir=tmp_path)
    with pytest.raises(ConnectionFailure):
        await service.rebuild_batch(day, deps)
    assert (tmp_path / day / "manifest.json").read_bytes() == before
    assert not list((tmp_path / day).glob(".*.tmp"))
    empty = await service.rebuild_batch("2026-03-03", SimpleNamespace(
        store=StreamedDay(tmp_path, "2026-03-03", 0), letters_dir=tmp_path))
    assert json.loads(empty.read_text()) == {"jour": "2026-03-03", "courriers": 0,
                                             "feuilles": 0, "lettres": []}

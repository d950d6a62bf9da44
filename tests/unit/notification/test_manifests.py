"""The print batch of a large day is rewritten less often: never more than a tenth of the time
(pure: the letters' store replaced by one that takes its time)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from services.notification.service import Manifests
from shared.clock import ManualClock

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class SlowDay:
    """A day whose letters take ``seconds`` to read, and when each read started."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.reads: list[float] = []
        self.changed = asyncio.Condition()

    async def letters_of_day(self, day: str) -> list[dict[str, Any]]:
        async with self.changed:
            self.reads.append(time.monotonic())
            self.changed.notify_all()
        await asyncio.sleep(self.seconds)
        return []  # nothing to write: only the pace is looked at

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

"""Background loops stop at shutdown, and a shutdown never hangs on one that will not."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from shared import retention
from shared.retention import stop_task


async def test_a_loop_that_honours_cancellation_is_stopped_and_awaited() -> None:
    async def loop() -> None:
        while True:  # noqa: ASYNC110 - a loop that only waits to be cancelled
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.02)
    await stop_task(task, 5, "test")
    assert task.cancelled()


async def test_a_loop_that_swallows_cancellation_does_not_hang_the_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warned: list[dict[str, Any]] = []

    class Log:
        def warning(self, event: str, **kw: Any) -> None:
            warned.append({"event": event, **kw})

    monkeypatch.setattr(retention, "log", Log())
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue  # as a client library retrying inside the loop might

    task = asyncio.create_task(stubborn())
    try:
        await asyncio.sleep(0.02)
        started = time.monotonic()
        await stop_task(task, 0.2, "test")
        elapsed = time.monotonic() - started
        still_running = not task.done()
    finally:
        release.set()  # whatever happened, let it end (it swallows cancellations)
        await task
    assert elapsed < 2, "gave up after the grace period"
    assert still_running
    assert warned and warned[0]["tache"] == "test", "the abandon is logged"

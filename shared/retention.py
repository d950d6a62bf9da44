"""Retention of personal data: how long after a case is closed, and the periodic purge loop.

Each service that holds personal data runs its own purge job (``services/*/retention.py``)
every ``retention_interval_seconds`` with its injected clock. Purges are idempotent deletes
(by ``_id`` or by the person's pseudonym): two instances running them at once, or a purge
interrupted and run again, leave the same result. See docs/security.md "Retention".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from shared.logging import get_logger
from shared.settings import Settings

log = get_logger("retention")


def retention(settings: Settings, parcours: str | None) -> timedelta:
    """How long personal data of a closed case of ``parcours`` is kept."""
    days = settings.retention_days_by_parcours.get(parcours or "", settings.retention_days)
    return timedelta(days=days)


def expired(settings: Settings, parcours: str | None, closed_at: datetime | None,
            now: datetime) -> bool:
    return closed_at is not None and closed_at + retention(settings, parcours) <= now


class PurgeLoop:
    """Runs ``job()`` now and then every ``interval`` seconds until stopped; a failing run is
    logged and retried at the next tick (nothing is lost: the data is still there)."""

    def __init__(self, job: Callable[[], Awaitable[int]], interval: float, name: str) -> None:
        self.job, self.interval, self.name = job, interval, name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"purge-{self.name}")

    async def _run(self) -> None:
        while True:
            try:
                purged = await self.job()
                if purged:
                    log.info("données personnelles purgées", service=self.name, nombre=purged)
            except Exception as exc:  # the next tick tries again
                log.warning("purge interrompue", service=self.name, error=type(exc).__name__)
            await asyncio.sleep(self.interval)

    async def stop(self, grace: float = 10.0) -> None:
        if self._task is not None:
            await stop_task(self._task, grace, f"purge {self.name}")


async def stop_task(task: asyncio.Task[Any], grace: float, what: str) -> None:
    """Cancel a background loop and wait for it, at most ``grace`` seconds: a shutdown must
    not hang on a client library that holds on to a cancellation (the loop only repeats
    idempotent work, which the next start does again)."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        log.warning("tâche de fond non arrêtée à temps, abandonnée", tache=what, delai=grace)
        return
    with contextlib.suppress(asyncio.CancelledError):
        task.result()

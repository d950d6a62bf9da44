"""The timer scheduler: wakes up every ``notification_scheduler_interval_seconds`` and fires the
due timers of the partitions of ``parcours.actions`` this instance owns.

Ownership follows the consumer group: the rebalance listener of the ``parcours.actions``
subscriber records the assigned partitions. On revocation it waits for the tick in progress
to end (a lock), so that once a partition is handed over, the former owner fires nothing more
of it; the new owner starts after its own assignment. A timer stores the partition of the
record that planned it, and a cancellation travels that same partition.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import ConsumerRebalanceListener

from shared.kafka import is_transient
from shared.logging import get_logger
from shared.retention import stop_task

log = get_logger("notification.scheduler")


class Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.partitions: frozenset[int] = frozenset()
        self.lock = asyncio.Lock()
        self.on_change: Callable[[frozenset[int]], None] | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.lock:  # the tick in progress ends before the partitions go
            gone = {tp.partition for tp in revoked if tp.topic == self.topic}
            self.partitions = frozenset(self.partitions - gone)
            self._changed()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self.lock:
            self.partitions = frozenset(tp.partition for tp in assigned if tp.topic == self.topic)
            self._changed()
        log.info("partitions de minuteries attribuées", partitions=sorted(self.partitions))

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.partitions)


class Scheduler:
    def __init__(self, ownership: Ownership, due: Callable[[int], Awaitable[list[dict[str, Any]]]],
                 fire: Callable[[dict[str, Any]], Awaitable[str]], interval: float) -> None:
        self.ownership = ownership
        self._due = due
        self._fire = fire
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.fired = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notification-scheduler")

    async def stop(self, grace: float = 10.0) -> None:
        if self._task is not None:
            await stop_task(self._task, grace, "minuteries")
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    log.warning("minuteries : base ou broker indisponible, nouvel essai",
                                error=repr(exc))
                else:
                    log.exception("minuteries : erreur inattendue, nouvel essai au prochain réveil")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def tick(self) -> int:
        """Fire what is due now, partition by partition; returns how many timers were handled."""
        handled = 0
        async with self.ownership.lock:
            for partition in sorted(self.ownership.partitions):
                for timer in await self._due(partition):
                    try:
                        await self._fire(timer)
                    except Exception as exc:
                        if is_transient(exc):
                            raise
                        # One broken action must not block the others: it stays due, retried
                        # next tick, and the error is visible in logs and metrics.
                        log.exception("minuterie en erreur", timer=timer["_id"])
                    handled += 1
        self.fired += handled
        return handled

"""The timer scheduler: wakes up every ``notification_scheduler_interval_seconds`` and fires the
due timers of the partitions of ``parcours.actions`` this instance owns.

It asks the database only when something may be due: it remembers the earliest pending timer
of its partitions (``next_due``), lowered by every timer this instance writes (``hint``: the
timers of a partition are written by its owner, which plans and defers them), and asks again
when that time comes, when its partitions change, after an error, and at least every
``resync`` seconds (a timer written by a former owner during a rebalance). When it asks, it
asks once for all its partitions, the oldest due first. A query per partition and per second
cost little on MongoDB (a range of an index) but a scan of every pending timer on FerretDB (no
range pushdown): with a monthly batch's timers pending, the database did nothing else
(docs/performance.md).

Ownership follows the consumer group: the rebalance listener of the ``parcours.actions``
subscriber records the assigned partitions. On revocation it waits for the tick in progress
to end (a lock), so that once a partition is handed over, the former owner fires nothing more
of it; the new owner starts after its own assignment. A timer stores the partition of the
record that planned it, and a cancellation travels that same partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
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
    def __init__(self, ownership: Ownership,
                 due: Callable[[frozenset[int]], Awaitable[list[dict[str, Any]]]],
                 fire: Callable[[list[dict[str, Any]]], Awaitable[list[str]]], interval: float,
                 *, now: Callable[[], datetime],
                 earliest: Callable[[frozenset[int]], Awaitable[datetime | None]],
                 batch: int, size: int = 50, resync: float = 60.0, concurrency: int = 1) -> None:
        self.ownership = ownership
        self._due = due
        self._fire = fire
        self._now = now
        self._earliest = earliest
        self.batch = batch  # the most due timers taken per tick
        self.size = max(1, size)  # the most fired together (a person's all in one)
        self.concurrency = max(1, concurrency)
        self.interval = interval
        self.resync = resync
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.fired = 0
        # How late the oldest due timer not yet fired is, as of the last query (0: every due
        # timer was taken): the operations' sign that firing does not keep up (a monthly
        # batch's letters, an outage)
        self.behind_seconds = 0.0
        self.next_due: datetime | None = None  # None: unknown, ask
        self._hinted: datetime | None = None
        self._synced_at = 0.0
        self._synced_for: frozenset[int] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notification-scheduler")

    async def stop(self, grace: float = 10.0) -> None:
        if self._task is not None:
            await stop_task(self._task, grace, "minuteries")
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    def hint(self, due: datetime) -> None:
        """A timer due at ``due`` was written by this instance."""
        self._hinted = due if self._hinted is None else min(self._hinted, due)
        if self.next_due is not None and due < self.next_due:
            self.next_due = due
        if self.next_due is not None and due <= self._now():
            self._wake.set()

    def _must_ask(self, partitions: frozenset[int]) -> bool:
        return (self.next_due is None or partitions != self._synced_for
                or self.next_due <= self._now()
                or time.monotonic() - self._synced_at >= self.resync)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.next_due = None  # ask again next time
                if is_transient(exc):
                    log.warning("minuteries : base ou broker indisponible, nouvel essai",
                                error=repr(exc))
                else:
                    log.exception("minuteries : erreur inattendue, nouvel essai au prochain réveil")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    def batches(self, timers: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """The tick's timers in batches of about ``size``, the oldest first; a person's timers
        all in the same batch (it fires them one after the other), so that two batches never
        hold the same person."""
        by_person: dict[str, list[dict[str, Any]]] = {}
        for timer in timers:  # a timer written before timers named their person: one queue
            by_person.setdefault(str(timer.get("pseudonyme") or ""), []).append(timer)
        batches: list[list[dict[str, Any]]] = [[]]
        for queue in by_person.values():
            if batches[-1] and len(batches[-1]) + len(queue) > self.size:
                batches.append([])
            batches[-1].extend(queue)
        return [b for b in batches if b]

    async def _fire_all(self, timers: list[dict[str, Any]]) -> int:
        """Fire ``timers`` in batches (:meth:`batches`), up to ``concurrency`` batches at once
        (a batch waits on the database, the broker and the renderer most of its time). A
        transient error (database or broker away) stops the taking of new batches; the
        batches under way end, then it is raised: what was not fired stays due."""
        pending = self.batches(timers)
        pending.reverse()  # popped from the end: the oldest first
        failed: list[Exception] = []
        handled = 0

        async def worker() -> None:
            nonlocal handled
            while pending and not failed:
                batch = pending.pop()
                try:
                    await self._fire(batch)
                except Exception as exc:
                    if is_transient(exc):
                        failed.append(exc)
                        return
                    # One broken batch must not block the others: what it did not fire stays
                    # due, retried next tick, and the error is visible in logs and metrics.
                    log.exception("lot de minuteries en erreur", minuteries=len(batch))
                handled += len(batch)

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(pending)))))
        if failed:
            raise failed[0]
        return handled

    async def tick(self) -> int:
        """Fire what is due now in the partitions owned, the oldest first; returns how many
        timers were handled. One query for all the partitions (a scan of every pending timer on
        FerretDB, whatever the filter), and one more for the next due time when the batch was
        not full."""
        async with self.ownership.lock:
            partitions = self.ownership.partitions
            if not self._must_ask(partitions):
                return 0
            self._hinted = None
            timers = await self._due(partitions) if partitions else []
            self.behind_seconds = (self._now() - timers[0]["du"]).total_seconds() if timers else 0.0
            handled = await self._fire_all(timers)
            earliest: datetime | None
            if len(timers) >= self.batch:  # more may be due
                earliest = self._now()
            else:
                self.behind_seconds = 0.0  # everything due was fired
                earliest = await self._earliest(partitions) if partitions else None
            if self._hinted is not None and (earliest is None or self._hinted < earliest):
                earliest = self._hinted
            # None with nothing pending: ask again at the next resync or hint
            self.next_due = earliest if earliest is not None else datetime.max.replace(
                tzinfo=self._now().tzinfo)
            self._synced_at, self._synced_for = time.monotonic(), partitions
        self.fired += handled
        return handled

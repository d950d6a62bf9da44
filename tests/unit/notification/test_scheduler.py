"""The scheduler asks the database only when something may be due (pure: timers in memory)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from pymongo.errors import ConnectionFailure

from services.notification import rules
from services.notification.scheduler import Ownership, Scheduler
from shared.clock import ManualClock

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Timers:
    """Pending timers by ``_id``, and the partitions of each query for due timers."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.asked: list[frozenset[int]] = []
        self.fired: list[str] = []
        self.limit = 1_000  # the store's limit (the scheduler's batch)

    def add(self, partition: int, due: datetime, action: str) -> None:
        self.ids.add(rules.timer_id(partition, due, action))

    def _of(self, partitions: frozenset[int]) -> list[str]:
        mine = [t for t in self.ids if int(t.split("|")[0]) in partitions]
        return sorted(mine, key=lambda t: (rules.due_of(t), t))

    async def due(self, partitions: frozenset[int], now: datetime) -> list[dict[str, Any]]:
        self.asked.append(partitions)
        due = [{"_id": t, "du": rules.due_of(t)} for t in self._of(partitions)
               if rules.due_of(t) <= now]
        return due[: self.limit]

    async def earliest(self, partitions: frozenset[int]) -> datetime | None:
        mine = self._of(partitions)
        return rules.due_of(mine[0]) if mine else None

    async def fire(self, batch: list[dict[str, Any]]) -> list[str]:
        for timer in batch:
            self.ids.discard(timer["_id"])
            self.fired.append(timer["_id"].split("|")[2])
        return ["fait"] * len(batch)


async def _scheduler(timers: Timers, clock: ManualClock, partitions: list[int]) -> Scheduler:
    ownership = Ownership("t.parcours.actions")
    await ownership.on_partitions_assigned([TopicPartition("t.parcours.actions", p)
                                            for p in partitions])
    return Scheduler(ownership, due=lambda ps: timers.due(ps, clock.now()), fire=timers.fire,
                     interval=0.1, now=clock.now, earliest=timers.earliest, batch=100)


async def test_idle_ticks_do_not_ask_the_database_until_the_earliest_timer_is_due() -> None:
    clock, timers = ManualClock(NOW), Timers()
    timers.add(0, NOW + timedelta(days=30), "a")
    timers.add(1, NOW + timedelta(days=2), "b")
    s = await _scheduler(timers, clock, [0, 1])
    await s.tick()
    assert timers.asked == [{0, 1}] and s.next_due == NOW + timedelta(days=2)
    for _ in range(20):  # a second of idle ticks
        await s.tick()
    assert timers.asked == [{0, 1}], "no query while nothing is due"
    clock.set(NOW + timedelta(days=2, seconds=1))
    assert await s.tick() == 1 and timers.fired == ["b"]
    assert s.next_due == NOW + timedelta(days=30)


async def test_a_timer_written_by_this_instance_lowers_the_next_due_time() -> None:
    clock, timers = ManualClock(NOW), Timers()
    timers.add(0, NOW + timedelta(days=30), "a")
    s = await _scheduler(timers, clock, [0])
    await s.tick()
    timers.add(0, NOW + timedelta(hours=1), "c")
    s.hint(NOW + timedelta(hours=1))
    await s.tick()
    assert timers.fired == [] and len(timers.asked) == 1
    clock.set(NOW + timedelta(hours=1))
    await s.tick()
    assert timers.fired == ["c"]


async def test_new_partitions_and_the_resync_period_make_it_ask_again() -> None:
    clock, timers = ManualClock(NOW), Timers()
    s = await _scheduler(timers, clock, [0])
    await s.tick()
    assert timers.asked == [{0}]
    # a timer written by a former owner of partition 1, then partition 1 assigned here
    timers.add(1, NOW - timedelta(minutes=1), "d")
    await s.ownership.on_partitions_assigned([TopicPartition("t.parcours.actions", p)
                                              for p in (0, 1)])
    await s.tick()
    assert timers.fired == ["d"]
    # a timer this instance was not told about: found at the next resync
    timers.add(0, NOW - timedelta(minutes=1), "e")
    await s.tick()
    assert timers.fired == ["d"]
    s.resync = 0.0
    await s.tick()
    assert timers.fired == ["d", "e"]


async def test_a_full_batch_makes_it_ask_again_at_once() -> None:
    clock, timers = ManualClock(NOW), Timers()
    for k in range(3):
        timers.add(0, NOW - timedelta(minutes=1), f"x{k}")
    s = await _scheduler(timers, clock, [0])
    s.batch = 3  # the query returned as many as it may: more may be due
    timers.ids.add(rules.timer_id(0, NOW - timedelta(seconds=1), "x3"))

    async def limited(partitions: frozenset[int]) -> list[dict[str, Any]]:
        return (await timers.due(partitions, clock.now()))[:3]

    s._due = limited
    await s.tick()
    assert len(timers.fired) == 3 and s.next_due == NOW
    await s.tick()
    assert len(timers.fired) == 4


async def test_one_query_asks_for_the_due_timers_of_all_partitions_owned_oldest_first() -> None:
    clock, timers = ManualClock(NOW), Timers()
    timers.add(0, NOW - timedelta(minutes=1), "p0-recent")
    timers.add(5, NOW - timedelta(hours=2), "p5-old")
    timers.add(3, NOW - timedelta(hours=1), "p3-middle")
    timers.add(3, NOW + timedelta(days=1), "p3-tomorrow")
    s = await _scheduler(timers, clock, [0, 3, 5])
    assert await s.tick() == 3
    assert timers.asked == [{0, 3, 5}], "one query per tick, whatever the partitions"
    assert timers.fired == ["p5-old", "p3-middle", "p0-recent"]
    assert s.next_due == NOW + timedelta(days=1)


async def test_it_tells_how_late_the_oldest_due_timer_not_yet_fired_is() -> None:
    clock, timers = ManualClock(NOW), Timers()
    timers.add(5, NOW - timedelta(hours=2), "p5-old")
    timers.add(0, NOW - timedelta(minutes=1), "p0-recent")
    timers.add(3, NOW - timedelta(minutes=30), "p3-middle")
    s = await _scheduler(timers, clock, [0, 3, 5])
    lags: list[float] = []
    fire = timers.fire

    async def noting(batch: list[dict[str, Any]]) -> list[str]:
        lags.extend(s.behind_seconds for _ in batch)
        return await fire(batch)

    s._fire, s.batch = noting, 2  # a backlog: two per tick
    timers.limit = 2
    await s.tick()
    assert s.behind_seconds == 7200.0, "the batch was full: more are waiting"
    await s.tick()
    assert lags == [7200.0, 7200.0, 60.0] and s.behind_seconds == 0.0, "all fired"


async def _firing(due: list[dict[str, Any]], fire: Any, concurrency: int,
                  size: int = 2) -> Scheduler:
    """A scheduler of partition 0 whose query answers ``due``, firing with ``fire``."""
    ownership = Ownership("t.parcours.actions")
    await ownership.on_partitions_assigned([TopicPartition("t.parcours.actions", 0)])

    async def due_now(partitions: frozenset[int]) -> list[dict[str, Any]]:
        return due

    async def none(partitions: frozenset[int]) -> datetime | None:
        return None

    return Scheduler(ownership, due=due_now, fire=fire, interval=0.1, now=ManualClock(NOW).now,
                     earliest=none, batch=100, size=size, concurrency=concurrency)


async def test_batches_side_by_side_and_a_persons_actions_in_one_batch_in_their_order() -> None:
    due = [{"_id": f"{who}{k}", "pseudonyme": who, "du": NOW} for k in range(3)
           for who in ("a", "b", "c", "d", "e", "f")]
    due += [{"_id": f"g{k}", "pseudonyme": "g", "du": NOW} for k in range(5)]  # more than size
    running: list[list[dict[str, Any]]] = []
    most = 0
    seen: list[list[str]] = []

    async def fire(batch: list[dict[str, Any]]) -> list[str]:
        nonlocal most
        running.append(batch)
        most = max(most, len(running))
        await asyncio.sleep(0.01)
        running.remove(batch)
        seen.append([t["_id"] for t in batch])
        return ["fait"] * len(batch)

    s = await _firing(due, fire, concurrency=2, size=6)
    assert await s.tick() == 23
    assert most == 2, "two batches at once, not more"
    assert sorted(t for b in seen for t in b) == sorted(t["_id"] for t in due), "each once"
    for who in "abcdefg":
        holding = [b for b in seen if any(t[0] == who for t in b)]
        assert len(holding) == 1, f"{who}'s timers all in one batch"
        assert [t for t in holding[0] if t[0] == who] == sorted(
            t for t in holding[0] if t[0] == who), "in their order"
    assert [len(b) for b in s.batches(due)] == [6, 6, 6, 5], "three persons a batch; g alone"


async def test_a_transient_error_stops_the_tick_after_the_batches_under_way() -> None:
    due = [{"_id": f"{who}{k}", "pseudonyme": who, "du": NOW} for who in ("a", "b", "c", "d")
           for k in range(2)]
    done: list[str] = []

    async def fire(batch: list[dict[str, Any]]) -> list[str]:
        await asyncio.sleep(0.01 if batch[0]["_id"] == "a0" else 0.02)
        if batch[0]["_id"] == "a0":
            raise ConnectionFailure("database away")
        done.extend(t["_id"] for t in batch)
        return ["fait"] * len(batch)

    s = await _firing(due, fire, concurrency=2)
    with pytest.raises(ConnectionFailure):
        await s.tick()
    assert done == ["b0", "b1"], "the batch under way ended, no new batch taken after the error"


async def test_a_broken_batch_does_not_stop_the_others() -> None:
    due = [{"_id": f"{who}0", "pseudonyme": who, "du": NOW} for who in "abc"]
    done: list[str] = []

    async def fire(batch: list[dict[str, Any]]) -> list[str]:
        if batch[0]["_id"] == "a0":
            raise ValueError("a bug")
        done.extend(t["_id"] for t in batch)
        return ["fait"] * len(batch)

    s = await _firing(due, fire, concurrency=1, size=1)
    assert await s.tick() == 3
    assert done == ["b0", "c0"]

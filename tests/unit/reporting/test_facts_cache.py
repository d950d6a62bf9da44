"""Reporting's facts cache: readers of a moment share one load, and a large store is not
reloaded more often than ten times its load took (a load reads every fact)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from services.reporting import indicators as ind
from services.reporting.api import FactsCache


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Store:
    clock: Clock
    took: float  # seconds of the clock a load takes
    loads: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def load_facts(self) -> ind.Facts:
        self.loads += 1
        await self.gate.wait()
        self.clock.t += self.took
        return ind.Facts(demandes=[{"_id": f"d{self.loads}"}])


@dataclass
class Deps:
    store: Any
    version: list[int] = field(default_factory=lambda: [0])


async def test_readers_arriving_during_a_load_share_it() -> None:
    clock = Clock()
    deps = Deps(Store(clock, took=0.1))
    cache = FactsCache(clock=clock)
    readers = [asyncio.create_task(cache.get(deps)) for _ in range(5)]  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    deps.store.gate.set()
    got = await asyncio.gather(*readers)
    assert deps.store.loads == 1, "one load for the five readers, not five in memory at once"
    assert all(g is got[0] for g in got)


async def test_a_change_is_loaded_once_a_small_store_allows_it() -> None:
    clock = Clock()
    deps = Deps(Store(clock, took=0.05))
    deps.store.gate.set()
    cache = FactsCache(clock=clock)
    await cache.get(deps)  # type: ignore[arg-type]
    await cache.get(deps)  # type: ignore[arg-type]
    assert deps.store.loads == 1, "nothing changed, fresh: no load"
    deps.version[0] += 1  # this instance's consumers wrote facts
    clock.t += 0.6  # more than ten times the 0.05 s the load took
    await cache.get(deps)  # type: ignore[arg-type]
    assert deps.store.loads == 2
    clock.t += 2.0  # other instances' changes: loaded again every two seconds
    await cache.get(deps)  # type: ignore[arg-type]
    assert deps.store.loads == 3


async def test_a_large_store_is_reloaded_at_most_every_ten_times_its_load() -> None:
    clock = Clock()
    deps = Deps(Store(clock, took=50.0))
    deps.store.gate.set()
    cache = FactsCache(clock=clock)
    first = await cache.get(deps)  # type: ignore[arg-type]
    deps.version[0] += 1
    clock.t += 60.0  # changed, and older than two seconds, but the load took 50 s
    assert await cache.get(deps) is first  # type: ignore[arg-type]
    assert deps.store.loads == 1
    clock.t += 450.0  # 510 s after the load ended
    assert await cache.get(deps) is not first  # type: ignore[arg-type]
    assert deps.store.loads == 2

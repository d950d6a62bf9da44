"""Reporting's indicators cache: readers of a moment share one cube, a large store is not read
again more often than ten times its reading took (it reads every fact), and a conversion with
other parameters has a cube of its own, of that table alone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.reporting import indicators as ind
from services.reporting.api import DEFAULT_CONVERSION, IndicatorsCache


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

    async def fill(self, cube: ind.Cube) -> ind.Cube:
        self.loads += 1
        await self.gate.wait()
        self.clock.t += self.took
        return cube


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 3, 2, tzinfo=UTC)


@dataclass
class Deps:
    store: Any
    version: list[int] = field(default_factory=lambda: [0])
    clock: FixedClock = field(default_factory=FixedClock)


async def test_readers_arriving_during_a_load_share_it() -> None:
    clock = Clock()
    deps = Deps(Store(clock, took=0.1))
    cache = IndicatorsCache(clock=clock)
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
    cache = IndicatorsCache(clock=clock)
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
    cache = IndicatorsCache(clock=clock)
    first = await cache.get(deps)  # type: ignore[arg-type]
    deps.version[0] += 1
    clock.t += 60.0  # changed, and older than two seconds, but the load took 50 s
    assert await cache.get(deps) is first  # type: ignore[arg-type]
    assert deps.store.loads == 1
    clock.t += 450.0  # 510 s after the load ended
    assert await cache.get(deps) is not first  # type: ignore[arg-type]
    assert deps.store.loads == 2


async def test_a_conversion_asked_with_other_parameters_has_a_cube_of_its_own() -> None:
    clock = Clock()
    deps = Deps(Store(clock, took=0.01))
    deps.store.gate.set()
    cache = IndicatorsCache(clock=clock, keep=2)
    default = await cache.get(deps)  # type: ignore[arg-type]
    assert set(default.cells) == set(ind.TABLES)
    other = ("seniors-m9-complementaire", "complementaire-souscrite", 6)
    six = await cache.get(deps, other)  # type: ignore[arg-type]
    assert six is not default and six.conversion == other
    assert set(six.cells) == {"conversion"}, "only the table that depends on them"
    assert await cache.get(deps, other) is six  # type: ignore[arg-type]
    assert deps.store.loads == 2
    for months in (7, 8):  # two more: the oldest other one is dropped, never the default
        await cache.get(deps, (*other[:2], months))  # type: ignore[arg-type]
    assert await cache.get(deps, DEFAULT_CONVERSION) is default  # type: ignore[arg-type]
    assert deps.store.loads == 4
    await cache.get(deps, other)  # type: ignore[arg-type]
    assert deps.store.loads == 5, "made again: it was dropped"

"""Reporting's indicators cache: readers of a moment share one cube; a large store is not read
again more often than ten times its reading took, and its readers never wait for a new cube
(it is made in the background); a first cube slow to come answers "being computed"; a
conversion with other parameters has a cube of its own, of that table alone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from services.reporting import indicators as ind
from services.reporting.cache import DEFAULT_CONVERSION, EnCalcul, IndicatorsCache


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Store:
    """A store whose reading takes ``took`` seconds of the clock, once ``gate`` is open."""

    clock: Clock
    took: float
    loads: int = 0
    cancelled: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def fill(self, cube: ind.Cube) -> ind.Cube:
        self.loads += 1
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
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


async def test_readers_arriving_during_a_making_share_it() -> None:
    clock = Clock()
    deps = Deps(Store(clock, took=0.1))
    cache = IndicatorsCache(clock=clock)
    readers = [asyncio.create_task(cache.get(deps)) for _ in range(5)]  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    deps.store.gate.set()
    got = await asyncio.gather(*readers)
    assert deps.store.loads == 1, "one reading of the store for the five readers"
    assert all(g is got[0] for g in got)


async def test_a_small_store_is_read_again_after_a_change_and_its_reader_waits() -> None:
    clock = Clock()
    deps = Deps(Store(clock, took=0.05))
    deps.store.gate.set()
    cache = IndicatorsCache(clock=clock)
    first = await cache.get(deps)  # type: ignore[arg-type]
    assert await cache.get(deps) is first  # type: ignore[arg-type]
    assert deps.store.loads == 1, "nothing changed, fresh: no reading"
    deps.version[0] += 1  # this instance's consumers wrote facts
    clock.t += 0.6  # more than ten times the 0.05 s the reading took
    assert await cache.get(deps) is not first, "what was just written is in the answer"  # type: ignore[arg-type]
    assert deps.store.loads == 2
    clock.t += 2.0  # other instances' changes: read again every two seconds
    await cache.get(deps)  # type: ignore[arg-type]
    assert deps.store.loads == 3


async def test_a_large_store_is_read_again_in_the_background_at_most_every_ten_readings() -> None:
    clock = Clock()
    deps = Deps(Store(clock, took=50.0))
    deps.store.gate.set()
    cache = IndicatorsCache(clock=clock)
    first = await cache.get(deps)  # type: ignore[arg-type]
    deps.version[0] += 1
    clock.t += 60.0  # changed, and older than two seconds, but the reading took 50 s
    assert await cache.get(deps) is first  # type: ignore[arg-type]
    assert deps.store.loads == 1
    clock.t += 450.0  # 510 s after the reading ended: due
    deps.store.gate.clear()  # the new reading will not end before it is let
    assert await cache.get(deps) is first, "the reader does not wait for it"  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert deps.store.loads == 2, "made in the background"
    assert await cache.get(deps) is first  # type: ignore[arg-type]
    assert deps.store.loads == 2, "one making at a time"
    deps.store.gate.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert await cache.get(deps) is not first  # type: ignore[arg-type]


async def test_a_first_cube_slow_to_come_answers_being_computed_and_is_still_made() -> None:
    clock = Clock()
    deps = Deps(Store(clock, took=300.0))
    cache = IndicatorsCache(clock=clock, first_wait=0.05)
    cache.warm(deps)  # type: ignore[arg-type]
    with pytest.raises(EnCalcul) as caught:
        await cache.get(deps)  # type: ignore[arg-type]
    assert caught.value.retry_after >= 1
    assert deps.store.loads == 1, "the reader joined the making started at the start"
    deps.store.gate.set()
    cube = await cache.get(deps)  # type: ignore[arg-type]
    assert cube.now == deps.clock.now() and deps.store.loads == 1
    await cache.close()


async def test_close_stops_a_making_under_way() -> None:
    clock = Clock()
    deps = Deps(Store(clock, took=1.0))
    cache = IndicatorsCache(clock=clock)
    cache.warm(deps)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert deps.store.loads == 1
    await cache.close()
    assert deps.store.cancelled == 1, "the reading under way was stopped"
    await cache.close()  # nothing left to stop


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


async def test_the_api_answers_503_with_retry_after_while_the_first_cube_is_made() -> None:
    import httpx
    from fastapi import FastAPI

    from services.reporting import api

    clock = Clock()
    deps = Deps(Store(clock, took=300.0))
    cache = IndicatorsCache(clock=clock, first_wait=0.05)
    app = FastAPI()
    app.include_router(api.router(lambda: deps, cache, dashboard_public=True))  # type: ignore[arg-type, return-value]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:
        answer = await http.get("/v1/tableau-de-bord/donnees")
    assert answer.status_code == 503
    assert answer.json()["detail"]["erreur"] == "indicateurs-en-calcul"
    assert int(answer.headers["Retry-After"]) >= 1
    await cache.close()

"""The indicators' cube, made once for all the readers of a moment, and made again in the
background when it takes long (docs/performance.md, "Reporting: one read").

Making the cube reads every fact of the store. It is made again after a change (this instance's
consumers) or every ``CACHE_SECONDS`` (other instances' changes), but never more often than
``spacing`` times the last one took: at most a tenth of the time goes to reading, however large
the store. Readers arriving while it is made share that making.

- A store read in under ``quick`` seconds: a reader after a change waits for the new cube (the
  figures include what was just projected).
- A larger store: a reader gets the cube it has at once, the new one is made in the background,
  and the answer's ``calcule_le`` says how old the figures are. A dashboard never waits for a
  read of a national store (minutes).
- No cube yet (a start): the first readers wait ``first_wait`` seconds at most, then get
  :class:`EnCalcul` (the API answers 503 with ``Retry-After``), while the making goes on.
  The service starts making it when it starts (``warm``).

A conversion asked with other parameters than the dashboard's (letter, goal, window) has a cube
of its own, of that table alone; the ``keep`` most recently made are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.reporting import indicators as ind
from services.reporting.handlers import Deps
from shared.logging import get_logger

log = get_logger("reporting.cache")

CACHE_SECONDS = 2.0

Conversion = tuple[str, str, int]
DEFAULT_CONVERSION: Conversion = (
    ind.CONVERSION_MODELE,
    ind.CONVERSION_OBJECTIF,
    ind.CONVERSION_FENETRE_MOIS,
)


class EnCalcul(Exception):
    """No cube yet for these parameters: it is being made; ask again in ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"indicators are being computed; ask again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Entry:
    cube: ind.Cube
    version: int  # of this instance's consumers' writes, when the making started
    at: float  # when it was made (the cache's clock)
    took: float  # how long it took


class IndicatorsCache:
    def __init__(self, spacing: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 keep: int = 4, quick: float = 1.0, first_wait: float = 20.0) -> None:
        self.spacing = spacing
        self.keep = keep
        self.quick = quick
        self.first_wait = first_wait
        self._clock = clock
        self._entries: dict[Conversion, _Entry] = {}
        self._making: dict[Conversion, asyncio.Task[ind.Cube]] = {}

    async def get(self, deps: Deps, conversion: Conversion = DEFAULT_CONVERSION) -> ind.Cube:
        entry = self._entries.get(conversion)
        if entry is not None:
            age = self._clock() - entry.at
            stale = entry.version != deps.version[0] or age >= CACHE_SECONDS
            if not stale or age < self.spacing * entry.took:
                return entry.cube
            making = self._make(deps, conversion)
            if entry.took >= self.quick:
                return entry.cube  # the new one is made in the background
            return await asyncio.shield(making)
        making = self._make(deps, conversion)
        try:
            return await asyncio.wait_for(asyncio.shield(making), self.first_wait)
        except TimeoutError:
            raise EnCalcul(max(1, math.ceil(self.first_wait))) from None

    def warm(self, deps: Deps) -> None:
        """Start making the dashboard's cube (at the service's start)."""
        self._make(deps, DEFAULT_CONVERSION)

    async def close(self) -> None:
        """Stop the makings under way (at the service's stop)."""
        tasks = list(self._making.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _make(self, deps: Deps, conversion: Conversion) -> asyncio.Task[ind.Cube]:
        """The making under way for these parameters, or a new one."""
        task = self._making.get(conversion)
        if task is None or task.done():
            task = asyncio.create_task(self._made(deps, conversion))
            task.add_done_callback(_retrieve)
            self._making[conversion] = task
        return task

    async def _made(self, deps: Deps, conversion: Conversion) -> ind.Cube:
        try:
            version, started = deps.version[0], self._clock()
            tables = None if conversion == DEFAULT_CONVERSION else ("conversion",)
            cube = await deps.store.fill(ind.Cube(deps.clock.now(), conversion, tables))
            at = self._clock()
            self._entries.pop(conversion, None)
            self._entries[conversion] = _Entry(cube, version, at, at - started)
            others = [k for k in self._entries if k != DEFAULT_CONVERSION]
            for k in others[: max(0, len(others) - self.keep)]:
                del self._entries[k]
            return cube
        finally:
            if self._making.get(conversion) is asyncio.current_task():
                del self._making[conversion]


def _retrieve(task: asyncio.Task[ind.Cube]) -> None:
    """A making that failed with no reader waiting: logged (the next read makes it again)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("indicateurs non calculés", error=repr(task.exception()))

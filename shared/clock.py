"""Time, as the services read it.

Services never call ``datetime.now()`` directly: they take a :class:`Clock`. Production uses
:class:`SystemClock`. Tests move a :class:`ManualClock`. The demo and end-to-end tests, whose
services run as separate processes, use :class:`FileOffsetClock`: system time plus an offset
kept in a file that ``parcours clock advance`` (or a test) rewrites, so that a 9-month timer
fires in seconds.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime."""
        ...


def to_millis(when: datetime) -> datetime:
    """``when`` cut to the millisecond, the precision of a BSON date: a time that is published and
    also stored, then published again from what was stored (after a crash), stays the same."""
    return when.replace(microsecond=when.microsecond - when.microsecond % 1000)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when


class FileOffsetClock:
    """System time plus an offset (seconds) read from a small JSON file, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime_ns: int | None = None
        self._offset = timedelta(0)

    def _refresh(self) -> None:
        try:
            mtime = os.stat(self._path).st_mtime_ns
        except FileNotFoundError:
            self._offset, self._mtime_ns = timedelta(0), None
            return
        if mtime != self._mtime_ns:
            self._offset = timedelta(seconds=read_offset(self._path))
            self._mtime_ns = mtime

    def now(self) -> datetime:
        self._refresh()
        return datetime.now(UTC) + self._offset


def read_offset(path: Path) -> float:
    try:
        return float(json.loads(path.read_text())["offset_seconds"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return 0.0


def write_offset(path: Path, offset_seconds: float) -> None:
    """Atomically write the offset, so that a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"offset_seconds": offset_seconds}))
    os.replace(tmp, path)


def clock_from_settings(clock_file: Path | None) -> Clock:
    return FileOffsetClock(clock_file) if clock_file else SystemClock()

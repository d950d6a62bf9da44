"""Prometheus helpers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any


def add_counts(metric: Any, keys: Iterable[str | tuple[str, ...]]) -> None:
    """Increment a labelled counter once per distinct label value of a batch, by its count
    (``labels()`` costs a few microseconds: once per record it was 6 % of a service's CPU)."""
    for key, n in Counter(keys).items():
        metric.labels(*((key,) if isinstance(key, str) else key)).inc(n)

"""The services' garbage collector setting (docs/performance.md: a fifth of their CPU)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from services.orientation.app import create_app
from shared.settings import Settings


@pytest.fixture
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_a_service_collects_its_youngest_generation_every_gc_threshold_allocations(
    thresholds: Any
) -> None:
    gc.set_threshold(700, 10, 10)
    create_app(Settings(gc_threshold=12_345))
    assert gc.get_threshold() == (12_345, 10, 10)


def test_zero_keeps_what_the_process_had(thresholds: Any) -> None:
    gc.set_threshold(700, 10, 10)
    create_app(Settings(gc_threshold=0))
    assert gc.get_threshold() == (700, 10, 10)

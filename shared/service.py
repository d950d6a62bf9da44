"""What every service's composition root does the same way: its settings named after it, and
the routes it serves beside its own API (health, metrics, AsyncAPI, error bodies)."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from shared import auth
from shared.http import (
    RefuseNulInUrl,
    asyncapi_router,
    health_router,
    install_error_handlers,
    metrics_router,
)
from shared.settings import Settings


def settings_for(name: str, settings: Settings | None) -> Settings:
    """The given settings (or the environment's), with ``service_name`` defaulting to ``name``."""
    settings = settings or Settings(service_name=name)
    if settings.service_name == "parcours":
        settings = settings.model_copy(update={"service_name": name})
    return settings


def tune_gc(settings: Settings) -> None:
    """Collect the youngest generation every ``gc_threshold`` allocations instead of every 700
    (the older generations keep Python's ratios of 10): the services allocate in batches of
    short-lived objects that reference counting frees; the cyclic collector, run thousands of
    times per batch, found almost nothing and cost 20-25 % of their CPU (docs/performance.md).
    Process-wide: the last service created in a process sets it."""
    if settings.gc_threshold:
        gc.set_threshold(settings.gc_threshold, 10, 10)


def mount_platform_routes(app: FastAPI, settings: Settings, broker: Any,
                          registry: CollectorRegistry,
                          refresh: Callable[[], Awaitable[None]] | None = None) -> None:
    """``/health/live`` and ``/health/ready`` (Kafka now; the lifespan adds the database to
    ``app.state.ready_checks``), ``/metrics``, the AsyncAPI document, the error bodies, and the
    refusal of a NUL character in URLs; the garbage collector tuned (:func:`tune_gc`)."""
    tune_gc(settings)
    app.include_router(health_router(app.state.ready_checks))
    app.include_router(metrics_router(registry, refresh),
                       dependencies=auth.metrics_dependencies(settings))
    app.include_router(asyncapi_router(), dependencies=auth.docs_dependencies(settings))
    install_error_handlers(app)
    app.add_middleware(RefuseNulInUrl)
    app.state.broker = broker
    app.state.registry = registry


def ready_checks(broker: Any) -> dict[str, Callable[[], Awaitable[bool]]]:
    """The readiness checks a service starts with; its lifespan adds ``mongo``."""
    return {"kafka": lambda: broker.ping(2.0)}

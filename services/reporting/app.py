"""Wiring of reporting (the composition root): settings, clients, broker, routes.

Run: ``uvicorn services.reporting.app:create_app --factory --port 8004``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.reporting import api, handlers
from services.reporting.cache import IndicatorsCache
from services.reporting.handlers import Deps, Metrics
from services.reporting.store import ReportingStore
from shared import auth
from shared.clock import Clock, clock_from_settings
from shared.kafka import RawProducer, make_broker
from shared.logging import configure_logging
from shared.mongo import make_mongo_client, ping
from shared.service import mount_platform_routes, ready_checks, settings_for
from shared.settings import Settings

NAME = "reporting"


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings_for(NAME, settings)
    configure_logging(settings.log_level, settings.log_json)
    registry = CollectorRegistry()
    broker = make_broker(settings, registry=registry)
    metrics = Metrics(registry)
    holder: dict[str, Deps] = {}
    cache = IndicatorsCache()

    def get_deps() -> Deps:
        return holder["deps"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_mongo_client(settings.mongo_uri, settings.mongo_timeout_ms, NAME)
        raw = RawProducer.from_settings(settings)
        store = ReportingStore(client, settings.database_name)
        holder["deps"] = deps = Deps(
            settings=settings,
            store=store,
            clock=clock or clock_from_settings(settings.clock_file),
            raw=raw,
            metrics=metrics,
        )
        app.state.deps = deps
        app.state.ready_checks["mongo"] = lambda: ping(client)
        await store.ensure_indexes()
        await raw.start()
        await broker.start()
        cache.warm(deps)
        try:
            yield
        finally:
            await cache.close()
            await broker.stop()
            await raw.stop()
            await client.close()

    broker.include_router(handlers.router_for(settings, get_deps, registry))
    app = FastAPI(
        title="Parcours · reporting",
        version="1.0.0",
        lifespan=lifespan,
        **auth.docs_kwargs(settings),
        description="Indicators of the parcours (volumes, 48-hour hand-over, drop-off, MisAS "
        "composite, relevance per detector, conversions), as JSON or CSV, and a "
        "dashboard page for operations teams. Pseudonymous data only.",
    )
    app.state.ready_checks = ready_checks(broker)
    auth.install(app, settings)
    app.include_router(api.router(get_deps, cache,
                                  dashboard_public=settings.reporting_dashboard_public))
    mount_platform_routes(app, settings, broker, registry)
    return app

"""Wiring of orientation (the composition root): settings, catalogue, clients, broker, routes.

The catalogue is read and validated here, before anything starts: an invalid catalogue stops
the service with a :class:`~services.orientation.catalogue.CatalogueError` listing every
problem (parcours and step named).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.orientation import api, handlers
from services.orientation.catalogue import DEFAULT_PATH, load_catalogue
from services.orientation.retention import purge
from services.orientation.service import Deps, Metrics, event_publisher
from services.orientation.store import OrientationStore
from shared import auth
from shared.audit import AuditLog, audit_router
from shared.clock import Clock, clock_from_settings
from shared.kafka import EventPublisher, RawProducer, make_broker
from shared.logging import configure_logging, get_logger
from shared.mongo import make_mongo_client, ping
from shared.retention import PurgeLoop
from shared.service import mount_platform_routes, ready_checks, settings_for
from shared.settings import Settings

NAME = "orientation"
log = get_logger(NAME)


class OrientationConfig(BaseSettings):
    """Settings of orientation only (environment prefix ``PARCOURS_ORIENTATION_``)."""

    model_config = SettingsConfigDict(env_prefix="PARCOURS_ORIENTATION_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore")

    catalogue_path: Path = Field(DEFAULT_PATH, description="The parcours catalogue (YAML), "
                                 "validated at start-up.")
    merge_window_days: int = Field(7, ge=0, le=90, description="Two contacts of different "
                                   "parcours to one person within this many days are merged "
                                   "into one (the higher precedence wins).")


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               config: OrientationConfig | None = None) -> FastAPI:
    settings = settings_for(NAME, settings)
    config = config or OrientationConfig()
    configure_logging(settings.log_level, settings.log_json)
    catalogue = load_catalogue(config.catalogue_path)  # CatalogueError: the service stops
    log.info("catalogue chargé", version=catalogue.version, parcours=len(catalogue.parcours))
    registry = CollectorRegistry()
    broker = make_broker(settings, registry=registry)
    metrics = Metrics(registry, catalogue.version)
    holder: dict[str, Deps] = {}

    def get_deps() -> Deps:
        return holder["deps"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_mongo_client(settings.mongo_uri, settings.mongo_timeout_ms, NAME)
        raw = RawProducer.from_settings(settings)
        holder["deps"] = deps = Deps(
            settings=settings, store=OrientationStore(client, settings.database_name),
            clock=clock or clock_from_settings(settings.clock_file), catalogue=catalogue,
            merge_window_days=config.merge_window_days, broker=broker, raw=raw,
            metrics=metrics,
            publier=event_publisher(EventPublisher(raw, settings, registry), settings),
        )
        app.state.deps = deps
        audits["audit"] = AuditLog(client[settings.database_name], deps.clock)
        await audits["audit"].setup()
        app.state.ready_checks["mongo"] = lambda: ping(client)
        await raw.start()
        await broker.start()
        purger = PurgeLoop(lambda: purge(deps), settings.retention_interval_seconds, NAME)
        purger.start()
        app.state.purge = lambda: purge(deps)
        try:
            yield
        finally:
            await purger.stop()
            await broker.stop()
            await raw.stop()
            await client.close()

    broker.include_router(handlers.router_for(settings, get_deps, registry))
    audits: dict[str, AuditLog] = {}

    def get_audit() -> AuditLog:
        return audits["audit"]

    app = FastAPI(
        title="Parcours · orientation", version="1.0.0", lifespan=lifespan,
        **auth.docs_kwargs(settings),
        description="The parcours catalogue as data, explainable decisions, cases per person, "
        f"arbitration and the death rule. Catalogue {catalogue.version}.")
    app.state.ready_checks = ready_checks(broker)
    auth.install(app, settings)
    app.include_router(api.router(get_deps, get_audit))
    app.include_router(audit_router(get_audit))
    mount_platform_routes(app, settings, broker, registry)
    app.state.catalogue = catalogue
    return app

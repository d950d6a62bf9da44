"""Wiring of signalement (the composition root): settings, clients, broker, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.signalement import api, handlers
from services.signalement.retention import purge
from services.signalement.service import Deps, Metrics
from services.signalement.store import SignalementStore
from shared import auth
from shared.audit import AuditLog, audit_router
from shared.clock import Clock, clock_from_settings
from shared.kafka import EventPublisher, RawProducer, make_broker
from shared.logging import configure_logging
from shared.mongo import make_mongo_client, ping
from shared.nir import Pseudonymizer
from shared.retention import PurgeLoop
from shared.service import mount_platform_routes, ready_checks, settings_for
from shared.settings import Settings

NAME = "signalement"


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings_for(NAME, settings)
    configure_logging(settings.log_level, settings.log_json)
    registry = CollectorRegistry()
    broker = make_broker(settings, registry=registry)
    metrics = Metrics(registry)
    holder: dict[str, Deps] = {}

    def get_deps() -> Deps:
        return holder["deps"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_mongo_client(settings.mongo_uri, settings.mongo_timeout_ms, NAME)
        raw = RawProducer.from_settings(settings)
        holder["deps"] = deps = Deps(
            settings=settings, store=SignalementStore(client, settings.database_name),
            clock=clock or clock_from_settings(settings.clock_file),
            pseudonymizer=Pseudonymizer(settings.pseudonym_key.get_secret_value().encode(),
                                        settings.pseudonym_key_id),
            broker=broker, raw=raw, metrics=metrics,
            publisher=EventPublisher(raw, settings, registry),
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

    app = FastAPI(title="Parcours · signalement", version="1.0.0", lifespan=lifespan,
                  **auth.docs_kwargs(settings),
                  description="Intake of life events and partners' referrals "
                  "(portail partenaires).")
    app.state.ready_checks = ready_checks(broker)
    auth.install(app, settings)
    app.include_router(api.router(get_deps, get_audit))
    app.include_router(audit_router(get_audit))
    mount_platform_routes(app, settings, broker, registry)
    app.add_middleware(api.BodyLimit, max_bytes=settings.http_max_body_bytes)
    return app

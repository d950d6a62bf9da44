"""Wiring of notification (the composition root): settings, clients, broker, scheduler, routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge

from services.notification import api, handlers
from services.notification.channels import EmailSender, HttpSmsSender, SmsSender, SmtpEmailSender
from services.notification.firing import fire_many
from services.notification.gauges import StoreGauges
from services.notification.letters import Renderer
from services.notification.retention import purge
from services.notification.scheduler import Ownership, Scheduler
from services.notification.service import Deps, Metrics, policy_from
from services.notification.store import NotificationStore
from services.notification.templates import CATALOGUE, Templates
from shared import auth, topics
from shared.audit import AuditLog, audit_router
from shared.clock import Clock, clock_from_settings
from shared.kafka import EventPublisher, RawProducer, make_broker
from shared.logging import configure_logging, get_logger
from shared.mongo import make_mongo_client, ping
from shared.retention import PurgeLoop, stop_task
from shared.service import mount_platform_routes, ready_checks, settings_for
from shared.settings import Settings

NAME = "notification"
log = get_logger("notification")


def _secret(path: Path | None) -> str | None:
    """A secret mounted as a file (never an environment variable baked in compose files)."""
    return path.read_text(encoding="utf-8").strip() if path else None


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               email: EmailSender | None = None, sms: SmsSender | None = None,
               fault: Any = None) -> FastAPI:
    settings = settings_for(NAME, settings)
    s = settings
    configure_logging(s.log_level, s.log_json)
    registry = CollectorRegistry()
    broker = make_broker(s, registry=registry)
    metrics = Metrics(registry)
    behind = Gauge("parcours_notification_timers_behind_seconds",
                   "How late the oldest due timer was at the scheduler's last query (0: none due)",
                   registry=registry)
    templates = Templates.load(catalogue=s.notification_catalogue_file or CATALOGUE)
    ownership = Ownership(s.topic(topics.ACTIONS))
    ownership.on_change = lambda parts: metrics.pending.set(len(parts))
    holder: dict[str, Any] = {}

    def get_deps() -> Deps:
        return holder["deps"]  # type: ignore[no-any-return]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_mongo_client(s.mongo_uri, s.mongo_timeout_ms, NAME)
        raw = RawProducer.from_settings(s)
        store = NotificationStore(client, s.database_name)
        sms_sender = sms or HttpSmsSender(s.notification_sms_url,
                                          _secret(s.notification_sms_token_file),
                                          s.notification_sms_sender,
                                          timeout=s.notification_http_timeout_seconds)
        password = _secret(s.notification_smtp_password_file)
        email_sender = email or SmtpEmailSender(
            s.notification_smtp_host, s.notification_smtp_port, s.notification_email_from,
            s.notification_message_id_domain, timeout=s.notification_http_timeout_seconds,
            starttls=s.notification_smtp_starttls, user=s.notification_smtp_user, password=password)
        deps = Deps(settings=s, store=store, clock=clock or clock_from_settings(s.clock_file),
                    templates=templates, email=email_sender, sms=sms_sender,
                    metrics=metrics, policy=policy_from(s), letters_dir=s.data_dir / "letters",
                    raw=raw, publisher=EventPublisher(raw, s, registry),
                    email_slots=asyncio.Semaphore(s.notification_fire_concurrency), fault=fault,
                    renderer=Renderer(s.notification_render_processes))
        scheduler = Scheduler(
            ownership,
            due=lambda parts: store.due_timers(parts, deps.clock.now(),
                                               s.notification_scheduler_batch),
            fire=lambda timers: fire_many(timers, deps),
            interval=s.notification_scheduler_interval_seconds,
            now=deps.clock.now, earliest=store.earliest_timer,
            batch=s.notification_scheduler_batch, size=s.notification_fire_batch,
            concurrency=s.notification_fire_concurrency)
        deps.wake, deps.hint = scheduler.wake, scheduler.hint
        behind.set_function(lambda: scheduler.behind_seconds)
        holder["deps"] = deps
        holder["audit"] = audit = AuditLog(client[s.database_name], deps.clock)
        app.state.deps = deps
        app.state.scheduler = scheduler
        app.state.ready_checks["mongo"] = lambda: ping(client)
        await store.setup()
        await audit.setup()
        await raw.start()
        await broker.start()
        scheduler.start()
        older = asyncio.create_task(_due_times_of_older_timers(store, scheduler),
                                    name="minuteries-anciennes")
        deps.manifests.start(deps)
        purger = PurgeLoop(lambda: purge(deps), s.retention_interval_seconds, NAME)
        purger.start()
        app.state.purge = lambda: purge(deps)
        try:
            yield
        finally:
            await purger.stop()
            await stop_task(older, 10.0, "minuteries anciennes")
            await scheduler.stop()
            await deps.manifests.stop(deps)
            await asyncio.to_thread(deps.renderer.close)
            await broker.stop()
            await raw.stop()
            if isinstance(sms_sender, HttpSmsSender):
                await sms_sender.aclose()
            await client.close()

    broker.include_router(handlers.router_for(s, get_deps, ownership, registry))
    def get_audit() -> AuditLog:
        return holder["audit"]  # type: ignore[no-any-return]

    app = FastAPI(
        title="Parcours · notification", version="1.0.0", lifespan=lifespan, **auth.docs_kwargs(s),
        description="Durable timers of planned actions; letters (PDF, print batches), e-mail, "
        "SMS; the agents' phone-task queue; every outcome on parcours.resultats.")
    app.state.ready_checks = ready_checks(broker)
    auth.install(app, s)
    app.include_router(api.router(get_deps, get_audit))
    app.include_router(audit_router(get_audit))
    gauges = StoreGauges(registry)

    async def refresh_gauges() -> None:
        if "deps" in holder:
            await gauges.refresh(holder["deps"].store, holder["deps"].clock)

    mount_platform_routes(app, s, broker, registry, refresh_gauges)
    app.state.ownership = ownership
    return app


async def _due_times_of_older_timers(store: NotificationStore, scheduler: Scheduler) -> None:
    """Give timers written before they carried their due time that time, in the background:
    once done, the scheduler is told the earliest (a failure: the next start tries again)."""
    try:
        earliest = await store.due_times_of_older_timers()
    except Exception as exc:
        log.warning("minuteries anciennes non mises à jour", error=type(exc).__name__)
        return
    if earliest is not None:
        scheduler.hint(earliest)

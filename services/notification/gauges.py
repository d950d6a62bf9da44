"""Gauges of notification read from its database when /metrics is scraped: the timers waiting
to fire and the agents' tasks past their deadline (docs/operations.md, alerts)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from shared.clock import Clock
from shared.logging import get_logger

log = get_logger("notification")


class StoreGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.timers = Gauge("parcours_notification_timers_pending",
                            "Timers waiting to fire (every planned action not yet done)",
                            registry=registry)
        self.overdue = Gauge("parcours_notification_tasks_overdue",
                             "Agents' tasks not done whose deadline has passed", registry=registry)
        self.open_tasks = Gauge("parcours_notification_tasks_open",
                                "Agents' tasks not done", registry=registry)

    async def refresh(self, store: Any, clock: Clock) -> None:
        """Count from the database (a failure keeps the last values: the scrape still works,
        and readiness tells that the database is gone)."""
        try:
            now = clock.now()
            self.timers.set(await store.pending_count())
            self.overdue.set(await store.taches.count_documents(
                {"statut": {"$ne": "terminee"}, "echeance": {"$lt": now}}))
            self.open_tasks.set(await store.taches.count_documents({"statut": {"$ne": "terminee"}}))
        except Exception as exc:
            log.warning("jauges non rafraîchies", erreur=type(exc).__name__)

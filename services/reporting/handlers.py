"""Kafka subscribers of reporting: one consumer group per topic, each the single writer of its
fact collection. Thin: decode, project (projections.py), write by ``_id``, note the position.

Never subscribed: ``evenements-vie`` and ``personnes.coordonnees`` (personal data). The
rejects topic is read for its headers only (its value is the refused input).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import CollectorRegistry, Counter

from services.reporting import projections as p
from services.reporting.store import ReportingStore
from shared import topics
from shared.clock import Clock
from shared.cloudevents import CloudEvent
from shared.contracts import internes as i
from shared.kafka import dead_letter_router, subscriber_options
from shared.logging import bind_message_context, get_logger
from shared.settings import Settings

log = get_logger("reporting")

GROUPS: dict[str, str] = {
    topics.REJETS: "reporting-rejets",
    topics.DEMANDES: "reporting-demandes",
    topics.DECISIONS: "reporting-decisions",
    topics.ACTIONS: "reporting-actions",
    topics.RESULTATS: "reporting-resultats",
}


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.facts = Counter(
            "reporting_facts_total", "Events projected into facts", ["topic"], registry=registry
        )
        self.ignored = Counter(
            "reporting_ignored_total",
            "Events of an unknown type ignored",
            ["topic"],
            registry=registry,
        )


@dataclass
class Deps:
    settings: Settings
    store: ReportingStore
    clock: Clock
    raw: Any
    metrics: Metrics
    version: list[int] = field(default_factory=lambda: [0])

    def changed(self) -> None:
        self.version[0] += 1


async def _never_read(msg: Any) -> Any:
    """The rejects' value is never decoded: it is the refused input (personal data)."""
    return None


def router_for(s: Settings, get_deps: Callable[[], Deps],
               registry: CollectorRegistry | None = None) -> KafkaRouter:
    r = dead_letter_router(
        dlq_topic=s.topic(topics.DLQ),
        producer=lambda: get_deps().raw,
        service="reporting",
        registry=registry,
        retry_budget_seconds=s.transient_retry_max_seconds,
    )

    async def done(topic: str, msg: KafkaMessage, when: datetime | None) -> None:
        deps = get_deps()
        rec: Any = msg.raw_message
        await deps.store.seen(topic, rec.partition, rec.offset, when, deps.clock.now())
        deps.metrics.facts.labels(topic).inc()
        deps.changed()

    @r.subscriber(
        s.topic(topics.REJETS), decoder=_never_read, **subscriber_options(s, GROUPS[topics.REJETS])
    )
    async def on_reject(msg: KafkaMessage) -> None:
        rec: Any = msg.raw_message
        headers = {k.lower(): v for k, v in (rec.headers or ()) if v is not None}
        fact = p.rejet_fact(headers, rec.topic, rec.partition, rec.offset, rec.timestamp)
        await get_deps().store.put("rejets", fact)
        await done(topics.REJETS, msg, fact["rejete_le"])

    @r.subscriber(s.topic(topics.DEMANDES), **subscriber_options(s, GROUPS[topics.DEMANDES]))
    async def on_demande(event: CloudEvent[i.Demande], msg: KafkaMessage) -> None:
        bind_message_context(correlationid=event.correlationid, causationid=event.id)
        await get_deps().store.put("demandes", p.demande_fact(event))
        await done(topics.DEMANDES, msg, event.time)

    @r.subscriber(s.topic(topics.DECISIONS), **subscriber_options(s, GROUPS[topics.DECISIONS]))
    async def on_decision(event: CloudEvent[i.Decision], msg: KafkaMessage) -> None:
        bind_message_context(correlationid=event.correlationid, causationid=event.id)
        await get_deps().store.put("decisions", p.decision_fact(event))
        await done(topics.DECISIONS, msg, event.time)

    @r.subscriber(s.topic(topics.ACTIONS), **subscriber_options(s, GROUPS[topics.ACTIONS]))
    async def on_action(event: CloudEvent[dict[str, Any]], msg: KafkaMessage) -> None:
        bind_message_context(correlationid=event.correlationid, causationid=event.id)
        deps = get_deps()
        if event.type == i.ACTION_PLANIFIEE:
            planned = CloudEvent[i.ActionPlanifiee].model_validate(event.model_dump())
            await deps.store.set_fields(
                "actions", planned.data.action_id, p.action_planned_fields(planned)
            )
        elif event.type == i.ACTION_ANNULEE:
            cancelled = CloudEvent[i.ActionAnnulee].model_validate(event.model_dump())
            await deps.store.set_fields(
                "actions", cancelled.data.action_id, p.action_cancelled_fields(cancelled)
            )
        else:
            deps.metrics.ignored.labels(topics.ACTIONS).inc()
            log.info("type d'événement ignoré", type=event.type)
        await done(topics.ACTIONS, msg, event.time)

    @r.subscriber(s.topic(topics.RESULTATS), **subscriber_options(s, GROUPS[topics.RESULTATS]))
    async def on_resultat(event: CloudEvent[i.Resultat], msg: KafkaMessage) -> None:
        bind_message_context(correlationid=event.correlationid, causationid=event.id)
        await get_deps().store.put("resultats", p.resultat_fact(event))
        await done(topics.RESULTATS, msg, event.time)

    return r

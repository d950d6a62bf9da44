"""Kafka subscribers of reporting: one consumer group per topic, each the single writer of its
fact collection. In batches: decode, project (projections.py), write by ``_id``, note the
positions, commit. A record that is not JSON or not its topic's contract goes to
``parcours.dlq`` alone, with its bytes and a reason; the rest of the batch goes on.

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
from shared.cloudevents import VERIFIE, CloudEvent, decode_json
from shared.contracts import internes as i
from shared.kafka import (
    Reason,
    dead_letter,
    dead_letter_router,
    error_reason,
    raw_bodies,
    subscriber_options,
)
from shared.logging import get_logger
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


BATCH = 500
# The broker holds a fetch until this many bytes are there or this long has passed: records
# that trickle in (an outcome per action fired) come as one batch per half second rather than
# one each, and a batch costs two database commands whatever its size (docs/performance.md).
# The indicators lag by at most that much more.
LINGER = {"fetch_min_bytes": 256 * 1024, "fetch_max_wait_ms": 500}


@dataclass
class Lot:
    """A batch of one topic, projected: facts to write, positions, poison records."""

    docs: list[dict[str, Any]] = field(default_factory=list)
    fields: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    positions: dict[int, tuple[int, datetime | None]] = field(default_factory=dict)
    rejects: list[tuple[Any, Reason]] = field(default_factory=list)
    ignored: int = 0

    def took(self, rec: Any, when: datetime | None) -> None:
        offset, newest = self.positions.get(rec.partition, (-1, None))
        if newest is not None and (when is None or when < newest):
            when = newest
        self.positions[rec.partition] = (max(offset, rec.offset), when)


def _event(value: bytes, model: Any) -> Any:
    return model.model_validate(decode_json(value), context=VERIFIE)


def project_reject(lot: Lot, rec: Any) -> None:
    """From the headers only: the value is the refused input (personal data), never read."""
    headers = {k.lower(): v for k, v in (rec.headers or ()) if v is not None}
    fact = p.rejet_fact(headers, rec.topic, rec.partition, rec.offset, rec.timestamp)
    lot.docs.append(fact)
    lot.took(rec, fact["rejete_le"])


def project_demande(lot: Lot, rec: Any) -> None:
    event = _event(rec.value, CloudEvent[i.Demande])
    lot.docs.append(p.demande_fact(event))
    lot.took(rec, event.time)


def project_decision(lot: Lot, rec: Any) -> None:
    event = _event(rec.value, CloudEvent[i.Decision])
    lot.docs.append(p.decision_fact(event))
    lot.took(rec, event.time)


def project_action(lot: Lot, rec: Any) -> None:
    body = decode_json(rec.value)
    kind = body.get("type") if isinstance(body, dict) else None
    if kind == i.ACTION_PLANIFIEE:
        planned = CloudEvent[i.ActionPlanifiee].model_validate(body, context=VERIFIE)
        lot.fields.append((planned.data.action_id, p.action_planned_fields(planned)))
        when = planned.time
    elif kind == i.ACTION_ANNULEE:
        cancelled = CloudEvent[i.ActionAnnulee].model_validate(body, context=VERIFIE)
        lot.fields.append((cancelled.data.action_id, p.action_cancelled_fields(cancelled)))
        when = cancelled.time
    else:  # a CloudEvent of a type reporting does not count: ignored, not poison
        when = CloudEvent[dict[str, Any]].model_validate(body, context=VERIFIE).time
        lot.ignored += 1
        log.info("type d'événement ignoré", type=str(kind)[:80])
    lot.took(rec, when)


def project_resultat(lot: Lot, rec: Any) -> None:
    event = _event(rec.value, CloudEvent[i.Resultat])
    lot.docs.append(p.resultat_fact(event))
    lot.took(rec, event.time)


# Per topic: the fact collection its consumer writes, and how one record is projected.
PROJECTIONS: dict[str, tuple[str, Callable[[Lot, Any], None]]] = {
    topics.REJETS: ("rejets", project_reject),
    topics.DEMANDES: ("demandes", project_demande),
    topics.DECISIONS: ("decisions", project_decision),
    topics.ACTIONS: ("actions", project_action),
    topics.RESULTATS: ("resultats", project_resultat),
}


async def take(topic: str, records: tuple[Any, ...], deps: Deps) -> list[tuple[Any, Reason]]:
    """Project a batch of ``topic`` in offset order, write its facts in one round trip, then
    its positions; return the poison records (not JSON, not the contract), which the rest of
    the batch does not wait for. A redelivered batch writes the same facts again."""
    collection, project = PROJECTIONS[topic]
    lot = Lot()
    for rec in records:
        try:
            project(lot, rec)
        except Exception as exc:
            lot.rejects.append((rec, error_reason(exc)))
    await deps.store.write(collection, lot.docs, lot.fields)
    await deps.store.seen_many(topic, lot.positions, deps.clock.now())
    taken = len(records) - len(lot.rejects)
    if taken - lot.ignored:
        deps.metrics.facts.labels(topic).inc(taken - lot.ignored)
    if lot.ignored:
        deps.metrics.ignored.labels(topic).inc(lot.ignored)
    if taken:
        deps.changed()
    return lot.rejects


def router_for(s: Settings, get_deps: Callable[[], Deps],
               registry: CollectorRegistry | None = None) -> KafkaRouter:
    """One batch subscriber per topic: one round trip for a batch's facts, one for its
    positions, one offset commit (one per record cost far more than the record itself:
    docs/performance.md)."""
    r = dead_letter_router(
        dlq_topic=s.topic(topics.DLQ),
        producer=lambda: get_deps().raw,
        service="reporting",
        registry=registry,
        retry_budget_seconds=s.transient_retry_max_seconds,
    )

    async def take_batch(topic: str, msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        rejects = await take(topic, records, get_deps())
        await dead_letter(get_deps().raw, rejects, s.topic(topics.DLQ), "reporting",
                          r.dead_letters)  # type: ignore[attr-defined]

    batch: dict[str, Any] = {"batch": True, "max_records": BATCH, "batch_timeout_ms": 200,
                             "decoder": raw_bodies, **LINGER}

    @r.subscriber(s.topic(topics.REJETS), **batch, description="Rejected inputs, read for "
                  "their headers only (the value is the refused input: personal data).",
                  **subscriber_options(s, GROUPS[topics.REJETS]))
    async def on_rejects(msg: KafkaMessage) -> None:
        await take_batch(topics.REJETS, msg)

    @r.subscriber(s.topic(topics.DEMANDES), **batch,
                  description="Demands (parcours.demande.v1): one fact each.",
                  **subscriber_options(s, GROUPS[topics.DEMANDES]))
    async def on_demandes(msg: KafkaMessage) -> None:
        await take_batch(topics.DEMANDES, msg)

    @r.subscriber(s.topic(topics.DECISIONS), **batch,
                  description="Decisions on cases (parcours.decision.v1): one fact each.",
                  **subscriber_options(s, GROUPS[topics.DECISIONS]))
    async def on_decisions(msg: KafkaMessage) -> None:
        await take_batch(topics.DECISIONS, msg)

    @r.subscriber(s.topic(topics.ACTIONS), **batch, description="Actions planned and cancelled "
                  "(parcours.action-planifiee.v1, parcours.action-annulee.v1): the fields of "
                  "one fact per action.", **subscriber_options(s, GROUPS[topics.ACTIONS]))
    async def on_actions(msg: KafkaMessage) -> None:
        await take_batch(topics.ACTIONS, msg)

    @r.subscriber(s.topic(topics.RESULTATS), **batch,
                  description="Outcomes of actions (parcours.resultat.v1): one fact each.",
                  **subscriber_options(s, GROUPS[topics.RESULTATS]))
    async def on_resultats(msg: KafkaMessage) -> None:
        await take_batch(topics.RESULTATS, msg)

    return r

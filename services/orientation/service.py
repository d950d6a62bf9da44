"""Orientation's use cases: orient a demand, move a case on after an outcome.

Each input is handled as *load the person → decide (pure, ``rules.py``) → store → publish*:

1. the person's document is read by ``_id`` (pseudonym);
2. ``rules.decide`` / ``rules.on_result`` returns the new context and the messages;
3. the new context is written with a version check, **together with the cause in the outbox**
   (``a_publier``), in one single-document write;
4. the messages are published (cancellations, planned actions, decisions, in that order, all
   keyed by the pseudonym, so they stay in order on their partition), and the producer's
   acknowledgements awaited;
5. the cause is taken out of the outbox; only then does the handler return and the offset get
   committed (``NACK_ON_ERROR``).

A crash or a broker failure between 3 and 5 leaves the cause in the outbox: the redelivered
input (or the next input of the same person) rebuilds the same messages from the journal
(``rules.rejouer``) and publishes them again, with the same CloudEvent ids, which the next
service deduplicates. A redelivered input whose cause is stored and no longer in the outbox
changes nothing and publishes nothing.

CloudEvent ids are uuid5 of the cause (demand or outcome id) and of the content (the action,
the cancelled action, the decision), so every replay gives the same ids.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.orientation.catalogue import Catalogue
from services.orientation.rules import Outcome, PersonContext, decide, on_result, rejouer
from services.orientation.store import (
    ConflitEcriture,
    EnAttente,
    EtatPersonne,
    OrientationStore,
)
from shared import topics
from shared.clock import Clock
from shared.cloudevents import CloudEvent, headers_for, new_event
from shared.contracts import internes as i
from shared.ids import derive_id
from shared.kafka import RawProducer
from shared.logging import get_logger
from shared.settings import Settings

SOURCE = "urn:fr:assurance-maladie:parcours:orientation"
CONFLICT_ATTEMPTS = 5
log = get_logger("orientation")

Message = tuple[str, CloudEvent[Any], str]  # (declared topic, event, key)
Publisher = Callable[[Sequence[Message]], Awaitable[None]]


class Metrics:
    def __init__(self, registry: CollectorRegistry, catalogue_version: str) -> None:
        self.inputs = Counter("parcours_orientation_inputs_total",
                              "Demands and outcomes taken", ["kind", "what"], registry=registry)
        self.replays = Counter("parcours_orientation_redeliveries_total",
                               "Inputs already processed (redelivery): nothing changed",
                               ["kind", "republished"], registry=registry)
        self.planned = Counter("parcours_orientation_actions_planned_total",
                               "Actions planned", ["parcours"], registry=registry)
        self.cancelled = Counter("parcours_orientation_actions_cancelled_total",
                                 "Actions cancelled", registry=registry)
        self.decisions = Counter("parcours_orientation_decisions_total",
                                 "Decisions published", ["statut"], registry=registry)
        self.alerts = Counter("parcours_orientation_alerts_total",
                              "Situations flagged for an agent", ["code"], registry=registry)
        self.conflicts = Counter("parcours_orientation_write_conflicts_total",
                                 "Writes refused by the version check", registry=registry)
        info = Gauge("parcours_orientation_catalogue_info", "Catalogue in use",
                     ["version"], registry=registry)
        info.labels(catalogue_version).set(1)


@dataclass
class Deps:
    settings: Settings
    store: OrientationStore
    clock: Clock
    catalogue: Catalogue
    merge_window_days: int
    broker: KafkaBroker
    raw: RawProducer
    metrics: Metrics
    publier: Publisher


def broker_publisher(broker: KafkaBroker, settings: Settings) -> Publisher:
    """Publish every message, then wait for every acknowledgement (acks=all, idempotent)."""

    async def publier(messages: Sequence[Message]) -> None:
        futures = [
            await broker.publish(event.to_bytes(), settings.topic(topic), key=key.encode(),
                                 headers=headers_for(event), no_confirm=True)
            for topic, event, key in messages
        ]
        for future in futures:
            await future

    return publier


# --------------------------------------------------------------------------- use cases


async def orienter(event: CloudEvent[i.Demande], deps: Deps) -> Outcome:
    """One demand from ``parcours.demandes``."""
    _attendre_type(event, i.DEMANDE)
    d = event.data
    deps.metrics.inputs.labels("demande", d.evenement).inc()
    return await _traiter(
        d.pseudonyme, d.demande_id, event, deps, "demande",
        lambda ctx, now: decide(ctx, d, deps.catalogue, now,
                                merge_window_days=deps.merge_window_days))


async def suivre_resultat(event: CloudEvent[i.Resultat], deps: Deps) -> Outcome:
    """One outcome from ``parcours.resultats``."""
    _attendre_type(event, i.RESULTAT)
    r = event.data
    deps.metrics.inputs.labels("resultat", r.statut).inc()
    return await _traiter(
        r.pseudonyme, r.resultat_id, event, deps, "resultat",
        lambda ctx, now: on_result(ctx, r, deps.catalogue, now,
                                   merge_window_days=deps.merge_window_days))


class TypeInattendu(ValueError):
    pass


def _attendre_type(event: CloudEvent[Any], attendu: str) -> None:
    if event.type != attendu:
        raise TypeInattendu(f"type {event.type!r} on this topic, expected {attendu!r}")


async def _traiter(pseudonyme: str, cause: str, event: CloudEvent[Any], deps: Deps, kind: str,
                   decider: Callable[[PersonContext, datetime], Outcome]) -> Outcome:
    for _ in range(CONFLICT_ATTEMPTS):
        now = deps.clock.now()
        etat = await deps.store.charger(pseudonyme)
        etat = await _vider_outbox(etat, deps, sauf=cause)
        outcome = decider(etat.contexte, now)
        if outcome.rejoue:
            attente = etat.en_attente(cause)
            deps.metrics.replays.labels(kind, str(attente is not None).lower()).inc()
            log.info("entrée déjà traitée", cause=cause, republiee=attente is not None)
            if attente is not None:
                await _publier(etat, outcome, attente, deps)
            return outcome
        attente = EnAttente(cause, event.id, event.correlationid or event.id)
        try:
            etat = await deps.store.enregistrer(
                etat, outcome.contexte,
                (*(e for e in etat.a_publier if e.cause != cause), attente), now)
        except ConflitEcriture:
            deps.metrics.conflicts.inc()
            log.warning("conflit d'écriture, nouvelle décision", cause=cause)
            continue
        await _publier(etat, outcome, attente, deps)
        _compter(outcome, deps.metrics)
        log.info("entrée traitée", cause=cause, kind=kind,
                 planifiees=len(outcome.actions_planifiees),
                 annulees=len(outcome.actions_annulees), decisions=len(outcome.decisions),
                 alertes=[a.code for a in outcome.alertes])
        return outcome
    raise NackMessage()  # left to be read again: never dropped, never dead-lettered


async def _vider_outbox(etat: EtatPersonne, deps: Deps, sauf: str) -> EtatPersonne:
    """Publish what earlier causes stored but never saw acknowledged (same ids)."""
    for attente in etat.a_publier:
        if attente.cause == sauf:
            continue
        outcome = rejouer(etat.contexte, attente.cause)
        if outcome is None:
            etat = await deps.store.publie(etat, attente.cause)
        else:
            log.info("publication en attente reprise", cause=attente.cause)
            etat = await _publier(etat, outcome, attente, deps)
    return etat


async def _publier(etat: EtatPersonne, outcome: Outcome, attente: EnAttente,
                   deps: Deps) -> EtatPersonne:
    await deps.publier(messages(outcome, attente, deps.clock.now()))
    return await deps.store.publie(etat, attente.cause)


def messages(outcome: Outcome, attente: EnAttente, now: datetime) -> list[Message]:
    """The outcome as CloudEvents, in order: cancellations, planned actions, decisions.

    Ids: uuid5 of the cause and of the content; causationid is the CloudEvent that carried
    the cause, correlationid the chain's origin (the life event or the referral).
    """
    cause = attente.cause
    out: list[Message] = []
    for a in outcome.actions_annulees:
        eid = derive_id("cloudevent", i.ACTION_ANNULEE, cause, a.action_id)
        out.append((topics.ACTIONS, _event(i.ACTION_ANNULEE, eid, a, attente, now), a.pseudonyme))
    for p in outcome.actions_planifiees:
        eid = derive_id("cloudevent", i.ACTION_PLANIFIEE, cause, p.action_id)
        out.append((topics.ACTIONS, _event(i.ACTION_PLANIFIEE, eid, p, attente, now),
                    p.pseudonyme))
    for d in outcome.decisions:
        eid = derive_id("cloudevent", i.DECISION, d.decision_id)
        out.append((topics.DECISIONS, _event(i.DECISION, eid, d, attente, now), d.pseudonyme))
    return out


def _event(type_: str, eid: str, data: Any, attente: EnAttente, now: datetime) -> CloudEvent[Any]:
    event = new_event(type=type_, source=SOURCE, id=eid, data=data, subject=data.pseudonyme,
                      time=now, correlationid=attente.correlation)
    return event.model_copy(update={"causationid": attente.evenement})


def _compter(outcome: Outcome, metrics: Metrics) -> None:
    for a in outcome.actions_planifiees:
        metrics.planned.labels(a.parcours).inc()
    metrics.cancelled.inc(len(outcome.actions_annulees))
    for d in outcome.decisions:
        metrics.decisions.labels(d.statut).inc()
    for alerte in outcome.alertes:
        metrics.alerts.labels(alerte.code).inc()

"""Orientation's use cases: orient a demand, move a case on after an outcome.

Each input is handled as *load the person → decide (pure, ``rules.py``) → store → publish*:

1. the person's document is read by ``_id`` (pseudonym);
2. ``rules.decide`` / ``rules.on_result`` returns the new context and the messages;
3. the new context is written with a version check, **together with the cause in the outbox**
   (``a_publier``), in one single-document write (an input that publishes nothing, such as most
   outcomes of actions, has no outbox entry: steps 4 and 5 are skipped, and its cause in the
   journal is what a redelivery finds);
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

A batch (``traiter_lot``) takes the same steps for its persons seen for the first time (most of
a monthly batch), but together: one insert registers them all as known, their inputs are
decided in memory (one person's in order), their first documents (version 1, every cause of the
batch in the outbox) are stored by one insert, their messages published together, and their
acknowledgements stored by one insert. Every other person, and a new one whose document another
writer stored first, goes through ``_traiter``, one input at a time. The guarantees are the
ones above: a crash anywhere leaves either nothing stored (the inputs are read again and
decided again, the same way) or the causes in the outbox (published again, same ids).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.orientation.catalogue import Catalogue
from services.orientation.rules import (
    Outcome,
    PersonContext,
    decide,
    expirer,
    on_result,
    rejouer,
)
from services.orientation.store import (
    ConflitEcriture,
    EnAttente,
    EtatPersonne,
    OrientationStore,
    vers_document,
)
from shared import topics
from shared.clock import Clock
from shared.cloudevents import CloudEvent, new_event
from shared.contracts import internes as i
from shared.ids import derive_id
from shared.kafka import EventPublisher, RawProducer, is_transient
from shared.logging import bind_message_context, get_logger
from shared.metrics import add_counts
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


def event_publisher(publisher: EventPublisher, settings: Settings) -> Publisher:
    """Publish every message, then wait for every acknowledgement (acks=all, idempotent)."""

    async def publier(messages: Sequence[Message]) -> None:
        await publisher.publish((settings.topic(topic), event, key)
                                for topic, event, key in messages)

    return publier


# --------------------------------------------------------------------------- use cases


async def orienter(event: CloudEvent[i.Demande], deps: Deps) -> Outcome:
    """One demand from ``parcours.demandes``, alone (what a batch does for a known person)."""
    _attendre_type(event, i.DEMANDE)
    return await Entree.of(event, deps).traiter(deps)


async def suivre_resultat(event: CloudEvent[i.Resultat], deps: Deps) -> Outcome:
    """One outcome from ``parcours.resultats``, alone."""
    _attendre_type(event, i.RESULTAT)
    return await Entree.of(event, deps).traiter(deps)


class TypeInattendu(ValueError):
    pass


# --------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Entree:
    """One decoded input of a batch: whom it is about, its cause, how to decide it."""

    pseudonyme: str
    cause: str
    event: CloudEvent[Any]
    kind: str
    what: str
    decider: Callable[[PersonContext, datetime], Outcome]
    source: Any = None  # the Kafka record, to dead-letter it alone

    @classmethod
    def of(cls, event: CloudEvent[Any], deps: Deps, source: Any = None) -> Entree:
        if event.type == i.DEMANDE:
            d: i.Demande = event.data
            return cls(d.pseudonyme, d.demande_id, event, "demande", d.evenement,
                       lambda ctx, now: decide(ctx, d, deps.catalogue, now,
                                               merge_window_days=deps.merge_window_days), source)
        if event.type == i.RESULTAT:
            r: i.Resultat = event.data
            return cls(r.pseudonyme, r.resultat_id, event, "resultat", r.statut,
                       lambda ctx, now: on_result(ctx, r, deps.catalogue, now,
                                                  merge_window_days=deps.merge_window_days), source)
        raise TypeInattendu(f"type {event.type!r}: orientation reads {i.DEMANDE} and {i.RESULTAT}")

    async def traiter(self, deps: Deps) -> Outcome:
        """This input alone (the path of a known person)."""
        bind_message_context(correlationid=self.event.correlationid, causationid=self.event.id)
        deps.metrics.inputs.labels(self.kind, self.what).inc()
        return await _traiter(self.pseudonyme, self.cause, self.event, deps, self.kind,
                              self.decider)


Poison = Callable[[Entree, Exception], None]


@dataclass
class _Premier:
    """A new person's inputs of the batch, decided in memory."""

    entrees: list[Entree]
    contexte: PersonContext
    attentes: list[EnAttente] = field(default_factory=list)
    outcomes: list[tuple[Entree, Outcome]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    maj_le: datetime | None = None


async def traiter_lot(personnes: Sequence[Sequence[Entree]], deps: Deps, concurrency: int,
                      poison: Poison) -> None:
    """A batch, grouped by person (each group in offset order). ``poison`` receives an input
    that cannot be decided (a bug, a contract the rules refuse): the rest goes on. An outage
    is raised, after every person under way has finished, for the whole batch to be read
    again (what was done is recognised)."""
    gate = asyncio.Semaphore(concurrency)

    async def une_a_une(entrees: Sequence[Entree]) -> None:
        async with gate:
            for entree in entrees:
                try:
                    await entree.traiter(deps)
                except NackMessage:
                    raise
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    poison(entree, exc)

    # A person whose first input is a demand is presumed new (a monthly batch is mostly
    # first-time persons): decided in memory, stored by one insert that also tells who was
    # already there. An outcome is always about a known person: one input at a time.
    connus = [g for g in personnes if g[0].kind != "demande"]
    premiers = [g for g in personnes if g[0].kind == "demande"]

    async def en_lot() -> None:
        deja_la = await _premiers(premiers, deps)
        await _attendre([une_a_une(g) for g in deja_la])

    await _attendre([en_lot(), *(une_a_une(g) for g in connus)])


async def _attendre(travaux: Sequence[Awaitable[None]]) -> None:
    results = await asyncio.gather(*travaux, return_exceptions=True)
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is not None:
        raise failure


async def _premiers(groupes: Sequence[Sequence[Entree]], deps: Deps) -> list[Sequence[Entree]]:
    """Persons presumed new: decide in memory, store, publish, acknowledge, all together.
    Returns the groups to take one input at a time: the persons already stored (known, or
    stored meanwhile by another writer), and those an input of which the rules refused on an
    empty context (decided again against the stored one, where a refusal is poison)."""
    plans: list[_Premier] = []
    a_reprendre: list[Sequence[Entree]] = []
    for entrees in groupes:
        plan = _Premier(list(entrees), PersonContext(pseudonyme=entrees[0].pseudonyme))
        try:
            for entree in entrees:
                now = deps.clock.now()
                outcome = entree.decider(plan.contexte, now)
                if outcome.rejoue:  # the same input twice in the batch: its cause is pending
                    deps.metrics.replays.labels(entree.kind, "true").inc()
                    continue
                attente = EnAttente(entree.cause, entree.event.id,
                                    entree.event.correlationid or entree.event.id)
                plan.attentes.append(attente)
                plan.outcomes.append((entree, outcome))
                plan.messages.extend(messages(outcome, attente, now))
                plan.contexte, plan.maj_le = outcome.contexte, now
        except Exception:
            a_reprendre.append(entrees)
            continue
        if plan.attentes:
            plans.append(plan)
    deja_la = await deps.store.inserer_nouveaux(
        [vers_document(p.contexte, 1, tuple(p.attentes), p.maj_le or deps.clock.now())
         for p in plans])
    a_reprendre += [p.entrees for p in plans if p.contexte.pseudonyme in deja_la]
    stored = [p for p in plans if p.contexte.pseudonyme not in deja_la]
    if not stored:
        return a_reprendre
    await deps.publier([m for p in stored for m in p.messages])
    await deps.store.publies_nouveaux(
        [(p.contexte.pseudonyme, a.cause) for p in stored for a in p.attentes])
    done = [(entree, outcome) for p in stored for entree, outcome in p.outcomes]
    add_counts(deps.metrics.inputs, ((entree.kind, entree.what) for entree, _ in done))
    _compter([outcome for _, outcome in done], deps.metrics)
    log.info("lot de nouvelles personnes traité", personnes=len(stored),
             entrees=sum(len(p.outcomes) for p in stored), deja_connues=len(deja_la))
    return a_reprendre


def _attendre_type(event: CloudEvent[Any], attendu: str) -> None:
    if event.type != attendu:
        raise TypeInattendu(f"type {event.type!r} on this topic, expected {attendu!r}")


async def expirer_dossiers(pseudonyme: str, deps: Deps) -> Outcome | None:
    """Close the person's cases past their parcours' maximum duration (``rules.expirer``),
    their pending actions cancelled: the periodic job's part of what an input would have done
    (a case whose person sends nothing more would stay open, its person never purged).

    Stored and published like an input's outcome, under a cause derived from the cases it
    closes: a job repeated, or run by two instances at once, finds that cause in the journal
    (the same messages again, with the same ids). None when nothing is to close."""
    etat = await deps.store.charger(pseudonyme)
    if any(e.evenement is None for e in etat.a_publier):
        # an earlier run stored its closing but stopped before the broker acknowledged it: no
        # message will bring this person back, so publish it now (the same ids)
        etat = await _vider_outbox(etat, deps, sauf="")
    sonde = expirer(etat.contexte, deps.catalogue, deps.clock.now())
    nouvelles = sonde.contexte.journal.keys() - etat.contexte.journal.keys()
    if not nouvelles:
        return None
    (cause,) = nouvelles

    def decider(contexte: PersonContext, now: datetime) -> Outcome:
        if cause in contexte.journal:  # already closed by an earlier run: publish again
            return Outcome(contexte=contexte, rejoue=True)
        outcome = expirer(contexte, deps.catalogue, now)
        if cause not in outcome.contexte.journal:  # the cases changed since: the next run
            return Outcome(contexte=contexte, rejoue=True)
        return outcome

    return await _traiter(pseudonyme, cause, None, deps, "expiration", decider)


async def _traiter(pseudonyme: str, cause: str, event: CloudEvent[Any] | None, deps: Deps,
                   kind: str, decider: Callable[[PersonContext, datetime], Outcome]) -> Outcome:
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
                await _publier(etat, attente, messages(outcome, attente, now), deps)
            return outcome
        attente = (EnAttente(cause, event.id, event.correlationid or event.id) if event
                   else EnAttente(cause))  # the periodic job: no message caused it
        # An input that publishes nothing (most outcomes of actions: a letter sent) is kept in
        # the journal only: no outbox entry, so no acknowledgement to write after it.
        publies = messages(outcome, attente, now)
        outbox = tuple(e for e in etat.a_publier if e.cause != cause)
        try:
            etat = await deps.store.enregistrer(
                etat, outcome.contexte, (*outbox, attente) if publies else outbox, now)
        except ConflitEcriture:
            deps.metrics.conflicts.inc()
            log.warning("conflit d'écriture, nouvelle décision", cause=cause)
            continue
        if publies:
            await _publier(etat, attente, publies, deps)
        _compter([outcome], deps.metrics)
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
            etat = await _publier(etat, attente, messages(outcome, attente, deps.clock.now()),
                                  deps)
    return etat


async def _publier(etat: EtatPersonne, attente: EnAttente, publies: list[Message],
                   deps: Deps) -> EtatPersonne:
    """Publish a cause's messages, then take the cause out of the outbox."""
    await deps.publier(publies)
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


def _compter(outcomes: Sequence[Outcome], metrics: Metrics) -> None:
    add_counts(metrics.planned, (a.parcours for o in outcomes for a in o.actions_planifiees))
    metrics.cancelled.inc(sum(len(o.actions_annulees) for o in outcomes))
    add_counts(metrics.decisions, (d.statut for o in outcomes for d in o.decisions))
    add_counts(metrics.alerts, (alerte.code for o in outcomes for alerte in o.alertes))

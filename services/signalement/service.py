"""Signalement's use cases: take a batch of life events; take a partner's referral; follow
a referral's status from what orientation and notification publish.

Order of effects, for every input: store (idempotent, keyed by ``_id``) → publish (and wait
for the broker's acknowledgement) → mark published. A crash anywhere re-runs the whole input
on redelivery, which re-publishes only what was not yet marked published, with the same ids.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from services.signalement import intake
from services.signalement.intake import Accepted, Rejected
from services.signalement.partners import Partner
from services.signalement.store import PersonFlags, SignalementStore, event_key
from shared import topics
from shared.calendar import add_business_hours
from shared.clock import Clock
from shared.cloudevents import CloudEvent, new_event
from shared.contracts import internes as i
from shared.ids import derive_id
from shared.kafka import EventPublisher, RawProducer, Reason, describe_error, is_transient
from shared.logging import get_logger
from shared.metrics import add_counts
from shared.nir import Pseudonymizer
from shared.settings import Settings

PARIS = ZoneInfo("Europe/Paris")
SOURCE = "urn:fr:assurance-maladie:parcours:signalement"
HANDOVER_HOURS = 48
log = get_logger("signalement")


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = PromCounter("parcours_signalement_events_received_total",
                                    "Life-event records taken from evenements-vie",
                                    registry=registry)
        self.accepted = PromCounter("parcours_signalement_events_accepted_total",
                                    "Life events accepted", ["evenement"], registry=registry)
        self.rejected = PromCounter("parcours_signalement_events_rejected_total",
                                    "Records sent to evenements-vie.rejets", ["raison"],
                                    registry=registry)
        self.duplicates = PromCounter("parcours_signalement_events_duplicate_total",
                                      "Records already taken (redelivery or second source)",
                                      ["kind"], registry=registry)
        self.referrals = PromCounter("parcours_signalement_referrals_total",
                                     "Partners' referrals accepted", ["detecteur"],
                                     registry=registry)


@dataclass
class Deps:
    settings: Settings
    store: SignalementStore
    clock: Clock
    pseudonymizer: Pseudonymizer
    broker: KafkaBroker
    raw: RawProducer
    metrics: Metrics
    publisher: EventPublisher


@dataclass
class BatchReport:
    received: int = 0
    accepted: int = 0
    published: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0


@dataclass
class _Outgoing:
    events: list[tuple[str, CloudEvent[Any], str]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)  # markers: _id, demande_id
    rejects: list[tuple[ConsumerRecord[Any, Any], Reason]] = field(default_factory=list)


@dataclass
class _Prepared:
    """An accepted record, routed, waiting for its demand to be stored."""

    record: ConsumerRecord[Any, Any]
    accepted: Accepted
    key: str
    pseudo: str
    demande: i.Demande
    coordonnees: i.Coordonnees


@dataclass
class _Flags:
    """Per batch: each person's flags as read, as they become, and their stored version."""

    read: dict[str, tuple[PersonFlags, int]] = field(default_factory=dict)
    current: dict[str, PersonFlags] = field(default_factory=dict)


def _headers(record: ConsumerRecord[Any, Any]) -> dict[str, bytes]:
    return {k.lower(): v for k, v in (record.headers or ()) if v is not None}


FLAG_READS_IN_FLIGHT = 16


async def take_life_events(
    records: tuple[ConsumerRecord[Any, Any], ...], deps: Deps
) -> BatchReport:
    """One batch of ``evenements-vie``: accepted ones downstream, the others to the rejects.

    The database work is batched (docs/performance.md): one insert of the claims, the
    persons' flags read concurrently, one insert of the demands, one insert of the
    published markers; per record only a read by ``_id`` on rare paths (redelivery,
    correction, second source).
    """
    now = deps.clock.now()
    today = now.astimezone(PARIS).date()
    report = BatchReport(received=len(records))
    out = _Outgoing()
    accepted: list[tuple[ConsumerRecord[Any, Any], Accepted, str]] = []
    for record in records:
        try:
            a = intake.accept(record.value, _headers(record), today)
        except Rejected as exc:
            out.rejects.append((record, exc.reason))
            continue
        accepted.append((record, a, event_key(a.event.source, a.event.id)))

    claims = [{"_id": key, "source": a.event.source, "id": a.event.id, "evenement": a.name,
               "recu_le": now} for _, a, key in _first_of_each(accepted)]
    already = await deps.store.claim_events(claims)
    todo: list[tuple[ConsumerRecord[Any, Any], Accepted, str]] = []
    seen: set[str] = set()
    for record, a, key in accepted:
        if key in seen:  # the same CloudEvent twice in one batch
            report.duplicates += 1
            continue
        seen.add(key)
        if key in already and await deps.store.event(key) is not None:
            report.duplicates += 1
            deps.metrics.duplicates.labels("redelivery").inc()
            continue
        todo.append((record, a, key))

    pseudos = {a.event.id: deps.pseudonymizer.pseudonym(a.data.assure.nir) for _, a, _ in todo}
    flags = _Flags(read=await _read_flags(set(pseudos.values()), deps.store))
    links: dict[str, str] = {}  # event key -> demande_id, for corrections within the batch
    prepared: list[_Prepared] = []
    for record, a, key in todo:
        try:
            p = await _prepare(record, a, key, pseudos[a.event.id], now, deps, flags, links)
        except Rejected as exc:
            out.rejects.append((record, exc.reason))
            out.published.append({"_id": key})
            continue
        except Exception as exc:  # a bug must not block the batch nor lose the record
            if is_transient(exc):
                raise
            log.exception("unexpected error on one record; sent to the rejects")
            out.rejects.append((record, Reason("erreur.interne", describe_error(exc))))
            out.published.append({"_id": key})
            continue
        links[key] = p.demande.demande_id
        prepared.append(p)

    await _write_flags(flags, deps.store)
    await _store_demands(prepared, now, deps, out, report)
    await _send(out, deps)
    report.rejected.update(reason.code for _, reason in out.rejects)
    add_counts(deps.metrics.rejected, (reason.code for _, reason in out.rejects))
    deps.metrics.received.inc(len(records))
    return report


def _first_of_each(items: list[tuple[Any, Accepted, str]]) -> list[tuple[Any, Accepted, str]]:
    seen: set[str] = set()
    firsts = []
    for item in items:
        if item[2] not in seen:
            seen.add(item[2])
            firsts.append(item)
    return firsts


async def _read_flags(pseudos: set[str],
                      store: SignalementStore) -> dict[str, tuple[PersonFlags, int]]:
    """Every person's flags: none for a person never seen; the others read concurrently."""
    gate = asyncio.Semaphore(FLAG_READS_IN_FLIGHT)
    known = await store.persons_seen(sorted(pseudos))
    flags = {p: (PersonFlags(), 0) for p in pseudos - known}

    async def one(pseudo: str) -> tuple[str, tuple[PersonFlags, int]]:
        async with gate:
            return pseudo, await store.person_flags(pseudo)

    flags.update(await asyncio.gather(*(one(p) for p in known)))
    return flags


async def _write_flags(flags: _Flags, store: SignalementStore) -> None:
    """Append a new version for each person whose flags changed in this batch."""
    await store.set_persons_flags([(p, f, flags.read[p][1]) for p, f in flags.current.items()
                                   if f != flags.read[p][0]])


async def _prepare(record: ConsumerRecord[Any, Any], a: Accepted, key: str, pseudo: str,
                   now: datetime, deps: Deps, flags: _Flags, links: dict[str, str]) -> _Prepared:
    reference = None
    if a.data.nature != "initial":
        original_key = event_key(a.event.source, a.data.evenement_reference or "")
        reference = links.get(original_key)
        if reference is None:
            original = await deps.store.event(original_key)
            reference = (original or {}).get("demande_id")
        if not reference:
            raise Rejected("correction.reference-inconnue")

    before = flags.current.get(pseudo) or flags.read[pseudo][0]
    new_flags = _merge_flags(before, a)
    flags.current[pseudo] = new_flags

    securite = i.Securite(violences_intrafamiliales=new_flags.violences)
    down = intake.to_downstream(a, pseudo, now, reference_demande=reference, securite=securite)
    coordonnees = down.coordonnees.model_copy(update={"decede": new_flags.decede})
    return _Prepared(record, a, key, pseudo, down.demande, coordonnees)


async def _store_demands(prepared: list[_Prepared], now: datetime, deps: Deps, out: _Outgoing,
                         report: BatchReport) -> None:
    """Insert the demands in one batch, then queue each record's messages in input order."""
    existing = await deps.store.add_demands([{
        "_id": p.demande.demande_id, "pseudonyme": p.pseudo, "evenement": p.accepted.name,
        "nature": p.demande.nature, "date_effet": p.demande.date_effet.isoformat(),
        "recu_le": now,
        "sources": [{"source": p.accepted.event.source, "id": p.accepted.event.id}],
    } for p in prepared])
    accepted: list[str] = []
    for n, p in enumerate(prepared):
        cause = p.accepted.event
        marker = {"_id": p.key, "demande_id": p.demande.demande_id}
        source = {"source": cause.source, "id": cause.id}
        if n in existing:
            stored = await deps.store.demand(p.demande.demande_id)
            first_source = (stored or {}).get("sources", [{}])[0]
            if first_source != source:
                # The same life event from a second source: one demand, both sources recorded.
                await deps.store.add_source(p.demande.demande_id, source)
                report.duplicates += 1
                deps.metrics.duplicates.labels("second-source").inc()
                out.events.append((topics.COORDONNEES,
                                   _coordonnees_event(p.coordonnees, cause, now), p.pseudo))
                out.published.append(marker)
                continue
        out.events.append((topics.DEMANDES, _demande_event(p.demande, cause, now), p.pseudo))
        out.events.append((topics.COORDONNEES, _coordonnees_event(p.coordonnees, cause, now),
                           p.pseudo))
        out.published.append(marker)
        report.accepted += 1
        accepted.append(p.accepted.name)
        # the first link of the chain in the logs (issue 7): same correlationid downstream
        log.info("événement accepté", correlationid=cause.correlationid or cause.id,
                 causationid=cause.id, evenement=p.accepted.name,
                 demande_id=p.demande.demande_id)
    add_counts(deps.metrics.accepted, accepted)


def _merge_flags(flags: PersonFlags, a: Accepted) -> PersonFlags:
    decede = flags.decede
    if a.name == "deces":
        decede = a.data.nature != "annulation"
    violences = flags.violences or bool(getattr(a.data, "violences_intrafamiliales", False))
    return PersonFlags(decede=decede, violences=violences)


def _demande_event(demande: i.Demande, cause: CloudEvent[Any] | None,
                   now: datetime) -> CloudEvent[Any]:
    return new_event(type=i.DEMANDE, source=SOURCE, id=demande.demande_id, data=demande,
                     subject=demande.pseudonyme, time=now, cause=cause)


def _coordonnees_event(c: i.Coordonnees, cause: CloudEvent[Any] | None,
                       now: datetime) -> CloudEvent[Any]:
    eid = derive_id("coordonnees", c.pseudonyme, cause.id if cause else now.isoformat())
    return new_event(type=i.COORDONNEES, source=SOURCE, id=eid, data=c, subject=c.pseudonyme,
                     time=now, cause=cause)


async def _send(out: _Outgoing, deps: Deps) -> None:
    """Publish everything, wait for every acknowledgement, then mark the events published."""
    sends = [deps.publisher.publish((deps.settings.topic(topic), event, key)
                                    for topic, event, key in out.events)]
    if out.rejects:
        sends.append(deps.raw.reject(out.rejects, deps.settings.topic(topics.REJETS),
                                     "signalement"))
    await asyncio.gather(*sends)
    await deps.store.mark_published(out.published)


# --------------------------------------------------------------------------- referrals


@dataclass(frozen=True)
class Acknowledgement:
    reference: str
    recu_le: datetime
    echeance: datetime
    new: bool


class IdempotencyConflict(Exception):
    pass


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def new_reference(now: datetime, partner: str, idempotency_key: str | None) -> str:
    seed = (derive_id("signalement", partner, idempotency_key) if idempotency_key
            else uuid.uuid4().hex)
    return f"SIG-{now.astimezone(PARIS):%Y%m%d}-{seed.replace('-', '')[:10].upper()}"


async def submit_referral(fiche: Any, partner: Partner, idempotency_key: str | None,
                          deps: Deps) -> Acknowledgement:
    """Record the referral, hand it to orientation as a demand, acknowledge it."""
    now = deps.clock.now()
    reference = new_reference(now, partner.id, idempotency_key)
    dumped = fiche.model_dump(mode="json")
    if idempotency_key:
        recorded = await deps.store.remember_idempotency_key(
            partner.id, idempotency_key, reference, body_hash(dumped), now)
        if recorded["body_hash"] != body_hash(dumped):
            raise IdempotencyConflict()
        reference = recorded["reference"]

    existing = await deps.store.referral(reference)
    if existing is not None and existing.get("publie"):
        return Acknowledgement(reference, existing["recu_le"], existing["echeance"], new=False)

    pseudo = deps.pseudonymizer.pseudonym(fiche.personne.nir)
    recu_le = existing["recu_le"] if existing else now
    echeance = add_business_hours(recu_le, HANDOVER_HOURS)
    demande, coordonnees = referral_downstream(fiche, partner, reference, pseudo, recu_le)
    if existing is None:
        await deps.store.insert_referral({
            "_id": reference, "partenaire": partner.id, "detecteur": partner.type,
            "pseudonyme": pseudo, "situation": fiche.situation, "recu_le": recu_le,
            "echeance": echeance, "statut": "recu", "demande_id": demande.demande_id,
            "historique": [{"statut": "recu", "le": recu_le, "evenement": reference,
                            "detail": "signalement reçu"}],
            "publie": False,
        })
    out = _Outgoing()
    out.events.append((topics.DEMANDES, _demande_event(demande, None, recu_le), pseudo))
    out.events.append((topics.COORDONNEES, _coordonnees_event(coordonnees, None, recu_le), pseudo))
    await _send(out, deps)
    await deps.store.mark_referral_published(reference)
    deps.metrics.referrals.labels(partner.type).inc()
    return Acknowledgement(reference, recu_le, echeance, new=existing is None)


def referral_downstream(fiche: Any, partner: Partner, reference: str, pseudo: str,
                        now: datetime) -> tuple[i.Demande, i.Coordonnees]:
    p = fiche.personne
    today = now.astimezone(PARIS).date()
    demande = i.Demande(
        demande_id=derive_id("demande", "signalement", reference),
        pseudonyme=pseudo,
        origine="signalement",
        evenement="signalement",
        date_effet=today,
        recu_le=now,
        age=intake.age_at(p.date_naissance, today),
        naissance=p.date_naissance.strftime("%Y-%m"),
        territoire=intake.territoire(p.adresse),
        drapeaux={"consentement_contact": fiche.consentement_contact},
        detecteur=i.Detecteur(type=partner.type, identifiant=partner.id),
        signalement={"reference": reference, "situation": fiche.situation,
                     "soins_renonces": list(fiche.soins_renonces), "motifs": list(fiche.motifs),
                     "consentement_contact": fiche.consentement_contact},
    )
    coordonnees = i.Coordonnees(
        pseudonyme=pseudo, nom=p.nom, prenom=p.prenom, adresse=p.adresse, telephone=p.telephone,
        email=p.email, consentement_contact=fiche.consentement_contact, maj_le=now,
    )
    return demande, coordonnees


# --------------------------------------------------------------------------- status feed

DECISION_STATUS = {"ouvert": "pris-en-charge", "mis-a-jour": "en-cours", "clos": "clos",
                   "refuse": "clos", "a-verifier": "en-cours"}
RESULT_STATUS = {"tache-creee": "pris-en-charge", "appel": "en-cours", "envoye": "en-cours",
                 "objectif-atteint": "clos"}


async def follow_decision(event: CloudEvent[i.Decision], store: SignalementStore) -> bool:
    d = event.data
    if not d.reference_signalement or d.statut not in DECISION_STATUS:
        return False
    detail = d.motif_cloture or (d.explication[0] if d.explication else d.statut)
    return await store.append_status(d.reference_signalement, {
        "statut": DECISION_STATUS[d.statut], "le": event.time, "evenement": event.id,
        "detail": detail[:300], "parcours": d.parcours,
    })


async def follow_result(event: CloudEvent[i.Resultat], store: SignalementStore) -> bool:
    r = event.data
    if not r.reference_signalement or r.statut not in RESULT_STATUS:
        return False
    detail = r.issue_appel or r.raison or r.statut
    return await store.append_status(r.reference_signalement, {
        "statut": RESULT_STATUS[r.statut], "le": event.time, "evenement": event.id,
        "detail": detail[:300], "parcours": r.parcours,
    })

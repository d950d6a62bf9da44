"""Notification's use cases: plan and cancel actions (timers as data), keep contact data, fire a
due timer (guard, then exactly one effect), and the agents' phone tasks.

Order of effects when an action fires, each step idempotent, the timer deleted last:

1. the guard (:func:`rules.decide`): skip, defer (move the timer), or send;
2. the attempt document (``envois``, ``_id`` = action_id) is inserted **before** any effect;
   a second firing finds it and resumes it instead of starting another effect;
3. the effect, with the action id as idempotency key (letter files named by it, SMS
   ``Idempotency-Key``, e-mail ``Message-ID``, task ``_id`` derived from it);
4. the attempt is marked done, the outcome published on ``parcours.resultats`` (id derived from
   the action: a re-publication is deduplicated downstream), the action closed, the timer
   deleted. A crash anywhere makes the timer fire again and resume at the first undone step.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.notification import letters, rules
from services.notification.channels import (
    Email,
    EmailSender,
    PermanentSendError,
    Sms,
    SmsSender,
    TransientSendError,
)
from services.notification.store import NotificationStore
from services.notification.templates import Templates, letter_values
from shared import topics
from shared.clock import Clock, to_millis
from shared.cloudevents import CloudEvent, headers_for, new_event
from shared.contracts import internes as i
from shared.ids import derive_id
from shared.kafka import RawProducer, is_transient
from shared.logging import bind_message_context, get_logger
from shared.retention import stop_task
from shared.settings import Settings

SOURCE = "urn:fr:assurance-maladie:parcours:notification"
log = get_logger("notification")

PLANIFIEE, ANNULEE, TERMINEE = "planifiee", "annulee", "terminee"
EN_COURS, FAIT, ECHEC, IGNORE = "en-cours", "fait", "echec", "ignore"
ISSUES_APPEL = ("joint", "injoignable", "refus", "rendez-vous-pris", "soins-a-organiser",
                "faux-numero", "rappel-demande", "soins-realises", "inclusion-numerique",
                "droits-ouverts")


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter("parcours_notification_outcomes_total",
                                "Outcomes of fired actions", ["statut", "canal", "raison"],
                                registry=registry)
        self.deferred = Counter("parcours_notification_deferred_total", "Timers moved later",
                                ["why"], registry=registry)
        self.planned = Counter("parcours_notification_actions_planned_total",
                               "Actions received from parcours.actions", registry=registry)
        self.cancelled = Counter("parcours_notification_actions_cancelled_total",
                                 "Cancellations received", ["effective"], registry=registry)
        self.pending = Gauge("parcours_notification_timers_owned_partitions",
                             "Partitions of parcours.actions whose timers this instance fires",
                             registry=registry)


@dataclass
class Deps:
    settings: Settings
    store: NotificationStore
    clock: Clock
    broker: KafkaBroker
    templates: Templates
    email: EmailSender
    sms: SmsSender
    metrics: Metrics
    policy: rules.Policy
    letters_dir: Path
    raw: RawProducer
    wake: Callable[[], None] = lambda: None
    hint: Callable[[datetime], None] = lambda due: None  # a timer due then was written
    fault: Any = None  # tests: a callable(step, action_id) that may raise to simulate a crash
    manifests: Manifests = field(default_factory=lambda: Manifests())
    renderer: letters.Renderer = field(default_factory=letters.Renderer)


def policy_from(s: Settings) -> rules.Policy:
    return rules.Policy(
        contact_cap=s.notification_contact_cap,
        cap_window=timedelta(days=s.notification_contact_cap_days),
        contacts_wait=timedelta(hours=s.notification_contacts_wait_hours),
        retry=timedelta(seconds=s.notification_retry_seconds),
        window_start=s.notification_contact_window_start,
        window_end=s.notification_contact_window_end,
    )


# --------------------------------------------------------------------------- inputs


async def plan_actions(batch: list[tuple[CloudEvent[Any], i.ActionPlanifiee, int]],
                       deps: Deps) -> None:
    """Store planned actions and their timers, a batch in two inserts. The first stored
    version of an action wins (a redelivery changes nothing); its timer is (re)added while it
    is still planned at its first due time (a stop between the two inserts)."""
    if not batch:
        return
    now = deps.clock.now()
    docs = []
    for event, a, partition in batch:
        timer = rules.timer_id(partition, a.due_le, a.action_id)
        docs.append({"_id": a.action_id, "action": a.model_dump(mode="json"),
                     "pseudonyme": a.pseudonyme, "partition": partition, "statut": PLANIFIEE,
                     "minuterie": timer, "minuterie_initiale": timer,
                     "cause": {"id": event.id, "correlationid": event.correlationid},
                     "recu_le": now, "historique": [{"le": now, "quoi": "planifiee",
                                                     "pour": a.due_le}]})
    stored = await deps.store.insert_actions(docs)
    timers = {d["minuterie"]: {"_id": d["minuterie"], "action_id": d["_id"],
                               "partition": d["partition"], "du": rules.due_of(d["minuterie"]),
                               "pseudonyme": d["pseudonyme"]}
              for d in stored
              if d["statut"] == PLANIFIEE and d["minuterie"] == d["minuterie_initiale"]}
    await deps.store.add_timers(list(timers.values()))
    if timers:
        deps.hint(min(t["du"] for t in timers.values()))
    deps.metrics.planned.inc(len(batch))


async def cancel_action(c: i.ActionAnnulee, partition: int, deps: Deps) -> None:
    now = deps.clock.now()
    doc = await deps.store.action(c.action_id)
    if doc is None:
        # Cancelled before it was planned (or the plan was lost): a tombstone, never fires.
        await deps.store.insert_action({"_id": c.action_id, "pseudonyme": c.pseudonyme,
                                        "partition": partition, "statut": ANNULEE,
                                        "minuterie": None, "minuterie_initiale": None,
                                        "historique": [{"le": now, "quoi": "annulee",
                                                        "raison": c.raison}]})
        deps.metrics.cancelled.labels("avant-planification").inc()
        return
    if doc["statut"] != PLANIFIEE or await deps.store.attempt(c.action_id) is not None:
        await deps.store.update_action(c.action_id, {}, {"le": now, "quoi": "annulation-tardive",
                                                         "raison": c.raison})
        deps.metrics.cancelled.labels("trop-tard").inc()
        return
    await deps.store.update_action(c.action_id, {"statut": ANNULEE},
                                   {"le": now, "quoi": "annulee", "raison": c.raison})
    if doc.get("minuterie"):
        await deps.store.delete_timer(doc["minuterie"])
    deps.metrics.cancelled.labels("oui").inc()


async def keep_coordonnees_many(batch: list[i.Coordonnees], deps: Deps) -> None:
    """Keep each person's latest contact data by ``maj_le`` (a redelivered older record
    changes nothing): the batch's latest per person, written together."""
    latest: dict[str, tuple[dict[str, Any], datetime]] = {}
    for c in batch:
        if c.pseudonyme not in latest or latest[c.pseudonyme][1] < c.maj_le:
            latest[c.pseudonyme] = (c.model_dump(mode="json"), c.maj_le)
    await deps.store.save_coordonnees_many(latest)


# --------------------------------------------------------------------------- firing


async def fire(timer: dict[str, Any], deps: Deps) -> str:
    """Fire one due timer; returns what happened (for logs and tests)."""
    aid = timer["action_id"]
    doc, attempt, stored, contacts = await _reads(timer, deps)
    if doc is None or doc["statut"] != PLANIFIEE or doc.get("minuterie") != timer["_id"]:
        await deps.store.delete_timer(timer["_id"])
        return "obsolete"
    action = i.ActionPlanifiee.model_validate(doc["action"])
    cause = doc.get("cause") or {}
    # the chain's correlation id on this firing's log lines (the scheduler is not a handler)
    bind_message_context(correlationid=cause.get("correlationid") or cause.get("id"),
                         causationid=cause.get("id"))
    now = to_millis(deps.clock.now())  # stored in the attempt, published in the outcome
    coord = i.Coordonnees.model_validate(stored["data"]) if stored else None
    if attempt is None:
        recent = [c["le"] for c in contacts]
        decision = rules.decide(action, rules.Context(coord, recent), now, deps.policy)
        if isinstance(decision, rules.Defer):
            await _move(doc, decision.until, decision.why, deps, now)
            return f"reporte:{decision.why}"
        if isinstance(decision, rules.Skip):
            attempt = {"_id": aid, "etat": IGNORE, "canal": None, "raison": decision.raison,
                       "le": now, "tentatives": 0}
        else:
            attempt = {"_id": aid, "etat": EN_COURS, "canal": decision.canal,
                       "tache": decision.task, "le": now, "tentatives": 0}
        created, attempt = await deps.store.start_attempt(attempt)
        if not created and attempt["etat"] == EN_COURS:
            # Another firing of this action (a former owner of the partition still finishing
            # its tick) inserted the attempt between our read and our insert: it is making the
            # effect now. Making it here too would send twice; the timer stays, and a later
            # tick finishes what that firing recorded.
            log.warning("minuterie déjà en cours ailleurs, laissée", action_id=aid)
            return "concurrente"
    if attempt["etat"] == EN_COURS:
        attempt = await _perform(doc, action, attempt, deps, now, coord, contacts)
        if attempt["etat"] == EN_COURS:
            return "reessai"
    await _finish(doc, action, attempt, deps, now)
    return str(attempt["etat"])


async def _reads(timer: dict[str, Any], deps: Deps) -> tuple[Any, Any, Any, list[Any]]:
    """What a firing reads: the action, its attempt, the person's stored contact data and
    contacts, at once (one round trip of waiting instead of four: the firing's latency). A
    timer written before timers named their person: the action first, for its person."""
    aid, pseudonyme = timer["action_id"], timer.get("pseudonyme")
    if not pseudonyme:
        doc = await deps.store.action(aid)
        if doc is None:
            return None, None, None, []
        attempt, stored, contacts = await asyncio.gather(
            deps.store.attempt(aid), deps.store.coordonnees_of(doc["pseudonyme"]),
            deps.store.recent_contacts(doc["pseudonyme"]))
        return doc, attempt, stored, contacts
    doc, attempt, stored, contacts = await asyncio.gather(
        deps.store.action(aid), deps.store.attempt(aid), deps.store.coordonnees_of(pseudonyme),
        deps.store.recent_contacts(pseudonyme))
    return doc, attempt, stored, contacts


async def _move(doc: dict[str, Any], until: datetime, why: str, deps: Deps, now: datetime) -> None:
    new = rules.timer_id(doc["partition"], until, doc["_id"])
    await deps.store.add_timer({"_id": new, "action_id": doc["_id"], "partition": doc["partition"],
                                "du": until, "pseudonyme": doc["pseudonyme"]})
    deps.hint(until)
    await deps.store.update_action(doc["_id"], {"minuterie": new},
                                   {"le": now, "quoi": "reportee", "pourquoi": why, "a": until})
    await deps.store.delete_timer(doc["minuterie"])
    deps.metrics.deferred.labels(why).inc()


async def _perform(doc: dict[str, Any], action: i.ActionPlanifiee, attempt: dict[str, Any],
                   deps: Deps, now: datetime, coord: i.Coordonnees | None,
                   contacts: list[dict[str, Any]]) -> dict[str, Any]:
    """Run the effect of an attempt in progress (started by this firing, or resumed after a
    crash or a transient failure), with the contact data and contacts this firing read."""
    aid = action.action_id
    choice = rules.choose_channel(action.model_copy(update={"canaux": [attempt["canal"]]}), coord) \
        if coord else rules.Skip(rules.COORDONNEES_INCONNUES)
    if isinstance(choice, rules.Skip):
        done = {"etat": ECHEC, "raison": f"destinataire-indisponible:{choice.raison}", "fin": now}
        await deps.store.update_attempt(aid, done)
        return {**attempt, **done}
    try:
        reference = await _effect(action, choice, coord, deps, now)  # type: ignore[arg-type]
        log.info("effet produit", action_id=aid, canal=choice.canal,
                 tache=bool(choice.task), tentative=int(attempt.get("tentatives", 0)) + 1)
        _fault(deps, "apres-effet", aid)
    except TransientSendError as exc:
        tries = int(attempt.get("tentatives", 0)) + 1
        if tries >= deps.settings.notification_max_attempts:
            done = {"etat": ECHEC, "raison": f"echec-transitoire-repete: {exc}"[:200], "fin": now,
                    "tentatives": tries}
            await deps.store.update_attempt(aid, done)
            return {**attempt, **done}
        await deps.store.update_attempt(aid, {"derniere_erreur": str(exc)[:200]}, inc=1)
        await _move(doc, now + deps.policy.retry, "reessai-canal", deps, now)
        log.warning("envoi en échec transitoire, nouvel essai planifié", action_id=aid,
                    canal=choice.canal, erreur=str(exc)[:200])
        return {**attempt, "tentatives": tries}
    except PermanentSendError as exc:
        done = {"etat": ECHEC, "raison": f"refus-canal: {exc}"[:200], "fin": now}
        await deps.store.update_attempt(aid, done)
        return {**attempt, **done}
    done = {"etat": FAIT, "reference": reference, "fin": now}
    # The effect recorded and the contact counted, at once (each idempotent, in either order).
    # Both end before an error goes up: a failed contact must not leave the record of the
    # send unfinished behind it, or the next firing would send again.
    ends = await asyncio.gather(_once_done(lambda: deps.store.update_attempt(aid, done), deps),
                                deps.store.add_contact(action.pseudonyme, aid, now, contacts),
                                return_exceptions=True)
    for end in ends:
        if isinstance(end, BaseException):
            raise end
    return {**attempt, **done}


async def _once_done(write: Callable[[], Awaitable[None]], deps: Deps) -> None:
    """Record an effect that was just made. Until it is recorded the attempt is "in progress"
    and firing it again sends again (an e-mail has no idempotency key): a database outage
    right after a send must not turn into a second e-mail. So this write is retried here, in
    place, for as long as transient failures last (up to the transient retry budget), instead
    of leaving the timer to fire again. Only a crash in that window can still repeat the send.
    """
    delay, started = 0.2, time.monotonic()
    while True:
        try:
            await write()
            return
        except Exception as exc:
            if not is_transient(exc) or (
                    time.monotonic() - started > deps.settings.transient_retry_max_seconds):
                raise
            log.warning("effet fait, enregistrement en attente de la base", erreur=repr(exc)[:200],
                        delai=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _fault(deps: Deps, step: str, action_id: str) -> None:
    if deps.fault is not None:
        deps.fault(step, action_id)


async def _effect(action: i.ActionPlanifiee, choice: rules.Send, coord: i.Coordonnees,
                  deps: Deps, now: datetime) -> str:
    if choice.task:
        return await _create_task(action, now, deps)
    r = choice.recipient
    defunt = f"{coord.prenom} {coord.nom}" if action.destinataire == "proche" else None
    text = deps.templates.render(action.modele, letter_values(r.prenom, r.nom, defunt=defunt))
    if choice.canal == "courrier":
        s = deps.settings
        letter = letters.Letter(
            action_id=action.action_id,
            sender=tuple(_lines(s.notification_sender_block)),
            recipient=letters.address_lines(r.nom, r.prenom, r.adresse or {}),
            when=now, text=text.letter, falc=text.falc, signature=s.notification_signature,
            reference=action.action_id[:8].upper(),
        )
        stored = await deps.renderer.write(deps.letters_dir, letter)
        await deps.store.save_letter({"_id": action.action_id, "jour": stored.day,
                                      "fichiers": list(stored.files), "sha256": list(stored.sha256),
                                      "pages": list(stored.pages), "parcours": action.parcours,
                                      "modele": action.modele, "le": now})
        deps.manifests.touch(stored.day)
        return f"{stored.day}/{stored.files[0]}"
    if choice.canal == "email":
        return await deps.email.send(Email(to=r.email or "", subject=text.email.subject,
                                           body=text.email.plain(), key=action.action_id, when=now))
    if choice.canal == "sms":
        return await deps.sms.send(Sms(to=r.telephone or "", text=text.sms, key=action.action_id))
    raise PermanentSendError(f"canal {choice.canal} sans adaptateur pour {action.kind}")


def _lines(block: str) -> list[str]:
    return [line for line in block.replace("\\n", "\n").splitlines() if line.strip()]


async def rebuild_batch(day: str, deps: Deps) -> Path:
    docs = await deps.store.letters_of_day(day)
    return await asyncio.to_thread(letters.write_manifest, deps.letters_dir, day, docs)


class Manifests:
    """The print batches (manifests) of the days that got letters, rewritten from the database
    at most once every ``interval`` seconds, after the letters of that interval, and never
    more often than ``spacing`` times the last rewrite took (a large day waits longer). Rewriting a
    day's manifest after each letter read the whole day each time: quadratic in the letters of
    a day (a monthly batch gives a day hundreds of thousands). A manifest is never appended to,
    so it lists every letter once; on start, today's and yesterday's are rewritten (a stop
    between a letter and its manifest); the API rewrites a day's on request (docs/adr/0013)."""

    def __init__(self, interval: float = 1.0, spacing: float = 10.0) -> None:
        self.interval = interval
        self.spacing = spacing  # the next rewrite waits ``spacing`` times the last one
        self.wait = interval
        self.dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def touch(self, day: str) -> None:
        self.dirty.add(day)
        self._wake.set()

    def start(self, deps: Deps) -> None:
        today = letters.paris_day(deps.clock.now())
        for day in (today - timedelta(days=1), today):  # a stop just before midnight, too
            self.touch(day.isoformat())
        self._task = asyncio.create_task(self._run(deps), name="manifests")

    async def _run(self, deps: Deps) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.wait)  # the letters of that while, in one rewrite
            self._wake.clear()
            started = time.monotonic()
            await self.flush(deps)
            # A day of a monthly batch holds many letters and its rewrite reads them all: at
            # most a tenth of the time goes to rewriting, however large the day.
            self.wait = max(self.interval, self.spacing * (time.monotonic() - started))

    async def flush(self, deps: Deps) -> None:
        days, self.dirty = self.dirty, set()
        for day in sorted(days):
            try:
                docs = await deps.store.letters_of_day(day)
                if docs:  # no empty folder for each day the service starts
                    await asyncio.to_thread(letters.write_manifest, deps.letters_dir, day, docs)
            except Exception as exc:  # the database is away: the next tick tries again
                self.touch(day)
                log.warning("lot d'impression non réécrit", jour=day, error=type(exc).__name__)

    async def stop(self, deps: Deps, grace: float = 10.0) -> None:
        if self._task is not None:
            await stop_task(self._task, grace, "manifests")
        if self.dirty:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(grace):
                    await self.flush(deps)


async def _create_task(action: i.ActionPlanifiee, now: datetime, deps: Deps) -> str:
    task_id = derive_id("tache", action.action_id)
    await deps.store.insert_task({
        "_id": task_id, "action_id": action.action_id, "pseudonyme": action.pseudonyme,
        "dossier_id": action.dossier_id, "parcours": action.parcours, "etape": action.etape,
        "kind": action.kind, "modele": action.modele, "destinataire": action.destinataire,
        "site": rules.site_of(action, deps.settings.notification_default_site),
        "statut": "a-faire", "echeance": action.echeance or now, "cree_le": now,
        "priorite": action.priorite, "obligatoire": action.obligatoire,
        "detecteur": action.detecteur.model_dump() if action.detecteur else None,
        "agent": None, "issue": None, "publie": False,
    })
    return task_id


async def _finish(doc: dict[str, Any], action: i.ActionPlanifiee, attempt: dict[str, Any],
                  deps: Deps, now: datetime) -> None:
    etat = attempt["etat"]
    statut: Literal["envoye", "tache-creee", "ignore", "echec"]
    if etat == FAIT:
        statut = "tache-creee" if attempt.get("tache") else "envoye"
    elif etat == IGNORE:
        statut = "ignore"
    else:
        statut = "echec"
    resultat = i.Resultat(
        resultat_id=derive_id("resultat", action.action_id), pseudonyme=action.pseudonyme,
        action_id=action.action_id, dossier_id=action.dossier_id, parcours=action.parcours,
        statut=statut, raison=attempt.get("raison"),
        canal="telephone" if attempt.get("tache") else attempt.get("canal"),
        survenu_le=attempt.get("fin") or attempt.get("le") or now,
        reference_signalement=action.reference_signalement,
    )
    await publish_result(resultat, doc.get("cause"), deps)
    _fault(deps, "apres-publication", action.action_id)
    await deps.store.update_action(action.action_id, {"statut": TERMINEE, "resultat": statut,
                                                      "raison": resultat.raison},
                                   {"le": now, "quoi": statut, "raison": resultat.raison,
                                    "canal": resultat.canal})
    await deps.store.delete_timer(doc["minuterie"])
    deps.metrics.outcomes.labels(statut, resultat.canal or "-", resultat.raison or "-").inc()
    log.info("action exécutée", action_id=action.action_id, statut=statut, canal=resultat.canal,
             raison=resultat.raison, parcours=action.parcours, etape=action.etape)


async def publish_result(r: i.Resultat, cause: dict[str, Any] | None, deps: Deps) -> None:
    correlation = (cause or {}).get("correlationid") or (cause or {}).get("id")
    event = new_event(type=i.RESULTAT, source=SOURCE, id=r.resultat_id, data=r,
                      subject=r.pseudonyme, time=r.survenu_le, correlationid=correlation)
    if cause and cause.get("id"):
        event = event.model_copy(update={"causationid": cause["id"]})
    await deps.broker.publish(event.to_bytes(), deps.settings.topic(topics.RESULTATS),
                              key=r.pseudonyme.encode(), headers=headers_for(event))


# --------------------------------------------------------------------------- agents' tasks


class TaskNotFound(Exception):
    pass


class TaskConflict(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def claim_task(task_id: str, agent: str, deps: Deps) -> dict[str, Any]:
    """Take an open task for ``agent`` (again: the same task back). The claim is an insert
    whose ``_id`` is the task's, so of agents asking at once exactly one gets it."""
    now = to_millis(deps.clock.now())
    task = await deps.store.task(task_id)
    if task is None:
        raise TaskNotFound(task_id)
    if task["statut"] == "terminee":
        raise TaskConflict("tache-terminee", "the task is closed")
    _not_held_by_another(task, agent)
    claim = await deps.store.take_task(task_id, agent, now)
    if claim["agent"] != agent:
        raise TaskConflict("tache-deja-prise", "the task is claimed by another agent")
    if task["statut"] != "prise" or task.get("agent") != agent:
        taken = {"statut": "prise", "agent": agent, "prise_le": claim["le"]}
        await deps.store.update_task(task_id, taken)
        task = {**task, **taken}
    return task


def _not_held_by_another(task: dict[str, Any], agent: str) -> None:
    # a task taken before claims were inserted (no ``prises`` document) keeps its agent
    if task["statut"] == "prise" and task.get("agent") not in (None, agent):
        raise TaskConflict("tache-deja-prise", "the task is claimed by another agent")


async def record_outcome(task_id: str, agent: str, issue: str, commentaire: str | None,
                         deps: Deps) -> dict[str, Any]:
    """Record the outcome of a task's call (once: the same outcome again is accepted, another
    one refused) and publish it. An agent may record without claiming first; the claim is then
    taken here, so that another agent taking the task at the same moment is refused."""
    now = to_millis(deps.clock.now())  # stored as issue_le, published in the outcome
    task = await deps.store.task(task_id)
    if task is None:
        raise TaskNotFound(task_id)
    if task["statut"] == "terminee":
        if task.get("issue") != issue:
            raise TaskConflict("issue-deja-enregistree", "another outcome was already recorded")
    else:
        _not_held_by_another(task, agent)
        claim = await deps.store.take_task(task_id, agent, now)
        if claim["agent"] != agent:
            raise TaskConflict("tache-deja-prise", "the task is claimed by another agent")
        recorded = await deps.store.record_issue(task_id, agent, issue, now)
        if recorded["issue"] != issue:
            raise TaskConflict("issue-deja-enregistree", "another outcome was already recorded")
        task = {**task, "statut": "terminee", "issue": issue, "issue_le": recorded["le"],
                "agent": agent, "commentaire": commentaire}
        # The comment stays in the agents' queue; it is never published (free text).
        await deps.store.update_task(task_id, {k: task[k] for k in (
            "statut", "issue", "issue_le", "agent", "commentaire")})
    if not task.get("publie"):
        action_doc = await deps.store.action(task["action_id"])
        r = i.Resultat(
            resultat_id=derive_id("resultat", task["action_id"], "appel"),
            pseudonyme=task["pseudonyme"], action_id=task["action_id"],
            dossier_id=task.get("dossier_id"), parcours=task.get("parcours"), statut="appel",
            canal="telephone", issue_appel=task["issue"], survenu_le=task["issue_le"],
            reference_signalement=((action_doc or {}).get("action") or {}).get(
                "reference_signalement"),
        )
        await publish_result(r, (action_doc or {}).get("cause"), deps)
        await deps.store.update_task(task_id, {"publie": True})
        task["publie"] = True
    return task

"""Notification's use cases: plan and cancel actions (timers as data), keep contact data, the
letters' print batches, the outcomes' events, and the agents' phone tasks. Firing a due timer
(the guard, then exactly one effect): :mod:`services.notification.firing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.notification import letters, rules
from services.notification.channels import (
    EmailSender,
    SmsSender,
)
from services.notification.store import NotificationStore
from services.notification.templates import Templates
from shared import topics
from shared.clock import Clock, to_millis
from shared.cloudevents import CloudEvent, new_event
from shared.contracts import internes as i
from shared.ids import derive_id
from shared.kafka import EventPublisher, RawProducer
from shared.logging import get_logger
from shared.retention import stop_task
from shared.settings import Settings

SOURCE = "urn:fr:assurance-maladie:parcours:notification"
T = TypeVar("T")
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
    templates: Templates
    email: EmailSender
    sms: SmsSender
    metrics: Metrics
    policy: rules.Policy
    letters_dir: Path
    raw: RawProducer
    publisher: EventPublisher  # the outcomes, through ``raw`` (FastStream's metrics kept)
    # e-mails sent and not yet recorded, at most (SMTP has no idempotency key: services.
    # notification.firing); the service sizes it from notification_fire_concurrency
    email_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
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


async def cancel_actions(batch: list[tuple[i.ActionAnnulee, int]], deps: Deps) -> None:
    """Apply cancellations ``(cancellation, partition)`` in their order, each step of them
    together: the actions and their attempts read at once, then one write each for the
    tombstones, the late ones, the cancelled ones and their timers (a death, or a monthly
    batch's goals reached, cancels thousands of actions). An action cancelled twice in the
    batch (a redelivery) is taken again in a second pass, after the first."""
    for pass_ in rounds(batch, key=lambda c: c[0].action_id):
        await _cancel_pass(pass_, deps)


def rounds(items: Iterable[T], key: Callable[[T], str]) -> list[list[T]]:
    """Round k holds the k-th item of each key, in the items' order: a batch's work taken in
    passes where a key appears once (one person's due actions, one action's cancellations),
    each pass after the one before."""
    out: list[list[T]] = []
    seen: dict[str, int] = {}
    for item in items:
        k = seen.get(key(item), 0)
        seen[key(item)] = k + 1
        if k == len(out):
            out.append([])
        out[k].append(item)
    return out


async def _cancel_pass(batch: list[tuple[i.ActionAnnulee, int]], deps: Deps) -> None:
    now = deps.clock.now()
    docs = await asyncio.gather(*(deps.store.action(c.action_id) for c, _ in batch))
    planned = [c.action_id for (c, _), doc in zip(batch, docs, strict=True)
               if doc is not None and doc["statut"] == PLANIFIEE]
    started = {aid for aid, attempt in zip(planned, await asyncio.gather(
        *(deps.store.attempt(aid) for aid in planned)), strict=True) if attempt is not None}
    tombstones: list[dict[str, Any]] = []
    late: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    cancelled: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    timers: list[str] = []
    for (c, partition), doc in zip(batch, docs, strict=True):
        if doc is None:
            # Cancelled before it was planned (or the plan was lost): a tombstone, never fires.
            tombstones.append({"_id": c.action_id, "pseudonyme": c.pseudonyme,
                               "partition": partition, "statut": ANNULEE, "minuterie": None,
                               "minuterie_initiale": None,
                               "historique": [{"le": now, "quoi": "annulee", "raison": c.raison}]})
        elif doc["statut"] != PLANIFIEE or c.action_id in started:
            late.append((c.action_id, {}, {"le": now, "quoi": "annulation-tardive",
                                           "raison": c.raison}))
        else:
            cancelled.append((c.action_id, {"statut": ANNULEE},
                              {"le": now, "quoi": "annulee", "raison": c.raison}))
            if doc.get("minuterie"):
                timers.append(doc["minuterie"])
    await deps.store.insert_actions(tombstones)
    await deps.store.update_actions(late + cancelled)
    await deps.store.delete_timers(timers)
    for effective, n in (("avant-planification", len(tombstones)), ("trop-tard", len(late)),
                         ("oui", len(cancelled))):
        if n:
            deps.metrics.cancelled.labels(effective).inc(n)


async def keep_coordonnees_many(batch: list[i.Coordonnees], deps: Deps) -> None:
    """Keep each person's latest contact data by ``maj_le`` (a redelivered older record
    changes nothing): the batch's latest per person, written together."""
    latest: dict[str, tuple[dict[str, Any], datetime]] = {}
    for c in batch:
        if c.pseudonyme not in latest or latest[c.pseudonyme][1] < c.maj_le:
            latest[c.pseudonyme] = (c.model_dump(mode="json"), c.maj_le)
    await deps.store.save_coordonnees_many(latest)


# --------------------------------------------------------------------------- print batches


async def rebuild_batch(day: str, deps: Deps) -> Path:
    """Rewrite the print batch of ``day`` from the database (an empty one for a day without
    letters)."""
    written = await write_batch(day, deps)
    if written is None:
        written = await asyncio.to_thread(letters.ManifestWriter(deps.letters_dir, day).close)
    return written


async def write_batch(day: str, deps: Deps) -> Path | None:
    """Rewrite the print batch of ``day``, its letters streamed from the database into the
    files as they come (never all in memory); None, and nothing written, for a day without
    letters."""
    writer: letters.ManifestWriter | None = None
    try:
        async for doc in deps.store.letters_of_day(day):
            if writer is None:
                writer = letters.ManifestWriter(deps.letters_dir, day)
            writer.add(doc)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return None if writer is None else await asyncio.to_thread(writer.close)


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
            try:  # no empty folder for each day the service starts
                await write_batch(day, deps)
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


# --------------------------------------------------------------------------- outcomes


def result_event(r: i.Resultat, cause: dict[str, Any] | None) -> CloudEvent[i.Resultat]:
    """The outcome's CloudEvent: the same one however many times it is made (its id derives
    from the action), in the chain of the action's cause."""
    correlation = (cause or {}).get("correlationid") or (cause or {}).get("id")
    event = new_event(type=i.RESULTAT, source=SOURCE, id=r.resultat_id, data=r,
                      subject=r.pseudonyme, time=r.survenu_le, correlationid=correlation)
    if cause and cause.get("id"):
        event = event.model_copy(update={"causationid": cause["id"]})
    return event


async def publish_result(r: i.Resultat, cause: dict[str, Any] | None, deps: Deps) -> None:
    await deps.publisher.publish([(deps.settings.topic(topics.RESULTATS), result_event(r, cause),
                                   r.pseudonyme)])


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

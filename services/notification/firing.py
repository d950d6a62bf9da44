"""Firing due timers: the guard, then exactly one effect per action, a batch of actions at a
time.

Order of effects for each action, each step idempotent, the timer deleted last:

1. the guard (:func:`rules.decide`): skip, defer (move the timer), or send;
2. the attempt document (``envois``, ``_id`` = action_id) is inserted **before** any effect;
   a second firing finds it and resumes it instead of starting another effect;
3. the effect, with the action id as idempotency key (letter files named by it, SMS
   ``Idempotency-Key``, e-mail ``Message-ID``, task ``_id`` derived from it);
4. the attempt is marked done, the outcome published on ``parcours.resultats`` (id derived from
   the action: a re-publication is deduplicated downstream), the action closed, the timer
   deleted. A crash anywhere makes the timer fire again and resume at the first undone step.

A batch takes each step together: its reads at once, one insert of its attempts, its effects
side by side, then one write each for the records of its sends, its contacts, its letters
and its tasks, one publication of its outcomes, one write of its closings and one of its
timers' deletions. That is about ten database commands per batch instead of ten per action,
and the outcomes go out together (docs/performance.md). Every action still takes the steps
in the same order as when fired alone, so a crash leaves each action in one of the windows
of a single firing. One person's actions go in rounds, one after the other: the cap on
contacts reads what the previous one recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from services.notification import letters, rules
from services.notification.channels import Email, PermanentSendError, Sms, TransientSendError
from services.notification.service import (
    ECHEC,
    EN_COURS,
    FAIT,
    IGNORE,
    PLANIFIEE,
    TERMINEE,
    Deps,
    result_event,
    rounds,
)
from services.notification.templates import letter_values
from shared import topics
from shared.clock import to_millis
from shared.contracts import internes as i
from shared.ids import derive_id
from shared.kafka import is_transient
from shared.logging import clear_message_context, get_logger

log = get_logger("notification")


@dataclass
class Firing:
    """One due timer on its way through a batch."""

    timer: dict[str, Any]
    doc: dict[str, Any] = field(default_factory=dict)  # the action's stored document
    action: i.ActionPlanifiee | None = None
    attempt: dict[str, Any] = field(default_factory=dict)  # {}: none stored or decided yet
    coord: i.Coordonnees | None = None
    contacts: list[dict[str, Any]] = field(default_factory=list)
    outcome: str | None = None  # how its part in this batch ended; None: it goes on

    @property
    def aid(self) -> str:
        return str(self.timer["action_id"])

    @property
    def act(self) -> i.ActionPlanifiee:
        assert self.action is not None  # read before any step uses it
        return self.action

    def ids(self) -> dict[str, Any]:
        """The chain's correlation and causation ids, for this action's log lines."""
        cause = self.doc.get("cause") or {}
        return {"correlationid": cause.get("correlationid") or cause.get("id"),
                "causationid": cause.get("id")}


async def fire(timer: dict[str, Any], deps: Deps) -> str:
    """Fire one due timer; returns what happened (for logs and tests)."""
    return (await fire_many([timer], deps))[0]


async def fire_many(timers: list[dict[str, Any]], deps: Deps) -> list[str]:
    """Fire due timers; returns, for each, what happened: ``fait``, ``ignore``, ``echec``,
    ``reporte:<why>``, ``reessai``, ``obsolete``, ``concurrente`` or ``erreur`` (an action
    that could not be read, or an unexpected error in its effect: logged, it stays due).

    A database or broker error stops the batch where it is and goes up: each action is left
    at a step a later firing resumes from."""
    clear_message_context()  # ids go on each action's lines, not those of a former message
    firings = [Firing(t) for t in timers]
    for round_ in _rounds(firings):
        now = to_millis(deps.clock.now())  # stored in the attempts, published in the outcomes
        await _read(round_, deps)
        await _start(_going(round_), deps, now)
        await _perform(_going(round_), deps, now)
        await _finish(_going(round_), deps, now)
    return [f.outcome or "erreur" for f in firings]


def _rounds(firings: list[Firing]) -> list[list[Firing]]:
    """Round k holds each person's k-th timer; a timer written before timers named their
    person is a round of its own, after them."""
    return rounds([f for f in firings if f.timer.get("pseudonyme")],
                  key=lambda f: str(f.timer["pseudonyme"])) + [
        [f] for f in firings if not f.timer.get("pseudonyme")]


def _going(firings: list[Firing]) -> list[Firing]:
    return [f for f in firings if f.outcome is None]


async def _read(fs: list[Firing], deps: Deps) -> None:
    """The actions, their attempts, the persons' contact data and contacts, all at once; the
    timers of actions closed, cancelled or moved meanwhile are deleted."""
    reads = await asyncio.gather(*(_reads(f.timer, deps) for f in fs))
    obsolete = []
    for f, (doc, attempt, stored, contacts) in zip(fs, reads, strict=True):
        if doc is None or doc["statut"] != PLANIFIEE or doc.get("minuterie") != f.timer["_id"]:
            f.outcome = "obsolete"
            obsolete.append(f.timer["_id"])
            continue
        f.doc, f.attempt, f.contacts = doc, attempt or {}, contacts
        try:
            f.action = i.ActionPlanifiee.model_validate(doc["action"])
            f.coord = i.Coordonnees.model_validate(stored["data"]) if stored else None
        except ValidationError:
            f.outcome = "erreur"
            log.exception("action ou coordonnées illisibles, minuterie laissée",
                          action_id=f.aid, **f.ids())
    await deps.store.delete_timers(obsolete)


async def _reads(timer: dict[str, Any], deps: Deps) -> tuple[Any, Any, Any, list[Any]]:
    """What a firing reads, at once (one round trip of waiting instead of four). A timer
    written before timers named their person: the action first, for its person."""
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


async def _start(fs: list[Firing], deps: Deps, now: datetime) -> None:
    """The guard of each action without an attempt; the deferred moved, the attempts of the
    others inserted together. An attempt found in progress at the insert belongs to another
    firing of the same action (a former owner of the partition still finishing its tick): it
    is making the effect now, and making it here too would send twice. That timer stays; a
    later firing finishes what the other one recorded."""
    moves: list[tuple[Firing, datetime, str]] = []
    new: list[Firing] = []
    for f in fs:
        if f.attempt:
            continue  # resumed where a former firing stopped
        decision = rules.decide(f.act, rules.Context(f.coord, [c["le"] for c in f.contacts]),
                                now, deps.policy)
        if isinstance(decision, rules.Defer):
            moves.append((f, decision.until, decision.why))
            f.outcome = f"reporte:{decision.why}"
        elif isinstance(decision, rules.Skip):
            f.attempt = {"_id": f.aid, "etat": IGNORE, "canal": None, "raison": decision.raison,
                         "le": now, "tentatives": 0}
            new.append(f)
        else:
            f.attempt = {"_id": f.aid, "etat": EN_COURS, "canal": decision.canal,
                         "tache": decision.task, "le": now, "tentatives": 0}
            new.append(f)
    await _move(moves, deps, now)
    stored = await deps.store.start_attempts([f.attempt for f in new])
    for f, (created, attempt) in zip(new, stored, strict=True):
        f.attempt = attempt
        if not created and attempt["etat"] == EN_COURS:
            f.outcome = "concurrente"
            log.warning("minuterie déjà en cours ailleurs, laissée", action_id=f.aid, **f.ids())


async def _move(moves: list[tuple[Firing, datetime, str]], deps: Deps, now: datetime) -> None:
    """Move timers later: the new timers written, the actions pointed at them, the old ones
    deleted (a crash in between: the old timer fires, finds itself obsolete or decides again)."""
    if not moves:
        return
    timers = [{"_id": rules.timer_id(f.doc["partition"], until, f.aid), "action_id": f.aid,
               "partition": f.doc["partition"], "du": until, "pseudonyme": f.doc["pseudonyme"]}
              for f, until, _ in moves]
    await deps.store.add_timers(timers)
    deps.hint(min(until for _, until, _ in moves))
    await deps.store.update_actions([
        (f.aid, {"minuterie": t["_id"]}, {"le": now, "quoi": "reportee", "pourquoi": why,
                                           "a": until})
        for (f, until, why), t in zip(moves, timers, strict=True)])
    await deps.store.delete_timers([f.doc["minuterie"] for f, _, _ in moves])
    for _, _, why in moves:
        deps.metrics.deferred.labels(why).inc()


@dataclass
class _Effects:
    """What the effects of a batch leave to be written together."""

    letters: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    ended: list[tuple[Firing, dict[str, Any]]] = field(default_factory=list)  # done or failed
    recorded: set[str] = field(default_factory=set)  # e-mails: their send recorded already
    retries: list[tuple[Firing, str]] = field(default_factory=list)  # transient: again later


async def _perform(fs: list[Firing], deps: Deps, now: datetime) -> None:
    """Make the effects of the attempts in progress (started here, or resumed after a crash
    or a transient failure), side by side; then store the letters' and tasks' records, and
    record the sends and count the contacts together. The firings under way end before an
    error of the database or the broker goes up."""
    doing = [f for f in fs if f.attempt["etat"] == EN_COURS]
    if not doing:
        return
    out = _Effects()
    errors = [e for e in await asyncio.gather(*(_perform_one(f, deps, now, out) for f in doing),
                                              return_exceptions=True)
              if isinstance(e, BaseException)]
    if errors:
        raise errors[0]
    await asyncio.gather(deps.store.save_letters(out.letters), deps.store.insert_tasks(out.tasks))
    for day in {d["jour"] for d in out.letters}:
        deps.manifests.touch(day)
    # The effects recorded and the contacts counted, at once (each idempotent, in either
    # order). Both end before an error goes up: a failed contact must not leave the record of
    # the sends unfinished behind it, or the next firing would send again.
    unrecorded = [(f.aid, d, 0) for f, d in out.ended if f.aid not in out.recorded]
    writes = await asyncio.gather(
        _once_done(lambda: deps.store.update_attempts(unrecorded), deps),
        deps.store.add_contacts([(f.act.pseudonyme, f.aid, now, f.contacts)
                                 for f, d in out.ended if d["etat"] == FAIT]),
        return_exceptions=True)
    for end in writes:
        if isinstance(end, BaseException):
            raise end
    for f, done in out.ended:
        f.attempt = {**f.attempt, **done}
        if done["etat"] == FAIT:
            log.info("effet produit", action_id=f.aid, canal=f.attempt["canal"],
                     tache=bool(f.attempt.get("tache")),
                     tentative=int(f.attempt.get("tentatives", 0)) + 1, **f.ids())
    if out.retries:
        await deps.store.update_attempts([(f.aid, {"derniere_erreur": e}, 1)
                                          for f, e in out.retries])
        await _move([(f, now + deps.policy.retry, "reessai-canal") for f, _ in out.retries],
                    deps, now)
        for f, e in out.retries:
            f.outcome = "reessai"
            log.warning("envoi en échec transitoire, nouvel essai planifié", action_id=f.aid,
                        canal=f.attempt["canal"], erreur=e, **f.ids())


async def _perform_one(f: Firing, deps: Deps, now: datetime, out: _Effects) -> None:
    action, attempt = f.act, f.attempt
    choice = rules.choose_channel(action.model_copy(update={"canaux": [attempt["canal"]]}),
                                  f.coord) if f.coord else rules.Skip(rules.COORDONNEES_INCONNUES)
    if isinstance(choice, rules.Skip):
        out.ended.append((f, {"etat": ECHEC, "fin": now,
                              "raison": f"destinataire-indisponible:{choice.raison}"}))
        return
    # SMTP has no idempotency key: an e-mail's send is recorded as soon as it is made, and at
    # most ``deps.email_slots`` are sent and not yet recorded at any moment (what a crash can
    # send twice). Letters, SMS and tasks are keyed by the action: recorded with the batch.
    email = choice.canal == "email" and not choice.task
    try:
        async with deps.email_slots if email else contextlib.nullcontext():
            made = await _effect(action, choice, f.coord, deps, now)  # type: ignore[arg-type]
            _fault(deps, "apres-effet", f.aid)
            done = {"etat": FAIT, "reference": made.reference, "fin": now}
            if email:
                await _once_done(lambda: deps.store.update_attempts([(f.aid, done, 0)]), deps)
    except TransientSendError as exc:
        tries = int(attempt.get("tentatives", 0)) + 1
        if tries >= deps.settings.notification_max_attempts:
            out.ended.append((f, {"etat": ECHEC, "fin": now, "tentatives": tries,
                                  "raison": f"echec-transitoire-repete: {exc}"[:200]}))
        else:
            out.retries.append((f, str(exc)[:200]))
        return
    except PermanentSendError as exc:
        out.ended.append((f, {"etat": ECHEC, "raison": f"refus-canal: {exc}"[:200], "fin": now}))
        return
    except Exception as exc:
        if is_transient(exc):
            raise
        # One broken action must not stop the others: it stays in progress and due, retried
        # at the next tick, and the error is in the logs (a simulated crash in the tests, too).
        f.outcome = "erreur"
        log.exception("effet en erreur, minuterie laissée", action_id=f.aid, **f.ids())
        return
    if made.letter is not None:
        out.letters.append(made.letter)
    if made.task is not None:
        out.tasks.append(made.task)
    if email:
        out.recorded.add(f.aid)
    out.ended.append((f, done))


async def _once_done(write: Callable[[], Awaitable[None]], deps: Deps) -> None:
    """Record effects that were just made. Until it is recorded an attempt is "in progress"
    and firing it again sends again (an e-mail has no idempotency key): a database outage
    right after a send must not turn into a second e-mail. So this write is retried here, in
    place, for as long as transient failures last (up to the transient retry budget), instead
    of leaving the timers to fire again. Only a crash in that window can still repeat a send.
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


@dataclass(frozen=True)
class _Made:
    reference: str
    letter: dict[str, Any] | None = None  # the letter's record, written with the batch's
    task: dict[str, Any] | None = None  # the task, inserted with the batch's


async def _effect(action: i.ActionPlanifiee, choice: rules.Send, coord: i.Coordonnees,
                  deps: Deps, now: datetime) -> _Made:
    """Make the effect. A letter's record and a task are returned, to be inserted with the
    batch's before the sends are recorded (the task's insert is its effect)."""
    if choice.task:
        task = _task(action, now, deps)
        return _Made(str(task["_id"]), task=task)
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
        return _Made(f"{stored.day}/{stored.files[0]}", letter={
            "_id": action.action_id, "jour": stored.day, "fichiers": list(stored.files),
            "sha256": list(stored.sha256), "pages": list(stored.pages),
            "parcours": action.parcours, "modele": action.modele, "le": now})
    if choice.canal == "email":
        return _Made(await deps.email.send(Email(
            to=r.email or "", subject=text.email.subject, body=text.email.plain(),
            key=action.action_id, when=now)))
    if choice.canal == "sms":
        return _Made(await deps.sms.send(Sms(to=r.telephone or "", text=text.sms,
                                             key=action.action_id)))
    raise PermanentSendError(f"canal {choice.canal} sans adaptateur pour {action.kind}")


def _lines(block: str) -> list[str]:
    return [line for line in block.replace("\\n", "\n").splitlines() if line.strip()]


def _task(action: i.ActionPlanifiee, now: datetime, deps: Deps) -> dict[str, Any]:
    return {
        "_id": derive_id("tache", action.action_id), "action_id": action.action_id,
        "pseudonyme": action.pseudonyme, "dossier_id": action.dossier_id,
        "parcours": action.parcours, "etape": action.etape, "kind": action.kind,
        "modele": action.modele, "destinataire": action.destinataire,
        "site": rules.site_of(action, deps.settings.notification_default_site),
        "statut": "a-faire", "echeance": action.echeance or now, "cree_le": now,
        "priorite": action.priorite, "obligatoire": action.obligatoire,
        "detecteur": action.detecteur.model_dump() if action.detecteur else None,
        "agent": None, "issue": None, "publie": False,
    }


async def _finish(fs: list[Firing], deps: Deps, now: datetime) -> None:
    """Publish the outcomes together, then close the actions and delete their timers."""
    if not fs:
        return
    outcomes = [(f, _resultat(f, now)) for f in fs]
    topic = deps.settings.topic(topics.RESULTATS)
    await deps.publisher.publish((topic, result_event(r, f.doc.get("cause")), r.pseudonyme)
                                 for f, r in outcomes)
    closing = []
    for f, r in outcomes:
        try:
            _fault(deps, "apres-publication", f.aid)
        except Exception:  # tests: a simulated crash of this action after its publication
            f.outcome = "erreur"
            log.exception("minuterie en erreur après la publication", action_id=f.aid, **f.ids())
            continue
        closing.append((f, r))
    await deps.store.update_actions([
        (f.aid, {"statut": TERMINEE, "resultat": r.statut, "raison": r.raison},
         {"le": now, "quoi": r.statut, "raison": r.raison, "canal": r.canal})
        for f, r in closing])
    await deps.store.delete_timers([f.doc["minuterie"] for f, _ in closing])
    for f, r in closing:
        f.outcome = str(f.attempt["etat"])
        deps.metrics.outcomes.labels(r.statut, r.canal or "-", r.raison or "-").inc()
        log.info("action exécutée", action_id=f.aid, statut=r.statut, canal=r.canal,
                 raison=r.raison, parcours=f.act.parcours, etape=f.act.etape, **f.ids())


def _resultat(f: Firing, now: datetime) -> i.Resultat:
    action, attempt = f.act, f.attempt
    etat = attempt["etat"]
    statut: Literal["envoye", "tache-creee", "ignore", "echec"]
    if etat == FAIT:
        statut = "tache-creee" if attempt.get("tache") else "envoye"
    elif etat == IGNORE:
        statut = "ignore"
    else:
        statut = "echec"
    return i.Resultat(
        resultat_id=derive_id("resultat", action.action_id), pseudonyme=action.pseudonyme,
        action_id=action.action_id, dossier_id=action.dossier_id, parcours=action.parcours,
        statut=statut, raison=attempt.get("raison"),
        canal="telephone" if attempt.get("tache") else attempt.get("canal"),
        survenu_le=attempt.get("fin") or attempt.get("le") or now,
        reference_signalement=action.reference_signalement,
    )

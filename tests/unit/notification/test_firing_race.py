"""Two firings of the same timer at once (a former owner of the partition finishing its tick
while the new owner starts its own): both read "no attempt yet", both try to insert it; the
one that loses the insert must not make the effect a second time. A firing's reads go out
together (its latency bounds how fast due actions are made). A batch takes each step in one
call of the store, and its e-mails are recorded one by one as they go out. Fakes: the store,
the e-mail sender and the publisher (the real store and broker are covered by the
integration tests)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymongo.errors import ConnectionFailure

from services.notification import firing, rules, service
from services.notification.channels import Email
from services.notification.templates import Templates
from shared.clock import ManualClock
from shared.contracts import internes as i
from shared.ids import derive_id
from shared.settings import Settings

# A Monday, Paris 11:00: inside the contact window.
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class RacingStore:
    """Both firings read the attempt before either inserts it (the window of the race)."""

    def __init__(self, action_doc: dict[str, Any], coord: i.Coordonnees) -> None:
        self.doc, self.coord = action_doc, coord
        self.envois: dict[str, dict[str, Any]] = {}
        self.readers = 0
        self.both_read = asyncio.Event()
        self.calls: list[tuple[str, int]] = []

    async def action(self, action_id: str) -> dict[str, Any] | None:
        return dict(self.doc)

    async def attempt(self, action_id: str) -> dict[str, Any] | None:
        found = self.envois.get(action_id)
        self.readers += 1
        if self.readers == 2:
            self.both_read.set()
        await asyncio.wait_for(self.both_read.wait(), 5)
        return found

    async def coordonnees_of(self, pseudonyme: str) -> dict[str, Any] | None:
        return {"data": self.coord.model_dump(mode="json")}

    async def recent_contacts(self, pseudonyme: str) -> list[dict[str, Any]]:
        return []

    async def start_attempts(self, docs: list[dict[str, Any]]
                             ) -> list[tuple[bool, dict[str, Any]]]:
        out = []
        for doc in docs:
            if doc["_id"] in self.envois:
                out.append((False, dict(self.envois[doc["_id"]])))
            else:
                self.envois[doc["_id"]] = dict(doc)
                out.append((True, doc))
        await asyncio.sleep(0)  # the winner's effect has not been recorded yet
        return out

    def _call(self, name: str, items: list[Any]) -> None:
        if items:  # the real store sends no command for an empty list
            self.calls.append((name, len(items)))

    async def update_attempts(self, updates: list[tuple[str, dict[str, Any], int]]) -> None:
        self._call("update_attempts", updates)
        for action_id, set_, _ in updates:
            self.envois[action_id].update(set_)

    async def add_contacts(self, contacts: list[Any]) -> None:
        self._call("add_contacts", contacts)

    async def save_letters(self, docs: list[dict[str, Any]]) -> None:
        pass

    async def insert_tasks(self, docs: list[dict[str, Any]]) -> None:
        pass

    async def update_actions(self, updates: list[tuple[str, dict[str, Any], Any]]) -> None:
        self._call("update_actions", updates)
        for _, set_, _ in updates:
            self.doc.update(set_)

    async def delete_timers(self, timer_ids: list[str]) -> None:
        self._call("delete_timers", timer_ids)


class CountingEmail:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, email: Email) -> str:
        await asyncio.sleep(0.01)
        self.sent.append(email.key)
        return f"<{email.key}@test>"


class Publisher:
    def __init__(self) -> None:
        self.published: list[list[Any]] = []

    async def publish(self, events: Any) -> None:
        self.published.append(list(events))


def _deps(store: RacingStore, email: CountingEmail, tmp_path: Path) -> service.Deps:
    settings = Settings(service_name="notification", data_dir=tmp_path)
    return service.Deps(
        settings=settings, store=store, clock=ManualClock(NOW),  # type: ignore[arg-type]
        templates=Templates.load(), email=email, sms=None,  # type: ignore[arg-type]
        metrics=service.Metrics(CollectorRegistry()), policy=service.policy_from(settings),
        letters_dir=tmp_path, raw=None, publisher=Publisher())  # type: ignore[arg-type]


def _due_email() -> tuple[i.ActionPlanifiee, str, dict[str, Any], i.Coordonnees]:
    """An e-mail due a minute ago: the action, its timer, its stored document, the person."""
    p = "p-" + uuid.uuid4().hex
    a = i.ActionPlanifiee(
        action_id=str(uuid.uuid4()), pseudonyme=p, dossier_id=derive_id("dossier", p),
        parcours="accompagnement-des-seniors", etape="m9-sans-complementaire", kind="courrier",
        canaux=["email"], due_le=NOW - timedelta(minutes=1), modele="seniors-m9-complementaire")
    timer = rules.timer_id(0, a.due_le, a.action_id)
    doc = {"_id": a.action_id, "action": a.model_dump(mode="json"), "pseudonyme": p,
           "partition": 0, "statut": service.PLANIFIEE, "minuterie": timer, "cause": {}}
    coord = i.Coordonnees(pseudonyme=p, nom="Lefèvre", prenom="Josiane",
                          email="josiane.lefevre@example.org", maj_le=NOW)
    return a, timer, doc, coord


async def test_two_simultaneous_firings_of_one_timer_send_one_email(tmp_path: Path) -> None:
    a, timer, doc, coord = _due_email()
    store, email = RacingStore(doc, coord), CountingEmail()
    deps = _deps(store, email, tmp_path)
    t = {"_id": timer, "action_id": a.action_id, "partition": 0}

    outcomes = await asyncio.gather(firing.fire(t, deps), firing.fire(t, deps))

    assert email.sent == [a.action_id], "one e-mail for two simultaneous firings"
    assert sorted(outcomes) == ["concurrente", "fait"]
    assert store.envois[a.action_id]["etat"] == service.FAIT


class ReadsTogetherStore(RacingStore):
    """Each of a firing's four reads returns only once all four are in flight: a firing that
    read one after the other would wait forever (here: five seconds, then fail)."""

    def __init__(self, action_doc: dict[str, Any], coord: i.Coordonnees) -> None:
        super().__init__(action_doc, coord)
        self.in_flight = 0
        self.all_four = asyncio.Event()

    async def _together(self) -> None:
        self.in_flight += 1
        if self.in_flight == 4:
            self.all_four.set()
        await asyncio.wait_for(self.all_four.wait(), 5)

    async def action(self, action_id: str) -> dict[str, Any] | None:
        await self._together()
        return dict(self.doc)

    async def attempt(self, action_id: str) -> dict[str, Any] | None:
        await self._together()
        return self.envois.get(action_id)

    async def coordonnees_of(self, pseudonyme: str) -> dict[str, Any] | None:
        await self._together()
        return {"data": self.coord.model_dump(mode="json")}

    async def recent_contacts(self, pseudonyme: str) -> list[dict[str, Any]]:
        await self._together()
        return []


async def test_a_firing_reads_the_action_attempt_contact_data_and_contacts_at_once(
        tmp_path: Path) -> None:
    a, timer, doc, coord = _due_email()
    store, email = ReadsTogetherStore(doc, coord), CountingEmail()

    outcome = await firing.fire({"_id": timer, "action_id": a.action_id, "partition": 0,
                                  "pseudonyme": a.pseudonyme}, _deps(store, email, tmp_path))

    assert (outcome, email.sent) == ("fait", [a.action_id])


class ContactFailsFirstStore(RacingStore):
    """The database refuses the contact at once, while the record of the send is slower."""

    async def attempt(self, action_id: str) -> dict[str, Any] | None:
        return self.envois.get(action_id)

    async def update_attempts(self, updates: list[tuple[str, dict[str, Any], int]]) -> None:
        await asyncio.sleep(0.05)
        await super().update_attempts(updates)

    async def add_contacts(self, contacts: list[Any]) -> None:
        raise ConnectionFailure("database away")


async def test_a_failed_contact_leaves_the_send_recorded_and_the_next_firing_sends_nothing(
        tmp_path: Path) -> None:
    a, timer, doc, coord = _due_email()
    store, email = ContactFailsFirstStore(doc, coord), CountingEmail()
    deps = _deps(store, email, tmp_path)
    t = {"_id": timer, "action_id": a.action_id, "partition": 0, "pseudonyme": a.pseudonyme}

    with pytest.raises(ConnectionFailure):
        await firing.fire(t, deps)
    assert store.envois[a.action_id]["etat"] == service.FAIT, "recorded before the error"

    assert await firing.fire(t, deps) == "fait"  # the timer fires again: it finishes only
    assert email.sent == [a.action_id]


class PersonsStore(RacingStore):
    """Several persons' actions, their contacts kept as the batch records them."""

    def __init__(self, docs: list[dict[str, Any]], coords: list[i.Coordonnees]) -> None:
        super().__init__(docs[0], coords[0])
        self.docs = {d["_id"]: d for d in docs}
        self.coords = {c.pseudonyme: c for c in coords}
        self.contacted: dict[str, list[dict[str, Any]]] = {}

    async def action(self, action_id: str) -> dict[str, Any] | None:
        return dict(self.docs[action_id])

    async def attempt(self, action_id: str) -> dict[str, Any] | None:
        return self.envois.get(action_id)

    async def coordonnees_of(self, pseudonyme: str) -> dict[str, Any] | None:
        return {"data": self.coords[pseudonyme].model_dump(mode="json")}

    async def recent_contacts(self, pseudonyme: str) -> list[dict[str, Any]]:
        return list(self.contacted.get(pseudonyme, []))

    async def add_contacts(self, contacts: list[Any]) -> None:
        await super().add_contacts(contacts)
        for p, action_id, when, _ in contacts:
            self.contacted.setdefault(p, []).append({"action_id": action_id, "le": when})

    async def update_actions(self, updates: list[tuple[str, dict[str, Any], Any]]) -> None:
        self._call("update_actions", updates)
        for action_id, set_, _ in updates:
            self.docs[action_id].update(set_)


def _due(p: str, kind: str, canaux: list[str],
         modele: str) -> tuple[dict[str, Any], dict[str, Any]]:
    a = i.ActionPlanifiee(
        action_id=str(uuid.uuid4()), pseudonyme=p, dossier_id=derive_id("dossier", p),
        parcours="accompagnement-des-seniors", etape="m9", kind=kind, canaux=canaux,  # type: ignore[arg-type]
        due_le=NOW - timedelta(minutes=1), modele=modele)
    timer = rules.timer_id(0, a.due_le, a.action_id)
    doc = {"_id": a.action_id, "action": a.model_dump(mode="json"), "pseudonyme": p,
           "partition": 0, "statut": service.PLANIFIEE, "minuterie": timer, "cause": {}}
    return doc, {"_id": timer, "action_id": a.action_id, "partition": 0, "pseudonyme": p}


async def test_a_batch_takes_each_step_in_one_call_and_records_each_email_as_it_goes(
        tmp_path: Path) -> None:
    persons = [f"p-{k}-" + uuid.uuid4().hex for k in range(6)]
    coords = [i.Coordonnees(pseudonyme=p, nom="Lefèvre", prenom="Josiane", telephone="0612345678",
                            email=f"{k}@example.org", maj_le=NOW) for k, p in enumerate(persons)]
    emails = [_due(p, "courrier", ["email"], "seniors-m9-complementaire") for p in persons[:3]]
    calls = [_due(p, "appel", ["telephone"], "seniors-m9-complementaire") for p in persons[3:]]
    # the first person's second e-mail: after the first one, in a second round
    again = _due(persons[0], "courrier", ["email"], "seniors-m9-complementaire")
    timers = [t for _, t in emails + calls + [again]]
    store, email = PersonsStore([d for d, _ in emails + calls + [again]], coords), CountingEmail()
    deps = _deps(store, email, tmp_path)  # type: ignore[arg-type]
    deps.policy = rules.Policy(contact_cap=1)

    outcomes = await firing.fire_many(timers, deps)

    assert outcomes == ["fait"] * 6 + ["ignore"], "the second e-mail of a capped person is not sent"
    assert store.envois[again[0]["_id"]]["raison"] == rules.PLAFOND, "it read the first contact"
    assert sorted(email.sent) == sorted(d["_id"] for d, _ in emails)
    first, second = store.calls[:store.calls.index(("delete_timers", 6)) + 1], \
        store.calls[store.calls.index(("delete_timers", 6)) + 1:]
    assert sorted(first) == sorted([("update_attempts", 1)] * 3 + [
        ("update_attempts", 3), ("add_contacts", 6), ("update_actions", 6),
        ("delete_timers", 6)]), "each e-mail recorded alone, the tasks' sends together"
    assert second == [("update_actions", 1), ("delete_timers", 1)], "the second round"
    published = deps.publisher.published  # type: ignore[attr-defined]
    assert [len(p) for p in published] == [6, 1], "a round's outcomes in one publication"


class CancelStore(RacingStore):
    """Actions by id, for cancellations."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        super().__init__(next(iter(docs.values())), None)  # type: ignore[arg-type]
        self.docs = docs
        self.tombstones: list[str] = []

    async def action(self, action_id: str) -> dict[str, Any] | None:
        return self.docs.get(action_id)

    async def attempt(self, action_id: str) -> dict[str, Any] | None:
        return self.envois.get(action_id)

    async def insert_actions(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self._call("insert_actions", docs)
        self.tombstones += [d["_id"] for d in docs]
        return docs

    async def update_actions(self, updates: list[tuple[str, dict[str, Any], Any]]) -> None:
        self._call("update_actions", updates)
        for action_id, set_, history in updates:
            self.docs[action_id].update(set_)
            self.docs[action_id].setdefault("historique", []).append(history)


async def test_a_batch_of_cancellations_takes_each_step_in_one_call(tmp_path: Path) -> None:
    docs = {}
    for k in range(6):
        doc, _ = _due(f"p{k}", "courrier", ["courrier"], "seniors-m9-complementaire")
        docs[doc["_id"]] = doc
    ids = list(docs)
    store = CancelStore(docs)
    store.envois[ids[5]] = {"_id": ids[5], "etat": service.EN_COURS}  # already being made
    deps = _deps(store, CountingEmail(), tmp_path)  # type: ignore[arg-type]

    def cancel(aid: str) -> tuple[i.ActionAnnulee, int]:
        return i.ActionAnnulee(action_id=aid, pseudonyme="p", dossier_id="d",
                               raison="objectif-atteint"), 0

    await service.cancel_actions([cancel(a) for a in ids] + [cancel("jamais-planifiee"),
                                                             cancel(ids[0])], deps)

    assert [docs[a]["statut"] for a in ids] == [service.ANNULEE] * 5 + [service.PLANIFIEE]
    assert [h["quoi"] for h in docs[ids[0]]["historique"]] == ["annulee", "annulation-tardive"]
    assert store.tombstones == ["jamais-planifiee"]
    assert store.calls == [("insert_actions", 1), ("update_actions", 6), ("delete_timers", 5),
                           ("update_actions", 1)], "each step once, the repeated one after"


class SlowEmail(CountingEmail):
    """Notes how many e-mails are being sent at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = self.most = 0

    async def send(self, email: Email) -> str:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await super().send(email)
        finally:
            self.now -= 1


async def test_a_batchs_emails_go_out_at_most_email_slots_at_a_time(tmp_path: Path) -> None:
    persons = [f"p-{k}-" + uuid.uuid4().hex for k in range(6)]
    coords = [i.Coordonnees(pseudonyme=p, nom="Lefèvre", prenom="Josiane",
                            email=f"{k}@example.org", maj_le=NOW) for k, p in enumerate(persons)]
    due = [_due(p, "courrier", ["email"], "seniors-m9-complementaire") for p in persons]
    store, email = PersonsStore([d for d, _ in due], coords), SlowEmail()
    deps = _deps(store, email, tmp_path)  # type: ignore[arg-type]
    deps.email_slots = asyncio.Semaphore(2)

    assert await firing.fire_many([t for _, t in due], deps) == ["fait"] * 6

    assert email.most == 2, "sent and not yet recorded: two at most, not the whole batch"
    assert store.calls.count(("update_attempts", 1)) == 6

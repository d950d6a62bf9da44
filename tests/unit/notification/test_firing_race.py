"""Two firings of the same timer at once (a former owner of the partition finishing its tick
while the new owner starts its own): both read "no attempt yet", both try to insert it; the
one that loses the insert must not make the effect a second time. And a firing's reads go
out together (its latency bounds how fast due actions are made). Fakes: the store and the
e-mail sender (the real store and broker are covered by the integration tests)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymongo.errors import ConnectionFailure

from services.notification import rules, service
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

    async def start_attempt(self, doc: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        if doc["_id"] in self.envois:
            return False, dict(self.envois[doc["_id"]])
        self.envois[doc["_id"]] = dict(doc)
        await asyncio.sleep(0)  # the winner's effect has not been recorded yet
        return True, doc

    async def update_attempt(self, action_id: str, set_: dict[str, Any], inc: int = 0) -> None:
        self.envois[action_id].update(set_)

    async def add_contact(self, pseudonyme: str, action_id: str, when: datetime,
                          known: list[dict[str, Any]] | None = None) -> None:
        pass

    async def update_action(self, action_id: str, set_: dict[str, Any],
                            history: dict[str, Any] | None = None) -> None:
        self.doc.update(set_)

    async def delete_timer(self, timer_id: str) -> None:
        pass


class CountingEmail:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, email: Email) -> str:
        await asyncio.sleep(0.01)
        self.sent.append(email.key)
        return f"<{email.key}@test>"


class Broker:
    def __init__(self) -> None:
        self.published: list[bytes] = []

    async def publish(self, body: bytes, topic: str, **_: Any) -> None:
        self.published.append(body)


def _deps(store: RacingStore, email: CountingEmail, tmp_path: Path) -> service.Deps:
    settings = Settings(service_name="notification", data_dir=tmp_path)
    return service.Deps(
        settings=settings, store=store, clock=ManualClock(NOW), broker=Broker(),  # type: ignore[arg-type]
        templates=Templates.load(), email=email, sms=None,  # type: ignore[arg-type]
        metrics=service.Metrics(CollectorRegistry()), policy=service.policy_from(settings),
        letters_dir=tmp_path, raw=None)  # type: ignore[arg-type]


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

    outcomes = await asyncio.gather(service.fire(t, deps), service.fire(t, deps))

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

    outcome = await service.fire({"_id": timer, "action_id": a.action_id, "partition": 0,
                                  "pseudonyme": a.pseudonyme}, _deps(store, email, tmp_path))

    assert (outcome, email.sent) == ("fait", [a.action_id])


class ContactFailsFirstStore(RacingStore):
    """The database refuses the contact at once, while the record of the send is slower."""

    async def attempt(self, action_id: str) -> dict[str, Any] | None:
        return self.envois.get(action_id)

    async def update_attempt(self, action_id: str, set_: dict[str, Any], inc: int = 0) -> None:
        await asyncio.sleep(0.05)
        await super().update_attempt(action_id, set_, inc)

    async def add_contact(self, pseudonyme: str, action_id: str, when: datetime,
                          known: list[dict[str, Any]] | None = None) -> None:
        raise ConnectionFailure("database away")


async def test_a_failed_contact_leaves_the_send_recorded_and_the_next_firing_sends_nothing(
        tmp_path: Path) -> None:
    a, timer, doc, coord = _due_email()
    store, email = ContactFailsFirstStore(doc, coord), CountingEmail()
    deps = _deps(store, email, tmp_path)
    t = {"_id": timer, "action_id": a.action_id, "partition": 0, "pseudonyme": a.pseudonyme}

    with pytest.raises(ConnectionFailure):
        await service.fire(t, deps)
    assert store.envois[a.action_id]["etat"] == service.FAIT, "recorded before the error"

    assert await service.fire(t, deps) == "fait"  # the timer fires again: it finishes only
    assert email.sent == [a.action_id]

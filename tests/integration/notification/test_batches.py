"""Due actions fired in batches, on the real broker and database: seventeen actions of fourteen
persons due at once fire in three rounds (one person has three), each round's steps in one
command each; an attempt left in progress by a former firing is resumed, one already done is
only finished; every action gets its one outcome, and the cap on contacts reads what the
previous round recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import monitoring

import services.notification.app as notification_app
from services.notification.app import create_app
from shared.clock import ManualClock
from tests.integration.notification.helpers import (
    action,
    at_least,
    coordonnees,
    known,
    planned_event,
    pseudo,
    results,
    send_actions,
    send_coordonnees,
)
from tests.support import eventually, running

START = datetime(2026, 3, 2, 9, 50, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday, 11:00 in Paris


class Commands(monitoring.CommandListener):
    """The write commands notification sends, by (command, collection)."""

    def __init__(self) -> None:
        self.counted: dict[tuple[str, str], int] = {}
        self.on = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on and event.command_name in ("insert", "update", "delete"):
            key = (event.command_name, str(event.command.get(event.command_name)))
            self.counted[key] = self.counted.get(key, 0) + 1

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


async def test_due_actions_fire_in_batches_each_once_resuming_what_a_former_firing_left(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commands = Commands()
    original = notification_app.make_mongo_client
    monkeypatch.setattr(notification_app, "make_mongo_client",
                        lambda *args: original(*args, event_listeners=[commands]))
    settings = make_settings("notification", data_dir=tmp_path, notification_contact_cap=2,
                             notification_scheduler_interval_seconds=0.2)
    letters = [action(pseudo(), NOW - timedelta(minutes=1)) for _ in range(10)]
    a = pseudo()
    capped = [action(a, NOW - timedelta(minutes=m)) for m in (3, 2, 1)]  # the third: capped
    tasks = [action(pseudo(), NOW - timedelta(minutes=1), kind="appel", canaux=["telephone"])
             for _ in range(2)]
    resumed = action(pseudo(), NOW - timedelta(minutes=1))  # its attempt left in progress
    finished = action(pseudo(), NOW - timedelta(minutes=1))  # its letter made and recorded
    every = letters + capped + tasks + [resumed, finished]
    persons = {x.pseudonyme for x in every}
    await send_coordonnees(settings, *(coordonnees(p, START) for p in persons))
    await send_actions(settings, *(planned_event(x, START) for x in every))
    db = mongo[settings.database_name]
    clock = ManualClock(START)
    async with running(create_app(settings, clock=clock)):
        await known(mongo, settings, len(persons))

        async def planned() -> bool:
            return await db["actions"].count_documents({}) == len(every)

        await eventually(planned)
        await db["envois"].insert_many([
            {"_id": resumed.action_id, "etat": "en-cours", "canal": "courrier", "tache": False,
             "le": START, "tentatives": 0},
            {"_id": finished.action_id, "etat": "fait", "canal": "courrier", "tache": False,
             "le": START, "tentatives": 0, "reference": "2026-03-02/x.pdf", "fin": START}])
        commands.on = True
        clock.set(NOW)
        await at_least(settings, len(every))
        await asyncio.sleep(1.0)  # an outcome published twice would be there by now
        commands.on = False

    got = await results(settings)
    by_action = {g["data"]["action_id"]: g["data"] for g in got}
    assert len(got) == len(every) == len(by_action), "one outcome per action"
    assert by_action[capped[2].action_id]["statut"] == "ignore"
    assert by_action[capped[2].action_id]["raison"] == "plafond-contacts", \
        "the third round read the contacts the first two recorded"
    assert {by_action[x.action_id]["statut"] for x in tasks} == {"tache-creee"}
    sent = letters + capped[:2] + [resumed, finished]
    assert {by_action[x.action_id]["statut"] for x in sent} == {"envoye"}
    for x in letters + capped[:2] + [resumed]:
        assert len(list(tmp_path.rglob(f"{x.action_id}.pdf"))) == 1, "its letter, once"
    assert not list(tmp_path.rglob(f"{finished.action_id}.pdf")), "made before: not again"
    assert await db["minuteries"].count_documents({}) == 0
    assert await db["actions"].count_documents({"statut": "terminee"}) == len(every)
    assert await db["taches"].count_documents({}) == 2
    # three rounds (the person with three actions), each step of a round in one command
    assert commands.counted.get(("delete", "minuteries"), 0) <= 3
    assert commands.counted.get(("insert", "envois"), 0) <= 3
    assert commands.counted.get(("update", "actions"), 0) <= 3
    assert commands.counted.get(("insert", "courriers"), 0) <= 3

"""The agents' phone queue under contention, on the real broker and database: a task is taken
by one agent only and gets one outcome, however many ask at the same moment (agents clicking at
once, several instances of notification behind a load balancer)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient

from services.notification.app import create_app
from services.notification.store import NotificationStore
from shared.clock import ManualClock
from shared.topics import COORDONNEES
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
from tests.support import auth_headers, eventually, produce, running

START = datetime(2026, 3, 2, 9, 59, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday, 11:00 in Paris


async def test_of_many_simultaneous_claims_of_a_task_the_database_keeps_one(
    make_settings: Any, mongo: Any
) -> None:
    settings = make_settings("notification")
    # one client per "instance": the claims travel on separate connections
    clients = [AsyncMongoClient(settings.mongo_uri, tz_aware=True) for _ in range(4)]
    try:
        stores = [NotificationStore(c, settings.database_name) for c in clients]
        for round_ in range(10):
            task_id = f"tache-{round_}"
            claims = await asyncio.gather(*(
                stores[n % len(stores)].take_task(task_id, f"agent.{n}", NOW) for n in range(12)))
            assert len({c["agent"] for c in claims}) == 1, f"round {round_}: {claims}"
            issues = await asyncio.gather(*(
                stores[n % len(stores)].record_issue(task_id, "agent.0", issue, NOW)
                for n, issue in enumerate(["joint", "refus", "injoignable"] * 3)))
            assert len({i["issue"] for i in issues}) == 1, f"round {round_}: {issues}"
    finally:
        for c in clients:
            await c.close()


async def test_agents_asking_for_one_task_at_once_one_gets_it_and_one_outcome_is_published(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    settings = make_settings("notification", data_dir=tmp_path,
                             notification_scheduler_interval_seconds=0.2)
    clock = ManualClock(START)
    p = pseudo()
    await send_coordonnees(settings, coordonnees(p, NOW))
    call = action(p, NOW, kind="appel", canaux=["telephone"], modele="misas-prise-en-charge",
                  parcours="renoncement-aux-soins", etape="prise-en-charge", obligatoire=True)
    await send_actions(settings, planned_event(call, NOW))
    agents = [auth_headers("agent", "91", f"agent.{n}") for n in range(8)]
    async with running(create_app(settings, clock=clock)) as http:
        await known(mongo, settings, 1)
        clock.set(NOW)
        await at_least(settings, 1)
        [task] = (await http.get("/v1/taches", params={"site": "91"}, headers=agents[0])).json()

        claims = await asyncio.gather(*(
            http.post(f"/v1/taches/{task['id']}/prise", headers=h) for h in agents))
        won = [n for n, c in enumerate(claims) if c.status_code == 200]
        assert len(won) == 1, [c.status_code for c in claims]
        assert {c.json()["erreur"] for c in claims if c.status_code != 200} == {"tache-deja-prise"}
        winner = agents[won[0]]
        loser = agents[(won[0] + 1) % len(agents)]
        stored = await mongo[settings.database_name]["taches"].find_one({"_id": task["id"]})
        assert stored["statut"] == "prise" and stored["agent"] == f"agent.{won[0]}"

        outcomes = await asyncio.gather(
            http.post(f"/v1/taches/{task['id']}/issue", headers=winner, json={"issue": "joint"}),
            http.post(f"/v1/taches/{task['id']}/issue", headers=winner,
                      json={"issue": "injoignable"}),
            http.post(f"/v1/taches/{task['id']}/issue", headers=loser, json={"issue": "refus"}))
        codes = sorted(o.status_code for o in outcomes)
        assert codes == [200, 409, 409], codes
        assert outcomes[2].json()["erreur"] == "tache-deja-prise"
        recorded = next(o.json() for o in outcomes if o.status_code == 200)
        await at_least(settings, 2)
        await asyncio.sleep(1.0)

        # the person forgotten (tombstone from signalement): the task, who took it and the
        # outcome recorded go with it
        await produce(settings.kafka_bootstrap_servers, settings.topic(COORDONNEES),
                      [(p.encode(), None, [])])
        db = mongo[settings.database_name]

        async def forgotten() -> bool:
            return all([await db[c].find_one({"_id": task["id"]}) is None
                        for c in ("taches", "prises", "issues_appel")])
        await eventually(forgotten)
    calls = [r["data"] for r in await results(settings) if r["data"]["statut"] == "appel"]
    assert [c["issue_appel"] for c in calls] == [recorded["issue"]], "one outcome published"

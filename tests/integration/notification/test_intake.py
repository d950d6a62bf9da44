"""Notification's intake in batches, on the real broker and database: a batch's poison records
go to the dead-letter topic alone, the rest is stored, in order (a plan before its
cancellation; contact data before the tombstone that forgets the person)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notification.app import create_app
from shared import topics as t
from shared.clock import ManualClock
from shared.kafka import H_BY, H_CODE
from tests.integration.notification.helpers import (
    action,
    cancelled_event,
    coordonnees,
    coordonnees_event,
    planned_event,
    pseudo,
    send_actions,
)
from tests.support import eventually, produce, read_all, running

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CE = [("content-type", b"application/cloudevents+json")]


async def test_one_batch_of_actions_keeps_order_and_dead_letters_only_its_poison(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    settings = make_settings("notification", data_dir=tmp_path)
    p = pseudo()
    kept, cancelled = action(p, NOW + timedelta(days=30)), action(p, NOW + timedelta(days=31))
    unknown = json.loads(planned_event(kept, NOW)[1]) | {"type": "parcours.action-rappelee.v1"}
    broken = json.loads(planned_event(kept, NOW)[1])
    del broken["data"]["due_le"]
    poison = [b"{not json", json.dumps(unknown).encode(), json.dumps(broken).encode()]
    # all in one send: read as one batch, in this order
    await send_actions(settings, (p.encode(), poison[0], CE), planned_event(kept, NOW),
                       (p.encode(), poison[1], CE), planned_event(cancelled, NOW),
                       cancelled_event(cancelled, NOW), (p.encode(), poison[2], CE),
                       planned_event(kept, NOW))  # the same plan again: changes nothing
    db = mongo[settings.database_name]
    async with running(create_app(settings, clock=ManualClock(NOW))):
        dead = await read_all(settings.kafka_bootstrap_servers, settings.topic(t.DLQ),
                              expect=3, timeout=60)

        async def stored() -> Any:
            docs = {d["_id"]: d async for d in db["actions"].find({})}
            return docs if len(docs) == 2 and docs[cancelled.action_id]["statut"] == "annulee" \
                else None

        docs = await eventually(stored, timeout=60)
        timers = [t async for t in db["minuteries"].find({})]
    assert [d.value for d in dead] == poison, "the original bytes, in their order"
    assert {dict(d.headers)[H_BY] for d in dead} == {b"notification"}
    assert all(dict(d.headers)[H_CODE] for d in dead)
    assert docs[kept.action_id]["statut"] == "planifiee"
    assert [h["quoi"] for h in docs[kept.action_id]["historique"]] == ["planifiee"]
    assert [t["action_id"] for t in timers] == [kept.action_id], "the cancelled one's timer went"


async def test_contact_data_before_a_tombstone_is_forgotten_and_the_latest_is_kept(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    settings = make_settings("notification", data_dir=tmp_path)
    gone, kept = pseudo(), pseudo()
    newer = coordonnees(kept, NOW, telephone="07 00 00 00 01")
    older = coordonnees(kept, NOW - timedelta(days=1), telephone="07 00 00 00 02")
    await produce(settings.kafka_bootstrap_servers, settings.topic(t.COORDONNEES), [
        coordonnees_event(coordonnees(gone, NOW)), coordonnees_event(newer),
        (gone.encode(), None, []),  # tombstone: the person's data purged upstream
        coordonnees_event(older),  # an older record read after the newer: changes nothing
        (kept.encode(), b"{not json", CE),
    ])
    db = mongo[settings.database_name]
    async with running(create_app(settings, clock=ManualClock(NOW))):
        dead = await read_all(settings.kafka_bootstrap_servers, settings.topic(t.DLQ),
                              expect=1, timeout=60)

        async def stored() -> Any:
            return await db["coordonnees"].find_one({"_id": kept})

        doc = await eventually(stored, timeout=60)
        assert await db["coordonnees"].find_one({"_id": gone}) is None
        # later batches, for a person already stored: an older record changes nothing, a newer
        # one replaces it (a poison record behind them, on their partition, says they were read)
        await produce(settings.kafka_bootstrap_servers, settings.topic(t.COORDONNEES), [
            coordonnees_event(older), (kept.encode(), b"{second", CE)])
        await read_all(settings.kafka_bootstrap_servers, settings.topic(t.DLQ), expect=2,
                       timeout=60)
        after_older = await db["coordonnees"].find_one({"_id": kept})
        newest = coordonnees(kept, NOW + timedelta(days=1), telephone="07 00 00 00 03")
        await produce(settings.kafka_bootstrap_servers, settings.topic(t.COORDONNEES), [
            coordonnees_event(newest), (kept.encode(), b"{third", CE)])
        await read_all(settings.kafka_bootstrap_servers, settings.topic(t.DLQ), expect=3,
                       timeout=60)
        after_newest = await db["coordonnees"].find_one({"_id": kept})
    assert doc["data"]["telephone"] == "07 00 00 00 01"
    assert [d.value for d in dead] == [b"{not json"]
    assert after_older["data"]["telephone"] == "07 00 00 00 01"
    assert after_newest["data"]["telephone"] == "07 00 00 00 03"


async def test_cancellations_of_a_batch_are_applied_together_in_their_order(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    """Plans, then cancellations (one of an action never planned, one repeated), then a plan
    after them, and a cancellation that arrives before its plan: each in its place."""
    settings = make_settings("notification", data_dir=tmp_path)
    p, q = pseudo(), pseudo()
    a1, a2, b1 = (action(p, NOW + timedelta(days=30)), action(p, NOW + timedelta(days=31)),
                  action(q, NOW + timedelta(days=30)))
    never, early, after = (action(q, NOW + timedelta(days=40)), action(q, NOW + timedelta(days=41)),
                           action(p, NOW + timedelta(days=42)))
    await send_actions(settings, planned_event(a1, NOW), planned_event(a2, NOW),
                       planned_event(b1, NOW), cancelled_event(a1, NOW),
                       cancelled_event(b1, NOW), cancelled_event(never, NOW),
                       cancelled_event(a1, NOW),  # redelivered: late, after the first
                       cancelled_event(early, NOW), planned_event(early, NOW),
                       planned_event(after, NOW))
    db = mongo[settings.database_name]
    async with running(create_app(settings, clock=ManualClock(NOW))):

        async def stored() -> Any:
            docs = {d["_id"]: d async for d in db["actions"].find({})}
            return docs if len(docs) == 6 else None

        docs = await eventually(stored, timeout=60)
        timers = sorted([t["action_id"] async for t in db["minuteries"].find({})])
    statut = {aid: d["statut"] for aid, d in docs.items()}
    assert statut == {a1.action_id: "annulee", a2.action_id: "planifiee",
                      b1.action_id: "annulee", never.action_id: "annulee",
                      early.action_id: "annulee", after.action_id: "planifiee"}
    assert [h["quoi"] for h in docs[a1.action_id]["historique"]] == [
        "planifiee", "annulee", "annulation-tardive"]
    assert [h["quoi"] for h in docs[early.action_id]["historique"]] == ["annulee"], \
        "cancelled before its plan: the plan changes nothing"
    assert timers == sorted([a2.action_id, after.action_id]), "only the planned ones' timers"

"""Durable timers on the real broker and database, the clock moved forward."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notification.app import create_app
from shared.clock import ManualClock
from tests.integration.notification.helpers import (
    action,
    at_least,
    cancelled_event,
    coordonnees,
    planned_event,
    pseudo,
    results,
    send_actions,
    send_coordonnees,
)
from tests.support import eventually, running

# A Monday morning, Paris 11:00.
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FAST = {"notification_scheduler_interval_seconds": 0.2}


def settings_for(make_settings: Any, tmp_path: Any, **extra: Any) -> Any:
    return make_settings("notification", data_dir=tmp_path, **FAST, **extra)


async def _stored(mongo: Any, settings: Any, action_id: str) -> dict[str, Any] | None:
    return await mongo[settings.database_name]["actions"].find_one({"_id": action_id})


async def _letter_planned(make_settings: Any, tmp_path: Any, due: datetime) -> tuple[Any, Any]:
    """The settings of a notification, and a letter planned for ``due`` (sent with its
    person's contact data on the topics, not yet taken)."""
    settings = settings_for(make_settings, tmp_path)
    letter = action(pseudo(), due)
    await send_coordonnees(settings, coordonnees(letter.pseudonyme, NOW))
    await send_actions(settings, planned_event(letter, NOW))
    return settings, letter


async def test_a_letter_due_in_nine_months_fires_once_when_the_clock_reaches_it_across_a_restart(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    due = NOW + timedelta(days=275)
    settings, letter = await _letter_planned(make_settings, tmp_path, due)
    p, clock = letter.pseudonyme, ManualClock(NOW)

    async with running(create_app(settings, clock=clock)):
        await eventually(lambda: _stored(mongo, settings, letter.action_id))
        clock.set(due - timedelta(days=1))  # eight months and 29 days later: not yet
        await asyncio.sleep(1.5)
    assert await results(settings) == []

    # The service was stopped; the timer is data: a new instance fires it when due.
    clock.set(due + timedelta(minutes=1))
    async with running(create_app(settings, clock=clock)):
        got = await at_least(settings, 1)
        await asyncio.sleep(1.5)  # more ticks: nothing else fires
    got = await results(settings)
    assert len(got) == 1
    r = got[0]["data"]
    assert (r["action_id"], r["statut"], r["canal"]) == (letter.action_id, "envoye", "courrier")
    assert got[0]["_key"] == p
    day = (tmp_path / "letters").iterdir().__next__()
    assert (day / f"{letter.action_id}.pdf").exists()
    doc = await _stored(mongo, settings, letter.action_id)
    assert doc is not None and doc["statut"] == "terminee"
    assert await mongo[settings.database_name]["minuteries"].count_documents({}) == 0


async def test_a_timer_stored_before_timers_carried_their_due_time_fires_after_a_restart(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    due = NOW + timedelta(days=10)
    settings, letter = await _letter_planned(make_settings, tmp_path, due)
    clock = ManualClock(NOW)
    async with running(create_app(settings, clock=clock)):
        await eventually(lambda: _stored(mongo, settings, letter.action_id))
    timers = mongo[settings.database_name]["minuteries"]
    # as an earlier version wrote it: no due time, no person
    assert (await timers.update_many({}, {"$unset": {"du": "", "pseudonyme": ""}})).modified_count

    clock.set(due + timedelta(minutes=1))
    async with running(create_app(settings, clock=clock)):
        got = await at_least(settings, 1)

        async def done() -> bool:  # the outcome is published before the timer is deleted
            return await timers.count_documents({}) == 0

        await eventually(done)
    assert [g["data"]["action_id"] for g in got] == [letter.action_id]


async def test_an_action_cancelled_before_its_due_time_never_fires(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    settings = settings_for(make_settings, tmp_path)
    clock = ManualClock(NOW)
    p = pseudo()
    cancelled = action(p, NOW + timedelta(days=30))
    kept = action(p, NOW + timedelta(days=31), modele="seniors-p1-information")
    await send_coordonnees(settings, coordonnees(p, NOW))
    await send_actions(settings, planned_event(cancelled, NOW), planned_event(kept, NOW),
                       cancelled_event(cancelled, NOW + timedelta(days=2)))
    async with running(create_app(settings, clock=clock)):
        async def cancelled_stored() -> bool:
            doc = await _stored(mongo, settings, cancelled.action_id)
            return doc is not None and doc["statut"] == "annulee"
        await eventually(cancelled_stored)
        clock.set(NOW + timedelta(days=40))
        got = await at_least(settings, 1)
        await asyncio.sleep(1.5)
    got = await results(settings)
    assert [g["data"]["action_id"] for g in got] == [kept.action_id]
    assert not list((tmp_path / "letters").rglob(f"{cancelled.action_id}*.pdf"))


async def test_the_store_gives_the_due_timers_of_several_partitions_oldest_first_older_timers_too(
    make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    """One query for every partition owned (docs/performance.md): the due timers of those
    partitions only, the oldest first, at most the limit; the next due time among them; a timer
    stored before timers carried their due time (``du``) is found too, once given its due time
    (the service does it in the background after its start)."""
    from services.notification import rules
    from services.notification.store import NotificationStore

    settings = settings_for(make_settings, tmp_path)
    store = NotificationStore(mongo, settings.database_name)

    def timer(partition: int, due: datetime, name: str) -> dict[str, Any]:
        return {"_id": rules.timer_id(partition, due, name), "action_id": name,
                "partition": partition, "du": due}

    await store.add_timers([
        timer(0, NOW - timedelta(minutes=1), "p0-recent"),
        timer(5, NOW - timedelta(hours=2), "p5-old"),
        timer(3, NOW + timedelta(days=1), "p3-tomorrow"),
        timer(4, NOW - timedelta(days=9), "p4-not-owned"),
    ])
    older = timer(3, NOW - timedelta(hours=1), "p3-older-format")
    del older["du"]
    await store.minuteries.insert_one(older)
    await store.setup()
    assert await store.due_times_of_older_timers() == NOW - timedelta(hours=1)
    assert await store.due_times_of_older_timers() is None  # once

    owned = frozenset({0, 3, 5})
    due = await store.due_timers(owned, NOW, limit=10)
    assert [d["action_id"] for d in due] == ["p5-old", "p3-older-format", "p0-recent"]
    assert [d["action_id"] for d in await store.due_timers(owned, NOW, limit=2)] == [
        "p5-old", "p3-older-format"]
    assert await store.earliest_timer(owned) == NOW - timedelta(hours=2)
    assert await store.earliest_timer(frozenset({3})) == NOW - timedelta(hours=1)
    assert await store.earliest_timer(frozenset({1})) is None
    assert await store.due_timers(frozenset({3}), NOW - timedelta(days=1), limit=10) == []


async def test_contacts_and_letters_are_recorded_once_by_insert_or_update(
    make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    """A batch of firings passes the contacts each read: a first contact is inserted, a later
    one pushed, a repeated one ignored; a contacts document written in between (``known``
    stale) is kept. A letter made again (a resumed firing) replaces its record."""
    from services.notification.store import NotificationStore

    settings = settings_for(make_settings, tmp_path)
    store = NotificationStore(mongo, settings.database_name)
    t1, t2, t3 = NOW, NOW + timedelta(days=1), NOW + timedelta(days=2)
    await store.add_contacts([("p1", "a1", t1, []), ("p2", "b1", t1, [])])
    # stale "none" for p1: the stored one is kept, once; p3 is new
    await store.add_contacts([("p1", "a1", t1, []), ("p3", "c1", t1, [])])
    await store.add_contacts([("p1", "a2", t2, await store.recent_contacts("p1"))])
    await store.add_contacts([("p1", "a2", t2, await store.recent_contacts("p1")),
                              ("p2", "b2", t2, await store.recent_contacts("p2"))])
    await store.add_contacts([("p1", "a3", t3, None)])  # not read by the firing
    assert [(c["action_id"], c["le"]) for c in await store.recent_contacts("p1")] == [
        ("a1", t1), ("a2", t2), ("a3", t3)]
    assert [c["action_id"] for c in await store.recent_contacts("p2")] == ["b1", "b2"]
    assert [c["action_id"] for c in await store.recent_contacts("p3")] == ["c1"]

    await store.save_letters([{"_id": "a1", "jour": "2026-03-02", "pages": [1]},
                              {"_id": "a2", "jour": "2026-03-02", "pages": [1]}])
    await store.save_letters([{"_id": "a1", "jour": "2026-03-02", "pages": [2]},
                              {"_id": "a3", "jour": "2026-03-03", "pages": [1]}])
    assert [d async for d in store.letters_of_day("2026-03-02")] == [
        {"_id": "a1", "jour": "2026-03-02", "pages": [2]},
        {"_id": "a2", "jour": "2026-03-02", "pages": [1]}]

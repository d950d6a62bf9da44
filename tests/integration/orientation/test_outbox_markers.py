"""Orientation's outbox on the real database: a cause acknowledged by this instance is known
without a read of its marker; another instance (or this one after a restart, or once the
marker is forgotten) reads it, and finds the same answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient, monitoring

from services.orientation.rules import PersonContext
from services.orientation.store import EnAttente, EtatPersonne, OrientationStore

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class MarkerReads(monitoring.CommandListener):
    def __init__(self) -> None:
        self.reads = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == "publies":
            self.reads += 1

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


async def _person(store: OrientationStore, causes: list[str]) -> str:
    """A person's first document, its outbox holding ``causes`` (version 1)."""
    p = "p-" + uuid.uuid4().hex
    etat = EtatPersonne(contexte=PersonContext(pseudonyme=p))
    await store.enregistrer(etat, PersonContext(pseudonyme=p),
                            tuple(EnAttente(cause=c) for c in causes), NOW)
    return p


async def test_markers_this_instance_stored_are_known_without_a_read(infra: Any) -> None:
    reads = MarkerReads()
    db = "orientation_markers_" + uuid.uuid4().hex[:8]
    client: AsyncMongoClient[Any] = AsyncMongoClient(infra.mongo_uri, event_listeners=[reads])
    try:
        store = OrientationStore(client, db, remembered=3)
        p = await _person(store, ["c1", "c2"])
        etat = await store.charger(p)
        assert [e.cause for e in etat.a_publier] == ["c1", "c2"] and reads.reads == 2

        etat = await store.publie(etat, "c1")
        reads.reads = 0
        etat = await store.charger(p)
        assert [e.cause for e in etat.a_publier] == ["c2"]
        assert reads.reads == 1, "c1 is known acknowledged; only c2 is read"

        # Another instance, or a restart: nothing remembered, the database says the same.
        other = OrientationStore(client, db)
        reads.reads = 0
        assert [e.cause for e in (await other.charger(p)).a_publier] == ["c2"]
        assert reads.reads == 2

        # Version-1 persons acknowledged in a batch; the oldest marker forgotten (three kept).
        q = await _person(store, ["d1"])
        await store.publies_nouveaux([(q, "d1")])
        await store.publies_nouveaux([(p, "c2")])
        reads.reads = 0
        assert (await store.charger(q)).a_publier == ()
        assert (await store.charger(p)).a_publier == ()
        assert reads.reads == 0
        await store.publies_nouveaux([("someone-else", "e1"), ("someone-else", "e2")])
        assert (await store.charger(q)).a_publier == () and reads.reads == 1
    finally:
        await client.drop_database(db)
        await client.close()

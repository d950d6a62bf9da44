"""MongoDB adapter of reporting (its own database; no other service reads it).

Collections, each with a single writer (the consumer of one topic), every write by ``_id``:
- ``demandes`` (``_id`` = demande_id), ``decisions`` (decision_id), ``actions`` (action_id;
  planned and cancelled fields set separately), ``resultats`` (resultat_id), ``rejets``
  (uuid5 of the original record's topic/partition/offset): the facts;
- ``positions``: per (topic, partition), the highest offset and event time taken and when
  (freshness), written by the consumer of that partition.

A read streams the facts person by person (each collection sorted by pseudonym, merged), and
the indicators' cube keeps counts, not facts (indicators.py): the joins are done in Python,
within a person, and a read's memory does not grow with the store. The collections hold facts
only, without personal data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReplaceOne, UpdateOne

from services.reporting.indicators import FACT_KINDS, PERSON_FACTS, Cube, Facts
from shared.mongo import bulk_write_chunked, insert_all

BY_PERSON = [("pseudonyme", ASCENDING), ("_id", ASCENDING)]
READ_BATCH = 1000


class ReportingStore:
    def __init__(self, client: AsyncMongoClient[Any], database: str) -> None:
        self.db = client[database]
        self.positions = self.db["positions"]

    async def write(self, collection: str, docs: list[dict[str, Any]],
                    fields: list[tuple[str, dict[str, Any]]]) -> None:
        """A batch of facts, in offset order: whole documents by ``_id`` (``docs``), then fields
        set on a fact (``fields``: ``(_id, fields)``). A redelivered batch writes the same values
        again.

        Almost every fact of a batch is new: they go in one ``insert_many`` (with, for
        ``fields``, the first fields of each fact), and only the facts already stored, or seen
        again in the batch, are replaced or updated, in order. An upsert per fact cost fifteen
        times an insert on FerretDB (docs/performance.md)."""
        assert collection in FACT_KINDS
        assert all("." not in k and not k.startswith("$") for _, f in fields for k in f)
        coll = self.db[collection]
        there = await insert_all(coll, docs)
        if there:
            replaces = [ReplaceOne({"_id": docs[k]["_id"]}, docs[k], upsert=True)
                        for k in sorted(there)]
            await bulk_write_chunked(coll, replaces, ordered=True)
        firsts: dict[str, int] = {}
        for k, (_id, _) in enumerate(fields):
            firsts.setdefault(_id, k)
        order = list(firsts.values())  # each fact's first fields, in offset order
        stored = await insert_all(coll, [{"_id": fields[k][0], **fields[k][1]} for k in order])
        inserted = {k for j, k in enumerate(order) if j not in stored}
        updates = [UpdateOne({"_id": _id}, {"$set": f}, upsert=True)
                   for k, (_id, f) in enumerate(fields) if k not in inserted]
        if updates:
            await bulk_write_chunked(coll, updates, ordered=True)

    async def seen_many(
        self, topic: str, positions: dict[int, tuple[int, datetime | None]], now: datetime
    ) -> None:
        """Per partition of a batch, its highest offset and event time taken, and when."""
        ops = []
        for partition, (offset, event_time) in sorted(positions.items()):
            update: dict[str, Any] = {
                "$max": {"offset": offset},
                "$set": {"topic": topic, "partition": partition, "traite_le": now},
            }
            if event_time is not None:
                update["$max"]["dernier_evenement"] = event_time
            ops.append(UpdateOne({"_id": f"{topic}:{partition}"}, update, upsert=True))
        if ops:
            await bulk_write_chunked(self.positions, ops, ordered=False)

    async def load_positions(self) -> list[dict[str, Any]]:
        return [d async for d in self.positions.find({})]

    async def ensure_indexes(self) -> None:
        """The order a read streams each person's facts in (MongoDB walks the index; FerretDB
        1.24 does not push a sort down to PostgreSQL and sorts in its own memory)."""
        for name in PERSON_FACTS:
            await self.db[name].create_index(BY_PERSON)

    async def persons(self, batch_size: int = READ_BATCH) -> AsyncIterator[Facts]:
        """Every person's facts, one person at a time: the four collections read in pseudonym
        order and merged. Holds one person's facts and one batch per collection."""
        cursors = {name: self.db[name].find({}, sort=BY_PERSON, batch_size=batch_size)
                   for name in PERSON_FACTS}
        heads: dict[str, dict[str, Any] | None] = {}
        try:
            for name, cursor in cursors.items():
                heads[name] = await anext(cursor, None)
            while True:
                present = [_person(h) for h in heads.values() if h is not None]
                if not present:
                    return
                who = min(present)
                facts: dict[str, list[dict[str, Any]]] = {}
                for name, cursor in cursors.items():
                    got = facts[name] = []
                    head = heads[name]
                    while head is not None and _person(head) == who:
                        got.append(head)
                        head = await anext(cursor, None)
                    if head is not None and _person(head) < who:
                        raise RuntimeError(f"{name} is not in pseudonym order: cannot merge")
                    heads[name] = head
                yield Facts(**facts)
        finally:
            for cursor in cursors.values():
                await cursor.close()

    async def fill(self, cube: Cube, batch_size: int = READ_BATCH) -> Cube:
        """Every fact into ``cube``, person by person, then the rejects."""
        wanted = set(cube.cells)
        async for facts in self.persons(batch_size):
            cube.add_person(facts)
        if wanted & {"volumes", "rejets"}:
            async for rejet in self.db["rejets"].find({}, batch_size=batch_size):
                cube.add_rejet(rejet)
        return cube

    async def count(self, collection: str) -> int:
        return int(await self.db[collection].count_documents({}))


def _person(fact: dict[str, Any]) -> str:
    return fact.get("pseudonyme") or ""

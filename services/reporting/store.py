"""MongoDB adapter of reporting (its own database; no other service reads it).

Collections, each with a single writer (the consumer of one topic), every write by ``_id``:
- ``demandes`` (``_id`` = demande_id), ``decisions`` (decision_id), ``actions`` (action_id;
  planned and cancelled fields set separately), ``resultats`` (resultat_id), ``rejets``
  (uuid5 of the original record's topic/partition/offset): the facts;
- ``positions``: per (topic, partition), the highest offset and event time taken and when
  (freshness), written by the consumer of that partition.

Reads load whole fact collections (the joins are done in Python, indicators.py); the
collections hold facts only, without personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient, ReplaceOne, UpdateOne

from services.reporting.indicators import Facts
from shared.mongo import bulk_write_chunked, insert_all

FACT_COLLECTIONS = ("demandes", "decisions", "actions", "resultats", "rejets")


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
        assert collection in FACT_COLLECTIONS
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

    async def load_facts(self) -> Facts:
        loaded = {}
        for name in FACT_COLLECTIONS:
            loaded[name] = [d async for d in self.db[name].find({})]
        return Facts(**loaded)

    async def count(self, collection: str) -> int:
        return int(await self.db[collection].count_documents({}))

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

FACT_COLLECTIONS = ("demandes", "decisions", "actions", "resultats", "rejets")


class ReportingStore:
    def __init__(self, client: AsyncMongoClient[Any], database: str) -> None:
        self.db = client[database]
        self.positions = self.db["positions"]

    async def write(self, collection: str, docs: list[dict[str, Any]],
                    fields: list[tuple[str, dict[str, Any]]]) -> None:
        """A batch of facts in one round trip, in offset order: whole documents by ``_id``
        (``docs``) and fields set on a fact (``fields``: ``(_id, fields)``). A redelivered
        batch writes the same values again."""
        assert collection in FACT_COLLECTIONS
        ops: list[Any] = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs]
        ops += [UpdateOne({"_id": _id}, {"$set": f}, upsert=True) for _id, f in fields]
        if ops:
            await self.db[collection].bulk_write(ops, ordered=True)

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
            await self.positions.bulk_write(ops, ordered=False)

    async def load_positions(self) -> list[dict[str, Any]]:
        return [d async for d in self.positions.find({})]

    async def load_facts(self) -> Facts:
        loaded = {}
        for name in FACT_COLLECTIONS:
            loaded[name] = [d async for d in self.db[name].find({})]
        return Facts(**loaded)

    async def count(self, collection: str) -> int:
        return int(await self.db[collection].count_documents({}))

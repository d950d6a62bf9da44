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

from pymongo import AsyncMongoClient

from services.reporting.indicators import Facts

FACT_COLLECTIONS = ("demandes", "decisions", "actions", "resultats", "rejets")


class ReportingStore:
    def __init__(self, client: AsyncMongoClient[Any], database: str) -> None:
        self.db = client[database]
        self.positions = self.db["positions"]

    async def put(self, collection: str, doc: dict[str, Any]) -> None:
        """Write a fact by its ``_id`` (a redelivery writes the same document again)."""
        assert collection in FACT_COLLECTIONS
        await self.db[collection].replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def set_fields(self, collection: str, _id: str, fields: dict[str, Any]) -> None:
        await self.db[collection].update_one({"_id": _id}, {"$set": fields}, upsert=True)

    async def seen(
        self, topic: str, partition: int, offset: int, event_time: datetime | None, now: datetime
    ) -> None:
        update: dict[str, Any] = {
            "$max": {"offset": offset},
            "$set": {"topic": topic, "partition": partition, "traite_le": now},
        }
        if event_time is not None:
            update["$max"]["dernier_evenement"] = event_time
        await self.positions.update_one({"_id": f"{topic}:{partition}"}, update, upsert=True)

    async def load_positions(self) -> list[dict[str, Any]]:
        return [d async for d in self.positions.find({})]

    async def load_facts(self) -> Facts:
        loaded = {}
        for name in FACT_COLLECTIONS:
            loaded[name] = [d async for d in self.db[name].find({})]
        return Facts(**loaded)

    async def count(self, collection: str) -> int:
        return int(await self.db[collection].count_documents({}))

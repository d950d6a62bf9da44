"""MongoDB adapter of notification (its own database; no other service reads it).

Collections (FerretDB subset: reads and writes by ``_id`` on the hot paths):

- ``actions``: one per planned action (``_id`` = action_id): the action as received, its
  partition, its status (``planifiee`` → ``terminee`` | ``annulee``), its current timer, its
  outcome and a history of what happened to it (deferrals, cancellation) for the question
  "why was this not sent?";
- ``minuteries``: the *pending* timers only (fired timers are deleted), ``_id`` =
  ``"<partition:03d>|<due UTC>|<action_id>"``, with their ``partition`` and due time ``du``: the
  scheduler asks for the due timers of all its partitions at once, oldest first (an index on
  ``(partition, du)`` on MongoDB; a scan on FerretDB, hence one query per tick, not one per
  partition, docs/performance.md);
- ``envois``: the attempt of each action (``_id`` = action_id), written *before* any effect:
  channel, state (``en-cours`` → ``fait`` | ``echec``), attempts; insert-only, so two firings
  of the same action (redelivery, two instances during a rebalance) start one effect;
- ``coordonnees``: the latest contact data per pseudonym (``personnes.coordonnees``);
- ``contacts``: per pseudonym, when the person was contacted (the cap across parcours);
- ``taches``: the agents' phone tasks (``_id`` = uuid5 of the action);
- ``prises`` and ``issues_appel``: who took a task, and the outcome of its call (``_id`` = the
  task's): insert-only, the first insert wins. An update filtered on the task's status is not
  atomic on FerretDB (two agents were both told the task was theirs); a unique ``_id`` is;
- ``courriers``: letters produced (``_id`` = action_id), with their day (print batches).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, DeleteOne, ReplaceOne, UpdateOne
from pymongo.errors import DuplicateKeyError

from services.notification.rules import due_of
from shared.mongo import bulk_write_chunked, insert_all


class NotificationStore:
    def __init__(self, client: AsyncMongoClient[Any], database: str) -> None:
        self.db = client[database]
        self.actions = self.db["actions"]
        self.minuteries = self.db["minuteries"]
        self.envois = self.db["envois"]
        self.coordonnees = self.db["coordonnees"]
        self.contacts = self.db["contacts"]
        self.taches = self.db["taches"]
        self.courriers = self.db["courriers"]
        self.prises = self.db["prises"]
        self.issues_appel = self.db["issues_appel"]

    async def setup(self) -> None:
        # Used by the agents' queue listings (MongoDB uses them; FerretDB ignores them for reads).
        await self.taches.create_index([("site", ASCENDING), ("echeance", ASCENDING)])
        await self.courriers.create_index([("jour", ASCENDING), ("_id", ASCENDING)])
        await self.minuteries.create_index([("partition", ASCENDING), ("du", ASCENDING)])

    async def due_times_of_older_timers(self) -> datetime | None:
        """Timers written before they carried ``du`` get it from their ``_id`` (the query finds
        none afterwards); returns the earliest given. A scan of the pending timers on FerretDB:
        the service runs it in the background after its start, not before it is ready."""
        earliest: datetime | None = None
        async for d in self.minuteries.find({"du": {"$exists": False}}, {"_id": 1}):
            du = due_of(d["_id"])
            await self.minuteries.update_one({"_id": d["_id"]}, {"$set": {"du": du}})
            earliest = du if earliest is None else min(earliest, du)
        return earliest

    # ---- actions and timers
    async def insert_actions(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert the actions that are new, in one insert; return what is stored for each of
        ``docs``, in order (the first one wins). The actions already there (a redelivery) are
        read by ``_id``, one by one: an ``$in`` is a scan of the collection on FerretDB
        (docs/adr/0007)."""
        there = await insert_all(self.actions, docs)
        if not there:
            return docs
        ids = sorted({docs[k]["_id"] for k in there})
        found = await asyncio.gather(*(self.actions.find_one({"_id": i}) for i in ids))
        existing = {i: d for i, d in zip(ids, found, strict=True) if d is not None}
        return [existing.get(d["_id"], d) if k in there else d for k, d in enumerate(docs)]

    async def add_timers(self, docs: list[dict[str, Any]]) -> None:
        await insert_all(self.minuteries, docs)

    async def action(self, action_id: str) -> dict[str, Any] | None:
        return await self.actions.find_one({"_id": action_id})

    async def update_actions(self, updates: list[tuple[str, dict[str, Any],
                                                      dict[str, Any] | None]]) -> None:
        """Update actions: ``(action_id, fields set, an entry pushed on their history or
        None)``, in commands of a few statements (shared.mongo.bulk_write_chunked)."""
        ops = []
        for action_id, set_, history in updates:
            update: dict[str, Any] = {"$set": set_}
            if history is not None:
                update["$push"] = {"historique": history}
            ops.append(UpdateOne({"_id": action_id}, update))
        await bulk_write_chunked(self.actions, ops, ordered=False)

    async def delete_timers(self, timer_ids: list[str]) -> None:
        """Delete timers by ``_id``, in one command (a delete by ``_id`` each: an ``$in`` is a
        scan of the pending timers on FerretDB)."""
        if timer_ids:
            await self.minuteries.bulk_write([DeleteOne({"_id": t}) for t in timer_ids],
                                             ordered=False)

    async def earliest_timer(self, partitions: frozenset[int]) -> datetime | None:
        """When the first pending timer of ``partitions`` is due (None: none pending)."""
        # a timer of an earlier version gets its ``du`` in the background after the start
        doc = await self.minuteries.find_one({"partition": {"$in": sorted(partitions)},
                                              "du": {"$exists": True}},
                                             {"du": 1}, sort=[("du", ASCENDING)])
        return None if doc is None else doc["du"]

    async def due_timers(self, partitions: frozenset[int], now: datetime,
                         limit: int) -> list[dict[str, Any]]:
        """The timers of ``partitions`` due at ``now``, the oldest first, at most ``limit``."""
        cursor = self.minuteries.find({"partition": {"$in": sorted(partitions)},
                                       "du": {"$lte": now}})
        cursor = cursor.sort("du", ASCENDING).limit(limit)
        return [d async for d in cursor]

    async def pending_count(self) -> int:
        return int(await self.minuteries.count_documents({}))

    # ---- attempts (exactly-once effects)
    async def start_attempts(self, docs: list[dict[str, Any]]) -> list[tuple[bool, dict[str, Any]]]:
        """Record the attempts before any effect, in one insert; for each of ``docs``, in
        order: ``(True, doc)`` if inserted, ``(False, the stored one)`` if one was there."""
        there = sorted(await insert_all(self.envois, docs))
        found = await asyncio.gather(*(self.envois.find_one({"_id": docs[k]["_id"]})
                                       for k in there))
        existing = dict(zip(there, found, strict=True))
        return [(False, existing[k] or d) if k in existing else (True, d)
                for k, d in enumerate(docs)]

    async def attempt(self, action_id: str) -> dict[str, Any] | None:
        return await self.envois.find_one({"_id": action_id})

    async def update_attempts(self, updates: list[tuple[str, dict[str, Any], int]]) -> None:
        """Update attempts: ``(action_id, set, inc of tentatives)`` each."""
        ops = []
        for action_id, set_, inc in updates:
            update: dict[str, Any] = {"$set": set_}
            if inc:
                update["$inc"] = {"tentatives": inc}
            ops.append(UpdateOne({"_id": action_id}, update))
        await bulk_write_chunked(self.envois, ops, ordered=False)

    # ---- contact data
    async def coordonnees_of(self, pseudonyme: str) -> dict[str, Any] | None:
        return await self.coordonnees.find_one({"_id": pseudonyme})

    async def save_coordonnees_many(self, latest: dict[str, tuple[dict[str, Any], datetime]]
                                    ) -> int:
        """Keep each person's latest data by ``maj_le`` (a redelivered older record changes
        nothing): pseudonym → the batch's latest data and its ``maj_le``. One insert for the
        persons new here (most of a monthly batch), one conditional replace each for the others
        (no read: an ``$in`` is a scan of the collection on FerretDB, docs/adr/0007). Returns
        how many were written."""
        docs = [{"_id": p, "data": data, "maj_le": maj_le} for p, (data, maj_le) in latest.items()]
        there = await insert_all(self.coordonnees, docs)
        if not there:
            return len(docs)
        replaced = await bulk_write_chunked(
            self.coordonnees,
            [ReplaceOne({"_id": docs[k]["_id"], "maj_le": {"$lt": docs[k]["maj_le"]}}, docs[k])
             for k in sorted(there)], ordered=False)
        return len(docs) - len(there) + replaced

    async def recent_contacts(self, pseudonyme: str) -> list[dict[str, Any]]:
        doc = await self.contacts.find_one({"_id": pseudonyme})
        return list((doc or {}).get("contacts", []))

    async def add_contacts(self, contacts: list[tuple[str, str, datetime,
                                                      list[dict[str, Any]] | None]]) -> None:
        """Record that persons were contacted, once each: ``(pseudonyme, action_id, when,
        known)``, where ``known`` is the person's contacts as the firing read them (``[]``:
        none stored; ``None``: not read). The persons contacted for the first time get their
        document by one insert, not by upsert; the others an entry each (none if it is
        there), in commands of a few statements."""
        first = [c for c in contacts if c[3] is not None and not c[3]]
        there = await insert_all(self.contacts, [{"_id": p, "contacts": [{"action_id": a, "le": w}]}
                                                 for p, a, w, _ in first])
        again = [(p, a, w, None) for k, (p, a, w, _) in enumerate(first) if k in there]
        ops = []
        for p, a, w, known in [c for c in contacts if c[3] is None or c[3]] + again:
            if known is None:
                doc = await self.contacts.find_one({"_id": p})
                known = list((doc or {}).get("contacts", []))
            if not any(c.get("action_id") == a for c in known):
                ops.append(UpdateOne({"_id": p}, {"$push": {"contacts": {"action_id": a, "le": w}}},
                                     upsert=True))
        await bulk_write_chunked(self.contacts, ops, ordered=False)

    # ---- letters
    async def save_letters(self, docs: list[dict[str, Any]]) -> None:
        """Insert the letters' records; replace those of letters made again (a firing resumed
        after a crash): an upsert costs several inserts on FerretDB."""
        for k in sorted(await insert_all(self.courriers, docs)):
            await self.courriers.replace_one({"_id": docs[k]["_id"]}, docs[k], upsert=True)

    def letters_of_day(self, day: str) -> AsyncIterator[dict[str, Any]]:
        """The records of the letters of ``day``, in ``_id`` order, as the cursor brings them
        (a monthly batch's day holds hundreds of thousands). MongoDB walks the index on
        ``(jour, _id)``; FerretDB 1.24 sorts in its own memory (docs/performance.md)."""
        return aiter(self.courriers.find({"jour": day}).sort("_id", ASCENDING).batch_size(1000))

    # ---- agents' tasks
    async def insert_tasks(self, docs: list[dict[str, Any]]) -> None:
        """Insert the tasks that are new, in one insert (one already there is kept)."""
        await insert_all(self.taches, docs)

    async def task(self, task_id: str) -> dict[str, Any] | None:
        return await self.taches.find_one({"_id": task_id})

    async def tasks(self, flt: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        cursor = self.taches.find(flt).sort([("echeance", 1), ("_id", 1)]).limit(limit)
        return [d async for d in cursor]

    async def take_task(self, task_id: str, agent: str, now: datetime) -> dict[str, Any]:
        """Record ``agent`` as the one working the task unless another already is; return the
        claim that holds (``agent``, ``le``): the first one inserted, whoever asks."""
        return await _first_insert(self.prises, {"_id": task_id, "agent": agent, "le": now})

    async def record_issue(self, task_id: str, agent: str, issue: str,
                           now: datetime) -> dict[str, Any]:
        """Record the outcome of the task's call unless one is recorded; return the one that
        holds (``issue``, ``agent``, ``le``)."""
        return await _first_insert(self.issues_appel,
                                   {"_id": task_id, "agent": agent, "issue": issue, "le": now})

    async def forget_tasks(self, task_ids: list[str]) -> int:
        """Delete tasks with their claim and recorded outcome; how many tasks were deleted."""
        if not task_ids:
            return 0
        for col in (self.prises, self.issues_appel):
            await col.delete_many({"_id": {"$in": task_ids}})
        return (await self.taches.delete_many({"_id": {"$in": task_ids}})).deleted_count

    async def update_task(self, task_id: str, set_: dict[str, Any]) -> None:
        await self.taches.update_one({"_id": task_id}, {"$set": set_})


async def _first_insert(collection: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """Insert ``doc`` unless its ``_id`` exists; return the stored document either way."""
    while True:
        try:
            await collection.insert_one(doc)
            return doc
        except DuplicateKeyError:
            stored = await collection.find_one({"_id": doc["_id"]})
            if stored is not None:
                return stored
            # deleted in between (retention): insert again

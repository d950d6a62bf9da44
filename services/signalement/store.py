"""MongoDB adapter of signalement (its own database; no other service reads it).

Collections, all written by ``_id`` (the FerretDB subset, ARCHITECTURE.md):
- ``evenements``: one document per CloudEvent taken (``_id`` = uuid5 of source and id), with
  the demand it made and whether that demand was published (deduplication, crash recovery);
- ``demandes``: one per demand (``_id`` = demande_id), with every source that reported it;
- ``personnes``: per pseudonym, only the flags that must survive later events (deceased,
  at risk); no name, no address;
- ``signalements``: partners' referrals (``_id`` = reference), status history, idempotency;
- ``idempotence``: (partner, Idempotency-Key) → reference;
- ``partenaires``: partners and the hash of their API key (``_id`` = key id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.ids import derive_id

DUPLICATE_KEY = 11000


def event_key(source: str, id_: str) -> str:
    return derive_id("cloudevent", source, id_)


@dataclass(frozen=True)
class PersonFlags:
    decede: bool = False
    violences: bool = False


class SignalementStore:
    def __init__(self, client: AsyncMongoClient[Any], database: str) -> None:
        self.db = client[database]
        self.evenements = self.db["evenements"]
        self.demandes = self.db["demandes"]
        self.personnes = self.db["personnes"]
        self.signalements = self.db["signalements"]
        self.idempotence = self.db["idempotence"]
        self.partenaires = self.db["partenaires"]

    async def ping(self) -> bool:
        await self.db.command("ping")
        return True

    # ---- life events
    async def claim_events(self, docs: list[dict[str, Any]]) -> set[str]:
        """Insert the events not seen before; return the ``_id`` of those already there."""
        if not docs:
            return set()
        try:
            await self.evenements.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if others:
                raise
            return {docs[e["index"]]["_id"] for e in errors}
        return set()

    async def event(self, key: str) -> dict[str, Any] | None:
        return await self.evenements.find_one({"_id": key})

    async def mark_published(self, keys: list[str]) -> None:
        if keys:
            await self.evenements.bulk_write(
                [UpdateOne({"_id": k}, {"$set": {"publie": True}}) for k in keys], ordered=False
            )

    async def add_demands(self, docs: list[dict[str, Any]]) -> set[str]:
        """Insert new demands; return the ids that already existed (same event, other source)."""
        if not docs:
            return set()
        try:
            await self.demandes.bulk_write([InsertOne(d) for d in docs], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return {docs[e["index"]]["_id"] for e in errors}
        return set()

    async def add_source(self, demande_id: str, source: dict[str, str]) -> None:
        await self.demandes.update_one({"_id": demande_id}, {"$addToSet": {"sources": source}})

    async def demand(self, demande_id: str) -> dict[str, Any] | None:
        return await self.demandes.find_one({"_id": demande_id})

    async def person_flags(self, pseudonyme: str) -> PersonFlags:
        doc = await self.personnes.find_one({"_id": pseudonyme})
        if doc is None:
            return PersonFlags()
        return PersonFlags(decede=bool(doc.get("decede")), violences=bool(doc.get("violences")))

    async def set_person_flags(self, pseudonyme: str, flags: PersonFlags) -> None:
        await self.personnes.update_one(
            {"_id": pseudonyme},
            {"$set": {"decede": flags.decede, "violences": flags.violences}},
            upsert=True,
        )

    # ---- partners' referrals
    async def insert_referral(self, doc: dict[str, Any]) -> bool:
        try:
            await self.signalements.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def referral(self, reference: str) -> dict[str, Any] | None:
        return await self.signalements.find_one({"_id": reference})

    async def mark_referral_published(self, reference: str) -> None:
        await self.signalements.update_one({"_id": reference}, {"$set": {"publie": True}})

    async def referrals_of(self, partenaire: str, skip: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        total = await self.signalements.count_documents({"partenaire": partenaire})
        cursor = (self.signalements.find({"partenaire": partenaire})
                  .sort("recu_le", -1).skip(skip).limit(limit))
        return total, [d async for d in cursor]

    async def append_status(self, reference: str, entry: dict[str, Any]) -> bool:
        """Append a status entry once (entries carry the id of the event that caused them)."""
        doc = await self.signalements.find_one({"_id": reference})
        if doc is None:
            return False
        if any(h.get("evenement") == entry["evenement"] for h in doc.get("historique", [])):
            return True
        await self.signalements.update_one(
            {"_id": reference},
            {"$push": {"historique": entry}, "$set": {"statut": entry["statut"],
                                                       "maj_le": entry["le"]}},
        )
        return True

    async def remember_idempotency_key(self, partenaire: str, key: str, reference: str,
                                       body_hash: str, now: datetime) -> dict[str, Any]:
        """Record the key; if it exists, return what was recorded first."""
        _id = derive_id("idempotence", partenaire, key)
        doc = {"_id": _id, "reference": reference, "body_hash": body_hash, "le": now}
        try:
            await self.idempotence.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.idempotence.find_one({"_id": _id})
            return existing or doc
        return doc

    # ---- partners
    async def partner(self, key_id: str) -> dict[str, Any] | None:
        return await self.partenaires.find_one({"_id": key_id})

    async def save_partner(self, doc: dict[str, Any]) -> None:
        await self.partenaires.replace_one({"_id": doc["_id"]}, doc, upsert=True)

"""MongoDB adapter of signalement (its own database; no other service reads it).

Collections, all written by ``_id`` (the FerretDB subset, ARCHITECTURE.md). The intake's hot
path only *inserts* and reads by ``_id``: on FerretDB (SQLite) every other write by ``_id``
scans its whole collection (docs/adr/0007-ferretdb-write-cost.md), so nothing the intake
touches per event is ever updated:
- ``recus``: one claim per CloudEvent taken (``_id`` = uuid5 of source and id), inserted in
  one batch before any effect: the duplicate-key errors of that insert are the cheap
  "seen before?" test of a whole batch;
- ``evenements``: one document per CloudEvent whose effects were published and acknowledged
  (``_id`` = the same uuid5, ``publie`` = true, the demand it made), inserted after the
  broker's acknowledgement (deduplication, crash recovery, corrections);
- ``demandes``: one per demand (``_id`` = demande_id), with every source that reported it;
- ``personnes``: per pseudonym, only the flags that must survive later events (deceased,
  at risk); no name, no address. Append-only versions: ``_id`` = pseudonym, then
  ``pseudonym#2``, ``pseudonym#3``...; the latest is the current one;
- ``vues``: every pseudonym ever taken (``_id`` only). A read by ``_id`` that finds nothing
  scans the whole collection on FerretDB; inserting the batch's pseudonyms here tells, by
  the duplicate-key errors, which persons may have flags at all: most have none and cost
  no read;
- ``signalements``: partners' referrals (``_id`` = reference), status history, idempotency;
- ``idempotence``: (partner, Idempotency-Key) → reference;
- ``partenaires``: partners and the hash of their API key (``_id`` = key id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from shared.ids import derive_id
from shared.mongo import insert_all, insert_new


def event_key(source: str, id_: str) -> str:
    return derive_id("cloudevent", source, id_)


@dataclass(frozen=True)
class PersonFlags:
    decede: bool = False
    violences: bool = False


def _flags_id(pseudonyme: str, version: int) -> str:
    return pseudonyme if version <= 1 else f"{pseudonyme}#{version}"


class SignalementStore:
    def __init__(self, client: AsyncMongoClient[Any], database: str) -> None:
        self.db = client[database]
        self.recus = self.db["recus"]
        self.evenements = self.db["evenements"]
        self.demandes = self.db["demandes"]
        self.personnes = self.db["personnes"]
        self.vues = self.db["vues"]
        self.signalements = self.db["signalements"]
        self.idempotence = self.db["idempotence"]
        self.partenaires = self.db["partenaires"]

    async def ping(self) -> bool:
        await self.db.command("ping")
        return True

    # ---- life events
    async def claim_events(self, docs: list[dict[str, Any]]) -> set[str]:
        """Insert the claims not seen before; return the ``_id`` of those already there."""
        return await insert_new(self.recus, docs)

    async def event(self, key: str) -> dict[str, Any] | None:
        """The event if its effects were published (``publie`` true), else None."""
        return await self.evenements.find_one({"_id": key})

    async def mark_published(self, docs: list[dict[str, Any]]) -> None:
        """Record events whose effects the broker acknowledged (insert only; a redelivery's
        second marker is a duplicate key, ignored)."""
        await insert_new(self.evenements, [{**d, "publie": True} for d in docs])

    async def add_demands(self, docs: list[dict[str, Any]]) -> set[int]:
        """Insert demands in one batch; return the indexes of ``docs`` whose ``_id`` already
        existed (same life event, other source; or inserted earlier in the same batch)."""
        return await insert_all(self.demandes, docs)

    async def add_source(self, demande_id: str, source: dict[str, str]) -> None:
        # Rare (a second source of one life event): the one update of the intake.
        await self.demandes.update_one({"_id": demande_id}, {"$addToSet": {"sources": source}})

    async def demand(self, demande_id: str) -> dict[str, Any] | None:
        return await self.demandes.find_one({"_id": demande_id})

    async def persons_seen(self, pseudonymes: list[str]) -> set[str]:
        """Record these persons as seen; return those seen before (who may have flags)."""
        return await insert_new(self.vues, [{"_id": p} for p in pseudonymes])

    async def person_flags(self, pseudonyme: str) -> tuple[PersonFlags, int]:
        """The person's current flags and their version (0: never flagged)."""
        doc = await self.personnes.find_one({"_id": pseudonyme})
        if doc is None:
            return PersonFlags(), 0
        version = 1
        while True:
            nxt = await self.personnes.find_one({"_id": _flags_id(pseudonyme, version + 1)})
            if nxt is None:
                break
            doc, version = nxt, version + 1
        flags = PersonFlags(decede=bool(doc.get("decede")), violences=bool(doc.get("violences")))
        return flags, version

    async def set_persons_flags(self, changes: list[tuple[str, PersonFlags, int]]) -> None:
        """:meth:`set_person_flags` for several persons: one insert of their next versions; a
        person another writer appended to meanwhile takes the version after, alone."""
        docs = [{"_id": _flags_id(p, after + 1), "decede": f.decede, "violences": f.violences}
                for p, f, after in changes]
        for k in sorted(await insert_all(self.personnes, docs)):
            pseudonyme, flags, after = changes[k]
            await self.set_person_flags(pseudonyme, flags, after + 1)

    async def set_person_flags(self, pseudonyme: str, flags: PersonFlags, after: int) -> int:
        """Append the next version of the person's flags (insert only); return its version.

        Two writers of one person (partitions of evenements-vie are keyed by the upstream
        system, not by person) both append: the later version wins, as an upsert would.
        """
        version = after + 1
        while True:
            try:
                await self.personnes.insert_one({"_id": _flags_id(pseudonyme, version),
                                                 "decede": flags.decede,
                                                 "violences": flags.violences})
                return version
            except DuplicateKeyError:
                version += 1

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

    async def referrals_of(
        self, partenaire: str, skip: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
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

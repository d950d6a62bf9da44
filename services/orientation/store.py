"""MongoDB adapter of orientation (its own database; no other service reads it).

One collection, ``personnes``: one document per person, ``_id`` = pseudonym, read and written
only by ``_id`` (the FerretDB subset, ARCHITECTURE.md)::

    {_id, version, contexte: PersonContext as one JSON text (cases, their actions, the
     journal of the causes already processed), a_publier: [{cause, evenement, correlation},
     ...], maj_le}

- ``version`` is checked on every write (optimistic concurrency). Rule 3 (single writer per
  person: the consumer that owns the person's partition) makes a conflict exceptional: it only
  happens while partitions move between instances, and the caller then decides again from the
  fresh document.
- ``a_publier`` is the outbox: the causes (demand or outcome ids) whose effects are stored but
  whose messages the broker has not acknowledged yet, with the id and correlation id of the
  CloudEvent that carried them. Their messages are rebuilt from the journal
  (``rules.rejouer``), with the same ids, until they are acknowledged.
- The context is never queried inside (reads and writes are by ``_id``, the retention job
  reads it whole), so it is stored as text: a JSON object inside a string is one value for
  the database, where a nested document is hundreds (docs/adr/0005, addendum 2). The
  journal keeps the order of processing (JSON objects keep their order here); cause ids are
  never field names of the database document.

Acknowledgements are not written into the person's document: on FerretDB (SQLite) every
update by ``_id`` scans the whole collection (docs/adr/0007-ferretdb-write-cost.md), and
this one happened for every input. ``publie`` *inserts* a marker into ``publies``
(``_id`` = person, version, cause); ``charger`` drops from the outbox the causes acknowledged
at the document's version (one read by ``_id`` per cause still in it, unless this instance
stored that marker lately: it remembers the last 50,000).

A batch's persons presumed new (their first input is a demand) are stored by one
``insert_many`` of their first documents, whose duplicate-key errors tell who was already
there; a new person costs two inserts (the document, the acknowledgement) and no read. (The
former ``connus`` collection answered "new?" by an insert of its own, when a read that missed
scanned the table on FerretDB's SQLite; the local database is PostgreSQL now, ADR 0012, and
retention only empties what earlier versions wrote there.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from services.orientation.rules import PersonContext, Traitement
from shared.ids import derive_id
from shared.mongo import insert_new


class ConflitEcriture(Exception):
    """Another writer changed the person's document since it was read."""


@dataclass(frozen=True)
class EnAttente:
    """A cause whose messages are stored but not yet acknowledged by the broker."""

    cause: str
    evenement: str | None = None
    correlation: str | None = None


@dataclass(frozen=True)
class EtatPersonne:
    """A person's stored context, the version it was read at, and the outbox."""

    contexte: PersonContext
    version: int = 0
    a_publier: tuple[EnAttente, ...] = field(default=())

    def en_attente(self, cause: str) -> EnAttente | None:
        return next((e for e in self.a_publier if e.cause == cause), None)

    @property
    def nouveau(self) -> bool:
        return self.version == 0


def vers_document(contexte: PersonContext, version: int, a_publier: tuple[EnAttente, ...],
                  now: datetime) -> dict[str, Any]:
    """The person's document. The context is one JSON text: it is only ever read and written
    whole, by ``_id``, and a nested document of a few hundred fields cost the local database
    (FerretDB) 3.5 times more to write and twice as much to read (docs/performance.md)."""
    return {"_id": contexte.pseudonyme, "version": version,
            "contexte": contexte.model_dump_json(), "a_publier": _outbox(a_publier),
            "maj_le": now}


def _outbox(a_publier: tuple[EnAttente, ...]) -> list[dict[str, str | None]]:
    return [{"cause": e.cause, "evenement": e.evenement, "correlation": e.correlation}
            for e in a_publier]


def depuis_document(doc: dict[str, Any]) -> EtatPersonne:
    return EtatPersonne(contexte=contexte_de(doc),
                        version=int(doc.get("version", 0)),
                        a_publier=tuple(EnAttente(**e) for e in doc.get("a_publier", ())))


def contexte_de(doc: dict[str, Any]) -> PersonContext:
    """The context of a stored document: a JSON text, or (documents written before it was
    one) a nested document whose journal is a list."""
    stored = doc["contexte"]
    if isinstance(stored, str):
        return PersonContext.model_validate_json(stored)
    raw = dict(stored)
    journal = [Traitement.model_validate(t) for t in raw.get("journal", [])]
    raw["journal"] = {t.cause: t for t in journal}
    return PersonContext.model_validate(raw)


class OrientationStore:
    def __init__(self, client: AsyncMongoClient[Any], database: str,
                 remembered: int = 50_000) -> None:
        self.db = client[database]
        self.personnes = self.db["personnes"]
        self.publies = self.db["publies"]
        self.connus = self.db["connus"]  # written by earlier versions; retention empties it
        # The acknowledgement markers this instance stored lately (insertion order, the oldest
        # forgotten first): a person's next input finds its outbox acknowledged without a read
        # per cause. A marker is never deleted, so one remembered is one stored.
        self._acquittes: dict[str, None] = {}
        self._retenus = remembered

    def _retenir(self, marques: list[str]) -> None:
        for marque in marques:
            self._acquittes[marque] = None
        for _ in range(len(self._acquittes) - self._retenus):
            del self._acquittes[next(iter(self._acquittes))]

    async def charger(self, pseudonyme: str) -> EtatPersonne:
        """The person's state; an empty context (version 0) for someone never seen."""
        doc = await self.personnes.find_one({"_id": pseudonyme})
        if doc is None:
            return EtatPersonne(contexte=PersonContext(pseudonyme=pseudonyme))
        return await self._sans_acquittes(depuis_document(doc))

    # ---- a batch's persons presumed new (services/orientation/service.py, traiter_lot)

    async def inserer_nouveaux(self, docs: list[dict[str, Any]]) -> set[str]:
        """Store the first documents of persons presumed new (``vers_document``, version 1) in
        one ``insert_many``; return the pseudonyms already stored (known persons, or another
        writer first): their documents are not written."""
        return await insert_new(self.personnes, docs)

    async def publies_nouveaux(self, causes: list[tuple[str, str]]) -> None:
        """The broker acknowledged these (pseudonym, cause) of version-1 documents."""
        marques = [_marque(p, 1, c) for p, c in causes]
        await insert_new(self.publies, [{"_id": m} for m in marques])
        self._retenir(marques)

    async def trouver(self, pseudonyme: str) -> EtatPersonne | None:
        doc = await self.personnes.find_one({"_id": pseudonyme})
        return None if doc is None else await self._sans_acquittes(depuis_document(doc))

    async def _sans_acquittes(self, etat: EtatPersonne) -> EtatPersonne:
        """The state without the outbox entries acknowledged at its version."""
        reste = []
        for attente in etat.a_publier:
            if not await self.acquitte(etat.contexte.pseudonyme, etat.version, attente.cause):
                reste.append(attente)
        if len(reste) == len(etat.a_publier):
            return etat
        return EtatPersonne(contexte=etat.contexte, version=etat.version, a_publier=tuple(reste))

    async def acquitte(self, pseudonyme: str, version: int, cause: str) -> bool:
        """Whether the broker acknowledged the messages of ``cause`` stored at ``version``."""
        marque = _marque(pseudonyme, version, cause)
        return marque in self._acquittes or await self.publies.find_one({"_id": marque}) is not None

    async def enregistrer(self, avant: EtatPersonne, contexte: PersonContext,
                          a_publier: tuple[EnAttente, ...], now: datetime) -> EtatPersonne:
        """Write the new context and outbox if the document is still at ``avant.version``."""
        version = avant.version + 1
        doc = vers_document(contexte, version, a_publier, now)
        if avant.nouveau:
            try:
                await self.personnes.insert_one(doc)
            except DuplicateKeyError:
                raise ConflitEcriture(contexte.pseudonyme) from None
        else:
            result = await self.personnes.replace_one(
                {"_id": contexte.pseudonyme, "version": avant.version}, doc)
            if result.matched_count != 1:
                raise ConflitEcriture(contexte.pseudonyme)
        return EtatPersonne(contexte=contexte, version=version, a_publier=a_publier)

    async def publie(self, etat: EtatPersonne, cause: str) -> EtatPersonne:
        """The broker acknowledged this cause's messages: take it out of the outbox.

        Checked against the version too: if another writer stored a newer document, it read
        this outbox first and published what it held itself.
        """
        reste = tuple(e for e in etat.a_publier if e.cause != cause)
        if reste != etat.a_publier:
            marque = _marque(etat.contexte.pseudonyme, etat.version, cause)
            try:
                await self.publies.insert_one({"_id": marque})
            except DuplicateKeyError:
                pass  # a redelivery acknowledged it already
            self._retenir([marque])
        return EtatPersonne(contexte=etat.contexte, version=etat.version, a_publier=reste)


def _marque(pseudonyme: str, version: int, cause: str) -> str:
    return derive_id("publie", pseudonyme, str(version), cause)


"""Audit trail: who read or changed which case, task or referral, when and why.

Append-only: one collection ``audit`` in the database of the service that holds the data;
entries are inserted, never updated or deleted (the purge of personal data leaves them: they
hold ids only, never a name, a NIR, an address, a phone number or a free text). A supervisor
queries them with ``GET /v1/audit`` on that service.

Entry: ``{_id, le, acteur, roles, site, action, objet, objet_id, motif, resultat}``; ``motif``
is a short code (``X-Motif`` header of the caller, or the outcome recorded on a task).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field
from pymongo import ASCENDING

from shared.auth import SUPERVISEUR, Principal, require
from shared.clock import Clock

COLLECTION = "audit"
MOTIF = re.compile(r"^[a-z0-9-]{1,40}$")
MotifHeader = Annotated[
    str | None,
    Header(alias="X-Motif", pattern=MOTIF.pattern,
           description="Why you read or change this (a short code such as appel-entrant, "
           "suivi, reclamation); recorded in the audit trail."),
]


class AuditLog:
    def __init__(self, db: Any, clock: Clock) -> None:
        self.col = db[COLLECTION]
        self.clock = clock

    async def setup(self) -> None:
        await self.col.create_index([("objet_id", ASCENDING)])
        await self.col.create_index([("acteur", ASCENDING)])

    async def record(self, acteur: str, action: str, objet: str, objet_id: str, *,
                     roles: tuple[str, ...] = (), site: str | None = None,
                     motif: str | None = None, resultat: str = "ok") -> None:
        await self.col.insert_one({
            "_id": uuid.uuid4().hex, "le": self.clock.now(), "acteur": acteur,
            "roles": sorted(roles), "site": site, "action": action, "objet": objet,
            "objet_id": objet_id, "motif": motif if motif and MOTIF.match(motif) else None,
            "resultat": resultat})

    async def by(self, who: Principal, action: str, objet: str, objet_id: str,
                 motif: str | None = None, resultat: str = "ok") -> None:
        await self.record(who.sub, action, objet, objet_id, roles=tuple(who.roles),
                          site=who.site, motif=motif, resultat=resultat)

    async def query(self, *, acteur: str | None = None, objet_id: str | None = None,
                    action: str | None = None, du: datetime | None = None,
                    au: datetime | None = None, limite: int = 100) -> list[dict[str, Any]]:
        flt: dict[str, Any] = {}
        for key, value in (("acteur", acteur), ("objet_id", objet_id), ("action", action)):
            if value is not None:
                flt[key] = {"$eq": str(value)}  # a literal, never an operator
        if du or au:
            flt["le"] = {k: v for k, v in (("$gte", du), ("$lte", au)) if v is not None}
        docs = await self.col.find(flt).sort("le", -1).limit(limite).to_list(limite)
        return docs


class Entree(BaseModel):
    id: str
    le: datetime
    acteur: str
    roles: list[str]
    site: str | None
    action: str = Field(..., examples=["lire-dossier", "prendre-tache", "issue-tache"])
    objet: str = Field(..., examples=["dossiers", "tache", "signalement"])
    objet_id: str
    motif: str | None
    resultat: str


Texte = Annotated[str | None, Query(max_length=200)]


def audit_router(get_log: Callable[[], AuditLog]) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["audit"])

    @r.get("/audit", response_model=list[Entree],
           summary="Audit trail: who read or changed what (supervisors)")
    async def audit(
        request: Request,
        who: Annotated[Principal, Depends(require(SUPERVISEUR))],
        acteur: Texte = None, objet_id: Texte = None, action: Texte = None,
        du: Annotated[datetime | None, Query()] = None,
        au: Annotated[datetime | None, Query()] = None,
        limite: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[Entree]:
        docs = await get_log().query(acteur=acteur, objet_id=objet_id, action=action, du=du,
                                     au=au, limite=limite)
        return [Entree(id=d["_id"], **{k: v for k, v in d.items() if k != "_id"}) for d in docs]

    return r

"""HTTP API of notification: the agents' phone-task queue, the story of an action ("why was
this not sent?"), the daily print batches.

Callers are authenticated by bearer tokens (shared/auth.py): an agent sees and works only
the tasks of their site (a task of another site is 404: its existence does not leak); a
supervisor sees the site's queue and the overdue list. Every read or change of a task is
written to the audit trail (shared/audit.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from services.notification import rules
from services.notification.service import (
    ISSUES_APPEL,
    Deps,
    TaskConflict,
    TaskNotFound,
    claim_task,
    rebuild_batch,
    record_outcome,
)
from shared.audit import AuditLog, MotifHeader
from shared.auth import AGENT, SITE_PATTERN, SUPERVISEUR, Principal, require
from shared.contracts import internes as i
from shared.contracts.base import SansNul

Statut = Literal["a-faire", "prise", "terminee"]
Issue = Literal["joint", "injoignable", "refus", "rendez-vous-pris", "soins-a-organiser",
                "faux-numero", "rappel-demande", "soins-realises", "inclusion-numerique",
                "droits-ouverts"]
assert set(ISSUES_APPEL) == set(Issue.__args__)  # type: ignore[attr-defined]
NO_TASK = {"erreur": "tache-inconnue", "message": "no such task"}
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class Contact(BaseModel):
    nom: str
    prenom: str
    telephone: str | None = Field(
        None, description="The number to call (the safe one for a person at risk).")
    lien: str | None = Field(None, description="For a call to the family: the relationship.")


class Tache(BaseModel):
    id: str
    action_id: str
    site: str
    statut: Statut
    echeance: datetime = Field(..., description="Deadline (48 business hours for a referral).")
    en_retard: bool
    parcours: str | None
    etape: str | None
    kind: str | None
    modele: str | None
    priorite: int = 0
    obligatoire: bool = False
    cree_le: datetime
    agent: str | None = None
    prise_le: datetime | None = None
    issue: str | None = None
    issue_le: datetime | None = None
    contact: Contact | None = Field(None, description="Who to call (personal data: agents only).")


class IssueAppel(SansNul):
    issue: Issue = Field(..., description="Outcome of the call.")
    commentaire: str | None = Field(None, max_length=2000,
                                    description="Free note for the agents (never published).")


class ActionStory(BaseModel):
    action_id: str
    statut: str
    resultat: str | None = None
    raison: str | None = None
    historique: list[dict[str, Any]]


Agent = Annotated[Principal, Depends(require(AGENT))]
AgentOuSuperviseur = Annotated[Principal, Depends(require(AGENT, SUPERVISEUR))]
Superviseur = Annotated[Principal, Depends(require(SUPERVISEUR))]
Site = Annotated[str | None, Query(pattern=SITE_PATTERN,
                                   description="The site (default: yours); only yours is allowed.")]


def own_site(who: Principal, site: str | None) -> str:
    """The caller's site; asking for another one is refused (403)."""
    if not who.site:
        raise HTTPException(403, {"erreur": "site-inconnu", "message": "your token names no site"})
    if site is not None and site != who.site:
        raise HTTPException(403, {"erreur": "autre-site",
                                  "message": "you may only see your own site's tasks"})
    return who.site


def router(get_deps: Callable[[], Deps], get_audit: Callable[[], AuditLog]) -> APIRouter:
    r = APIRouter(prefix="/v1")

    async def task_of_site(task_id: str, who: Principal, deps: Deps) -> dict[str, Any]:
        task = await deps.store.task(task_id[:200])
        if task is None or not who.site or task.get("site") != who.site:
            raise HTTPException(404, NO_TASK)
        return task

    async def view(task: dict[str, Any], deps: Deps, now: datetime) -> Tache:
        contact = None
        stored = await deps.store.coordonnees_of(task["pseudonyme"])
        if stored is not None:
            c = i.Coordonnees.model_validate(stored["data"])
            destinataire: Literal["personne", "proche"] = (
                "proche" if task.get("destinataire") == "proche" else "personne")
            probe = i.ActionPlanifiee(
                action_id=task["action_id"], pseudonyme=task["pseudonyme"], dossier_id="-",
                parcours="-", etape="-", kind="appel", canaux=["telephone"], due_le=now,
                modele="-", destinataire=destinataire)
            choice = rules.choose_channel(probe, c)
            if isinstance(choice, rules.Send):
                rc = choice.recipient
                lien = c.proche.lien if destinataire == "proche" and c.proche else None
                contact = Contact(nom=rc.nom, prenom=rc.prenom, telephone=rc.telephone, lien=lien)
        return Tache(id=task["_id"], action_id=task["action_id"], site=task["site"],
                     statut=task["statut"], echeance=task["echeance"],
                     en_retard=task["statut"] != "terminee" and task["echeance"] < now,
                     parcours=task.get("parcours"), etape=task.get("etape"), kind=task.get("kind"),
                     modele=task.get("modele"), priorite=task.get("priorite", 0),
                     obligatoire=task.get("obligatoire", False), cree_le=task["cree_le"],
                     agent=task.get("agent"), prise_le=task.get("prise_le"),
                     issue=task.get("issue"), issue_le=task.get("issue_le"), contact=contact)

    @r.get("/taches", response_model=list[Tache], tags=["file des appels"],
           summary="Phone tasks of a site, by deadline")
    async def list_tasks(who: AgentOuSuperviseur, site: Site = None,
                         statut: Annotated[Statut | None, Query()] = None,
                         limite: Annotated[int, Query(ge=1, le=500)] = 100,
                         motif: MotifHeader = None) -> list[Tache]:
        deps = get_deps()
        site = own_site(who, site)
        await get_audit().by(who, "lister-taches", "site", site, motif)
        flt: dict[str, Any] = {"site": site}
        flt["statut"] = statut if statut else {"$ne": "terminee"}
        now = deps.clock.now()
        return [await view(t, deps, now) for t in await deps.store.tasks(flt, limite)]

    @r.get("/taches/en-retard", response_model=list[Tache], tags=["file des appels"],
           summary="Open tasks of your site past their deadline (supervisors)")
    async def overdue(who: Superviseur, site: Site = None,
                      limite: Annotated[int, Query(ge=1, le=500)] = 100,
                      motif: MotifHeader = None) -> list[Tache]:
        deps = get_deps()
        site = own_site(who, site)
        await get_audit().by(who, "lister-retards", "site", site, motif)
        now = deps.clock.now()
        flt: dict[str, Any] = {"statut": {"$ne": "terminee"}, "echeance": {"$lt": now},
                               "site": site}
        return [await view(t, deps, now) for t in await deps.store.tasks(flt, limite)]

    @r.get("/taches/{task_id}", response_model=Tache, tags=["file des appels"])
    async def get_task(task_id: str, who: AgentOuSuperviseur,
                       motif: MotifHeader = None) -> Tache:
        deps = get_deps()
        task = await task_of_site(task_id, who, deps)
        await get_audit().by(who, "lire-tache", "tache", task["_id"], motif)
        return await view(task, deps, deps.clock.now())

    @r.post("/taches/{task_id}/prise", response_model=Tache, tags=["file des appels"],
            summary="Claim a task (409 if another agent holds it)",
            responses={409: {"description": "claimed by another agent, or closed"}})
    async def claim(task_id: str, who: Agent, motif: MotifHeader = None) -> Tache:
        deps = get_deps()
        await task_of_site(task_id, who, deps)
        try:
            task = await claim_task(task_id, who.sub, deps)
        except TaskNotFound:
            raise HTTPException(404, NO_TASK) from None
        except TaskConflict as exc:
            await get_audit().by(who, "prendre-tache", "tache", task_id, motif, exc.code)
            raise HTTPException(409, {"erreur": exc.code, "message": str(exc)}) from None
        await get_audit().by(who, "prendre-tache", "tache", task_id, motif)
        return await view(task, deps, deps.clock.now())

    @r.post("/taches/{task_id}/issue", response_model=Tache, tags=["file des appels"],
            summary="Record the outcome of the call; it is published on parcours.resultats",
            responses={409: {"description": "another agent holds it, or another outcome exists"}})
    async def outcome(task_id: str, body: IssueAppel, who: Agent) -> Tache:
        deps = get_deps()
        await task_of_site(task_id, who, deps)
        try:
            task = await record_outcome(task_id, who.sub, body.issue, body.commentaire, deps)
        except TaskNotFound:
            raise HTTPException(404, NO_TASK) from None
        except TaskConflict as exc:
            await get_audit().by(who, "issue-tache", "tache", task_id, body.issue, exc.code)
            raise HTTPException(409, {"erreur": exc.code, "message": str(exc)}) from None
        await get_audit().by(who, "issue-tache", "tache", task_id, body.issue)
        return await view(task, deps, deps.clock.now())

    @r.get("/actions/{action_id}", response_model=ActionStory, tags=["actions"],
           summary="What happened to an action, and why (no personal data)")
    async def story(action_id: Annotated[str, Path(max_length=200)],
                    who: AgentOuSuperviseur) -> ActionStory:
        doc = await get_deps().store.action(action_id)
        if doc is None:
            raise HTTPException(404, {"erreur": "action-inconnue", "message": "no such action"})
        return ActionStory(action_id=action_id, statut=doc["statut"], resultat=doc.get("resultat"),
                           raison=doc.get("raison"), historique=doc.get("historique", []))

    @r.get("/lots-impression/{jour}", tags=["courriers"],
           summary="The print batch of a day (manifest): every letter once",
           response_class=FileResponse,
           responses={200: {"content": {"application/json": {"schema": {"type": "object"}}},
                            "description": "The day's manifest.json (jour, courriers, feuilles, "
                            "lettres), sent from its file"}})
    async def batch(jour: str, who: Superviseur, motif: MotifHeader = None) -> FileResponse:
        if not _DAY.match(jour):
            raise HTTPException(422, {"erreur": "jour-invalide", "message": "YYYY-MM-DD expected"})
        deps = get_deps()
        await get_audit().by(who, "lire-lot-impression", "lot-impression", jour, motif)
        path = await rebuild_batch(jour, deps)
        # sent from the file: a monthly batch's day is too large to parse into memory
        return FileResponse(path, media_type="application/json")

    return r

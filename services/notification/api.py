"""HTTP API of notification: the agents' phone-task queue, the story of an action ("why was
this not sent?"), the daily print batches.

Agents' authentication belongs to a later issue (9): for now the agent is named by the
``X-Agent`` header (:func:`current_agent` is the seam to replace with a verified identity).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
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
from shared.contracts import internes as i

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


class IssueAppel(BaseModel):
    issue: Issue = Field(..., description="Outcome of the call.")
    commentaire: str | None = Field(None, max_length=2000,
                                    description="Free note for the agents (never published).")


class ActionStory(BaseModel):
    action_id: str
    statut: str
    resultat: str | None = None
    raison: str | None = None
    historique: list[dict[str, Any]]


AGENT_HEADER = Header(description="Agent identifier (issue 9 replaces it with authentication).")


def current_agent(x_agent: Annotated[str | None, AGENT_HEADER] = None) -> str:
    if not x_agent or not re.fullmatch(r"[A-Za-z0-9._@-]{1,80}", x_agent):
        raise HTTPException(401, {"erreur": "agent-inconnu",
                                  "message": "the X-Agent header names the agent"})
    return x_agent


def router(get_deps: Callable[[], Deps]) -> APIRouter:
    r = APIRouter(prefix="/v1")

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
    async def list_tasks(site: Annotated[str, Query(max_length=3)],
                         statut: Annotated[Statut | None, Query()] = None,
                         limite: Annotated[int, Query(ge=1, le=500)] = 100,
                         agent: str = Depends(current_agent)) -> list[Tache]:
        deps = get_deps()
        flt: dict[str, Any] = {"site": site}
        flt["statut"] = statut if statut else {"$ne": "terminee"}
        now = deps.clock.now()
        return [await view(t, deps, now) for t in await deps.store.tasks(flt, limite)]

    @r.get("/taches/en-retard", response_model=list[Tache], tags=["file des appels"],
           summary="Open tasks past their deadline, all sites or one")
    async def overdue(site: Annotated[str | None, Query(max_length=3)] = None,
                      limite: Annotated[int, Query(ge=1, le=500)] = 100,
                      agent: str = Depends(current_agent)) -> list[Tache]:
        deps = get_deps()
        now = deps.clock.now()
        flt: dict[str, Any] = {"statut": {"$ne": "terminee"}, "echeance": {"$lt": now}}
        if site:
            flt["site"] = site
        return [await view(t, deps, now) for t in await deps.store.tasks(flt, limite)]

    @r.get("/taches/{task_id}", response_model=Tache, tags=["file des appels"])
    async def get_task(task_id: str, agent: str = Depends(current_agent)) -> Tache:
        deps = get_deps()
        task = await deps.store.task(task_id)
        if task is None:
            raise HTTPException(404, {"erreur": "tache-inconnue", "message": "no such task"})
        return await view(task, deps, deps.clock.now())

    @r.post("/taches/{task_id}/prise", response_model=Tache, tags=["file des appels"],
            summary="Claim a task (409 if another agent holds it)",
            responses={409: {"description": "claimed by another agent, or closed"}})
    async def claim(task_id: str, agent: str = Depends(current_agent)) -> Tache:
        deps = get_deps()
        try:
            task = await claim_task(task_id, agent, deps)
        except TaskNotFound:
            raise HTTPException(404, NO_TASK) from None
        except TaskConflict as exc:
            raise HTTPException(409, {"erreur": exc.code, "message": str(exc)}) from None
        return await view(task, deps, deps.clock.now())

    @r.post("/taches/{task_id}/issue", response_model=Tache, tags=["file des appels"],
            summary="Record the outcome of the call; it is published on parcours.resultats",
            responses={409: {"description": "another agent holds it, or another outcome exists"}})
    async def outcome(task_id: str, body: IssueAppel,
                      agent: str = Depends(current_agent)) -> Tache:
        deps = get_deps()
        try:
            task = await record_outcome(task_id, agent, body.issue, body.commentaire, deps)
        except TaskNotFound:
            raise HTTPException(404, NO_TASK) from None
        except TaskConflict as exc:
            raise HTTPException(409, {"erreur": exc.code, "message": str(exc)}) from None
        return await view(task, deps, deps.clock.now())

    @r.get("/actions/{action_id}", response_model=ActionStory, tags=["actions"],
           summary="What happened to an action, and why (no personal data)")
    async def story(action_id: str) -> ActionStory:
        doc = await get_deps().store.action(action_id)
        if doc is None:
            raise HTTPException(404, {"erreur": "action-inconnue", "message": "no such action"})
        return ActionStory(action_id=action_id, statut=doc["statut"], resultat=doc.get("resultat"),
                           raison=doc.get("raison"), historique=doc.get("historique", []))

    @r.get("/lots-impression/{jour}", tags=["courriers"],
           summary="The print batch of a day (manifest): every letter once")
    async def batch(jour: str) -> dict[str, Any]:
        if not _DAY.match(jour):
            raise HTTPException(422, {"erreur": "jour-invalide", "message": "YYYY-MM-DD expected"})
        deps = get_deps()
        path = await rebuild_batch(jour, deps)
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    return r

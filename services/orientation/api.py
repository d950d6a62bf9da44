"""HTTP for agents: a person's cases with their explanations, and the catalogue itself.

Read-only. Personal data never appears here: persons are known by pseudonym only, and the
flags a case holds (some are sensitive, such as domestic violence) are not shown; the
explanations already name a sensitive condition only as "de protection de la personne".

Bearer tokens (shared/auth.py): a person's cases are read by the agents of the person's site
(the départements of the territories of the case's actions; otherwise 404, the person's
existence does not leak) and by supervisors; every read is in the audit trail. The catalogue
is readable by any authenticated role.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from services.orientation.catalogue import Catalogue, Parcours
from services.orientation.rules import Dossier, PersonContext
from services.orientation.service import Deps
from shared.audit import AuditLog, MotifHeader
from shared.auth import AGENT, SUPERVISEUR, Principal, require
from shared.contracts.internes import ActionKind, Canal


class ActionVue(BaseModel):
    action_id: str
    etape: str
    kind: ActionKind
    canaux: list[Canal]
    destinataire: Literal["personne", "proche"]
    due_le: datetime = Field(..., description="When the action is due (UTC).")
    echeance: datetime | None = Field(None, description="Deadline, e.g. 48 business hours.")
    condition: str | None = Field(None, description="Re-checked when the action fires.")
    statut: str = Field(..., examples=["planifiee", "realisee", "annulee", "fusionnee",
                                       "echouee", "ignoree"])
    tentative: int = Field(..., description="Call attempt number.")
    fusionnee_dans: str | None = Field(None, description="The contact it was merged into.")
    publiee: bool = Field(..., description="False: merged away before it was ever published.")


class ExplicationVue(BaseModel):
    decision_id: str
    demande_id: str
    statut: Literal["ouvert", "mis-a-jour", "clos", "refuse", "a-verifier"]
    motif_cloture: str | None = None
    catalogue_version: str
    explication: list[str] = Field(..., description="Sentences an agent can read to the person.")


class DossierVue(BaseModel):
    dossier_id: str
    parcours: str
    nom: str = Field(..., description="Name of the parcours in the catalogue.")
    cycle: int = Field(..., description="1 for the person's first case in this parcours.")
    statut: Literal["ouvert", "clos"]
    classe: str = Field(..., description="Priority class: deces, securite, echeance-legale, "
                        "information.")
    ouvert_le: datetime
    clos_le: datetime | None = None
    motif_cloture: str | None = None
    catalogue_version: str = Field(..., description="Catalogue version that opened the case.")
    demandes: list[str] = Field(..., description="Demands that opened or updated the case.")
    actions: list[ActionVue]
    explications: list[ExplicationVue] = Field(..., description="Every decision about this "
                                               "case, oldest first.")


class AlerteVue(BaseModel):
    code: str
    dossier_id: str | None = None
    message: str


class PersonneVue(BaseModel):
    pseudonyme: str
    decede: bool
    deces_retracte: bool = Field(..., description="A retracted death awaits an agent's check.")
    dossiers: list[DossierVue]
    autres_decisions: list[ExplicationVue] = Field(
        ..., description="Decisions about no case (refusals, death rule, retractions).")
    alertes: list[AlerteVue] = Field(..., description="Situations flagged for an agent.")


def _erreur(message: str) -> dict[str, str]:
    return {"erreur": "introuvable", "message": message}


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown person or parcours (the message says which).",
          "content": {"application/json": {"example": _erreur("...")}}}}


def sites(ctx: PersonContext) -> set[str]:
    """The départements whose agents may read the person's cases."""
    return {s.action.territoire.departement for d in ctx.dossiers for s in d.actions
            if s.action.territoire.departement}


def router(get_deps: Callable[[], Deps], get_audit: Callable[[], AuditLog]) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["agents"])

    @r.get("/personnes/{pseudonyme}/dossiers", response_model=PersonneVue, responses=NOT_FOUND,
           summary="A person's cases, their actions and the explanation of every decision")
    async def dossiers(
        pseudonyme: Annotated[str, Path(min_length=1, max_length=200,
                                        description="The person's pseudonym.")],
        who: Annotated[Principal, Depends(require(AGENT, SUPERVISEUR))],
        motif: MotifHeader = None,
    ) -> PersonneVue:
        deps = get_deps()
        etat = await deps.store.trouver(pseudonyme)
        visible = etat is not None and (who.has(SUPERVISEUR) or who.site in sites(etat.contexte))
        await get_audit().by(who, "lire-dossiers", "personne", pseudonyme, motif,
                             "ok" if visible else "introuvable")
        if etat is None or not visible:
            raise HTTPException(404, _erreur(
                f"aucun dossier d'orientation pour la personne de pseudonyme « {pseudonyme} »"))
        return vue_personne(etat.contexte, deps.catalogue)

    @r.get("/catalogue", response_model=Catalogue,
           summary="The parcours catalogue in use, with its version")
    async def catalogue(who: Annotated[Principal, Depends(require())]) -> Catalogue:
        return get_deps().catalogue

    @r.get("/catalogue/{parcours}", response_model=Parcours, responses=NOT_FOUND,
           summary="One parcours of the catalogue")
    async def un_parcours(
        parcours: Annotated[str, Path(max_length=80, description="Parcours id.")],
        who: Annotated[Principal, Depends(require())],
    ) -> Parcours:
        cat = get_deps().catalogue
        try:
            return cat.parcours_par_id(parcours)
        except KeyError:
            raise HTTPException(404, _erreur(
                f"parcours « {parcours} » inconnu du catalogue {cat.version} ; parcours "
                f"connus : {', '.join(p.id for p in cat.parcours)}")) from None

    return r


def vue_personne(ctx: PersonContext, catalogue: Catalogue) -> PersonneVue:
    par_dossier: dict[str | None, list[ExplicationVue]] = {}
    alertes: list[AlerteVue] = []
    for traitement in ctx.journal.values():
        for d in traitement.decisions:
            par_dossier.setdefault(d.dossier_id, []).append(ExplicationVue(
                decision_id=d.decision_id, demande_id=d.demande_id, statut=d.statut,
                motif_cloture=d.motif_cloture, catalogue_version=d.catalogue_version,
                explication=list(d.explication)))
        alertes += [AlerteVue(**a.model_dump()) for a in traitement.alertes]
    return PersonneVue(
        pseudonyme=ctx.pseudonyme, decede=ctx.decede, deces_retracte=ctx.deces_retracte,
        dossiers=[_vue_dossier(d, catalogue, par_dossier.get(d.dossier_id, []))
                  for d in ctx.dossiers],
        autres_decisions=par_dossier.get(None, []), alertes=alertes)


def _vue_dossier(d: Dossier, catalogue: Catalogue,
                 explications: list[ExplicationVue]) -> DossierVue:
    try:
        nom = catalogue.parcours_par_id(d.parcours).nom
    except KeyError:
        nom = d.parcours
    return DossierVue(
        dossier_id=d.dossier_id, parcours=d.parcours, nom=nom, cycle=d.cycle, statut=d.statut,
        classe=d.classe, ouvert_le=d.ouvert_le, clos_le=d.clos_le,
        motif_cloture=d.motif_cloture, catalogue_version=d.catalogue_version,
        demandes=list(d.demandes), explications=explications,
        actions=[ActionVue(
            action_id=s.action.action_id, etape=s.action.etape, kind=s.action.kind,
            canaux=list(s.action.canaux), destinataire=s.action.destinataire,
            due_le=s.action.due_le, echeance=s.action.echeance, condition=s.action.condition,
            statut=s.statut, tentative=s.tentative, fusionnee_dans=s.fusionnee_dans,
            publiee=s.publiee) for s in d.actions])

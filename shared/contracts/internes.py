"""Internal contracts: what the services say to each other, keyed by the person's pseudonym.

No NIR, name or address anywhere here except :class:`Coordonnees`, which travels only on the
compacted topic ``personnes.coordonnees`` to notification.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from shared.contracts.base import Contract
from shared.contracts.evenements import Adresse, Email, Nom, Telephone

PREFIX = "fr.assurance-maladie."
DEMANDE = f"{PREFIX}parcours.demande.v1"
COORDONNEES = f"{PREFIX}personne.coordonnees.v1"
ACTION_PLANIFIEE = f"{PREFIX}parcours.action-planifiee.v1"
ACTION_ANNULEE = f"{PREFIX}parcours.action-annulee.v1"
DECISION = f"{PREFIX}parcours.decision.v1"
RESULTAT = f"{PREFIX}parcours.resultat.v1"

Pseudonyme = str
ActionKind = Literal["courrier", "email", "sms", "appel", "invitation", "rendez-vous"]
Canal = Literal["courrier", "email", "sms", "telephone"]


class SourceRef(Contract):
    source: str
    id: str


class Territoire(Contract):
    departement: str | None = Field(None, pattern=r"^([0-9]{2,3}|2A|2B)$")
    commune: str | None = Field(None, max_length=100)


class Detecteur(Contract):
    """Who signalled: a partner (by id and kind) or an upstream system."""

    type: str = Field(..., max_length=60, examples=["ccas", "mission-locale", "carsat"])
    identifiant: str = Field(..., max_length=120)


class Demande(Contract):
    """A validated, deduplicated, pseudonymised demand for orientation (``parcours.demandes``)."""

    demande_id: str
    pseudonyme: Pseudonyme
    origine: Literal["evenement-vie", "signalement"]
    evenement: str = Field(
        ..., description="Life-event name (retraite, deces, ...) or 'signalement'."
    )
    nature: Literal["initial", "correction", "annulation"] = "initial"
    demande_reference: str | None = Field(
        None, description="For a correction/retraction: the demande_id it concerns."
    )
    date_effet: date
    recu_le: datetime
    age: int = Field(..., ge=0, le=130, description="Age in whole years at date_effet.")
    naissance: str = Field(..., pattern=r"^[0-9]{4}-[0-9]{2}$", description="Birth year-month.")
    territoire: Territoire = Territoire()
    drapeaux: dict[str, bool | int | str] = Field(
        default_factory=dict,
        description="Flags orientation needs: sans_complementaire, violences_intrafamiliales, "
        "enfants_a_charge, categorie, proche_connu, ...",
    )
    dates: dict[str, date] = Field(
        default_factory=dict, description="Other dates of the event (date_fin_prise_en_charge...)."
    )
    sources: list[SourceRef] = Field(default_factory=list, description="Every report of it.")
    detecteur: Detecteur | None = None
    signalement: dict[str, str | list[str] | bool] | None = Field(
        None, description="For referrals: reference, situation, soins renoncés, motifs, consent."
    )


class Securite(Contract):
    violences_intrafamiliales: bool = False
    canaux_designes: list[Canal] = Field(
        default_factory=list, description="Only channels allowed for a person at risk."
    )
    adresse_sure: Adresse | None = None
    telephone_sur: Telephone | None = None


class ProcheContact(Contract):
    nom: Nom
    prenom: Nom
    lien: str
    telephone: Telephone | None = None
    adresse: Adresse | None = None


class Coordonnees(Contract):
    """Latest contact data of a person (``personnes.coordonnees``, compacted)."""

    pseudonyme: Pseudonyme
    nom: Nom
    prenom: Nom
    adresse: Adresse | None = None
    telephone: Telephone | None = None
    email: Email | None = None
    proche: ProcheContact | None = None
    securite: Securite = Securite()
    consentement_contact: bool = True
    decede: bool = False
    maj_le: datetime


class ActionPlanifiee(Contract):
    action_id: str
    pseudonyme: Pseudonyme
    dossier_id: str
    parcours: str
    etape: str
    kind: ActionKind
    canaux: list[Canal]
    due_le: datetime
    echeance: datetime | None = Field(None, description="Deadline (e.g. 48 business hours).")
    destinataire: Literal["personne", "proche"] = "personne"
    condition: str | None = Field(None, description="Re-checked when the action fires.")
    obligatoire: bool = False
    priorite: int = 0
    modele: str = Field(..., description="Template (letter/email/sms text) of the step.")
    territoire: Territoire = Territoire()
    detecteur: Detecteur | None = None
    reference_signalement: str | None = Field(
        None, description="The partner's referral this action serves (its status history)."
    )


class ActionAnnulee(Contract):
    action_id: str
    pseudonyme: Pseudonyme
    dossier_id: str
    raison: str


class Decision(Contract):
    decision_id: str
    pseudonyme: Pseudonyme
    demande_id: str
    dossier_id: str | None = None
    parcours: str | None = None
    statut: Literal["ouvert", "mis-a-jour", "clos", "refuse", "a-verifier"]
    motif_cloture: str | None = None
    catalogue_version: str
    explication: list[str]
    territoire: Territoire = Territoire()
    detecteur: Detecteur | None = None
    reference_signalement: str | None = None


class Resultat(Contract):
    resultat_id: str
    pseudonyme: Pseudonyme
    action_id: str | None = None
    dossier_id: str | None = None
    parcours: str | None = None
    statut: Literal["envoye", "ignore", "echec", "tache-creee", "appel", "objectif-atteint"]
    raison: str | None = None
    canal: Canal | None = None
    issue_appel: str | None = None
    survenu_le: datetime
    reference_signalement: str | None = None

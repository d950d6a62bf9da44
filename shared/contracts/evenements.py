"""Public contract for upstream systems: the topic ``evenements-vie``.

Value = one CloudEvent (structured JSON mode). ``type`` is
``fr.assurance-maladie.evenement-vie.<name>.v1``; ``data`` is the model of that name below.
Corrections and retractions of an earlier event are the same type with ``nature`` set to
``correction`` or ``annulation`` and ``evenement_reference`` naming the CloudEvent ``id`` they
correct (same ``source``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from shared.contracts.base import Contract
from shared.nir import InvalidNir, validate_nir

TYPE_PREFIX = "fr.assurance-maladie.evenement-vie."
VERSION = "v1"


def event_type(name: str) -> str:
    return f"{TYPE_PREFIX}{name}.{VERSION}"


def event_name(type_: str) -> str | None:
    """``retraite`` for ``fr.assurance-maladie.evenement-vie.retraite.v1``; None if not ours."""
    if not type_.startswith(TYPE_PREFIX) or not type_.endswith(f".{VERSION}"):
        return None
    return type_[len(TYPE_PREFIX) : -len(VERSION) - 1] or None


def _check_nir(value: str) -> str:
    try:
        return validate_nir(value)
    except InvalidNir as exc:
        raise PydanticCustomError(exc.code, str(exc)) from None


Nir = Annotated[
    str,
    Field(min_length=13, max_length=21, description="NIR: 13 characters and the 2-digit key."),
    AfterValidator(_check_nir),
]
Nom = Annotated[str, Field(min_length=1, max_length=100)]
Telephone = Annotated[str, Field(min_length=6, max_length=20, pattern=r"^\+?[0-9 .\-]{6,20}$")]
Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class Adresse(Contract):
    ligne1: str = Field(..., min_length=1, max_length=200)
    ligne2: str | None = Field(None, max_length=200)
    code_postal: str = Field(..., pattern=r"^[0-9]{5}$", description="French postal code.")
    commune: str = Field(..., min_length=1, max_length=100)


class Assure(Contract):
    """The insured person. Personal data: it stops at signalement and personnes.coordonnees."""

    nir: Nir
    nom: Nom
    prenom: Nom
    date_naissance: date
    adresse: Adresse | None = None
    telephone: Telephone | None = None
    email: Email | None = None


class Proche(Contract):
    """The family member to contact (after a death)."""

    nom: Nom
    prenom: Nom
    lien: str = Field(..., min_length=1, max_length=50, examples=["conjoint", "enfant"])
    telephone: Telephone | None = None
    adresse: Adresse | None = None


class EvenementVie(Contract):
    """Fields every life event carries."""

    assure: Assure
    date_effet: date = Field(..., description="When the event takes (or took) effect.")
    nature: Literal["initial", "correction", "annulation"] = Field(
        "initial", description="initial, or a correction / retraction of an earlier event."
    )
    evenement_reference: str | None = Field(
        None,
        max_length=200,
        description="For a correction or retraction: the CloudEvent id (same source) it concerns.",
    )


class Retraite(EvenementVie):
    """Retirement (Carsat/CNAV). ``date_effet`` is the effective retirement date."""

    sans_complementaire: bool = Field(..., description="No complementary health insurance.")


class Separation(EvenementVie):
    """Separation declared to the Caf."""

    violences_intrafamiliales: bool = Field(False, description="Victim of domestic violence.")
    enfants_a_charge: int = Field(0, ge=0, le=30)


class EntreeInvalidite(EvenementVie):
    categorie: Literal[1, 2, 3] = Field(..., description="Invalidity category (1, 2 or 3).")


class Deces(EvenementVie):
    """Death (état civil). ``proche`` is the family contact, if known."""

    proche: Proche | None = None


class SortieAse(EvenementVie):
    date_fin_prise_en_charge: date


class Ase17Ans(EvenementVie):
    """A child in child welfare (ASE) reaches 17; ``date_effet`` is the 17th birthday."""


class EntreeAld(EvenementVie):
    pass


class DeclarationGrossesse(EvenementVie):
    date_prevue_accouchement: date | None = None


class PerteEmploi(EvenementVie):
    pass


class LeveeEcrou(EvenementVie):
    """Release from prison (SPIP); ``date_effet`` is the release date."""

    beneficiaire_c2s: bool | None = None


class DepartMedecinTraitant(EvenementVie):
    pass


class FinDroitsC2s(EvenementVie):
    """Complémentaire santé solidaire rights end at ``date_effet``."""


class ComplementaireSouscrite(EvenementVie):
    """The person subscribed a complementary health insurance (a parcours goal)."""


EVENT_MODELS: dict[str, type[EvenementVie]] = {
    "retraite": Retraite,
    "separation": Separation,
    "entree-invalidite": EntreeInvalidite,
    "deces": Deces,
    "sortie-ase": SortieAse,
    "ase-17-ans": Ase17Ans,
    "entree-ald": EntreeAld,
    "declaration-grossesse": DeclarationGrossesse,
    "perte-emploi": PerteEmploi,
    "levee-ecrou": LeveeEcrou,
    "depart-medecin-traitant": DepartMedecinTraitant,
    "fin-droits-c2s": FinDroitsC2s,
    "complementaire-souscrite": ComplementaireSouscrite,
}

EVENT_TYPES: dict[str, type[EvenementVie]] = {
    event_type(name): model for name, model in EVENT_MODELS.items()
}


def model_for(type_: str) -> type[EvenementVie] | None:
    return EVENT_TYPES.get(type_)


def example_event(name: str, **data_overrides: Any) -> dict[str, Any]:
    """A valid example CloudEvent (as a dict) of the given name, for docs and tests."""
    data: dict[str, Any] = {
        "assure": {
            "nir": "184127645108946",
            "nom": "Martin",
            "prenom": "Claude",
            "date_naissance": "1959-12-03",
            "adresse": {"ligne1": "3 rue des Lilas", "code_postal": "91000", "commune": "Évry"},
            "telephone": "0612345678",
        },
        "date_effet": "2026-01-01",
    }
    extra: dict[str, dict[str, Any]] = {
        "retraite": {"sans_complementaire": True},
        "separation": {"violences_intrafamiliales": False, "enfants_a_charge": 2},
        "entree-invalidite": {"categorie": 2},
        "deces": {"proche": {"nom": "Martin", "prenom": "Alex", "lien": "enfant"}},
        "sortie-ase": {"date_fin_prise_en_charge": "2026-06-30"},
    }
    data.update(extra.get(name, {}))
    data.update(data_overrides)
    return {
        "specversion": "1.0",
        "id": f"example-{name}-1",
        "source": "urn:fr:carsat:exemple",
        "type": event_type(name),
        "time": "2026-01-02T08:00:00Z",
        "datacontenttype": "application/json",
        "data": data,
    }

"""The parcours catalogue: data (``catalogue.yaml``), its models, and its validation.

The catalogue is read once at start-up by :func:`load_catalogue`. Anything wrong in it is
fatal and reported as one :class:`CatalogueError` listing every problem, each naming the
parcours and the step concerned. No I/O here besides reading that file.
"""

from __future__ import annotations

import functools
import types
import typing
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date as Date
from datetime import time as Time
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.contracts.evenements import EVENT_MODELS
from shared.contracts.internes import ActionKind, Canal

DEFAULT_PATH = Path(__file__).with_name("catalogue.yaml")

ClassePriorite = Literal["deces", "securite", "echeance-legale", "information"]
PRECEDENCE: dict[str, int] = {"deces": 4, "securite": 3, "echeance-legale": 2, "information": 1}
"""Arbitration between parcours: the higher wins. Also ``ActionPlanifiee.priorite``."""

EffetIssue = Literal["tentative-echouee", "realise", "refus"]
Destinataire = Literal["personne", "proche"]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=80)]

EVENEMENT_DECES = "deces"
ANCRES_FIXES = ("date_effet", "recu_le", "naissance", "realisation")
PREFIXE_DATES = "dates."
# The channel an action kind cannot do without.
CANAL_REQUIS: dict[str, str] = {
    "courrier": "courrier", "email": "email", "sms": "sms", "appel": "telephone",
}


class CatalogueError(ValueError):
    """The catalogue cannot be used; ``problemes`` lists every reason, one per line."""

    def __init__(self, problemes: list[str]) -> None:
        self.problemes = problemes
        super().__init__("catalogue des parcours invalide :\n- " + "\n- ".join(problemes))


class _Modele(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Decalage(_Modele):
    """An offset: calendar years, months, days, then whole business hours (>= 0)."""

    annees: int = 0
    mois: int = 0
    jours: int = 0
    heures_ouvrees: int = Field(default=0, ge=0)

    @property
    def nul(self) -> bool:
        return not (self.annees or self.mois or self.jours or self.heures_ouvrees)

    def decrire(self, *, signe: bool = True) -> str:
        """``+9 mois``, ``-30 jours``, ``+48 heures ouvrées`` (``9 mois`` without the sign)."""
        parts = [
            _quantite(self.annees, "an", "ans", signe), _quantite(self.mois, "mois", "mois", signe),
            _quantite(self.jours, "jour", "jours", signe),
            _quantite(self.heures_ouvrees, "heure ouvrée", "heures ouvrées", signe),
        ]
        return " ".join(p for p in parts if p) or "0 jour"


def _quantite(n: int, singulier: str, pluriel: str, signe: bool) -> str:
    if n == 0:
        return ""
    return f"{n:+d} {singulier if abs(n) == 1 else pluriel}" if signe else (
        f"{abs(n)} {singulier if abs(n) == 1 else pluriel}")


class Ancre(Decalage):
    """When a step is due: a reference date (see ``catalogue.yaml``) and an offset."""

    date: str


class Repli(_Modele):
    """What replaces a phone step after too many unanswered calls or an impossible channel."""

    action: ActionKind = "courrier"
    canaux: tuple[Canal, ...] = ("courrier",)
    modele: str = Field(..., min_length=1)
    texte: str = Field(..., min_length=1)


class Etape(_Modele):
    id: Slug
    action: ActionKind
    canaux: tuple[Canal, ...] = Field(..., min_length=1)
    destinataire: Destinataire = "personne"
    ancre: Ancre
    apres: str | None = None
    delai: Decalage | None = None
    condition: str | None = None
    obligatoire: bool = False
    rattrapage: bool = True
    pour: tuple[str, ...] = ()
    modele: str = Field(..., min_length=1)
    texte: str = Field(..., min_length=1)
    repli: Repli | None = None

    @property
    def id_repli(self) -> str:
        return f"{self.id}-repli"


class Eligibilite(_Modele):
    age_min: int | None = Field(default=None, ge=0, le=130)
    age_max: int | None = Field(default=None, ge=0, le=130)
    drapeaux: dict[str, bool | int | str] = Field(default_factory=dict)
    consentement_requis: bool = False
    detecteurs: tuple[str, ...] = ()
    anciennete_max: Decalage | None = None


class Declencheurs(_Modele):
    evenements: tuple[str, ...] = ()
    situations: tuple[str, ...] = ()

    @property
    def tous(self) -> tuple[str, ...]:
        return self.evenements + self.situations


class Rehaussement(_Modele):
    condition: str
    classe: ClassePriorite


class Sortie(_Modele):
    objectif_evenements: tuple[str, ...] = ()
    issues: dict[str, str] = Field(default_factory=dict)
    fin_de_plan: bool = False
    duree_max: Decalage | None = None


class Parcours(_Modele):
    id: Slug
    nom: str = Field(..., min_length=1)
    theme: str = Field(..., min_length=1)
    description: str = Field(..., min_length=1)
    declencheurs: Declencheurs
    eligibilite: Eligibilite = Eligibilite()
    priorite: ClassePriorite
    rehaussements: tuple[Rehaussement, ...] = ()
    objectif: str | None = None
    sortie: Sortie = Sortie()
    plan: tuple[Etape, ...] = Field(..., min_length=1)

    def etape(self, etape_id: str) -> Etape | None:
        """The step of that id, or of which it is the fallback (``<id>-repli``)."""
        for etape in self.plan:
            if etape_id in (etape.id, etape.id_repli):
                return etape
        return None

    @property
    def etapes_initiales(self) -> tuple[Etape, ...]:
        """The steps planned when a case opens (the others follow a completed step)."""
        return tuple(e for e in self.plan if e.apres is None)

    def suivantes(self, etape_id: str) -> tuple[Etape, ...]:
        return tuple(e for e in self.plan if e.apres == etape_id)


class Condition(_Modele):
    """A named predicate on one flag of the demand, re-checked when the action fires."""

    drapeau: str = Field(..., min_length=1)
    valeur: bool | int | str
    texte: str = Field(..., min_length=1)
    sensible: bool = Field(default=False, description="Never spelled out in an explanation.")

    def tenue(self, drapeaux: Mapping[str, bool | int | str]) -> bool:
        actuelle = drapeaux.get(self.drapeau)
        if actuelle is None and isinstance(self.valeur, bool):
            actuelle = False  # an absent yes/no flag reads as "no"
        return type(actuelle) is type(self.valeur) and actuelle == self.valeur


class Appels(_Modele):
    tentatives_max: int = Field(default=3, ge=1)
    intervalle: Decalage = Decalage(heures_ouvrees=24)


class Catalogue(_Modele):
    version: str = Field(..., min_length=1)
    heure_envoi: Time = Field(
        Time(9, 0), description="Paris wall-clock time of letters anchored on a date.",
        # a local time without offset: RFC 3339 "partial-time", not JSON Schema "time"
        json_schema_extra={"format": "partial-time"})
    appels: Appels = Appels()
    issues_appel: dict[str, EffetIssue]
    situations: dict[str, str]
    conditions: dict[str, Condition] = Field(default_factory=dict)
    parcours: tuple[Parcours, ...] = Field(..., min_length=1)

    def parcours_par_id(self, parcours_id: str) -> Parcours:
        for p in self.parcours:
            if p.id == parcours_id:
                return p
        raise KeyError(f"parcours inconnu du catalogue {self.version} : {parcours_id!r}")

    def declenches_par(self, cles: Iterable[str]) -> tuple[Parcours, ...]:
        """The parcours triggered by any of these event names or situations, in catalogue order."""
        found: set[int] = set()
        for cle in cles:
            found.update(self._par_declencheur.get(cle, ()))
        return tuple(self.parcours[n] for n in sorted(found))

    @functools.cached_property
    def _par_declencheur(self) -> dict[str, tuple[int, ...]]:
        """Trigger → positions of the parcours it triggers (asked for every input)."""
        index: dict[str, list[int]] = {}
        for n, p in enumerate(self.parcours):
            for cle in set(p.declencheurs.tous):
                index.setdefault(cle, []).append(n)
        return {cle: tuple(ns) for cle, ns in index.items()}

    def condition(self, nom: str) -> Condition:
        return self.conditions[nom]


# --------------------------------------------------------------------------- loading


def load_catalogue(path: Path | str = DEFAULT_PATH) -> Catalogue:
    """Read, parse and validate the catalogue; :class:`CatalogueError` if anything is wrong."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogueError([f"{path} : YAML illisible ({exc})"]) from None
    return parse_catalogue(raw)


def parse_catalogue(raw: Any) -> Catalogue:
    """Validate an already-parsed catalogue document (a mapping)."""
    if not isinstance(raw, dict):
        raise CatalogueError(["le catalogue doit être un document YAML de type dictionnaire"])
    try:
        catalogue = Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError([_erreur_structure(err, raw) for err in exc.errors()]) from None
    problemes = verifier(catalogue)
    if problemes:
        raise CatalogueError(problemes)
    return catalogue


_LIBELLES = {
    "action": "type d'action", "canaux": "canal", "priorite": "classe de priorité",
    "classe": "classe de priorité", "destinataire": "destinataire",
    "issues_appel": "effet d'issue d'appel",
}


def _erreur_structure(err: Mapping[str, Any], raw: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    where, champ = _localiser(loc, raw)
    if err["type"] == "literal_error":
        nom = next((p for p in reversed(loc) if isinstance(p, str) and p in _LIBELLES), champ)
        libelle = _LIBELLES.get(nom, nom)
        attendu = err.get("ctx", {}).get("expected", "")
        return f"{where} : {libelle} inconnu « {err['input']} » (attendu : {attendu})"
    if err["type"] == "extra_forbidden":
        return f"{where} : champ inconnu « {champ} »"
    return f"{where}, champ « {champ} » : {err['msg']}"


def _localiser(loc: tuple[Any, ...], raw: Mapping[str, Any]) -> tuple[str, str]:
    """('parcours', 3, 'plan', 1, 'action') -> ("parcours « x », étape « y »", "action")."""
    where: list[str] = []
    node: Any = raw
    rest = list(loc)
    for key in ("parcours", "plan"):
        if len(rest) >= 2 and rest[0] == key and isinstance(rest[1], int):
            node = _item(node, key, rest[1])
            label = "parcours" if key == "parcours" else "étape"
            ident = node.get("id") if isinstance(node, dict) else None
            where.append(f"{label} « {ident} »" if ident else f"{label} n°{rest[1] + 1}")
            rest = rest[2:]
    champ = ".".join(str(p) for p in rest) or "(racine)"
    return (", ".join(where) or "catalogue"), champ


def _item(node: Any, key: str, index: int) -> Any:
    items = node.get(key) if isinstance(node, dict) else None
    return items[index] if isinstance(items, list) and index < len(items) else None


# --------------------------------------------------------------------------- validation


def verifier(catalogue: Catalogue) -> list[str]:
    """Every cross-reference problem of a structurally valid catalogue (empty when valid)."""
    problemes = _doublons("parcours", [p.id for p in catalogue.parcours], "catalogue")
    problemes += _verifier_deces(catalogue)
    for parcours in catalogue.parcours:
        problemes += _verifier_parcours(parcours, catalogue)
    return problemes


def _doublons(quoi: str, ids: list[str], where: str) -> list[str]:
    return [f"{where} : identifiant de {quoi} en double « {i} »"
            for i, n in Counter(ids).items() if n > 1]


def _verifier_deces(catalogue: Catalogue) -> list[str]:
    du_deces = catalogue.declenches_par([EVENEMENT_DECES])
    if len(du_deces) != 1:
        return [f"catalogue : l'événement « {EVENEMENT_DECES} » doit déclencher exactement un "
                f"parcours (il en déclenche {len(du_deces)})"]
    p = du_deces[0]
    where = f"parcours « {p.id} »"
    problemes = []
    if p.priorite != "deces":
        problemes.append(f"{where} : déclenché par le décès, sa classe de priorité doit être "
                         f"« deces » (et non « {p.priorite} »)")
    if len(p.plan) != 1 or p.plan[0].destinataire != "proche" or p.plan[0].repli is not None:
        problemes.append(f"{where} : le parcours décès comporte exactement une étape, un contact "
                         "unique au proche (destinataire « proche », sans repli)")
    return problemes


def _verifier_parcours(p: Parcours, catalogue: Catalogue) -> list[str]:
    where = f"parcours « {p.id} »"
    problemes = _doublons("étape", [e.id for e in p.plan] + [e.id_repli for e in p.plan
                                                              if e.repli], where)
    problemes += _verifier_declencheurs(p, catalogue, where)
    problemes += _verifier_eligibilite(p, where)
    problemes += _verifier_sortie(p, catalogue, where)
    if p.priorite == "deces" and EVENEMENT_DECES not in p.declencheurs.evenements:
        problemes.append(f"{where} : la classe « deces » est réservée au parcours du décès")
    for r in p.rehaussements:
        if r.condition not in catalogue.conditions:
            problemes.append(f"{where}, rehaussement : condition inconnue « {r.condition} »")
    precedentes: list[str] = []
    for etape in p.plan:
        problemes += _verifier_etape(etape, p, catalogue, precedentes)
        precedentes.append(etape.id)
    return problemes


def _verifier_declencheurs(p: Parcours, catalogue: Catalogue, where: str) -> list[str]:
    problemes = []
    if not p.declencheurs.tous:
        problemes.append(f"{where} : aucun déclencheur (événement ou situation)")
    for ev in p.declencheurs.evenements:
        if ev not in EVENT_MODELS:
            problemes.append(f"{where} : déclencheur inconnu « {ev} » (événements connus : "
                             f"{', '.join(sorted(EVENT_MODELS))})")
    for situation in p.declencheurs.situations:
        if situation not in catalogue.situations:
            problemes.append(f"{where} : situation de signalement inconnue « {situation} » "
                             "(à déclarer dans « situations »)")
    return problemes


def _verifier_eligibilite(p: Parcours, where: str) -> list[str]:
    e = p.eligibilite
    if e.age_min is not None and e.age_max is not None and e.age_min > e.age_max:
        return [f"{where} : éligibilité impossible, âge minimum {e.age_min} > maximum {e.age_max}"]
    return []


def _verifier_sortie(p: Parcours, catalogue: Catalogue, where: str) -> list[str]:
    problemes = [f"{where}, sortie : événement d'objectif inconnu « {ev} »"
                 for ev in p.sortie.objectif_evenements if ev not in EVENT_MODELS]
    problemes += [f"{where}, sortie : issue d'appel inconnue « {issue} »"
                  for issue in p.sortie.issues if issue not in catalogue.issues_appel]
    return problemes


def _verifier_etape(e: Etape, p: Parcours, catalogue: Catalogue, precedentes: list[str],
                    ) -> list[str]:
    where = f"parcours « {p.id} », étape « {e.id} »"
    problemes = _verifier_ancre(e, p, where, precedentes)
    problemes += _verifier_canaux(e.action, e.canaux, where)
    if e.condition is not None and e.condition not in catalogue.conditions:
        problemes.append(f"{where} : condition inconnue « {e.condition} » (connues : "
                         f"{', '.join(sorted(catalogue.conditions))})")
    problemes += [f"{where} : « pour » cite « {t} », qui ne déclenche pas ce parcours"
                  for t in e.pour if t not in p.declencheurs.tous]
    if e.destinataire == "proche" and p.priorite != "deces":
        problemes.append(f"{where} : le destinataire « proche » est réservé au parcours décès")
    if e.repli is not None:
        if e.action != "appel":
            problemes.append(f"{where} : un repli n'est possible que pour un appel")
        problemes += _verifier_canaux(e.repli.action, e.repli.canaux, f"{where}, repli")
    return problemes


def _verifier_ancre(e: Etape, p: Parcours, where: str, precedentes: list[str]) -> list[str]:
    date_ancre, problemes = e.ancre.date, []
    if date_ancre.startswith(PREFIXE_DATES):
        nom = date_ancre.removeprefix(PREFIXE_DATES)
        connues = dates_des_evenements(p.declencheurs.evenements)
        if nom not in connues:
            problemes.append(f"{where} : ancrée sur une date inconnue « {date_ancre} » (dates des "
                             f"déclencheurs : {', '.join(sorted(connues)) or 'aucune'})")
    elif date_ancre not in ANCRES_FIXES:
        problemes.append(f"{where} : ancrée sur une date inconnue « {date_ancre} » (attendu : "
                         f"{', '.join(ANCRES_FIXES)} ou dates.<nom>)")
    if e.apres is not None and e.apres not in precedentes:
        problemes.append(f"{where} : « apres » cite « {e.apres} », qui n'est pas une étape "
                         "antérieure du plan")
    if (e.apres is None) != (date_ancre != "realisation"):
        problemes.append(f"{where} : l'ancre « realisation » va avec « apres » (et seulement avec)")
    return problemes


def _verifier_canaux(action: str, canaux: tuple[str, ...], where: str) -> list[str]:
    problemes = _doublons("canal", list(canaux), where)
    requis = CANAL_REQUIS.get(action)
    if requis is not None and requis not in canaux:
        problemes.append(f"{where} : une action « {action} » exige le canal « {requis} »")
    return problemes


def dates_des_evenements(evenements: Iterable[str]) -> set[str]:
    """Names of the date fields (besides ``date_effet``) the given life events carry."""
    noms: set[str] = set()
    for ev in evenements:
        model = EVENT_MODELS.get(ev)
        if model is None:
            continue
        noms |= {nom for nom, champ in model.model_fields.items()
                 if nom != "date_effet" and _est_date(champ.annotation)}
    return noms


def _est_date(annotation: Any) -> bool:
    if annotation is Date:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return Date in get_args(annotation)
    return False

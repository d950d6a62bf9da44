"""The indicators, as pure functions of the facts (no I/O, no clock: ``now`` is a parameter).

Facts are the documents of :mod:`services.reporting.projections`. Every table is computed from
them at query time: the facts are the single source of truth, so a rebuild from the topics
gives the same figures, whatever order the topics are replayed in (joins across topics are
done here, not at write time, each within one person's facts). The facts are read person by
person into counts per Paris day and dimension values (``Cube``), from which each table is
read. Each table is a list of rows: a period (``jour``, ``semaine`` or ``mois``, Paris time),
the dimensions asked for (``par``), then its figures.

Definitions (also served at ``GET /v1/indicateurs``):

- **volumes**: counts per ``indicateur`` (and ``motif``): evenements-recus (life events,
  initial demands), signalements-recus (partners' referrals), corrections, dossiers-ouverts,
  dossiers-clos (motif = closure reason), orientations-refusees, actions-planifiees (motif =
  kind), actions-annulees (motif = reason), actions-envoyees, actions-ignorees (motif =
  reason), actions-echouees (motif = reason), taches-creees, appels (motif = call outcome),
  objectifs-atteints, evenements-rejetes (motif = reject code).
- **prise-en-charge-48h**: per case that has an action with a deadline (``echeance``, e.g.
  48 business hours for MisAS): the *first contact* is the first call outcome
  (``Resultat`` ``appel``, whatever the outcome: the agent took the case) of that case. In
  time when it happened at or before the earliest deadline. Cases still before their deadline
  without contact are *en cours* (not in the rate); cases whose deadline passed without
  contact are late; a case cancelled before any contact is left out. Time to first contact in
  business hours (shared/calendar.py) from the due time of the deadline's action; median and
  90th percentile (nearest rank).
- **deperdition**: closed cases; *sans issue* = closed for a reason other than
  ``objectif-atteint`` or ``plan-termine``; ``correction`` and ``deces`` closures are
  administrative and left out.
- **misas** (composite indicator, parcours ``renoncement-aux-soins``): over accompaniments
  ended in the period (cases closed, excluding ``correction``, where the person was reached
  at least once: a call outcome other than ``injoignable``/``refus``, or care done).
  A = ended with care done (closed ``objectif-atteint``, a ``Resultat`` ``objectif-atteint``,
  or a call outcome ``soins-realises``) or with digital inclusion (a call outcome or reason
  ``inclusion-numerique``); I = the others (interrupted); B = interrupted ones with an action
  on rights (a call outcome or reason in ``ACTIONS_DROITS``).
  ``indicateur = 0.7 × A/N + 0.3 × B/I`` (N = A + I); when I = 0 the second term is not
  defined and the indicator is A/N alone.
- **pertinence-detecteurs**: per detector, referrals (``origine = signalement``, initial),
  those that opened a case, those that became an accompaniment (a case of theirs where the
  person was reached or the goal reached); relevance = accompaniments / referrals.
- **conversion**: people sent the letter ``modele`` (first ``envoye`` per person), and those
  whose goal (a ``Demande`` whose ``evenement`` is ``objectif``, at its ``date_effet``, or a
  ``Resultat`` ``objectif-atteint`` of the letter's parcours) came within ``fenetre_mois``
  months after the letter, or later. Rate = converted within the window / people.
- **entonnoir**: initial demands → orientated (a case opened or updated) → contacted (an
  action sent or a person reached) → goal reached.
- **rejets**: rejects per code.
"""

from __future__ import annotations

import math
import statistics
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.reporting.projections import NON_RENSEIGNE
from shared.calendar import PARIS, is_business_day

Fact = dict[str, Any]
Row = dict[str, Any]

GRANULARITES = ("jour", "semaine", "mois")
DIMENSIONS = ("parcours", "detecteur", "departement", "commune", "canal")

MISAS_PARCOURS = "renoncement-aux-soins"
POIDS_SOINS, POIDS_DROITS = 0.7, 0.3
ISSUES_NON_JOINT = frozenset({"injoignable", "refus"})
SOINS_REALISES = frozenset({"soins-realises"})
INCLUSION_NUMERIQUE = frozenset({"inclusion-numerique"})
ACTIONS_DROITS = frozenset(
    {
        "droits-ouverts",
        "acces-aux-droits",
        "c2s-demandee",
        "affiliation",
        "complementaire-souscrite",
        "rendez-vous-droits",
    }
)
MOTIFS_ADMINISTRATIFS = frozenset({"correction", "deces"})
MOTIFS_AVEC_ISSUE = frozenset({"objectif-atteint", "plan-termine"})

CONVERSION_MODELE = "seniors-m9-complementaire"
CONVERSION_OBJECTIF = "complementaire-souscrite"
CONVERSION_FENETRE_MOIS = 4


@dataclass(frozen=True)
class Facts:
    demandes: list[Fact] = field(default_factory=list)
    decisions: list[Fact] = field(default_factory=list)
    actions: list[Fact] = field(default_factory=list)
    resultats: list[Fact] = field(default_factory=list)
    rejets: list[Fact] = field(default_factory=list)

    def size(self) -> int:
        return sum(len(getattr(self, name)) for name in FACT_KINDS)


FACT_KINDS = ("demandes", "decisions", "actions", "resultats", "rejets")
PERSON_FACTS = FACT_KINDS[:4]  # the facts of a person (a reject has none)


@dataclass(frozen=True)
class Filtre:
    du: date | None = None
    au: date | None = None
    granularite: str = "jour"
    par: tuple[str, ...] = ()
    valeurs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.granularite not in GRANULARITES:
            raise ValueError(f"granularite must be one of {GRANULARITES}")
        unknown = [d for d in (*self.par, *self.valeurs) if d not in DIMENSIONS]
        if unknown:
            raise ValueError(f"unknown dimension(s) {unknown}; expected among {DIMENSIONS}")


@dataclass(frozen=True)
class Unit:
    """One thing a table counts: when, its dimensions, the table's own key (volumes: the
    indicator and motif), the labels it is counted under, and a delay (48-hour table)."""

    le: datetime
    dims: dict[str, str | None]
    key: tuple[Any, ...] = ()
    labels: tuple[str, ...] = ()
    delai: float | None = None


# ------------------------------------------------------------------ time helpers


def paris_date(when: datetime) -> date:
    return when.astimezone(PARIS).date()


def period_key(when: datetime, granularite: str) -> str:
    return period_of_day(paris_date(when), granularite)


def period_of_day(d: date, granularite: str) -> str:
    if granularite == "jour":
        return d.isoformat()
    if granularite == "semaine":
        iso = d.isocalendar()
        return f"{iso.year}-S{iso.week:02d}"
    return f"{d.year:04d}-{d.month:02d}"


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def business_hours_between(start: datetime, end: datetime) -> float:
    """Business hours (whole business days, Paris time; shared/calendar.py) from start to end."""
    if end <= start:
        return 0.0
    total = timedelta(0)
    day = paris_date(start)
    last = paris_date(end)
    while day <= last:
        if is_business_day(day):
            lo = datetime.combine(day, time(0), tzinfo=PARIS).astimezone(UTC)
            hi = datetime.combine(day + timedelta(days=1), time(0), tzinfo=PARIS).astimezone(UTC)
            lo, hi = max(lo, start.astimezone(UTC)), min(hi, end.astimezone(UTC))
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total.total_seconds() / 3600


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in ]0, 100])."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


# ------------------------------------------------------------------ grouping


def _dims(
    parcours: Any = None,
    detecteur: Any = None,
    departement: Any = None,
    commune: Any = None,
    canal: Any = None,
) -> dict[str, str | None]:
    return {
        "parcours": parcours,
        "detecteur": detecteur,
        "departement": departement,
        "commune": commune,
        "canal": canal,
    }


def _head(key: tuple[Any, ...], f: Filtre) -> Row:
    row: Row = {"periode": key[0]}
    row.update({d: key[1 + n] for n, d in enumerate(f.par)})
    return row


def columns(table: str, f: Filtre) -> list[str]:
    return ["periode", *f.par, *TABLE_COLUMNS[table]]


# ------------------------------------------------------------------ joins


class Index:
    """Lookups across the facts (the joins no FerretDB query can do)."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.actions = {a["_id"]: a for a in facts.actions}
        self.resultats_par_dossier: dict[str, list[Fact]] = defaultdict(list)
        for r in facts.resultats:
            dossier = r.get("dossier_id") or self.actions.get(r.get("action_id") or "", {}).get(
                "dossier_id"
            )
            if dossier:
                self.resultats_par_dossier[dossier].append(r)
        self.decisions_par_dossier: dict[str, list[Fact]] = defaultdict(list)
        self.decisions_par_demande: dict[str, list[Fact]] = defaultdict(list)
        for d in sorted(facts.decisions, key=lambda d: (d["le"], d["_id"])):
            if d.get("dossier_id"):
                self.decisions_par_dossier[d["dossier_id"]].append(d)
            self.decisions_par_demande[d["demande_id"]].append(d)

    def result_dims(self, r: Fact) -> dict[str, str | None]:
        a = self.actions.get(r.get("action_id") or "", {})
        return _dims(
            r.get("parcours") or a.get("parcours"),
            a.get("detecteur"),
            a.get("departement"),
            a.get("commune"),
            r.get("canal") or a.get("canal"),
        )

    def reached(self, dossier_id: str) -> bool:
        return any(_reached(r) for r in self.resultats_par_dossier.get(dossier_id, ()))

    def goal_reached(self, dossier_id: str) -> bool:
        if any(
            d["statut"] == "clos" and d.get("motif_cloture") == "objectif-atteint"
            for d in self.decisions_par_dossier.get(dossier_id, ())
        ):
            return True
        return any(
            r["statut"] == "objectif-atteint"
            for r in self.resultats_par_dossier.get(dossier_id, ())
        )

    def contacted(self, dossier_id: str) -> bool:
        return any(
            r["statut"] == "envoye" or _reached(r)
            for r in self.resultats_par_dossier.get(dossier_id, ())
        )

    def opened(self, demande_id: str) -> list[Fact]:
        """The decisions that opened or updated a case for this demand, in time order."""
        return [
            x
            for x in self.decisions_par_demande.get(demande_id, ())
            if x["statut"] in ("ouvert", "mis-a-jour") and x.get("dossier_id")
        ]

    def closure(self, dossier_id: str) -> Fact | None:
        closes = [
            d for d in self.decisions_par_dossier.get(dossier_id, ()) if d["statut"] == "clos"
        ]
        return closes[0] if closes else None


def _reached(r: Fact) -> bool:
    return (
        r["statut"] == "appel" and (r.get("issue_appel") or "injoignable") not in ISSUES_NON_JOINT
    )


def _codes(r: Fact) -> set[str]:
    return {c for c in (r.get("issue_appel"), r.get("raison")) if c}


# ------------------------------------------------------------------ units, per table
#
# Each table counts *units* (a fact, a case, a demand, a person's letter), each made from one
# person's facts: every join (an outcome to its action, a case to its decisions and outcomes, a
# demand to its decisions, a letter to a later goal) stays within one person. So the units can
# be made person by person, from a stream of the store, and the facts dropped as soon as their
# person is done (Cube below).


def _volumes(facts: Facts, ix: Index, cube: Cube) -> Iterator[Unit]:
    def unit(
        le: datetime | None, dims: dict[str, str | None], indicateur: str, motif: str | None
    ) -> Iterator[Unit]:
        if le is not None:
            yield Unit(le, dims, (indicateur, motif or ""))

    for d in facts.demandes:
        dims = _dims(None, d.get("detecteur"), d.get("departement"), d.get("commune"))
        if d["nature"] != "initial":
            yield from unit(d["recu_le"], dims, "corrections", d["nature"])
        elif d["origine"] == "signalement":
            yield from unit(d["recu_le"], dims, "signalements-recus", d.get("situation"))
        else:
            yield from unit(d["recu_le"], dims, "evenements-recus", d["evenement"])
    for d in facts.decisions:
        dims = _dims(d.get("parcours"), d.get("detecteur"), d.get("departement"), d.get("commune"))
        name = {
            "ouvert": "dossiers-ouverts",
            "clos": "dossiers-clos",
            "refuse": "orientations-refusees",
        }.get(d["statut"])
        if name:
            motif = d.get("motif_cloture") if d["statut"] == "clos" else None
            yield from unit(d["le"], dims, name, motif)
    for a in facts.actions:
        dims = _dims(
            a.get("parcours"),
            a.get("detecteur"),
            a.get("departement"),
            a.get("commune"),
            a.get("canal"),
        )
        yield from unit(a.get("planifiee_le"), dims, "actions-planifiees", a.get("kind"))
        yield from unit(a.get("annulee_le"), dims, "actions-annulees", a.get("raison_annulation"))
    for r in facts.resultats:
        name, motif = {
            "envoye": ("actions-envoyees", None),
            "ignore": ("actions-ignorees", r.get("raison")),
            "echec": ("actions-echouees", r.get("raison")),
            "tache-creee": ("taches-creees", None),
            "appel": ("appels", r.get("issue_appel")),
            "objectif-atteint": ("objectifs-atteints", None),
        }[r["statut"]]
        yield from unit(r["survenu_le"], ix.result_dims(r), name, motif)
    for j in facts.rejets:
        yield from unit(j["rejete_le"], _dims(), "evenements-rejetes", j["code"])


def _rejets(facts: Facts, ix: Index, cube: Cube) -> Iterator[Unit]:
    for j in facts.rejets:
        yield Unit(j["rejete_le"], _dims(), (j["code"],))


def _prise_en_charge_48h(facts: Facts, ix: Index, cube: Cube) -> Iterator[Unit]:
    par_dossier: dict[str, list[Fact]] = defaultdict(list)
    for a in facts.actions:
        if a.get("echeance") and a.get("dossier_id") and a.get("due_le"):
            par_dossier[a["dossier_id"]].append(a)
    for dossier_id, actions in par_dossier.items():
        first = min(actions, key=lambda a: (a["echeance"], a["_id"]))
        calls = sorted(
            r["survenu_le"]
            for r in ix.resultats_par_dossier.get(dossier_id, ())
            if r["statut"] == "appel"
        )
        contact = calls[0] if calls else None
        cancelled = first.get("annulee_le")
        if contact is None and cancelled is not None and cancelled <= first["echeance"]:
            continue  # cancelled before its deadline (death, refusal...): nothing was owed
        if contact is not None:
            etat = "dans-les-delais" if contact <= first["echeance"] else "hors-delai"
        else:
            etat = "en-cours" if cube.now <= first["echeance"] else "hors-delai"
        yield Unit(
            first["due_le"],
            _dims(
                first.get("parcours"),
                first.get("detecteur"),
                first.get("departement"),
                first.get("commune"),
                first.get("canal"),
            ),
            labels=(etat,),
            delai=business_hours_between(first["due_le"], contact) if contact else None,
        )


def _deperdition(facts: Facts, ix: Index, cube: Cube) -> Iterator[Unit]:
    for d in facts.decisions:
        if d["statut"] != "clos" or d.get("motif_cloture") in MOTIFS_ADMINISTRATIFS:
            continue
        yield Unit(
            d["le"],
            _dims(d.get("parcours"), d.get("detecteur"), d.get("departement"), d.get("commune")),
            labels=(str(d.get("motif_cloture")),),
        )


def misas_classify(closure: Fact, resultats: list[Fact]) -> str | None:
    """``soins-ou-inclusion`` (A), ``interrompu-avec-droits`` (B), ``interrompu`` (I - B), or
    None when the case is not an accompaniment (the person was never reached)."""
    codes = set().union(*(_codes(r) for r in resultats)) if resultats else set()
    care = (
        closure.get("motif_cloture") == "objectif-atteint"
        or any(r["statut"] == "objectif-atteint" for r in resultats)
        or bool(codes & SOINS_REALISES)
    )
    if care or codes & INCLUSION_NUMERIQUE:
        return "soins-ou-inclusion"
    if not any(_reached(r) for r in resultats):
        return None
    return "interrompu-avec-droits" if codes & ACTIONS_DROITS else "interrompu"


def misas_composite(a: int, i: int, b: int) -> float | None:
    n = a + i
    if n == 0:
        return None
    if i == 0:
        return round(a / n, 4)
    return round(POIDS_SOINS * a / n + POIDS_DROITS * b / i, 4)


def _misas(facts: Facts, ix: Index, cube: Cube) -> Iterator[Unit]:
    for dossier_id in ix.decisions_par_dossier:
        closure = ix.closure(dossier_id)
        if (
            closure is None
            or closure.get("parcours") != MISAS_PARCOURS
            or closure.get("motif_cloture") == "correction"
        ):
            continue
        kind = misas_classify(closure, ix.resultats_par_dossier.get(dossier_id, []))
        if kind is None:
            continue
        yield Unit(
            closure["le"],
            _dims(
                closure.get("parcours"),
                closure.get("detecteur"),
                closure.get("departement"),
                closure.get("commune"),
                "telephone",
            ),
            labels=(kind,),
        )


def _pertinence_detecteurs(facts: Facts, ix: Index, cube: Cube) -> Iterator[Unit]:
    for d in facts.demandes:
        if d["origine"] != "signalement" or d["nature"] != "initial":
            continue
        dossiers, dims = _cases_of(d, ix)
        accompagne = any(ix.reached(x) or ix.goal_reached(x) for x in dossiers)
        yield Unit(d["recu_le"], dims, labels=_flags(ouvert=bool(dossiers), accompagne=accompagne))


def _conversion(facts: Facts, ix: Index, cube: Cube) -> Iterator[Unit]:
    modele, objectif, fenetre_mois = cube.conversion
    letters: dict[str, tuple[datetime, Fact, Fact]] = {}
    for r in facts.resultats:
        a = ix.actions.get(r.get("action_id") or "")
        if r["statut"] != "envoye" or a is None or a.get("modele") != modele:
            continue
        seen = letters.get(r["pseudonyme"])
        if seen is None or (r["survenu_le"], r["_id"]) < (seen[0], seen[1]["_id"]):
            letters[r["pseudonyme"]] = (r["survenu_le"], r, a)
    goals: dict[str, list[tuple[date, str | None]]] = defaultdict(list)
    for d in facts.demandes:
        if d["evenement"] == objectif and d["nature"] == "initial":
            goals[d["pseudonyme"]].append((date.fromisoformat(d["date_effet"]), None))
    for r in facts.resultats:
        if r["statut"] == "objectif-atteint":
            goals[r["pseudonyme"]].append((paris_date(r["survenu_le"]), r.get("parcours")))
    today = paris_date(cube.now)
    for pseudonyme, (sent, r, a) in letters.items():
        day = paris_date(sent)
        end = add_months(day, fenetre_mois)
        after = sorted(
            g
            for g, parcours in goals.get(pseudonyme, ())
            if g >= day and parcours in (None, a.get("parcours"))
        )
        etat = (
            "dans-la-fenetre"
            if after and after[0] <= end
            else "apres-la-fenetre"
            if after
            else "non-converti"
        )
        yield Unit(
            sent,
            _dims(
                a.get("parcours"),
                a.get("detecteur"),
                a.get("departement"),
                a.get("commune"),
                r.get("canal") or a.get("canal"),
            ),
            labels=(etat, *_flags(ouverte=today <= end)),
        )


def _entonnoir(facts: Facts, ix: Index, cube: Cube) -> Iterator[Unit]:
    for d in facts.demandes:
        if d["nature"] != "initial":
            continue
        dossiers, dims = _cases_of(d, ix)
        yield Unit(
            d["recu_le"],
            dims,
            labels=_flags(
                oriente=bool(dossiers),
                contacte=any(ix.contacted(x) for x in dossiers),
                objectif=any(ix.goal_reached(x) for x in dossiers),
            ),
        )


def _cases_of(d: Fact, ix: Index) -> tuple[set[str], dict[str, str | None]]:
    """A demand's cases (those its decisions opened or updated) and the dimensions it is
    counted under (the parcours of the first of them)."""
    opened = ix.opened(d["_id"])
    parcours = opened[0]["parcours"] if opened else None
    dims = _dims(parcours, d.get("detecteur"), d.get("departement"), d.get("commune"))
    return {x["dossier_id"] for x in opened}, dims


def _flags(**flags: bool) -> tuple[str, ...]:
    return tuple(name for name, on in flags.items() if on)


# ------------------------------------------------------------------ rows, per table


def _row_volumes(head: Row, extra: tuple[Any, ...], c: Cell, cube: Cube) -> Row:
    return {**head, "indicateur": extra[0], "motif": extra[1], "valeur": c.n}


def _row_rejets(head: Row, extra: tuple[Any, ...], c: Cell, cube: Cube) -> Row:
    return {**head, "code": extra[0], "valeur": c.n}


def _row_prise_en_charge_48h(head: Row, extra: tuple[Any, ...], c: Cell, cube: Cube) -> Row:
    dus = c.n - c.count("en-cours")
    ok = c.count("dans-les-delais")
    delais = list(c.delais or ())
    return {
        **head,
        "prises_en_charge_dues": dus,
        "dans_les_delais": ok,
        "hors_delai": dus - ok,
        "en_cours": c.n - dus,
        "taux_48h": ratio(ok, dus),
        "delai_median_heures_ouvrees": _round(statistics.median(delais) if delais else None),
        "delai_p90_heures_ouvrees": _round(percentile(delais, 90)),
    }


def _row_deperdition(head: Row, extra: tuple[Any, ...], c: Cell, cube: Cube) -> Row:
    atteint, termine = c.count("objectif-atteint"), c.count("plan-termine")
    sans = c.n - atteint - termine
    return {
        **head,
        "dossiers_clos": c.n,
        "objectif_atteint": atteint,
        "plan_termine": termine,
        "sans_issue": sans,
        "taux_deperdition": ratio(sans, c.n),
    }


def _row_misas(head: Row, extra: tuple[Any, ...], c: Cell, cube: Cube) -> Row:
    a, b = c.count("soins-ou-inclusion"), c.count("interrompu-avec-droits")
    i = c.n - a
    return {
        **head,
        "accompagnements_termines": c.n,
        "avec_soins_ou_inclusion": a,
        "interrompus": i,
        "interrompus_avec_droits": b,
        "taux_soins": ratio(a, c.n),
        "taux_droits": ratio(b, i),
        "indicateur_composite": misas_composite(a, i, b),
    }


def _row_pertinence_detecteurs(head: Row, extra: tuple[Any, ...], c: Cell, cube: Cube) -> Row:
    acc = c.count("accompagne")
    return {
        **head,
        "saisines": c.n,
        "dossiers_ouverts": c.count("ouvert"),
        "accompagnements": acc,
        "taux_pertinence": ratio(acc, c.n),
    }


def _row_conversion(head: Row, extra: tuple[Any, ...], c: Cell, cube: Cube) -> Row:
    modele, objectif, fenetre_mois = cube.conversion
    dans = c.count("dans-la-fenetre")
    return {
        **head,
        "modele": modele,
        "objectif": objectif,
        "fenetre_mois": fenetre_mois,
        "personnes": c.n,
        "converties_dans_la_fenetre": dans,
        "converties_apres_la_fenetre": c.count("apres-la-fenetre"),
        "fenetres_en_cours": c.count("ouverte"),
        "taux_conversion": ratio(dans, c.n),
    }


def _row_entonnoir(head: Row, extra: tuple[Any, ...], c: Cell, cube: Cube) -> Row:
    return {
        **head,
        "demandes": c.n,
        "orientees": c.count("oriente"),
        "contactees": c.count("contacte"),
        "objectif_atteint": c.count("objectif"),
    }


# ------------------------------------------------------------------ the cube


class Cell:
    """What a table keeps of its units of one Paris day, one value of each dimension and one
    key: how many, how many carried each label, and (48-hour table) the delays."""

    __slots__ = ("counts", "delais", "n")

    def __init__(self) -> None:
        self.n = 0
        self.counts: dict[str, int] = {}
        self.delais: array[float] | None = None

    def add(self, u: Unit) -> None:
        self.n += 1
        for label in u.labels:
            self.counts[label] = self.counts.get(label, 0) + 1
        if u.delai is not None:
            if self.delais is None:
                self.delais = array("d")
            self.delais.append(u.delai)

    def merge(self, other: Cell) -> None:
        self.n += other.n
        for label, k in other.counts.items():
            self.counts[label] = self.counts.get(label, 0) + k
        if other.delais is not None:
            if self.delais is None:
                self.delais = array("d")
            self.delais.extend(other.delais)

    def count(self, label: str) -> int:
        return self.counts.get(label, 0)


CellKey = tuple[date, tuple[str, ...], tuple[Any, ...]]


class Cube:
    """Every table's units, kept as counts per (Paris day, the five dimensions, the table's
    key): made person by person (``add_person``) or reject by reject (``add_rejet``), then
    read for any filter (``rows``: a period is a set of days, a breakdown a subset of the
    dimensions). What it holds grows with the distinct days and dimension values, not with the
    facts behind them (plus one number per case with a first contact, for the delays).

    ``now`` is when the units were made (a case before its deadline without contact is
    ``en-cours``, a conversion window still open): the figures are those of that moment."""

    def __init__(
        self,
        now: datetime,
        conversion: tuple[str, str, int] = (
            CONVERSION_MODELE,
            CONVERSION_OBJECTIF,
            CONVERSION_FENETRE_MOIS,
        ),
        tables: Iterable[str] | None = None,
    ) -> None:
        self.now = now
        self.conversion = conversion
        self.cells: dict[str, dict[CellKey, Cell]] = {t: {} for t in (tables or TABLES)}
        self.persons = 0
        self.facts = 0

    def add_person(self, facts: Facts) -> None:
        """One person's facts (or any set of persons' facts: the joins need only that each
        person's facts come together)."""
        self._add_facts(facts)
        self.persons += 1

    def add_rejet(self, rejet: Fact) -> None:
        self._add_facts(Facts(rejets=[rejet]))

    def _add_facts(self, facts: Facts) -> None:
        ix = Index(facts)
        for table, cells in self.cells.items():
            for u in TABLES[table].units(facts, ix, self):
                self._add(cells, u)
        self.facts += facts.size()

    @staticmethod
    def _add(cells: dict[CellKey, Cell], u: Unit) -> None:
        key = (
            paris_date(u.le),
            tuple((u.dims.get(d) or NON_RENSEIGNE) for d in DIMENSIONS),
            u.key,
        )
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell()
        cell.add(u)

    def size(self) -> int:
        return sum(len(cells) for cells in self.cells.values())

    def rows(self, table: str, f: Filtre) -> list[Row]:
        at = [DIMENSIONS.index(d) for d in f.par]
        wanted = [(DIMENSIONS.index(d), v) for d, v in f.valeurs.items()]
        periods: dict[date, str] = {}
        groups: dict[tuple[Any, ...], Cell] = {}
        for (day, dims, extra), cell in self.cells[table].items():
            if (f.du and day < f.du) or (f.au and day > f.au):
                continue
            if any(dims[k] != v for k, v in wanted):
                continue
            period = periods.get(day)
            if period is None:
                period = periods[day] = period_of_day(day, f.granularite)
            key = (period, *(dims[k] for k in at), *extra)
            group = groups.get(key)
            if group is None:
                group = groups[key] = Cell()
            group.merge(cell)
        row = TABLES[table].row
        return [
            row(_head(key, f), key[1 + len(f.par) :], group, self)
            for key, group in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
        ]


@dataclass(frozen=True)
class Table:
    units: Callable[[Facts, Index, Cube], Iterator[Unit]]
    row: Callable[[Row, tuple[Any, ...], Cell, Cube], Row]


def by_person(facts: Facts) -> Iterator[Facts]:
    """The facts of each person (by pseudonym); the rejects (no person) are not in them."""
    persons: dict[Any, dict[str, list[Fact]]] = defaultdict(lambda: defaultdict(list))
    for name in PERSON_FACTS:
        for fact in getattr(facts, name):
            persons[fact.get("pseudonyme")][name].append(fact)
    for lists in persons.values():
        yield Facts(**lists)


def cube_of(
    facts: Facts,
    now: datetime,
    *,
    modele: str = CONVERSION_MODELE,
    objectif: str = CONVERSION_OBJECTIF,
    fenetre_mois: int = CONVERSION_FENETRE_MOIS,
) -> Cube:
    cube = Cube(now, (modele, objectif, fenetre_mois))
    for one in by_person(facts):
        cube.add_person(one)
    for rejet in facts.rejets:
        cube.add_rejet(rejet)
    return cube


def _round(x: float | None) -> float | None:
    return round(x, 2) if x is not None else None


TABLES: dict[str, Table] = {
    "volumes": Table(_volumes, _row_volumes),
    "rejets": Table(_rejets, _row_rejets),
    "prise-en-charge-48h": Table(_prise_en_charge_48h, _row_prise_en_charge_48h),
    "deperdition": Table(_deperdition, _row_deperdition),
    "misas": Table(_misas, _row_misas),
    "pertinence-detecteurs": Table(_pertinence_detecteurs, _row_pertinence_detecteurs),
    "conversion": Table(_conversion, _row_conversion),
    "entonnoir": Table(_entonnoir, _row_entonnoir),
}

TABLE_COLUMNS: dict[str, list[str]] = {
    "volumes": ["indicateur", "motif", "valeur"],
    "rejets": ["code", "valeur"],
    "prise-en-charge-48h": [
        "prises_en_charge_dues",
        "dans_les_delais",
        "hors_delai",
        "en_cours",
        "taux_48h",
        "delai_median_heures_ouvrees",
        "delai_p90_heures_ouvrees",
    ],
    "deperdition": [
        "dossiers_clos",
        "objectif_atteint",
        "plan_termine",
        "sans_issue",
        "taux_deperdition",
    ],
    "misas": [
        "accompagnements_termines",
        "avec_soins_ou_inclusion",
        "interrompus",
        "interrompus_avec_droits",
        "taux_soins",
        "taux_droits",
        "indicateur_composite",
    ],
    "pertinence-detecteurs": ["saisines", "dossiers_ouverts", "accompagnements", "taux_pertinence"],
    "conversion": [
        "modele",
        "objectif",
        "fenetre_mois",
        "personnes",
        "converties_dans_la_fenetre",
        "converties_apres_la_fenetre",
        "fenetres_en_cours",
        "taux_conversion",
    ],
    "entonnoir": ["demandes", "orientees", "contactees", "objectif_atteint"],
}

TABLE_TITLES: dict[str, str] = {
    "volumes": "Volumes : événements reçus, signalements, dossiers, actions, rejets",
    "rejets": "Événements rejetés par motif",
    "prise-en-charge-48h": "Prise en charge sous 48 heures ouvrées et délai du premier contact",
    "deperdition": "Déperdition : dossiers clos sans issue",
    "misas": "Indicateur composite MisAS (70 % soins réalisés / inclusion numérique, "
    "30 % accompagnements interrompus avec actions sur les droits)",
    "pertinence-detecteurs": "Pertinence des saisines par détecteur",
    "conversion": "Conversion : objectif atteint dans la fenêtre après le courrier",
    "entonnoir": "Entonnoir : demande → orientation → contact → objectif",
}


def compute(table: str, facts: Facts, f: Filtre, now: datetime, **params: Any) -> list[Row]:
    """One table from facts in memory (the service reads a cube made from a stream of its
    store: ``ReportingStore.fill``)."""
    return cube_of(facts, now, **params).rows(table, f)


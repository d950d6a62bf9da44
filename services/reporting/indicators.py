"""The indicators, as pure functions of the facts (no I/O, no clock: ``now`` is a parameter).

Facts are the documents of :mod:`services.reporting.projections`. Every table is computed from
them at query time: the facts are the single source of truth, so a rebuild from the topics
gives the same figures, whatever order the topics are replayed in (joins across topics are
done here, not at write time). Each table is a list of rows: a period (``jour``, ``semaine``
or ``mois``, Paris time), the dimensions asked for (``par``), then its figures.

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
from collections import defaultdict
from collections.abc import Callable, Iterable
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
    """One thing counted: when, its dimensions, and what the table needs to know of it."""

    le: datetime
    dims: dict[str, str | None]
    data: dict[str, Any]


# ------------------------------------------------------------------ time helpers


def paris_date(when: datetime) -> date:
    return when.astimezone(PARIS).date()


def period_key(when: datetime, granularite: str) -> str:
    d = paris_date(when)
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


def _selected(units: Iterable[Unit], f: Filtre) -> Iterable[Unit]:
    for u in units:
        d = paris_date(u.le)
        if (f.du and d < f.du) or (f.au and d > f.au):
            continue
        if any((u.dims.get(k) or NON_RENSEIGNE) != v for k, v in f.valeurs.items()):
            continue
        yield u


def _grouped(
    units: Iterable[Unit], f: Filtre, extra: Callable[[Unit], tuple[Any, ...]] = lambda u: ()
) -> dict[tuple[Any, ...], list[Unit]]:
    groups: dict[tuple[Any, ...], list[Unit]] = defaultdict(list)
    for u in _selected(units, f):
        key = (
            period_key(u.le, f.granularite),
            *((u.dims.get(d) or NON_RENSEIGNE) for d in f.par),
            *extra(u),
        )
        groups[key].append(u)
    return dict(sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])))


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


# ------------------------------------------------------------------ tables


def volumes(facts: Facts, f: Filtre, now: datetime, **_: Any) -> list[Row]:
    ix = Index(facts)
    units: list[Unit] = []

    def add(
        le: datetime | None, dims: dict[str, str | None], indicateur: str, motif: str | None
    ) -> None:
        if le is not None:
            units.append(Unit(le, dims, {"indicateur": indicateur, "motif": motif or ""}))

    for d in facts.demandes:
        dims = _dims(None, d.get("detecteur"), d.get("departement"), d.get("commune"))
        if d["nature"] != "initial":
            add(d["recu_le"], dims, "corrections", d["nature"])
        elif d["origine"] == "signalement":
            add(d["recu_le"], dims, "signalements-recus", d.get("situation"))
        else:
            add(d["recu_le"], dims, "evenements-recus", d["evenement"])
    for d in facts.decisions:
        dims = _dims(d.get("parcours"), d.get("detecteur"), d.get("departement"), d.get("commune"))
        name = {
            "ouvert": "dossiers-ouverts",
            "clos": "dossiers-clos",
            "refuse": "orientations-refusees",
        }.get(d["statut"])
        if name:
            add(d["le"], dims, name, d.get("motif_cloture") if d["statut"] == "clos" else None)
    for a in facts.actions:
        dims = _dims(
            a.get("parcours"),
            a.get("detecteur"),
            a.get("departement"),
            a.get("commune"),
            a.get("canal"),
        )
        add(a.get("planifiee_le"), dims, "actions-planifiees", a.get("kind"))
        add(a.get("annulee_le"), dims, "actions-annulees", a.get("raison_annulation"))
    for r in facts.resultats:
        name, motif = {
            "envoye": ("actions-envoyees", None),
            "ignore": ("actions-ignorees", r.get("raison")),
            "echec": ("actions-echouees", r.get("raison")),
            "tache-creee": ("taches-creees", None),
            "appel": ("appels", r.get("issue_appel")),
            "objectif-atteint": ("objectifs-atteints", None),
        }[r["statut"]]
        add(r["survenu_le"], ix.result_dims(r), name, motif)
    for j in facts.rejets:
        add(j["rejete_le"], _dims(), "evenements-rejetes", j["code"])

    rows = []
    for key, group in _grouped(units, f, lambda u: (u.data["indicateur"], u.data["motif"])).items():
        rows.append(
            {**_head(key, f), "indicateur": key[-2], "motif": key[-1], "valeur": len(group)}
        )
    return rows


def rejets(facts: Facts, f: Filtre, now: datetime, **_: Any) -> list[Row]:
    units = [Unit(j["rejete_le"], _dims(), {"code": j["code"]}) for j in facts.rejets]
    return [
        {**_head(k, f), "code": k[-1], "valeur": len(g)}
        for k, g in _grouped(units, f, lambda u: (u.data["code"],)).items()
    ]


def prise_en_charge_48h(facts: Facts, f: Filtre, now: datetime, **_: Any) -> list[Row]:
    ix = Index(facts)
    par_dossier: dict[str, list[Fact]] = defaultdict(list)
    for a in facts.actions:
        if a.get("echeance") and a.get("dossier_id") and a.get("due_le"):
            par_dossier[a["dossier_id"]].append(a)
    units = []
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
            etat = "en-cours" if now <= first["echeance"] else "hors-delai"
        delai = business_hours_between(first["due_le"], contact) if contact else None
        units.append(
            Unit(
                first["due_le"],
                _dims(
                    first.get("parcours"),
                    first.get("detecteur"),
                    first.get("departement"),
                    first.get("commune"),
                    first.get("canal"),
                ),
                {"etat": etat, "delai": delai},
            )
        )
    rows = []
    for key, group in _grouped(units, f).items():
        dus = [u for u in group if u.data["etat"] != "en-cours"]
        ok = sum(1 for u in dus if u.data["etat"] == "dans-les-delais")
        delais = [u.data["delai"] for u in group if u.data["delai"] is not None]
        rows.append(
            {
                **_head(key, f),
                "prises_en_charge_dues": len(dus),
                "dans_les_delais": ok,
                "hors_delai": len(dus) - ok,
                "en_cours": len(group) - len(dus),
                "taux_48h": ratio(ok, len(dus)),
                "delai_median_heures_ouvrees": _round(
                    statistics.median(delais) if delais else None
                ),
                "delai_p90_heures_ouvrees": _round(percentile(delais, 90)),
            }
        )
    return rows


def deperdition(facts: Facts, f: Filtre, now: datetime, **_: Any) -> list[Row]:
    units = []
    for d in facts.decisions:
        if d["statut"] != "clos" or d.get("motif_cloture") in MOTIFS_ADMINISTRATIFS:
            continue
        units.append(
            Unit(
                d["le"],
                _dims(
                    d.get("parcours"), d.get("detecteur"), d.get("departement"), d.get("commune")
                ),
                {"motif": d.get("motif_cloture")},
            )
        )
    rows = []
    for key, group in _grouped(units, f).items():
        atteint = sum(1 for u in group if u.data["motif"] == "objectif-atteint")
        termine = sum(1 for u in group if u.data["motif"] == "plan-termine")
        sans = len(group) - atteint - termine
        rows.append(
            {
                **_head(key, f),
                "dossiers_clos": len(group),
                "objectif_atteint": atteint,
                "plan_termine": termine,
                "sans_issue": sans,
                "taux_deperdition": ratio(sans, len(group)),
            }
        )
    return rows


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


def misas(facts: Facts, f: Filtre, now: datetime, **_: Any) -> list[Row]:
    ix = Index(facts)
    units = []
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
        units.append(
            Unit(
                closure["le"],
                _dims(
                    closure.get("parcours"),
                    closure.get("detecteur"),
                    closure.get("departement"),
                    closure.get("commune"),
                    "telephone",
                ),
                {"kind": kind},
            )
        )
    rows = []
    for key, group in _grouped(units, f).items():
        a = sum(1 for u in group if u.data["kind"] == "soins-ou-inclusion")
        b = sum(1 for u in group if u.data["kind"] == "interrompu-avec-droits")
        i = len(group) - a
        rows.append(
            {
                **_head(key, f),
                "accompagnements_termines": len(group),
                "avec_soins_ou_inclusion": a,
                "interrompus": i,
                "interrompus_avec_droits": b,
                "taux_soins": ratio(a, len(group)),
                "taux_droits": ratio(b, i),
                "indicateur_composite": misas_composite(a, i, b),
            }
        )
    return rows


def pertinence_detecteurs(facts: Facts, f: Filtre, now: datetime, **_: Any) -> list[Row]:
    ix = Index(facts)
    units = []
    for d in facts.demandes:
        if d["origine"] != "signalement" or d["nature"] != "initial":
            continue
        opened = [
            x
            for x in ix.decisions_par_demande.get(d["_id"], ())
            if x["statut"] in ("ouvert", "mis-a-jour") and x.get("dossier_id")
        ]
        dossiers = {x["dossier_id"] for x in opened}
        accompagne = any(ix.reached(x) or ix.goal_reached(x) for x in dossiers)
        units.append(
            Unit(
                d["recu_le"],
                _dims(
                    opened[0]["parcours"] if opened else None,
                    d.get("detecteur"),
                    d.get("departement"),
                    d.get("commune"),
                ),
                {"ouvert": bool(dossiers), "accompagne": accompagne},
            )
        )
    rows = []
    for key, group in _grouped(units, f).items():
        ouverts = sum(1 for u in group if u.data["ouvert"])
        acc = sum(1 for u in group if u.data["accompagne"])
        rows.append(
            {
                **_head(key, f),
                "saisines": len(group),
                "dossiers_ouverts": ouverts,
                "accompagnements": acc,
                "taux_pertinence": ratio(acc, len(group)),
            }
        )
    return rows


def conversion(
    facts: Facts,
    f: Filtre,
    now: datetime,
    *,
    modele: str = CONVERSION_MODELE,
    objectif: str = CONVERSION_OBJECTIF,
    fenetre_mois: int = CONVERSION_FENETRE_MOIS,
    **_: Any,
) -> list[Row]:
    ix = Index(facts)
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
    units = []
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
        units.append(
            Unit(
                sent,
                _dims(
                    a.get("parcours"),
                    a.get("detecteur"),
                    a.get("departement"),
                    a.get("commune"),
                    r.get("canal") or a.get("canal"),
                ),
                {"etat": etat, "ouverte": paris_date(now) <= end},
            )
        )
    rows = []
    for key, group in _grouped(units, f).items():
        dans = sum(1 for u in group if u.data["etat"] == "dans-la-fenetre")
        apres = sum(1 for u in group if u.data["etat"] == "apres-la-fenetre")
        rows.append(
            {
                **_head(key, f),
                "modele": modele,
                "objectif": objectif,
                "fenetre_mois": fenetre_mois,
                "personnes": len(group),
                "converties_dans_la_fenetre": dans,
                "converties_apres_la_fenetre": apres,
                "fenetres_en_cours": sum(1 for u in group if u.data["ouverte"]),
                "taux_conversion": ratio(dans, len(group)),
            }
        )
    return rows


def entonnoir(facts: Facts, f: Filtre, now: datetime, **_: Any) -> list[Row]:
    ix = Index(facts)
    units = []
    for d in facts.demandes:
        if d["nature"] != "initial":
            continue
        opened = [
            x
            for x in ix.decisions_par_demande.get(d["_id"], ())
            if x["statut"] in ("ouvert", "mis-a-jour") and x.get("dossier_id")
        ]
        dossiers = {x["dossier_id"] for x in opened}
        units.append(
            Unit(
                d["recu_le"],
                _dims(
                    opened[0]["parcours"] if opened else None,
                    d.get("detecteur"),
                    d.get("departement"),
                    d.get("commune"),
                ),
                {
                    "oriente": bool(dossiers),
                    "contacte": any(ix.contacted(x) for x in dossiers),
                    "objectif": any(ix.goal_reached(x) for x in dossiers),
                },
            )
        )
    rows = []
    for key, group in _grouped(units, f).items():
        rows.append(
            {
                **_head(key, f),
                "demandes": len(group),
                "orientees": sum(1 for u in group if u.data["oriente"]),
                "contactees": sum(1 for u in group if u.data["contacte"]),
                "objectif_atteint": sum(1 for u in group if u.data["objectif"]),
            }
        )
    return rows


def _round(x: float | None) -> float | None:
    return round(x, 2) if x is not None else None


TABLES: dict[str, Callable[..., list[Row]]] = {
    "volumes": volumes,
    "rejets": rejets,
    "prise-en-charge-48h": prise_en_charge_48h,
    "deperdition": deperdition,
    "misas": misas,
    "pertinence-detecteurs": pertinence_detecteurs,
    "conversion": conversion,
    "entonnoir": entonnoir,
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
    return TABLES[table](facts, f, now, **params)

"""Orientation's decisions, as pure functions (STYLE.md §4: functional core).

No I/O and no clock: every function takes what it needs (the person's stored context, the
demand or the outcome, the catalogue, ``now``) and returns an :class:`Outcome`: the person's
new context and what to publish. The shell stores ``Outcome.contexte`` (one document per
person, written by its single consumer) and then publishes the actions and decisions.

Idempotence (ARCHITECTURE.md rule 4): every id is derived from what caused it
(``shared.ids.derive_id``), and the context keeps a journal of the causes already processed.
A redelivered demand or outcome changes nothing and re-publishes the same messages
(``Outcome.rejoue``).

Precedence between parcours: deces > securite > echeance-legale > information. Two contacts of
different cases to the same recipient due within ``merge_window_days`` of each other are
merged: the lower-precedence one is cancelled, or never published, and both cases' decisions
say so. A mandatory step is never merged away.

Business hours (the 48-hour hand-over) come from ``shared.calendar.add_business_hours``: whole
business days, midnight to midnight in Paris, skipping weekends and French public holidays,
the same arithmetic signalement uses for the deadline it gives the partner.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.orientation.catalogue import (
    EVENEMENT_DECES,
    PRECEDENCE,
    PREFIXE_DATES,
    Ancre,
    Catalogue,
    ClassePriorite,
    Decalage,
    Etape,
    Parcours,
)
from shared.calendar import PARIS, add_business_hours
from shared.contracts.internes import (
    ActionAnnulee,
    ActionKind,
    ActionPlanifiee,
    Canal,
    Decision,
    Demande,
    Detecteur,
    Resultat,
    Territoire,
)
from shared.ids import derive_id

StatutAction = Literal["planifiee", "realisee", "annulee", "fusionnee", "echouee", "ignoree"]
StatutDecision = Literal["ouvert", "mis-a-jour", "clos", "refuse", "a-verifier"]
_RANG_STATUT: dict[str, int] = {
    "mis-a-jour": 0, "refuse": 1, "ouvert": 2, "a-verifier": 3, "clos": 4,
}
_ACTIONS: dict[str, str] = {
    "courrier": "courrier", "email": "e-mail", "sms": "SMS", "appel": "appel par un conseiller",
    "invitation": "invitation", "rendez-vous": "proposition de rendez-vous",
}
_ANCRES: dict[str, str] = {
    "date_effet": "date d'effet de l'événement", "recu_le": "réception de la demande",
    "naissance": "mois de naissance", "realisation": "réalisation de l'étape précédente",
}


# --------------------------------------------------------------------------- state


class _Etat(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Suivi(_Etat):
    """An action orientation planned, and what became of it."""

    action: ActionPlanifiee
    statut: StatutAction = "planifiee"
    racine: str = Field(..., description="The original demand whose data anchored the action.")
    theorique: datetime = Field(..., description="Due date before catching up with 'now'.")
    publiee: bool = Field(default=True, description="False: merged into another contact first.")
    tentative: int = Field(default=1, ge=1, description="Call attempt number.")
    fusionnee_dans: str | None = None
    realisee_le: datetime | None = None

    @property
    def en_attente(self) -> bool:
        return self.statut == "planifiee"


class Dossier(_Etat):
    """One case: one person in one parcours (at most one open per parcours)."""

    dossier_id: str
    parcours: str
    cycle: int = Field(..., ge=1)
    statut: Literal["ouvert", "clos"] = "ouvert"
    classe: ClassePriorite
    ouvert_par: str
    ouvert_le: datetime
    demandes: tuple[str, ...]
    drapeaux: dict[str, bool | int | str] = Field(default_factory=dict)
    actions: tuple[Suivi, ...] = ()
    motif_cloture: str | None = None
    clos_le: datetime | None = None
    catalogue_version: str

    @property
    def ouvert(self) -> bool:
        return self.statut == "ouvert"

    def suivis(self, etape_id: str) -> tuple[Suivi, ...]:
        return tuple(s for s in self.actions if s.action.etape == etape_id)


class Alerte(_Etat):
    """Something an agent must look at (no personal data in ``message``)."""

    code: str
    dossier_id: str | None = None
    message: str


class Traitement(_Etat):
    """What one cause (a demand or an outcome) did: replayed on redelivery."""

    cause: str
    racine: str | None = None
    evenement: str | None = None
    planifiees: tuple[str, ...] = ()
    annulees: tuple[ActionAnnulee, ...] = ()
    decisions: tuple[Decision, ...] = ()
    alertes: tuple[Alerte, ...] = ()


class PersonContext(_Etat):
    """Everything orientation stores about one person (one document, keyed by pseudonym)."""

    pseudonyme: str
    dossiers: tuple[Dossier, ...] = ()
    decede: bool = False
    deces_demande: str | None = None
    deces_retracte: bool = False
    journal: dict[str, Traitement] = Field(default_factory=dict)

    def dossier_ouvert(self, parcours_id: str) -> Dossier | None:
        return next((d for d in self.dossiers if d.parcours == parcours_id and d.ouvert), None)

    def dossier(self, dossier_id: str) -> Dossier | None:
        return next((d for d in self.dossiers if d.dossier_id == dossier_id), None)

    def action(self, action_id: str) -> Suivi | None:
        return next((s for d in self.dossiers for s in d.actions
                     if s.action.action_id == action_id), None)


class Outcome(_Etat):
    """The new context and what to publish, in this order: cancellations, actions, decisions."""

    contexte: PersonContext
    dossiers_ouverts: tuple[Dossier, ...] = ()
    dossiers_mis_a_jour: tuple[Dossier, ...] = ()
    dossiers_clos: tuple[Dossier, ...] = ()
    actions_planifiees: tuple[ActionPlanifiee, ...] = ()
    actions_annulees: tuple[ActionAnnulee, ...] = ()
    decisions: tuple[Decision, ...] = ()
    alertes: tuple[Alerte, ...] = ()
    rejoue: bool = Field(default=False, description="A redelivery: same messages, nothing changed.")


# --------------------------------------------------------------------------- time


@dataclass(frozen=True)
class Reperes:
    """The dates a step can be anchored on."""

    date_effet: date | None = None
    recu_le: datetime | None = None
    naissance: date | None = None
    dates: Mapping[str, date] = field(default_factory=dict)
    realisation: datetime | None = None


def reperes_de(demande: Demande) -> Reperes:
    return Reperes(date_effet=demande.date_effet, recu_le=demande.recu_le,
                   naissance=_mois_de_naissance(demande.naissance), dates=demande.dates)


def _mois_de_naissance(naissance: str) -> date | None:
    """Only the year and month are known: the 1st of the month stands for the birthday."""
    annee, mois = naissance.split("-")
    return date(int(annee), int(mois), 1) if 1 <= int(mois) <= 12 else None


def decaler(instant: datetime, decalage: Decalage) -> datetime:
    """Years and months (calendar, day clamped), days (Paris wall clock), then business hours."""
    local = _aware(instant).astimezone(PARIS)
    jour = _decaler_date(local.date(), decalage) + timedelta(days=decalage.jours)
    decale = datetime.combine(jour, local.time(), tzinfo=PARIS).astimezone(UTC)
    if decalage.heures_ouvrees:
        decale = add_business_hours(decale, decalage.heures_ouvrees)
    return decale.astimezone(UTC)


def _decaler_date(jour: date, decalage: Decalage) -> date:
    annee, mois = divmod(jour.month - 1 + decalage.mois + 12 * decalage.annees, 12)
    annee += jour.year
    return date(annee, mois + 1, min(jour.day, calendar.monthrange(annee, mois + 1)[1]))


def calculer_echeance(ancre: Ancre, reperes: Reperes, catalogue: Catalogue) -> datetime | None:
    """When a step anchored so is due (UTC), or None when its reference date is unknown."""
    depart = _depart(ancre.date, reperes, catalogue)
    return None if depart is None else decaler(depart, ancre)


def _depart(nom: str, reperes: Reperes, catalogue: Catalogue) -> datetime | None:
    instants = {"recu_le": reperes.recu_le, "realisation": reperes.realisation}
    if nom in instants:
        instant = instants[nom]
        return None if instant is None else _aware(instant)
    jours = {"date_effet": reperes.date_effet, "naissance": reperes.naissance}
    jour = jours[nom] if nom in jours else reperes.dates.get(nom.removeprefix(PREFIXE_DATES))
    if jour is None:
        return None
    return datetime.combine(jour, catalogue.heure_envoi, tzinfo=PARIS).astimezone(UTC)


def _aware(instant: datetime) -> datetime:
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant


def _fmt(instant: datetime) -> str:
    return instant.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


# --------------------------------------------------------------------------- eligibility


def declencheurs_de(demande: Demande) -> tuple[str, ...]:
    """The catalogue keys a demand matches: its life-event name, or its referral situation(s)."""
    if demande.evenement != "signalement":
        return (demande.evenement,)
    situation = (demande.signalement or {}).get("situation")
    if isinstance(situation, str):
        return (situation,)
    if isinstance(situation, list):
        return tuple(situation)
    return ()


def motifs_de_refus(parcours: Parcours, demande: Demande, now: datetime) -> list[str]:
    """Why the person is not eligible to this parcours (empty: eligible)."""
    e, motifs = parcours.eligibilite, []
    if e.age_min is not None and demande.age < e.age_min:
        motifs.append(f"âge inférieur à {e.age_min} ans")
    if e.age_max is not None and demande.age > e.age_max:
        motifs.append(f"âge supérieur à {e.age_max} ans")
    motifs += [f"critère « {nom} » non rempli" for nom, attendu in e.drapeaux.items()
               if demande.drapeaux.get(nom) != attendu]
    if e.consentement_requis and demande.origine == "signalement" and not _consent(demande):
        motifs.append("la personne n'a pas donné son accord pour être contactée")
    if e.detecteurs and (demande.detecteur is None or demande.detecteur.type not in e.detecteurs):
        habilites = ", ".join(e.detecteurs)
        motifs.append(f"signalement non transmis par un détecteur habilité ({habilites})")
    if e.anciennete_max is not None:
        limite = _decaler_date(demande.date_effet, e.anciennete_max)
        limite += timedelta(days=e.anciennete_max.jours)
        if limite < _aware(now).astimezone(PARIS).date():
            motifs.append("événement trop ancien (date d'effet antérieure de plus de "
                          f"{e.anciennete_max.decrire(signe=False)} à la décision)")
    return motifs


def _consent(demande: Demande) -> bool:
    return (demande.drapeaux.get("consentement_contact") is True
            or (demande.signalement or {}).get("consentement_contact") is True)


def classe_effective(parcours: Parcours, drapeaux: Mapping[str, bool | int | str],
                     catalogue: Catalogue) -> ClassePriorite:
    """The parcours' priority class, raised by any of its rules whose condition holds."""
    classe = parcours.priorite
    for r in parcours.rehaussements:
        if catalogue.condition(r.condition).tenue(drapeaux) and PRECEDENCE[r.classe] > PRECEDENCE[
                classe]:
            classe = r.classe
    return classe


# --------------------------------------------------------------------------- work in progress


@dataclass
class _Note:
    dossier_id: str | None
    parcours: str | None
    demande_id: str
    statut: StatutDecision = "mis-a-jour"
    motif: str | None = None
    phrases: list[str] = field(default_factory=list)


@dataclass
class _Brouillon:
    """What one call decides, accumulated; turned into an :class:`Outcome` at the end."""

    avant: PersonContext
    catalogue: Catalogue
    now: datetime
    cause: str
    demande_id: str
    fenetre: timedelta
    territoire: Territoire = field(default_factory=lambda: Territoire.model_validate({}))
    detecteur: Detecteur | None = None
    reference_signalement: str | None = None
    dossiers: dict[str, Dossier] = field(default_factory=dict)
    decede: bool = False
    deces_demande: str | None = None
    deces_retracte: bool = False
    planifiees: list[str] = field(default_factory=list)
    annulees: list[ActionAnnulee] = field(default_factory=list)
    notes: dict[str, _Note] = field(default_factory=dict)
    alertes: list[Alerte] = field(default_factory=list)

    @classmethod
    def pour(cls, avant: PersonContext, catalogue: Catalogue, now: datetime, cause: str,
             demande_id: str, fenetre: timedelta) -> _Brouillon:
        return cls(avant=avant, catalogue=catalogue, now=now, cause=cause,
                   demande_id=demande_id, fenetre=fenetre,
                   dossiers={d.dossier_id: d for d in avant.dossiers}, decede=avant.decede,
                   deces_demande=avant.deces_demande, deces_retracte=avant.deces_retracte)

    # -- reading
    def ouverts(self) -> list[Dossier]:
        return [d for d in self.dossiers.values() if d.ouvert]

    def ouvert(self, parcours_id: str) -> Dossier | None:
        return next((d for d in self.ouverts() if d.parcours == parcours_id), None)

    def parcours_de(self, dossier: Dossier) -> Parcours | None:
        try:
            return self.catalogue.parcours_par_id(dossier.parcours)
        except KeyError:
            return None  # a parcours withdrawn from the catalogue: its cases are left alone

    def trouver(self, action_id: str) -> tuple[Dossier, Suivi] | None:
        for d in self.dossiers.values():
            for s in d.actions:
                if s.action.action_id == action_id:
                    return d, s
        return None

    # -- writing
    def poser(self, dossier: Dossier) -> Dossier:
        self.dossiers[dossier.dossier_id] = dossier
        return dossier

    def planifier(self, dossier_id: str, suivi: Suivi) -> None:
        d = self.dossiers[dossier_id]
        self.poser(d.model_copy(update={"actions": (*d.actions, suivi)}))
        self.planifiees.append(suivi.action.action_id)

    def changer(self, dossier_id: str, action_id: str, **update: object) -> Suivi:
        d = self.dossiers[dossier_id]
        actions = tuple(s.model_copy(update=update) if s.action.action_id == action_id else s
                        for s in d.actions)
        self.poser(d.model_copy(update={"actions": actions}))
        return next(s for s in actions if s.action.action_id == action_id)

    def annuler(self, dossier_id: str, suivi: Suivi, raison: str, *,
                statut: StatutAction = "annulee", dans: str | None = None) -> None:
        action = suivi.action
        if action.action_id in self.planifiees:  # planned by this very call: never published
            self.planifiees.remove(action.action_id)
            self.changer(dossier_id, action.action_id, statut=statut, publiee=False,
                         fusionnee_dans=dans)
            return
        self.changer(dossier_id, action.action_id, statut=statut, fusionnee_dans=dans)
        if suivi.publiee:
            self.annulees.append(ActionAnnulee(
                action_id=action.action_id, pseudonyme=action.pseudonyme,
                dossier_id=dossier_id, raison=raison))

    def clore(self, dossier_id: str, motif: str) -> int:
        """Close the case and cancel its pending actions; how many were cancelled."""
        en_attente = [s for s in self.dossiers[dossier_id].actions if s.en_attente]
        for s in en_attente:
            self.annuler(dossier_id, s, motif)
        d = self.dossiers[dossier_id]
        self.poser(d.model_copy(update={"statut": "clos", "motif_cloture": motif,
                                        "clos_le": self.now}))
        return len(en_attente)

    def noter(self, cle: str, phrase: str, *, dossier: Dossier | None = None,
              parcours: str | None = None, statut: StatutDecision | None = None,
              motif: str | None = None, demande_id: str | None = None) -> None:
        note = self.notes.get(cle)
        if note is None:
            note = self.notes[cle] = _Note(
                dossier_id=dossier.dossier_id if dossier else None,
                parcours=dossier.parcours if dossier else parcours,
                demande_id=demande_id or self.demande_id)
        if statut is not None and _RANG_STATUT[statut] >= _RANG_STATUT[note.statut]:
            note.statut, note.motif = statut, motif or note.motif
        note.phrases.append(phrase)

    def alerter(self, code: str, message: str, dossier_id: str | None = None) -> None:
        self.alertes.append(Alerte(code=code, dossier_id=dossier_id, message=message))

    # -- result
    def resultat(self, *, racine: str | None = None, evenement: str | None = None) -> Outcome:
        decisions = tuple(self._decision(cle, n) for cle, n in self.notes.items())
        contexte = PersonContext(
            pseudonyme=self.avant.pseudonyme, dossiers=tuple(self.dossiers.values()),
            decede=self.decede, deces_demande=self.deces_demande,
            deces_retracte=self.deces_retracte,
            journal={**self.avant.journal, self.cause: Traitement(
                cause=self.cause, racine=racine, evenement=evenement,
                planifiees=tuple(self.planifiees), annulees=tuple(self.annulees),
                decisions=decisions, alertes=tuple(self.alertes))})
        avant = {d.dossier_id: d for d in self.avant.dossiers}
        clos = tuple(d for d in contexte.dossiers if not d.ouvert
                     and (d.dossier_id not in avant or avant[d.dossier_id].ouvert))
        return Outcome(
            contexte=contexte,
            dossiers_ouverts=tuple(d for d in contexte.dossiers if d.dossier_id not in avant),
            dossiers_mis_a_jour=tuple(d for d in contexte.dossiers if d.dossier_id in avant
                                      and d != avant[d.dossier_id] and d not in clos),
            dossiers_clos=clos,
            actions_planifiees=tuple(_publiables(contexte, self.planifiees)),
            actions_annulees=tuple(self.annulees), decisions=decisions,
            alertes=tuple(self.alertes))

    def _decision(self, cle: str, note: _Note) -> Decision:
        return Decision(
            decision_id=derive_id("decision", self.cause, cle),
            pseudonyme=self.avant.pseudonyme, demande_id=note.demande_id,
            dossier_id=note.dossier_id, parcours=note.parcours, statut=note.statut,
            motif_cloture=note.motif if note.statut == "clos" else None,
            catalogue_version=self.catalogue.version, explication=note.phrases,
            territoire=self.territoire, detecteur=self.detecteur,
            reference_signalement=self.reference_signalement)


def _publiables(contexte: PersonContext, ids: Iterable[str]) -> Iterable[ActionPlanifiee]:
    for action_id in ids:
        suivi = contexte.action(action_id)
        if suivi is not None:
            yield suivi.action


def _rejouer(person: PersonContext, traitement: Traitement) -> Outcome:
    return Outcome(
        contexte=person, actions_planifiees=tuple(_publiables(person, traitement.planifiees)),
        actions_annulees=traitement.annulees, decisions=traitement.decisions,
        alertes=traitement.alertes, rejoue=True)


def rejouer(person: PersonContext, cause: str) -> Outcome | None:
    """What the cause already processed published (same messages, same ids); None if unknown.

    The shell uses it as its outbox: a cause stored but not yet acknowledged by the broker is
    published again from here, with the same ids.
    """
    traitement = person.journal.get(cause)
    return None if traitement is None else _rejouer(person, traitement)


def _verifier_entrees(person: PersonContext, pseudonyme: str, now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    if pseudonyme != person.pseudonyme:
        raise ValueError("the message is about another person than the context")


# --------------------------------------------------------------------------- decide


def decide(person: PersonContext, demande: Demande, catalogue: Catalogue, now: datetime, *,
           merge_window_days: int = 7) -> Outcome:
    """Orient one demand: open, update or close cases; plan and cancel actions; explain why."""
    _verifier_entrees(person, demande.pseudonyme, now)
    deja = person.journal.get(demande.demande_id)
    if deja is not None:
        return _rejouer(person, deja)
    b = _Brouillon.pour(person, catalogue, now, demande.demande_id, demande.demande_id,
                        timedelta(days=merge_window_days))
    b.territoire, b.detecteur = demande.territoire, demande.detecteur
    reference = (demande.signalement or {}).get("reference")
    b.reference_signalement = reference if isinstance(reference, str) else None
    _expirer_dossiers(b)
    racine = _racine(person, demande)
    if demande.nature == "annulation":
        _retrait(b, demande)
    elif demande.nature == "correction":
        _correction(b, demande, racine)
    else:
        _demande_initiale(b, demande)
    _arbitrer(b)
    return b.resultat(racine=racine, evenement=demande.evenement)


def _racine(person: PersonContext, demande: Demande) -> str:
    """The original demand a correction or retraction is about (itself for an initial one)."""
    ref = demande.demande_reference
    if demande.nature == "initial" or ref is None or ref not in person.journal:
        return demande.demande_id
    return person.journal[ref].racine or ref


def _origine(d: Demande) -> str:
    if d.evenement == "signalement":
        quoi = ", ".join(declencheurs_de(d)) or "sans situation"
        qui = f" (détecteur {d.detecteur.type})" if d.detecteur else ""
        return f"le signalement « {quoi} »{qui}, demande {d.demande_id}"
    return f"l'événement de vie « {d.evenement} », demande {d.demande_id}"


def _demande_initiale(b: _Brouillon, d: Demande) -> None:
    if d.evenement == EVENEMENT_DECES:
        _deces(b, d)
        return
    if b.decede:
        _refuser_apres_deces(b, d)
        return
    atteints = _objectifs_atteints(b, d)
    declenches = b.catalogue.declenches_par(declencheurs_de(d))
    if not declenches and not atteints:
        b.noter("demande", f"Aucun parcours du catalogue {b.catalogue.version} n'est déclenché "
                f"par {_origine(d)} : aucune action.", statut="refuse")
    for p in declenches:
        _orienter(b, p, d, d.demande_id)


def _orienter(b: _Brouillon, p: Parcours, d: Demande, racine: str) -> None:
    motifs = motifs_de_refus(p, d, b.now)
    if motifs:
        b.noter(p.id, f"Parcours « {p.nom} » non ouvert (catalogue {b.catalogue.version}, "
                f"{_origine(d)}) : {' ; '.join(motifs)}.", parcours=p.id, statut="refuse")
        return
    existant = b.ouvert(p.id)
    if existant is None:
        _ouvrir(b, p, d, racine)
    else:
        _mettre_a_jour(b, existant, p, d, racine)


def _ouvrir(b: _Brouillon, p: Parcours, d: Demande, racine: str) -> None:
    cycle = 1 + sum(1 for x in b.dossiers.values() if x.parcours == p.id)
    drapeaux = dict(d.drapeaux)
    dossier = b.poser(Dossier(
        dossier_id=derive_id("dossier", d.pseudonyme, p.id, cycle), parcours=p.id, cycle=cycle,
        classe=classe_effective(p, drapeaux, b.catalogue), ouvert_par=d.demande_id,
        ouvert_le=b.now, demandes=(d.demande_id,), drapeaux=drapeaux,
        catalogue_version=b.catalogue.version))
    b.noter(dossier.dossier_id, f"Parcours « {p.nom} » ouvert selon le catalogue "
            f"{b.catalogue.version}, déclenché par {_origine(d)}.", dossier=dossier,
            statut="ouvert")
    _noter_classe(b, dossier, p)
    planifiees = [_planifier_etape(b, dossier.dossier_id, p, e, reperes_de(d), racine,
                                   declencheurs_de(d)) for e in p.etapes_initiales]
    if not any(planifiees):
        b.noter(dossier.dossier_id, "Aucune action n'est planifiée pour l'instant.")


def _noter_classe(b: _Brouillon, dossier: Dossier, p: Parcours) -> None:
    if dossier.classe == p.priorite:
        b.noter(dossier.dossier_id, f"Classe de priorité « {dossier.classe} ».")
    else:
        b.noter(dossier.dossier_id, f"Classe de priorité relevée de « {p.priorite} » à "
                f"« {dossier.classe} » par une règle de protection du parcours.")


def _mettre_a_jour(b: _Brouillon, dossier: Dossier, p: Parcours, d: Demande,
                   racine: str) -> None:
    drapeaux = {**dossier.drapeaux, **d.drapeaux}
    classe = max(dossier.classe, classe_effective(p, drapeaux, b.catalogue),
                 key=PRECEDENCE.__getitem__)
    ancienne = dossier.classe
    dossier = b.poser(dossier.model_copy(update={
        "drapeaux": drapeaux, "classe": classe, "demandes": (*dossier.demandes, d.demande_id)}))
    b.noter(dossier.dossier_id, f"Dossier « {p.nom} » déjà ouvert : mis à jour par {_origine(d)}, "
            "sans ouvrir de second dossier.", dossier=dossier, statut="mis-a-jour")
    if classe != ancienne:
        _noter_classe(b, dossier, p)
    _revoir_conditions(b, dossier.dossier_id)
    for e in p.etapes_initiales:
        if not b.dossiers[dossier.dossier_id].suivis(e.id):
            _planifier_etape(b, dossier.dossier_id, p, e, reperes_de(d), racine,
                             declencheurs_de(d))


def _revoir_conditions(b: _Brouillon, dossier_id: str) -> None:
    """Cancel the pending actions whose condition no longer holds with the latest flags."""
    dossier = b.dossiers[dossier_id]
    for s in dossier.actions:
        condition = s.action.condition
        if s.en_attente and condition and not b.catalogue.condition(condition).tenue(
                dossier.drapeaux):
            b.annuler(dossier_id, s, f"condition « {condition} » plus remplie")
            b.noter(dossier_id, f"Étape « {s.action.etape} » annulée : la condition "
                    f"{_condition(b.catalogue, condition)} n'est plus remplie.")


def _condition(catalogue: Catalogue, nom: str) -> str:
    """How a condition is named in an explanation; a sensitive one is never spelled out."""
    c = catalogue.condition(nom)
    return "de protection de la personne" if c.sensible else f"« {nom} » ({c.texte})"


# --------------------------------------------------------------------------- planning


def _planifier_etape(b: _Brouillon, dossier_id: str, p: Parcours, e: Etape, reperes: Reperes,
                     racine: str, declencheurs: tuple[str, ...] | None) -> Suivi | None:
    """Plan one step of a case, or explain why not. ``declencheurs`` None: a follow-up step."""
    dossier = b.dossiers[dossier_id]
    if declencheurs is not None and e.pour and not set(e.pour) & set(declencheurs):
        return None
    if e.condition and not b.catalogue.condition(e.condition).tenue(dossier.drapeaux):
        b.noter(dossier_id, f"Étape « {e.id} » non planifiée : la condition "
                f"{_condition(b.catalogue, e.condition)} n'est pas remplie.")
        return None
    theorique = calculer_echeance(e.ancre, reperes, b.catalogue)
    if theorique is None:
        b.noter(dossier_id, f"Étape « {e.id} » non planifiée : la date « {e.ancre.date} » "
                "n'est pas connue.")
        return None
    if theorique < b.now and not e.rattrapage:
        b.noter(dossier_id, f"Étape « {e.id} » non planifiée : son échéance "
                f"({_fmt(theorique)}) est déjà passée.")
        return None
    due = max(theorique, b.now)
    action = _action(b, dossier, e.id, e.action, e.canaux, e.modele, due, e)
    suivi = Suivi(action=action, racine=racine, theorique=theorique)
    b.planifier(dossier_id, suivi)
    b.noter(dossier_id, _phrase_etape(b, e, action, theorique))
    return suivi


def _action(b: _Brouillon, dossier: Dossier, etape_id: str, kind: ActionKind,
            canaux: Iterable[Canal], modele: str, due: datetime, e: Etape) -> ActionPlanifiee:
    return ActionPlanifiee(
        action_id=_action_id(dossier, etape_id), pseudonyme=b.avant.pseudonyme,
        dossier_id=dossier.dossier_id, parcours=dossier.parcours, etape=etape_id, kind=kind,
        canaux=list(canaux), due_le=due,
        echeance=decaler(due, e.delai) if e.delai else None, destinataire=e.destinataire,
        condition=e.condition, obligatoire=e.obligatoire, priorite=PRECEDENCE[dossier.classe],
        modele=modele, territoire=b.territoire, detecteur=b.detecteur,
        reference_signalement=b.reference_signalement)


def _action_id(dossier: Dossier, etape_id: str) -> str:
    """``derive_id("action", dossier, step)``; a re-plan or a new call attempt adds its rank."""
    rang = len(dossier.suivis(etape_id)) + 1
    if rang == 1:
        return derive_id("action", dossier.dossier_id, etape_id)
    return derive_id("action", dossier.dossier_id, etape_id, rang)


def _phrase_etape(b: _Brouillon, e: Etape, action: ActionPlanifiee, theorique: datetime) -> str:
    nom = _ANCRES.get(e.ancre.date, f"date « {e.ancre.date.removeprefix(PREFIXE_DATES)} »")
    ancre = nom if e.ancre.nul else f"{nom} {e.ancre.decrire()}"
    phrase = (f"Étape « {e.id} » planifiée : {_ACTIONS[action.kind]}"
              f"{' au proche' if action.destinataire == 'proche' else ''} le "
              f"{_fmt(action.due_le)} ({ancre}")
    if action.due_le > theorique:
        phrase += f" ; l'échéance du {_fmt(theorique)} étant passée, dès maintenant"
    phrase += ")"
    if action.echeance:
        phrase += f", à réaliser avant le {_fmt(action.echeance)}"
    if e.condition:
        condition = _condition(b.catalogue, e.condition)
        phrase += f", sous la condition {condition}, revérifiée à l'envoi"
    return phrase + f". {e.texte}"


# --------------------------------------------------------------------------- arbitration


def _arbitrer(b: _Brouillon) -> None:
    """Merge each new contact with any other case's contact to the same recipient in the window."""
    for action_id in list(b.planifiees):
        trouve = b.trouver(action_id)
        if trouve is None or not trouve[1].en_attente:
            continue
        for autre in _concurrentes(b, *trouve):
            issue = _departager(b, trouve, autre)
            if issue is not None:
                _fusionner(b, *issue)
                if issue[1][1].action.action_id == action_id:
                    break


def _concurrentes(b: _Brouillon, dossier: Dossier, suivi: Suivi) -> list[tuple[Dossier, Suivi]]:
    a = suivi.action
    return sorted(
        ((d, s) for d in b.ouverts() if d.dossier_id != dossier.dossier_id for s in d.actions
         if s.en_attente and s.action.destinataire == a.destinataire
         and abs(s.action.due_le - a.due_le) <= b.fenetre),
        key=lambda ds: (ds[1].action.due_le, ds[1].action.action_id))


def _departager(b: _Brouillon, x: tuple[Dossier, Suivi], y: tuple[Dossier, Suivi],
                ) -> tuple[tuple[Dossier, Suivi], tuple[Dossier, Suivi]] | None:
    """(winner, loser), or None when both are mandatory. Precedence first, then the contact
    already published, then the earlier one."""
    x, y = b.trouver(x[1].action.action_id) or x, b.trouver(y[1].action.action_id) or y
    if not (x[1].en_attente and y[1].en_attente):
        return None
    candidates = [c for c in (x, y) if not c[1].action.obligatoire]
    if not candidates:
        return None

    def force(c: tuple[Dossier, Suivi]) -> tuple[int, int, float, str]:
        publiee = c[1].action.action_id not in b.planifiees
        return (PRECEDENCE[c[0].classe], int(publiee), -c[1].action.due_le.timestamp(),
                c[1].action.action_id)

    perdante = candidates[0] if len(candidates) == 1 else min(candidates, key=force)
    gagnante = y if perdante is x else x
    return gagnante, perdante


def _fusionner(b: _Brouillon, gagnante: tuple[Dossier, Suivi],
               perdante: tuple[Dossier, Suivi]) -> None:
    (dg, sg), (dp, sp) = gagnante, perdante
    jours = b.fenetre.days
    b.annuler(dp.dossier_id, sp, f"fusionnee avec l'action {sg.action.action_id} "
              f"(parcours {dg.parcours})", statut="fusionnee", dans=sg.action.action_id)
    b.noter(dp.dossier_id, f"Étape « {sp.action.etape} » regroupée avec l'étape "
            f"« {sg.action.etape} » du parcours « {_nom(b, dg)} » ({_ACTIONS[sg.action.kind]} "
            f"du {_fmt(sg.action.due_le)}, classe « {dg.classe} » contre « {dp.classe} ») : la "
            f"personne n'est pas contactée deux fois en {jours} jours.", dossier=dp)
    b.noter(dg.dossier_id, f"L'étape « {sg.action.etape} » porte aussi l'étape "
            f"« {sp.action.etape} » du parcours « {_nom(b, dp)} » (contacts regroupés sur "
            f"{jours} jours ; précédence : deces, securite, echeance-legale, information).",
            dossier=dg)


def _nom(b: _Brouillon, dossier: Dossier) -> str:
    p = b.parcours_de(dossier)
    return p.nom if p else dossier.parcours


# --------------------------------------------------------------------------- closing rules


def _objectifs_atteints(b: _Brouillon, d: Demande) -> int:
    """Close, as converted, the open cases whose goal this life event is."""
    atteints = 0
    for dossier in b.ouverts():
        p = b.parcours_de(dossier)
        if p is None or d.evenement not in p.sortie.objectif_evenements:
            continue
        n = b.clore(dossier.dossier_id, "objectif-atteint")
        b.noter(dossier.dossier_id, f"Objectif « {p.objectif or d.evenement} » atteint "
                f"({_origine(d)}) : dossier « {p.nom} » clos comme converti, {n} action(s) en "
                "attente annulée(s).", dossier=dossier, statut="clos", motif="objectif-atteint")
        atteints += 1
    return atteints


def _expirer_dossiers(b: _Brouillon) -> list[str]:
    """Close the open cases older than their parcours' ``duree_max``."""
    clos = []
    for dossier in b.ouverts():
        p = b.parcours_de(dossier)
        if p is None or p.sortie.duree_max is None:
            continue
        if decaler(dossier.ouvert_le, p.sortie.duree_max) > b.now:
            continue
        n = b.clore(dossier.dossier_id, "delai-depasse")
        b.noter(dossier.dossier_id, f"Dossier « {p.nom} » clos : durée maximale du parcours "
                f"({p.sortie.duree_max.decrire(signe=False)}) dépassée selon le catalogue "
                f"{b.catalogue.version}, {n} action(s) en attente annulée(s).", dossier=dossier,
                statut="clos", motif="delai-depasse", demande_id=dossier.ouvert_par)
        clos.append(dossier.dossier_id)
    return clos


def expirer(person: PersonContext, catalogue: Catalogue, now: datetime) -> Outcome:
    """Close the cases past their parcours' maximum duration (for a periodic sweep)."""
    _verifier_entrees(person, person.pseudonyme, now)
    sonde = _Brouillon.pour(person, catalogue, now, "", "", timedelta(0))
    a_clore = _expirer_dossiers(sonde)
    if not a_clore:
        return Outcome(contexte=person)
    cause = derive_id("expiration", person.pseudonyme, *a_clore)
    b = _Brouillon.pour(person, catalogue, now, cause, "", timedelta(0))
    _expirer_dossiers(b)
    return b.resultat()


def _fin_de_plan(b: _Brouillon, dossier_id: str, p: Parcours) -> None:
    dossier = b.dossiers[dossier_id]
    if not (p.sortie.fin_de_plan and dossier.ouvert) or any(s.en_attente for s in dossier.actions):
        return
    b.clore(dossier_id, "plan-termine")
    b.noter(dossier_id, f"Plus aucune étape en attente : dossier « {p.nom} » clos (fin de plan).",
            dossier=dossier, statut="clos", motif="plan-termine", demande_id=dossier.ouvert_par)


# --------------------------------------------------------------------------- death


def _deces(b: _Brouillon, d: Demande) -> None:
    """Stop everything planned for the deceased; one contact to the family, if one is known."""
    if b.decede:
        b.noter("personne", f"Décès déjà enregistré (demande {b.deces_demande}) : cette "
                "déclaration ne change rien.", statut="refuse")
        return
    b.decede, b.deces_demande = True, d.demande_id
    for dossier in b.ouverts():
        n = b.clore(dossier.dossier_id, "deces")
        b.noter(dossier.dossier_id, f"Décès enregistré ({_origine(d)}) : dossier "
                f"« {_nom(b, dossier)} » clos et {n} action(s) en attente annulée(s), selon la "
                f"règle décès du catalogue {b.catalogue.version}.", dossier=dossier,
                statut="clos", motif="deces")
    for p in b.catalogue.declenches_par([EVENEMENT_DECES]):
        _orienter(b, p, d, d.demande_id)
        famille = b.ouvert(p.id)
        if famille is not None and not any(s.en_attente for s in famille.actions):
            b.noter(famille.dossier_id, "Aucun proche connu : aucun contact n'est planifié "
                    "pour la famille.")


def _refuser_apres_deces(b: _Brouillon, d: Demande) -> None:
    phrase = (f"Personne décédée (décès enregistré par la demande {b.deces_demande}) : aucun "
              f"parcours ne s'ouvre plus pour elle, selon la règle décès du catalogue "
              f"{b.catalogue.version} ({_origine(d)}).")
    if b.deces_retracte:
        phrase += " Le retrait de ce décès attend la vérification d'un agent."
    cles = [p.id for p in b.catalogue.declenches_par(declencheurs_de(d))] or ["demande"]
    for cle in cles:
        b.noter(cle, phrase, parcours=None if cle == "demande" else cle, statut="refuse")


# --------------------------------------------------------------------------- retraction


def _retrait(b: _Brouillon, d: Demande) -> None:
    ref = d.demande_reference
    if ref is None or ref not in b.avant.journal:
        b.alerter("reference-inconnue", f"Retrait (demande {d.demande_id}) d'une demande inconnue "
                  f"({ref}) : rien n'est annulé.")
        b.noter("demande", f"Retrait d'une demande inconnue ({ref}) : rien à annuler.",
                statut="refuse")
        return
    racine = b.avant.journal[ref].racine or ref
    if racine == b.deces_demande:
        _retrait_deces(b, d, racine)
        return
    _clore_dossiers_de(b, d, racine)


def _causes(b: _Brouillon, racine: str) -> set[str]:
    return {racine} | {c for c, t in b.avant.journal.items() if t.racine == racine}


def _clore_dossiers_de(b: _Brouillon, d: Demande, racine: str, motif: str = "annulation") -> int:
    """Close the open cases opened by the retracted demand; flag those it only updated."""
    causes, clos, touches = _causes(b, racine), 0, 0
    for dossier in b.ouverts():
        touches += dossier.ouvert_par in causes or bool(causes & set(dossier.demandes))
        if dossier.ouvert_par in causes:
            n = b.clore(dossier.dossier_id, motif)
            b.noter(dossier.dossier_id, f"Demande {racine} retirée par sa source ({_origine(d)}) : "
                    f"dossier « {_nom(b, dossier)} » clos, {n} action(s) en attente annulée(s).",
                    dossier=dossier, statut="clos", motif=motif)
            clos += 1
        elif causes & set(dossier.demandes):
            b.noter(dossier.dossier_id, f"Demande {racine} retirée par sa source : elle avait mis "
                    "à jour ce dossier ouvert par une autre demande ; à vérifier par un agent.",
                    dossier=dossier, statut="a-verifier")
            b.alerter("retrait-a-verifier", f"Retrait de la demande {racine} sur un dossier "
                      "qu'elle n'a pas ouvert.", dossier.dossier_id)
    if touches == 0:
        b.noter("demande", f"Demande {racine} retirée par sa source : aucun dossier ouvert par "
                "elle, rien à annuler.", statut="refuse")
    return clos


def _retrait_deces(b: _Brouillon, d: Demande, racine: str) -> None:
    """Record the retraction of a death and flag it; never reopen anything by itself."""
    b.deces_retracte = True
    _clore_dossiers_de(b, d, racine)
    b.noter("personne", f"Retrait du décès (demande {racine}) reçu ({_origine(d)}) : enregistré "
            "et signalé à un agent. Les dossiers clos au décès ne sont pas rouverts "
            "automatiquement et aucun parcours ne s'ouvre avant cette vérification.",
            statut="a-verifier")
    b.alerter("deces-retracte", f"Le décès enregistré par la demande {racine} a été retiré par "
              "sa source : vérifier la situation avant toute reprise des parcours.")


# --------------------------------------------------------------------------- correction


def _correction(b: _Brouillon, d: Demande, racine: str) -> None:
    ref = d.demande_reference
    if ref is None or ref not in b.avant.journal:
        b.alerter("reference-inconnue", f"Correction (demande {d.demande_id}) d'une demande "
                  f"inconnue ({ref}) : traitée comme une demande initiale.")
        b.noter("demande", f"Correction d'une demande inconnue ({ref}) : traitée comme une "
                "demande initiale.")
        _demande_initiale(b, d)
        return
    if b.decede and racine != b.deces_demande:
        _refuser_apres_deces(b, d)
        return
    causes = _causes(b, racine)
    concernes = {x.parcours: x for x in b.dossiers.values()
                 if x.ouvert_par in causes or causes & set(x.demandes)}
    for p in b.catalogue.declenches_par(declencheurs_de(d)):
        dossier = concernes.pop(p.id, None)
        if dossier is None:
            _orienter(b, p, d, racine)
        elif not dossier.ouvert:
            b.noter(dossier.dossier_id, f"Correction de la demande {racine} ({_origine(d)}) : le "
                    f"dossier « {p.nom} » est déjà clos ({dossier.motif_cloture}) et n'est pas "
                    "rouvert.", dossier=dossier, statut="refuse")
        else:
            _corriger_dossier(b, dossier, p, d, racine)
    for dossier in concernes.values():
        if dossier.ouvert:
            n = b.clore(dossier.dossier_id, "correction")
            b.noter(dossier.dossier_id, f"Après correction de la demande {racine}, l'événement ne "
                    f"déclenche plus ce parcours : dossier clos, {n} action(s) annulée(s).",
                    dossier=dossier, statut="clos", motif="correction")


def _corriger_dossier(b: _Brouillon, dossier: Dossier, p: Parcours, d: Demande,
                      racine: str) -> None:
    motifs = motifs_de_refus(p, d, b.now)
    if motifs:
        n = b.clore(dossier.dossier_id, "correction")
        b.noter(dossier.dossier_id, f"Après correction de la demande {racine} ({_origine(d)}), "
                f"la personne n'est plus éligible : {' ; '.join(motifs)}. Dossier clos, {n} "
                "action(s) annulée(s).", dossier=dossier, statut="clos", motif="correction")
        return
    drapeaux = {**dossier.drapeaux, **d.drapeaux}
    dossier = b.poser(dossier.model_copy(update={
        "drapeaux": drapeaux, "classe": classe_effective(p, drapeaux, b.catalogue),
        "demandes": (*dossier.demandes, d.demande_id)}))
    b.noter(dossier.dossier_id, f"Correction de la demande {racine} ({_origine(d)}) : plan du "
            f"dossier « {p.nom} » revu selon le catalogue {b.catalogue.version}.",
            dossier=dossier, statut="mis-a-jour")
    for e in p.etapes_initiales:
        _replanifier_etape(b, dossier.dossier_id, p, e, d, racine)


def _replanifier_etape(b: _Brouillon, dossier_id: str, p: Parcours, e: Etape, d: Demande,
                       racine: str) -> None:
    """Keep the step if its due date is unchanged; otherwise cancel it and plan it anew."""
    precedents = b.dossiers[dossier_id].suivis(e.id)
    dernier = precedents[-1] if precedents else None
    if dernier is not None and dernier.statut in ("realisee", "echouee", "ignoree"):
        b.noter(dossier_id, f"Étape « {e.id} » déjà exécutée : inchangée.")
        return
    if dernier is not None and dernier.tentative > 1:
        return  # call attempts in progress: the outcome of the contact decides, not the dates
    reperes = reperes_de(d)
    if dernier is not None and _inchangee(b, dossier_id, e, dernier, reperes):
        if dernier.en_attente:
            b.noter(dossier_id, f"Étape « {e.id} » inchangée (prévue le "
                    f"{_fmt(dernier.action.due_le)}).")
        return
    if dernier is not None and dernier.en_attente:
        b.annuler(dossier_id, dernier, "correction : échéance ou condition modifiée")
        b.noter(dossier_id, f"Étape « {e.id} » : l'action prévue le "
                f"{_fmt(dernier.action.due_le)} est annulée (données corrigées).")
    _planifier_etape(b, dossier_id, p, e, reperes, racine, declencheurs_de(d))


def _inchangee(b: _Brouillon, dossier_id: str, e: Etape, dernier: Suivi,
               reperes: Reperes) -> bool:
    if dernier.statut not in ("planifiee", "fusionnee"):
        return False
    if e.condition and not b.catalogue.condition(e.condition).tenue(
            b.dossiers[dossier_id].drapeaux):
        return False
    return calculer_echeance(e.ancre, reperes, b.catalogue) == dernier.theorique


# --------------------------------------------------------------------------- outcomes


def on_result(person: PersonContext, resultat: Resultat, catalogue: Catalogue, now: datetime,
              *, merge_window_days: int = 7) -> Outcome:
    """Move a case on after notification's outcome for one of its actions."""
    _verifier_entrees(person, resultat.pseudonyme, now)
    deja = person.journal.get(resultat.resultat_id)
    if deja is not None:
        return _rejouer(person, deja)
    b = _Brouillon.pour(person, catalogue, now, resultat.resultat_id, "",
                        timedelta(days=merge_window_days))
    b.reference_signalement = resultat.reference_signalement
    _expirer_dossiers(b)
    trouve = b.trouver(resultat.action_id) if resultat.action_id else None
    if trouve is not None:
        b.territoire, b.detecteur = trouve[1].action.territoire, trouve[1].action.detecteur
        b.demande_id = trouve[0].ouvert_par
    if resultat.statut == "objectif-atteint":
        _objectif_par_resultat(b, resultat, trouve)
    elif trouve is None:
        b.alerter("resultat-inconnu", f"Résultat {resultat.resultat_id} pour une action inconnue "
                  f"({resultat.action_id}) : ignoré.", resultat.dossier_id)
    else:
        _appliquer_resultat(b, resultat, *trouve)
    _arbitrer(b)
    return b.resultat()


def _appliquer_resultat(b: _Brouillon, r: Resultat, dossier: Dossier, suivi: Suivi) -> None:
    p = b.parcours_de(dossier)
    if r.statut == "tache-creee":
        return
    if p is None or not dossier.ouvert:  # a late outcome: recorded, nothing follows
        b.changer(dossier.dossier_id, suivi.action.action_id, statut=_statut_constate(b, r),
                  realisee_le=r.survenu_le)
        return
    if r.statut == "envoye":
        _realisee(b, dossier.dossier_id, p, suivi, r.survenu_le)
    elif r.statut == "ignore":
        b.changer(dossier.dossier_id, suivi.action.action_id, statut="ignoree")
        b.noter(dossier.dossier_id, f"Étape « {suivi.action.etape} » non exécutée "
                f"({r.raison or 'sans motif'}).", dossier=dossier, demande_id=dossier.ouvert_par)
        _fin_de_plan(b, dossier.dossier_id, p)
    elif r.statut == "echec":
        _echec(b, dossier.dossier_id, p, suivi, r)
    elif r.statut == "appel":
        _issue_appel(b, dossier.dossier_id, p, suivi, r)


def _statut_constate(b: _Brouillon, r: Resultat) -> StatutAction:
    if r.statut == "ignore":
        return "ignoree"
    faite = r.statut == "envoye" or (r.statut == "appel" and b.catalogue.issues_appel.get(
        r.issue_appel or "") in ("realise", "refus"))
    return "realisee" if faite else "echouee"


def _realisee(b: _Brouillon, dossier_id: str, p: Parcours, suivi: Suivi, le: datetime) -> None:
    """Record a completed contact and plan the steps that follow it."""
    b.changer(dossier_id, suivi.action.action_id, statut="realisee", realisee_le=le)
    etape = p.etape(suivi.action.etape)
    suivantes = p.suivantes(etape.id) if etape else ()
    if suivantes:
        b.noter(dossier_id, f"Étape « {suivi.action.etape} » réalisée le {_fmt(le)} : le plan "
                "avance.", dossier=b.dossiers[dossier_id], demande_id=b.demande_id)
    for e in suivantes:
        if not b.dossiers[dossier_id].suivis(e.id):
            _planifier_etape(b, dossier_id, p, e, Reperes(realisation=le), suivi.racine, None)
    _fin_de_plan(b, dossier_id, p)


def _issue_appel(b: _Brouillon, dossier_id: str, p: Parcours, suivi: Suivi,
                 r: Resultat) -> None:
    issue = r.issue_appel or ""
    effet = b.catalogue.issues_appel.get(issue)
    if effet == "realise":
        _realisee(b, dossier_id, p, suivi, r.survenu_le)
    elif effet == "tentative-echouee":
        _tentative_echouee(b, dossier_id, p, suivi, r)
    elif effet == "refus":
        b.changer(dossier_id, suivi.action.action_id, statut="realisee", realisee_le=r.survenu_le)
        motif = p.sortie.issues.get(issue, "refus")
        n = b.clore(dossier_id, motif)
        b.noter(dossier_id, f"La personne décline l'accompagnement (issue d'appel « {issue} ») : "
                f"dossier « {p.nom} » clos, motif « {motif} », {n} action(s) annulée(s).",
                dossier=b.dossiers[dossier_id], statut="clos", motif=motif,
                demande_id=b.demande_id)
    else:
        b.alerter("issue-inconnue", f"Issue d'appel inconnue « {issue} » pour l'étape "
                  f"« {suivi.action.etape} » : à qualifier par un agent.", dossier_id)


def _tentative_echouee(b: _Brouillon, dossier_id: str, p: Parcours, suivi: Suivi,
                       r: Resultat) -> None:
    b.changer(dossier_id, suivi.action.action_id, statut="echouee")
    etape = p.etape(suivi.action.etape)
    maximum = b.catalogue.appels.tentatives_max
    if etape is None:
        return
    if suivi.tentative >= maximum:
        _repli(b, dossier_id, p, etape, f"{maximum} appels sans réponse")
        return
    dossier = b.dossiers[dossier_id]
    due = max(decaler(r.survenu_le, b.catalogue.appels.intervalle), b.now)
    action = _action(b, dossier, etape.id, etape.action, etape.canaux, etape.modele, due, etape)
    b.planifier(dossier_id, Suivi(action=action, racine=suivi.racine, theorique=due,
                                  tentative=suivi.tentative + 1))
    b.noter(dossier_id, f"Appel {suivi.tentative}/{maximum} de l'étape « {etape.id} » sans "
            f"réponse : nouvel appel prévu le {_fmt(due)}.", dossier=dossier,
            demande_id=b.demande_id)


def _repli(b: _Brouillon, dossier_id: str, p: Parcours, etape: Etape, pourquoi: str) -> None:
    dossier = b.dossiers[dossier_id]
    if etape.repli is None:
        b.noter(dossier_id, f"Étape « {etape.id} » : {pourquoi}, sans repli prévu : à traiter "
                "par un agent.", dossier=dossier, statut="a-verifier", demande_id=b.demande_id)
        b.alerter("contact-impossible", f"Étape « {etape.id} » : {pourquoi}, aucun repli "
                  "prévu par le catalogue.", dossier_id)
        return
    if dossier.suivis(etape.id_repli):
        return
    repli = etape.repli
    action = _action(b, dossier, etape.id_repli, repli.action, repli.canaux, repli.modele,
                     b.now, etape).model_copy(update={"echeance": None})
    b.planifier(dossier_id, Suivi(action=action, racine=dossier.ouvert_par, theorique=b.now))
    b.noter(dossier_id, f"Étape « {etape.id} » : {pourquoi} ; repli planifié : "
            f"{_ACTIONS[repli.action]} le {_fmt(b.now)}. {repli.texte}", dossier=dossier,
            demande_id=b.demande_id)


def _echec(b: _Brouillon, dossier_id: str, p: Parcours, suivi: Suivi, r: Resultat) -> None:
    b.changer(dossier_id, suivi.action.action_id, statut="echouee")
    etape = p.etape(suivi.action.etape)
    raison = r.raison or "canal indisponible"
    if etape is not None and suivi.action.etape == etape.id and etape.action == "appel":
        _repli(b, dossier_id, p, etape, f"appel impossible ({raison})")
        return
    b.noter(dossier_id, f"Étape « {suivi.action.etape} » en échec ({raison}).",
            dossier=b.dossiers[dossier_id], demande_id=b.demande_id)
    if suivi.action.obligatoire:
        b.alerter("action-obligatoire-echouee", f"L'étape obligatoire « {suivi.action.etape} » "
                  f"n'a pas pu être exécutée ({raison}).", dossier_id)
    _fin_de_plan(b, dossier_id, p)


def _objectif_par_resultat(b: _Brouillon, r: Resultat,
                           trouve: tuple[Dossier, Suivi] | None) -> None:
    dossier = trouve[0] if trouve else b.dossiers.get(r.dossier_id or "")
    if dossier is None or not dossier.ouvert:
        b.alerter("resultat-inconnu", f"Objectif atteint signalé (résultat {r.resultat_id}) pour "
                  "un dossier inconnu ou déjà clos.", r.dossier_id)
        return
    if trouve is not None:
        b.changer(dossier.dossier_id, trouve[1].action.action_id, statut="realisee",
                  realisee_le=r.survenu_le)
    p = b.parcours_de(dossier)
    n = b.clore(dossier.dossier_id, "objectif-atteint")
    objectif = (p.objectif if p else None) or "du parcours"
    b.noter(dossier.dossier_id, f"Objectif « {objectif} » atteint (résultat {r.resultat_id}) : "
            f"dossier « {_nom(b, dossier)} » clos comme converti, {n} action(s) annulée(s).",
            dossier=dossier, statut="clos", motif="objectif-atteint",
            demande_id=dossier.ouvert_par)

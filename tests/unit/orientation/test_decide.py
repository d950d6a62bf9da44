"""Orientation's decisions on demands: cases, death rule, arbitration, corrections, replays.

The helpers at the top are shared with the other test modules of this folder.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from services.orientation.catalogue import Catalogue, load_catalogue
from services.orientation.rules import Outcome, PersonContext, decide
from shared.calendar import PARIS
from shared.contracts.internes import ActionPlanifiee, Decision, Demande, Detecteur

PSEUDO = "pseudo-0001"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in Paris


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    return load_catalogue()


def paris(*args: int) -> datetime:
    """A Paris wall-clock time, as the aware UTC instant the rules return."""
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)  # type: ignore[misc]


def demande(evenement: str = "retraite", demande_id: str = "dem-1", **kw: Any) -> Demande:
    data: dict[str, Any] = {
        "demande_id": demande_id, "pseudonyme": PSEUDO, "origine": "evenement-vie",
        "evenement": evenement, "date_effet": date(2026, 7, 1), "recu_le": NOW, "age": 62,
        "naissance": "1964-01",
    }
    data.update(kw)
    return Demande(**data)


def signalement(situation: str, demande_id: str = "sig-1", consentement: bool = True,
                **kw: Any) -> Demande:
    data: dict[str, Any] = {
        "origine": "signalement", "date_effet": NOW.date(), "age": 40,
        "drapeaux": {"consentement_contact": consentement},
        "detecteur": Detecteur(type="ccas", identifiant="ccas-17-rochefort"),
        "signalement": {"reference": f"REF-{demande_id}", "situation": situation,
                        "consentement_contact": consentement},
    }
    data.update(kw)
    return demande("signalement", demande_id, **data)


def vide() -> PersonContext:
    return PersonContext(pseudonyme=PSEUDO)


def suite(*demandes: Demande, now: datetime = NOW, contexte: PersonContext | None = None,
          **kw: Any) -> list[Outcome]:
    """Decide the demands one after the other, each on the context the previous one left."""
    outcomes, ctx = [], contexte or vide()
    for d in demandes:
        outcome = decide(ctx, d, catalogue(), now, **kw)
        outcomes.append(outcome)
        ctx = outcome.contexte
    return outcomes


def etapes(actions: tuple[ActionPlanifiee, ...]) -> dict[str, ActionPlanifiee]:
    return {a.etape: a for a in actions}


def pour(outcome: Outcome, parcours: str) -> Decision:
    return next(d for d in outcome.decisions if d.parcours == parcours)


def texte(decision: Decision) -> str:
    return " ".join(decision.explication)


def en_attente(ctx: PersonContext) -> list[ActionPlanifiee]:
    return [s.action for d in ctx.dossiers for s in d.actions if s.en_attente]


# --------------------------------------------------------------------------- cases


def test_a_retirement_opens_the_seniors_case_with_its_periods_and_the_m9_letter() -> None:
    (o,) = suite(demande(drapeaux={"sans_complementaire": True}))
    (dossier,) = o.dossiers_ouverts
    assert dossier.parcours == "accompagnement-des-seniors" and dossier.cycle == 1
    planned = etapes(o.actions_planifiees)
    assert list(planned) == ["p1-avant-la-retraite", "p2-passage-a-la-retraite",
                             "m9-sans-complementaire", "p3-bien-vieillir"]
    m9 = planned["m9-sans-complementaire"]
    assert m9.due_le == paris(2027, 4, 1, 9) and m9.kind == "courrier"
    assert m9.condition == "sans_complementaire" and m9.canaux == ["courrier"]
    decision = pour(o, "accompagnement-des-seniors")
    assert decision.statut == "ouvert" and decision.catalogue_version == catalogue().version
    assert "+9 mois" in texte(decision) and "sans_complementaire" in texte(decision)


def test_the_m9_letter_is_not_planned_for_someone_who_has_a_complementary_insurance() -> None:
    (o,) = suite(demande(drapeaux={"sans_complementaire": False}))
    assert "m9-sans-complementaire" not in etapes(o.actions_planifiees)
    assert "« m9-sans-complementaire » non planifiée" in texte(
        pour(o, "accompagnement-des-seniors"))


def test_ids_are_derived_from_the_person_the_parcours_and_the_step() -> None:
    from shared.ids import derive_id

    (o,) = suite(demande(drapeaux={"sans_complementaire": True}))
    dossier_id = derive_id("dossier", PSEUDO, "accompagnement-des-seniors", 1)
    assert o.dossiers_ouverts[0].dossier_id == dossier_id
    for a in o.actions_planifiees:
        assert a.action_id == derive_id("action", dossier_id, a.etape)
        assert a.dossier_id == dossier_id and a.pseudonyme == PSEUDO


def test_a_second_event_for_an_open_parcours_updates_the_case_instead_of_opening_another() -> None:
    ase = demande("ase-17-ans", "dem-ase", date_effet=date(2026, 6, 1), age=17,
                  naissance="2009-06")
    sortie = demande("sortie-ase", "dem-sortie", date_effet=date(2027, 6, 1), age=17,
                     naissance="2009-06", dates={"date_fin_prise_en_charge": date(2027, 6, 30)})
    first, second = suite(ase, sortie)
    assert "droits-a-la-sortie" not in etapes(first.actions_planifiees)
    assert "date « dates.date_fin_prise_en_charge » n'est pas connue" in texte(
        pour(first, "aide-sociale-a-l-enfance"))
    assert second.dossiers_ouverts == ()
    (maj,) = second.dossiers_mis_a_jour
    assert maj.dossier_id == first.dossiers_ouverts[0].dossier_id
    assert etapes(second.actions_planifiees)["droits-a-la-sortie"].due_le == paris(2027, 4, 30, 9)
    assert pour(second, "aide-sociale-a-l-enfance").statut == "mis-a-jour"
    assert [d.parcours for d in second.contexte.dossiers] == ["aide-sociale-a-l-enfance"]


def test_a_demand_no_parcours_answers_to_is_refused_with_the_reason() -> None:
    (o,) = suite(signalement("situation-inexistante"))
    assert o.actions_planifiees == () and o.dossiers_ouverts == ()
    (decision,) = o.decisions
    assert decision.statut == "refuse" and decision.reference_signalement == "REF-sig-1"
    assert "Aucun parcours" in texte(decision) and catalogue().version in texte(decision)


def test_a_referral_without_consent_opens_nothing_and_says_why() -> None:
    (o,) = suite(signalement("renoncement-aux-soins", consentement=False))
    assert o.actions_planifiees == ()
    decision = pour(o, "renoncement-aux-soins")
    assert decision.statut == "refuse" and "accord pour être contactée" in texte(decision)


def test_the_referral_hand_over_call_is_due_now_with_a_48_business_hours_deadline() -> None:
    friday_evening = paris(2026, 3, 6, 18)
    (o,) = suite(signalement("renoncement-aux-soins", recu_le=friday_evening),
                 now=friday_evening)
    (appel,) = o.actions_planifiees
    assert appel.etape == "prise-en-charge" and appel.kind == "appel" and appel.obligatoire
    assert appel.due_le == friday_evening
    assert appel.echeance == paris(2026, 3, 10, 18)  # Saturday and Sunday do not count
    assert pour(o, "renoncement-aux-soins").reference_signalement == "REF-sig-1"


def test_48_business_hours_also_skip_french_public_holidays() -> None:
    before_ascension = paris(2026, 5, 13, 10)  # Wednesday; Thursday 14 May is Ascension
    (o,) = suite(signalement("renoncement-aux-soins", recu_le=before_ascension),
                 now=before_ascension)
    assert o.actions_planifiees[0].echeance == paris(2026, 5, 18, 10)


def test_a_step_whose_date_has_passed_is_planned_now_or_dropped_as_the_catalogue_says() -> None:
    late = demande(date_effet=date(2026, 2, 1), drapeaux={"sans_complementaire": True})
    (o,) = suite(late)
    planned = etapes(o.actions_planifiees)
    assert "p1-avant-la-retraite" not in planned  # "before retirement" makes no sense after it
    assert planned["p2-passage-a-la-retraite"].due_le == NOW
    assert "déjà passée" in texte(pour(o, "accompagnement-des-seniors"))
    assert "dès maintenant" in texte(pour(o, "accompagnement-des-seniors"))


def test_the_goal_event_closes_the_case_as_converted_and_cancels_what_is_left() -> None:
    retraite, souscrite = suite(demande(drapeaux={"sans_complementaire": True}),
                                demande("complementaire-souscrite", "dem-2"))
    (clos,) = souscrite.dossiers_clos
    assert clos.motif_cloture == "objectif-atteint"
    assert {a.action_id for a in souscrite.actions_annulees} == {
        a.action_id for a in retraite.actions_planifiees}
    decision = pour(souscrite, "accompagnement-des-seniors")
    assert decision.statut == "clos" and decision.motif_cloture == "objectif-atteint"


def test_a_new_cycle_opens_once_the_previous_case_is_closed() -> None:
    outcomes = suite(demande(drapeaux={"sans_complementaire": True}),
                     demande("complementaire-souscrite", "dem-2"),
                     demande(demande_id="dem-3", date_effet=date(2026, 8, 1)))
    cycles = [d.cycle for d in outcomes[-1].contexte.dossiers]
    assert cycles == [1, 2]
    assert outcomes[-1].dossiers_ouverts[0].dossier_id != outcomes[0].dossiers_ouverts[0].dossier_id


# --------------------------------------------------------------------------- death


def test_death_after_retirement_cancels_the_m9_letter_and_plans_one_family_contact() -> None:
    retraite, deces = suite(
        demande(drapeaux={"sans_complementaire": True}),
        demande("deces", "dem-deces", date_effet=date(2026, 3, 1),
                drapeaux={"proche_connu": True}))
    m9 = etapes(retraite.actions_planifiees)["m9-sans-complementaire"]
    annulees = {a.action_id: a.raison for a in deces.actions_annulees}
    assert annulees[m9.action_id] == "deces"
    assert set(annulees) == {a.action_id for a in retraite.actions_planifiees}
    (seniors,) = deces.dossiers_clos
    assert seniors.motif_cloture == "deces"
    (contact,) = deces.actions_planifiees
    assert contact.destinataire == "proche" and contact.parcours == "perte-d-un-proche"
    assert contact.due_le == paris(2026, 3, 8, 9) and contact.priorite == 4
    assert [a.destinataire for a in en_attente(deces.contexte)] == ["proche"]
    assert "règle décès" in texte(pour(deces, "accompagnement-des-seniors"))


def test_a_death_without_a_known_relative_plans_no_contact_and_explains_it() -> None:
    (o,) = suite(demande("deces", "dem-deces", drapeaux={"proche_connu": False}))
    assert o.actions_planifiees == ()
    assert "Aucun proche connu" in texte(pour(o, "perte-d-un-proche"))


def test_after_a_death_no_other_parcours_ever_opens() -> None:
    _deces, retraite, signal = suite(
        demande("deces", "dem-deces", drapeaux={"proche_connu": True}),
        demande(demande_id="dem-retraite", drapeaux={"sans_complementaire": True}),
        signalement("renoncement-aux-soins"))
    for refused in (retraite, signal):
        assert refused.actions_planifiees == () and refused.dossiers_ouverts == ()
        (decision,) = refused.decisions
        assert decision.statut == "refuse" and "Personne décédée" in texte(decision)
    assert [d.parcours for d in signal.contexte.dossiers] == ["perte-d-un-proche"]


def test_a_second_death_report_changes_nothing() -> None:
    _, again = suite(demande("deces", "dem-deces", drapeaux={"proche_connu": True}),
                     demande("deces", "dem-deces-bis", drapeaux={"proche_connu": True}))
    assert again.actions_planifiees == () and again.dossiers_ouverts == ()
    assert again.decisions[0].statut == "refuse"


def test_a_retracted_death_is_flagged_for_an_agent_and_reopens_nothing() -> None:
    _retraite, deces, retrait = suite(
        demande(drapeaux={"sans_complementaire": True}),
        demande("deces", "dem-deces", drapeaux={"proche_connu": True}),
        demande("deces", "dem-retrait", nature="annulation", demande_reference="dem-deces"))
    assert retrait.actions_planifiees == () and retrait.dossiers_ouverts == ()
    assert [a.action_id for a in retrait.actions_annulees] == [
        deces.actions_planifiees[0].action_id]  # no condolence letter about a living person
    verifier = next(d for d in retrait.decisions if d.statut == "a-verifier")
    assert verifier.dossier_id is None and "pas rouverts" in texte(verifier)
    assert [a.code for a in retrait.alertes] == ["deces-retracte"]
    ctx = retrait.contexte
    assert ctx.decede and ctx.deces_retracte
    assert all(not d.ouvert for d in ctx.dossiers)
    (later,) = suite(demande(demande_id="dem-4"), contexte=ctx)
    assert later.actions_planifiees == () and "vérification d'un agent" in texte(later.decisions[0])


def test_a_corrected_death_with_a_now_known_relative_plans_the_single_contact() -> None:
    _, corrige = suite(
        demande("deces", "dem-deces", drapeaux={"proche_connu": False}),
        demande("deces", "dem-corr", nature="correction", demande_reference="dem-deces",
                drapeaux={"proche_connu": True}))
    (contact,) = corrige.actions_planifiees
    assert contact.destinataire == "proche"
    assert [a.destinataire for a in en_attente(corrige.contexte)] == ["proche"]


# --------------------------------------------------------------------------- arbitration


def _retraite_proche() -> Demande:
    return demande(demande_id="dem-retraite", date_effet=date(2026, 3, 5),
                   drapeaux={"sans_complementaire": True})


def _separation_violences() -> Demande:
    return demande("separation", "dem-separation", date_effet=date(2026, 3, 1), age=40,
                   drapeaux={"violences_intrafamiliales": True})


def test_two_events_in_one_week_give_one_contact_and_the_safety_parcours_wins() -> None:
    retraite, separation = suite(_retraite_proche(), _separation_violences())
    lettre = etapes(retraite.actions_planifiees)["p2-passage-a-la-retraite"]
    (appel,) = separation.actions_planifiees
    assert appel.etape == "appel-securite" and appel.priorite == 3
    (fusion,) = separation.actions_annulees
    assert fusion.action_id == lettre.action_id and fusion.raison.startswith("fusionnee")
    assert appel.action_id in fusion.raison
    assert "n'est pas contactée deux fois en 7 jours" in texte(
        pour(separation, "accompagnement-des-seniors"))
    assert "porte aussi" in texte(pour(separation, "familles-monoparentales-separation"))
    suivi = separation.contexte.action(lettre.action_id)
    assert suivi is not None and suivi.statut == "fusionnee"


def test_the_lower_precedence_contact_is_never_published_when_it_comes_second() -> None:
    separation, retraite = suite(_separation_violences(), _retraite_proche())
    planned = etapes(retraite.actions_planifiees)
    assert "p2-passage-a-la-retraite" not in planned
    assert retraite.actions_annulees == ()  # it was never published, nothing to cancel
    assert "regroupée" in texte(pour(retraite, "accompagnement-des-seniors"))
    dossier = retraite.contexte.dossier_ouvert("accompagnement-des-seniors")
    assert dossier is not None
    (p2,) = dossier.suivis("p2-passage-a-la-retraite")
    assert p2.statut == "fusionnee" and not p2.publiee
    assert p2.fusionnee_dans == separation.actions_planifiees[0].action_id


def test_contacts_further_apart_than_the_window_are_not_merged() -> None:
    _, separation = suite(_retraite_proche(), _separation_violences(), merge_window_days=1)
    assert separation.actions_annulees == ()


def test_with_equal_precedence_the_contact_already_published_is_kept() -> None:
    first, second = suite(
        demande("entree-ald", "dem-ald", date_effet=date(2026, 3, 1)),
        demande("entree-invalidite", "dem-inv", date_effet=date(2026, 2, 20), age=50,
                drapeaux={"categorie": 2}))
    ald = etapes(first.actions_planifiees)["axe1-information-entree"]  # 8 March
    assert "invitation-reunion-information" not in etapes(second.actions_planifiees)  # 7 March
    assert second.actions_annulees == ()
    assert en_attente(second.contexte).count(ald) == 1


def test_a_mandatory_contact_is_never_merged_away() -> None:
    _, signal = suite(_separation_violences(), signalement("renoncement-aux-soins"))
    assert signal.actions_annulees == ()
    assert [a.etape for a in signal.actions_planifiees] == ["prise-en-charge"]


def test_a_later_report_of_violence_cancels_the_letter_to_the_home_address() -> None:
    sans, avec = suite(
        demande("separation", "dem-1", date_effet=date(2026, 3, 10), age=40),
        demande("separation", "dem-2", date_effet=date(2026, 3, 10), age=40,
                drapeaux={"violences_intrafamiliales": True}))
    lettre = etapes(sans.actions_planifiees)["information-droits-separation"]
    assert [a.action_id for a in avec.actions_annulees] == [lettre.action_id]
    assert [a.etape for a in avec.actions_planifiees] == ["appel-securite"]
    (dossier,) = avec.dossiers_mis_a_jour
    assert dossier.classe == "securite"


def test_explanations_never_spell_out_a_sensitive_situation() -> None:
    outcomes = suite(_retraite_proche(), _separation_violences())
    for o in outcomes:
        for d in o.decisions:
            assert "violence" not in texte(d).lower()


# --------------------------------------------------------------------------- replays


def test_redelivery_of_a_demand_republishes_the_same_ids_and_changes_nothing() -> None:
    d = demande(drapeaux={"sans_complementaire": True})
    (first,) = suite(d)
    again = decide(first.contexte, d, catalogue(), NOW + timedelta(hours=1))
    assert again.rejoue and again.contexte == first.contexte
    assert again.actions_planifiees == first.actions_planifiees
    assert again.decisions == first.decisions
    assert again.dossiers_ouverts == () and again.dossiers_clos == ()


def test_deciding_twice_from_the_same_context_gives_the_same_outcome() -> None:
    d = _separation_violences()
    (first,) = suite(_retraite_proche())
    assert decide(first.contexte, d, catalogue(), NOW) == decide(first.contexte, d, catalogue(),
                                                                 NOW)


def test_a_redelivered_death_republishes_the_same_cancellations() -> None:
    _, deces = suite(demande(drapeaux={"sans_complementaire": True}),
                     demande("deces", "dem-deces", drapeaux={"proche_connu": True}))
    again = decide(deces.contexte, demande("deces", "dem-deces", drapeaux={"proche_connu": True}),
                   catalogue(), NOW)
    assert again.actions_annulees == deces.actions_annulees
    assert again.actions_planifiees == deces.actions_planifiees


# --------------------------------------------------------------------------- corrections


def test_a_correction_replans_the_steps_whose_due_date_changed() -> None:
    first, corr = suite(
        demande(drapeaux={"sans_complementaire": True}),
        demande(demande_id="dem-corr", nature="correction", demande_reference="dem-1",
                date_effet=date(2026, 9, 1), drapeaux={"sans_complementaire": True}))
    old, new = etapes(first.actions_planifiees), etapes(corr.actions_planifiees)
    assert {a.action_id for a in corr.actions_annulees} == {a.action_id for a in old.values()}
    assert all(a.raison.startswith("correction") for a in corr.actions_annulees)
    assert new["m9-sans-complementaire"].due_le == paris(2027, 6, 1, 9)
    assert not {a.action_id for a in new.values()} & {a.action_id for a in old.values()}
    assert corr.dossiers_ouverts == ()
    decision = pour(corr, "accompagnement-des-seniors")
    assert decision.statut == "mis-a-jour" and "Correction de la demande dem-1" in texte(decision)


def test_a_correction_that_changes_no_date_keeps_every_action() -> None:
    _, corr = suite(
        demande(drapeaux={"sans_complementaire": True}),
        demande(demande_id="dem-corr", nature="correction", demande_reference="dem-1",
                drapeaux={"sans_complementaire": True}))
    assert corr.actions_annulees == () and corr.actions_planifiees == ()
    assert "inchangée" in texte(pour(corr, "accompagnement-des-seniors"))


def test_a_correction_of_a_flag_cancels_only_the_step_it_conditions() -> None:
    first, corr = suite(
        demande(drapeaux={"sans_complementaire": True}),
        demande(demande_id="dem-corr", nature="correction", demande_reference="dem-1",
                drapeaux={"sans_complementaire": False}))
    m9 = etapes(first.actions_planifiees)["m9-sans-complementaire"]
    assert [a.action_id for a in corr.actions_annulees] == [m9.action_id]
    assert corr.actions_planifiees == ()


def test_a_second_correction_replans_from_the_first_one() -> None:
    _, c1, c2 = suite(
        demande(drapeaux={"sans_complementaire": True}),
        demande(demande_id="c1", nature="correction", demande_reference="dem-1",
                date_effet=date(2026, 9, 1), drapeaux={"sans_complementaire": True}),
        demande(demande_id="c2", nature="correction", demande_reference="dem-1",
                date_effet=date(2026, 7, 1), drapeaux={"sans_complementaire": True}))
    assert {a.action_id for a in c2.actions_annulees} == {
        a.action_id for a in c1.actions_planifiees}
    ids = [s.action.action_id for d in c2.contexte.dossiers for s in d.actions]
    assert len(ids) == len(set(ids))


def test_a_correction_making_the_person_ineligible_closes_the_case() -> None:
    _, corr = suite(demande(drapeaux={"sans_complementaire": True}),
                    demande(demande_id="c1", nature="correction", demande_reference="dem-1",
                            age=50))
    (clos,) = corr.dossiers_clos
    assert clos.motif_cloture == "correction" and "âge inférieur à 55 ans" in texte(
        pour(corr, "accompagnement-des-seniors"))


def test_a_correction_of_an_unknown_demand_is_handled_as_an_initial_one_and_flagged() -> None:
    (o,) = suite(demande(nature="correction", demande_reference="jamais-vue"))
    assert len(o.dossiers_ouverts) == 1
    assert [a.code for a in o.alertes] == ["reference-inconnue"]


# --------------------------------------------------------------------------- retractions


def test_a_retraction_cancels_and_closes_the_cases_the_demand_opened() -> None:
    first, retrait = suite(demande(drapeaux={"sans_complementaire": True}),
                           demande(demande_id="r1", nature="annulation",
                                   demande_reference="dem-1"))
    assert {a.action_id for a in retrait.actions_annulees} == {
        a.action_id for a in first.actions_planifiees}
    (clos,) = retrait.dossiers_clos
    assert clos.motif_cloture == "annulation"
    assert pour(retrait, "accompagnement-des-seniors").statut == "clos"


def test_a_retraction_of_an_unknown_demand_changes_nothing_and_is_flagged() -> None:
    (o,) = suite(demande(nature="annulation", demande_reference="jamais-vue"))
    assert o.actions_annulees == () and o.dossiers_clos == ()
    assert o.decisions[0].statut == "refuse" and o.alertes[0].code == "reference-inconnue"


def test_a_retracted_update_is_left_to_an_agent() -> None:
    _, _, retrait = suite(
        demande("ase-17-ans", "dem-ase", date_effet=date(2026, 6, 1), age=17, naissance="2009-06"),
        demande("sortie-ase", "dem-sortie", date_effet=date(2027, 6, 1), age=17,
                naissance="2009-06", dates={"date_fin_prise_en_charge": date(2027, 6, 30)}),
        demande("sortie-ase", "r1", nature="annulation", demande_reference="dem-sortie", age=17,
                naissance="2009-06"))
    assert retrait.dossiers_clos == ()
    assert retrait.decisions[0].statut == "a-verifier"
    assert retrait.alertes[0].code == "retrait-a-verifier"

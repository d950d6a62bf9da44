"""Outcomes (parcours.resultats) move cases on: next step, fallback, refusal, goal, replay."""

from __future__ import annotations

from datetime import date, timedelta

from services.orientation.rules import PersonContext, on_result
from shared.contracts.internes import ActionPlanifiee, Resultat
from tests.unit.orientation.test_decide import (
    NOW,
    PSEUDO,
    catalogue,
    demande,
    paris,
    signalement,
    suite,
    texte,
)


def resultat(rid: str, action: ActionPlanifiee | None, statut: str, **kw: object) -> Resultat:
    return Resultat(resultat_id=rid, pseudonyme=PSEUDO,
                    action_id=action.action_id if action else None,
                    dossier_id=action.dossier_id if action else None,
                    parcours=action.parcours if action else None, statut=statut,  # type: ignore[arg-type]
                    survenu_le=kw.pop("survenu_le", NOW), **kw)


def _misas() -> tuple[PersonContext, ActionPlanifiee]:
    (o,) = suite(signalement("renoncement-aux-soins"))
    return o.contexte, o.actions_planifiees[0]


def test_a_completed_call_advances_the_plan_to_the_next_step() -> None:
    ctx, appel = _misas()
    o = on_result(ctx, resultat("r1", appel, "appel", issue_appel="joint"), catalogue(), NOW)
    (suivi,) = o.actions_planifiees
    assert suivi.etape == "suivi-telephonique" and suivi.due_le == paris(2026, 4, 1, 11)
    assert "le plan avance" in texte(o.decisions[0])


def test_three_unanswered_calls_then_a_letter() -> None:
    ctx, appel = _misas()
    now = NOW
    for n in range(3):
        now += timedelta(days=1)
        o = on_result(ctx, resultat(f"r{n}", appel, "appel", issue_appel="injoignable",
                                    survenu_le=now), catalogue(), now)
        ctx, (appel,) = o.contexte, o.actions_planifiees
    assert appel.etape == "prise-en-charge-repli" and appel.kind == "courrier"
    assert "3 appels sans réponse" in texte(o.decisions[0])


def test_an_impossible_call_falls_back_at_once() -> None:
    ctx, appel = _misas()
    o = on_result(ctx, resultat("r1", appel, "echec", raison="numéro invalide"), catalogue(), NOW)
    assert [a.etape for a in o.actions_planifiees] == ["prise-en-charge-repli"]


def test_a_refusal_closes_the_case_with_the_catalogue_reason() -> None:
    ctx, appel = _misas()
    o = on_result(ctx, resultat("r1", appel, "appel", issue_appel="refus"), catalogue(), NOW)
    (clos,) = o.dossiers_clos
    assert clos.motif_cloture == "accompagnement-interrompu"
    assert o.decisions[0].statut == "clos"


def test_a_goal_outcome_closes_the_case_as_converted() -> None:
    ctx, appel = _misas()
    o = on_result(ctx, resultat("r1", appel, "objectif-atteint"), catalogue(), NOW)
    assert o.dossiers_clos[0].motif_cloture == "objectif-atteint"
    assert o.decisions[0].motif_cloture == "objectif-atteint"


def test_an_outcome_for_an_unknown_action_is_flagged_and_changes_no_case() -> None:
    ctx, _ = _misas()
    o = on_result(ctx, resultat("r1", None, "envoye"), catalogue(), NOW)
    assert [a.code for a in o.alertes] == ["resultat-inconnu"]
    assert o.contexte.dossiers == ctx.dossiers


def test_the_last_step_sent_ends_the_plan_and_a_redelivered_outcome_changes_nothing() -> None:
    (m,) = suite(demande("declaration-grossesse", date_effet=date(2026, 3, 1)))
    ctx = m.contexte
    for n, action in enumerate(m.actions_planifiees):
        o = on_result(ctx, resultat(f"s{n}", action, "envoye"), catalogue(), NOW)
        ctx = o.contexte
    assert o.dossiers_clos[0].motif_cloture == "plan-termine"
    again = on_result(ctx, resultat("s1", m.actions_planifiees[1], "envoye"), catalogue(), NOW)
    assert again.rejoue and again.contexte == ctx
    assert [d.decision_id for d in again.decisions] == [d.decision_id for d in o.decisions]

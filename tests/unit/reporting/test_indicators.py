"""reporting's pure indicator functions, on facts projected from contract events."""

from __future__ import annotations

from datetime import date

import pytest

from services.reporting import indicators as ind
from services.reporting import projections as p
from shared import topics as t
from shared.calendar import add_business_hours
from shared.contracts import internes as i
from tests.integration.reporting import builders as b
from tests.integration.reporting import scenarios


def facts_of(events: dict[str, list]) -> ind.Facts:
    actions: dict[str, dict] = {}
    for e in events.get(t.ACTIONS, []):
        if e.type == i.ACTION_PLANIFIEE:
            actions.setdefault(e.data.action_id, {"_id": e.data.action_id}).update(
                p.action_planned_fields(e)
            )
        else:
            actions.setdefault(e.data.action_id, {"_id": e.data.action_id}).update(
                p.action_cancelled_fields(e)
            )
    return ind.Facts(
        demandes=[p.demande_fact(e) for e in events.get(t.DEMANDES, [])],
        decisions=[p.decision_fact(e) for e in events.get(t.DECISIONS, [])],
        actions=list(actions.values()),
        resultats=[p.resultat_fact(e) for e in events.get(t.RESULTATS, [])],
    )


def total(rows: list[dict], **keys: str) -> dict:
    assert rows, "no row"
    out: dict = {}
    for r in rows:
        if all(r.get(k) == v for k, v in keys.items()):
            for k, v in r.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    out[k] = out.get(k, 0) + v
    return out


def test_the_scenario_deadlines_are_the_ones_hand_computed() -> None:
    u = b.utc
    assert add_business_hours(u(2026, 3, 5, 9), 48) == u(2026, 3, 9, 9)
    assert add_business_hours(u(2026, 3, 6, 9), 48) == u(2026, 3, 10, 9)


def test_business_hours_count_only_business_days_in_paris_time() -> None:
    u = b.utc
    assert ind.business_hours_between(u(2026, 3, 6, 9), u(2026, 3, 10, 13)) == 52
    assert ind.business_hours_between(u(2026, 3, 5, 9), u(2026, 3, 9, 8)) == 47
    assert ind.business_hours_between(u(2026, 3, 7, 9), u(2026, 3, 8, 9)) == 0  # a weekend
    assert ind.business_hours_between(u(2026, 5, 1, 0), u(2026, 5, 1, 20)) == 0  # 1st of May
    assert ind.business_hours_between(u(2026, 3, 3, 9), u(2026, 3, 2, 9)) == 0


def test_percentile_is_nearest_rank_and_months_clamp_to_the_end_of_month() -> None:
    assert ind.percentile([6, 24, 24, 47, 52], 90) == 52
    assert ind.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == 9
    assert ind.percentile([], 90) is None
    assert ind.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert ind.add_months(date(2026, 10, 15), 4) == date(2027, 2, 15)


def test_periods_are_paris_days_iso_weeks_and_months() -> None:
    late_evening = b.utc(2026, 3, 1, 23, 30)  # already Monday 2 March in Paris
    assert ind.period_key(late_evening, "jour") == "2026-03-02"
    assert ind.period_key(late_evening, "semaine") == "2026-S10"
    assert ind.period_key(late_evening, "mois") == "2026-03"


def test_48_hour_rate_and_time_to_first_contact_on_the_hand_checked_scenario() -> None:
    facts = facts_of(scenarios.misas())
    rows = ind.compute(
        "prise-en-charge-48h", facts, ind.Filtre(granularite="mois"), scenarios.MISAS_NOW
    )
    assert rows == [
        {
            "periode": "2026-03",
            "prises_en_charge_dues": 6,
            "dans_les_delais": 4,
            "hors_delai": 2,
            "en_cours": 1,
            "taux_48h": 0.6667,
            "delai_median_heures_ouvrees": 24.0,
            "delai_p90_heures_ouvrees": 52.0,
        }
    ]


def test_misas_composite_on_the_hand_checked_scenario() -> None:
    facts = facts_of(scenarios.misas())
    rows = ind.compute("misas", facts, ind.Filtre(granularite="mois"), scenarios.MISAS_NOW)
    assert rows == [
        {
            "periode": "2026-03",
            "accompagnements_termines": 5,
            "avec_soins_ou_inclusion": 2,
            "interrompus": 3,
            "interrompus_avec_droits": 2,
            "taux_soins": 0.4,
            "taux_droits": 0.6667,
            "indicateur_composite": 0.48,
        }
    ]


def test_misas_composite_formula() -> None:
    assert ind.misas_composite(2, 3, 2) == pytest.approx(0.48)
    assert ind.misas_composite(4, 0, 0) == 1.0  # nothing interrupted: care rate alone
    assert ind.misas_composite(0, 0, 0) is None
    assert ind.misas_composite(0, 2, 2) == pytest.approx(0.3)


def test_dropoff_and_relevance_per_detector_on_the_scenario() -> None:
    facts = facts_of(scenarios.misas())
    f = ind.Filtre(granularite="mois")
    assert ind.compute("deperdition", facts, f, scenarios.MISAS_NOW) == [
        {
            "periode": "2026-03",
            "dossiers_clos": 6,
            "objectif_atteint": 1,
            "plan_termine": 1,
            "sans_issue": 4,
            "taux_deperdition": 0.6667,
        }
    ]
    rows = ind.compute(
        "pertinence-detecteurs",
        facts,
        ind.Filtre(granularite="mois", par=("detecteur",)),
        scenarios.MISAS_NOW,
    )
    assert {
        r["detecteur"]: (
            r["saisines"],
            r["dossiers_ouverts"],
            r["accompagnements"],
            r["taux_pertinence"],
        )
        for r in rows
    } == {"ccas:ccas-91-evry": (4, 4, 3, 0.75), "mission-locale:ml-91": (3, 3, 2, 0.6667)}


def test_conversion_of_the_m9_letter_within_four_months() -> None:
    facts = facts_of(scenarios.cohort())
    rows = ind.compute("conversion", facts, ind.Filtre(granularite="mois"), scenarios.COHORT_NOW)
    assert rows == [
        {
            "periode": "2026-01",
            "modele": "seniors-m9-complementaire",
            "objectif": "complementaire-souscrite",
            "fenetre_mois": 4,
            "personnes": 300,
            "converties_dans_la_fenetre": 127,
            "converties_apres_la_fenetre": 11,
            "fenetres_en_cours": 0,
            "taux_conversion": 0.4233,
        }
    ]
    shorter = ind.compute(
        "conversion", facts, ind.Filtre(granularite="mois"), scenarios.COHORT_NOW, fenetre_mois=1
    )
    assert shorter[0]["converties_dans_la_fenetre"] < 127


def test_a_goal_before_the_letter_or_a_second_letter_changes_nothing() -> None:
    u = b.utc
    letter = b.action(
        "x",
        "dx",
        "accompagnement-des-seniors",
        "m9",
        "courrier",
        "courrier",
        u(2026, 1, 5, 8),
        modele="seniors-m9-complementaire",
    )
    events = {
        t.ACTIONS: [letter],
        t.RESULTATS: [
            b.resultat("x", "envoye", u(2026, 1, 5, 9), planned=letter),
            b.resultat("x", "envoye", u(2026, 2, 5, 9), planned=letter),
        ],
        t.DEMANDES: [b.demande("x", "complementaire-souscrite", u(2026, 1, 2, 9))],
    }
    rows = ind.compute(
        "conversion", facts_of(events), ind.Filtre(granularite="mois"), u(2026, 12, 1)
    )
    assert (rows[0]["personnes"], rows[0]["converties_dans_la_fenetre"]) == (1, 0)


def test_volumes_count_each_kind_of_fact_by_dimension_and_filter() -> None:
    facts = facts_of(scenarios.misas())
    f = ind.Filtre(
        granularite="mois", par=("detecteur",), valeurs={"detecteur": "mission-locale:ml-91"}
    )
    got = {
        (r["indicateur"], r["motif"]): r["valeur"]
        for r in ind.compute("volumes", facts, f, scenarios.MISAS_NOW)
    }
    assert got[("signalements-recus", "renoncement-aux-soins")] == 3
    assert got[("dossiers-ouverts", "")] == 3
    assert got[("appels", "joint")] == 2
    assert got[("appels", "refus")] == 1
    assert all(k[0] != "evenements-rejetes" for k in got)


def test_filters_reject_unknown_dimensions() -> None:
    with pytest.raises(ValueError):
        ind.Filtre(par=("nir",))
    with pytest.raises(ValueError):
        ind.Filtre(granularite="annee")


def test_a_reject_is_keyed_by_its_original_record_and_never_reads_the_value() -> None:
    headers = {
        "parcours-reject-code": b"nir.cle",
        "parcours-original-topic": b"evenements-vie",
        "parcours-original-partition": b"2",
        "parcours-original-offset": b"9",
        "parcours-rejected-at": b"2026-03-02T10:00:00+00:00",
    }
    one = p.rejet_fact(headers, "evenements-vie.rejets", 0, 1, None)
    again = p.rejet_fact(headers, "evenements-vie.rejets", 1, 7, None)
    assert one == again
    assert one["code"] == "nir.cle" and one["rejete_le"] == b.utc(2026, 3, 2, 10)


def test_facts_keep_no_free_text_nor_birth_month() -> None:
    e = b.demande("p", "retraite", b.utc(2026, 3, 2, 9))
    fact = p.demande_fact(e)
    assert "naissance" not in fact and "age" not in fact and "drapeaux" not in fact
    d = p.decision_fact(b.decision("p", "x", "d", "pp", "ouvert", b.utc(2026, 3, 2, 9)))
    assert "explication" not in d


def _same_day_paths(n: int) -> dict[str, list]:
    """``n`` persons with the same path on the same day: a life event, a case opened, a call
    with a deadline answered in time."""
    u, out = b.utc, {t.DEMANDES: [], t.DECISIONS: [], t.ACTIONS: [], t.RESULTATS: []}
    for k in range(n):
        pseudo, dossier = f"p{k:05d}", f"d{k:05d}"
        dem = b.demande(pseudo, "retraite", u(2026, 3, 2, 9))
        out[t.DEMANDES].append(dem)
        out[t.DECISIONS].append(
            b.decision(
                pseudo,
                dem.data.demande_id,
                dossier,
                "accompagnement-des-seniors",
                "ouvert",
                u(2026, 3, 2, 9),
            )
        )
        call = b.action(
            pseudo,
            dossier,
            "accompagnement-des-seniors",
            "appel",
            "appel",
            "telephone",
            u(2026, 3, 2, 10),
            modele="appel",
            echeance=u(2026, 3, 4, 10),
        )
        out[t.ACTIONS].append(call)
        out[t.RESULTATS].append(
            b.resultat(pseudo, "appel", u(2026, 3, 3, 10), planned=call, issue="joint")
        )
    return out


def test_the_cube_keeps_counts_per_day_and_dimensions_not_the_facts_behind_them() -> None:
    small = ind.cube_of(facts_of(_same_day_paths(10)), scenarios.MISAS_NOW)
    large = ind.cube_of(facts_of(_same_day_paths(300)), scenarios.MISAS_NOW)
    assert large.facts == 30 * small.facts == 1200
    assert large.size() == small.size(), "thirty times the facts, the same cells"
    f = ind.Filtre(granularite="mois")
    assert large.rows("prise-en-charge-48h", f)[0]["dans_les_delais"] == 300
    assert total(large.rows("volumes", f), indicateur="appels")["valeur"] == 300
    assert total(large.rows("entonnoir", f))["contactees"] == 300


def test_facts_come_apart_by_person_and_a_reject_counts_as_no_person() -> None:
    facts = facts_of(_same_day_paths(3))
    facts.rejets.append({"_id": "r1", "code": "nir.cle", "rejete_le": scenarios.MISAS_NOW})
    parts = list(ind.by_person(facts))
    assert [
        sorted({d["pseudonyme"] for d in part.demandes + part.resultats}) for part in parts
    ] == [["p00000"], ["p00001"], ["p00002"]]
    assert all(part.size() == 4 and not part.rejets for part in parts)
    cube = ind.cube_of(facts, scenarios.MISAS_NOW)
    assert (cube.persons, cube.facts) == (3, 13)
    assert cube.rows("rejets", ind.Filtre(granularite="mois"))[0]["valeur"] == 1

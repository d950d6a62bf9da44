"""Every parcours of the catalogue: what its triggering demand plans, and a non-eligible one.

``NOW`` is Monday 2 March 2026, 11:00 in Paris. Steps anchored on a date are due at 09:00
Paris time; steps anchored on the reception keep its time of day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest

from services.orientation.rules import decide
from shared.contracts.internes import Demande, Detecteur
from tests.unit.orientation.test_decide import (
    NOW,
    catalogue,
    demande,
    paris,
    signalement,
    texte,
    vide,
)

DE = date(2026, 6, 1)


@dataclass(frozen=True)
class Cas:
    parcours: str
    declencheur: Demande
    attendu: dict[str, tuple[str, datetime]]
    non_eligible: dict[str, Any]
    motif: str


def ev(evenement: str, **kw: Any) -> Demande:
    kw.setdefault("date_effet", DE)
    kw.setdefault("age", 40)
    return demande(evenement, f"dem-{evenement}", **kw)


def sig(situation: str, **kw: Any) -> Demande:
    return signalement(situation, f"sig-{situation}", **kw)


def recu(jours: int) -> datetime:
    """``jours`` days after the reception, same time of day (all before the March DST change)."""
    return paris(2026, 3, 2 + jours, 11)


SANS_ACCORD = {"drapeaux": {"consentement_contact": False},
               "signalement": {"situation": "?", "consentement_contact": False}}
ACCORD = "accord pour être contactée"
TROP_ANCIEN = "événement trop ancien"

CAS = [
    Cas("acces-medecin-traitant", ev("depart-medecin-traitant"),
        {"information-recherche": ("courrier", paris(2026, 5, 2, 9)),
         "appel-accompagnement": ("appel", recu(7))},
        {"age": 15}, "âge inférieur à 16 ans"),
    Cas("affection-longue-duree", ev("entree-ald"),
        {"axe1-information-entree": ("courrier", paris(2026, 6, 8, 9)),
         "axe1-rendez-vous-ameli": ("invitation", paris(2026, 7, 1, 9)),
         "axe2-suivi": ("courrier", paris(2027, 6, 1, 9))},
        {"date_effet": date(2024, 6, 1)}, TROP_ANCIEN),
    Cas("aller-vers", sig("difficulte-acces-aux-droits"),
        {"point-de-situation": ("appel", recu(3)),
         "invitation-permanence": ("invitation", recu(10))},
        SANS_ACCORD, ACCORD),
    Cas("complementaire-sante-solidaire", ev("fin-droits-c2s"),
        {"rappel-renouvellement": ("courrier", paris(2026, 4, 1, 9)),
         "invitation-webinaire": ("invitation", paris(2026, 4, 17, 9))},
        {"date_effet": date(2025, 6, 1)}, TROP_ANCIEN),
    Cas("invalidite", ev("entree-invalidite", drapeaux={"categorie": 2}),
        {"invitation-reunion-information": ("invitation", paris(2026, 6, 16, 9)),
         "rendez-vous-ameli": ("invitation", paris(2026, 7, 16, 9))},
        {"age": 65}, "âge supérieur à 64 ans"),
    Cas("renoncement-aux-soins", sig("renoncement-aux-soins"),
        {"prise-en-charge": ("appel", NOW)},
        SANS_ACCORD, ACCORD),
    Cas("accompagnement-des-seniors",
        ev("retraite", date_effet=date(2026, 7, 1), age=62,
           drapeaux={"sans_complementaire": True}),
        {"p1-avant-la-retraite": ("courrier", paris(2026, 4, 1, 9)),
         "p2-passage-a-la-retraite": ("courrier", paris(2026, 7, 1, 9)),
         "m9-sans-complementaire": ("courrier", paris(2027, 4, 1, 9)),
         "p3-bien-vieillir": ("courrier", paris(2027, 7, 1, 9))},
        {"age": 50}, "âge inférieur à 55 ans"),
    Cas("aidants", sig("proche-aidant"),
        {"information-droits-aidants": ("courrier", recu(3)),
         "invitation-rendez-vous": ("invitation", recu(14))},
        SANS_ACCORD, ACCORD),
    Cas("majeurs-proteges", sig("majeur-protege"),
        {"information-droits-services": ("courrier", recu(3)),
         "invitation-rendez-vous": ("invitation", recu(21))},
        {"age": 17}, "âge inférieur à 18 ans"),
    Cas("personnes-en-situation-de-handicap", sig("situation-de-handicap"),
        {"information-falc": ("courrier", recu(3)),
         "invitation-rendez-vous": ("invitation", recu(14))},
        SANS_ACCORD, ACCORD),
    Cas("familles-monoparentales-separation", ev("separation"),
        {"information-droits-separation": ("courrier", paris(2026, 6, 8, 9))},
        {"date_effet": date(2024, 1, 1)}, TROP_ANCIEN),
    Cas("maternite",
        ev("declaration-grossesse", date_effet=date(2026, 3, 2), age=30,
           dates={"date_prevue_accouchement": date(2026, 10, 15)}),
        {"calendrier-grossesse": ("courrier", NOW),  # 09:00 today is past: sent at once
         "invitation-ateliers-futurs-parents": ("invitation", paris(2026, 3, 16, 9)),
         "apres-la-naissance": ("courrier", paris(2026, 11, 15, 9))},
        {"date_effet": date(2025, 5, 1)}, TROP_ANCIEN),
    Cas("perte-d-un-proche",
        ev("deces", date_effet=date(2026, 3, 1), age=80, drapeaux={"proche_connu": True}),
        {"contact-famille": ("courrier", paris(2026, 3, 8, 9))},
        {"date_effet": date(2024, 1, 1)}, TROP_ANCIEN),
    Cas("aide-sociale-a-l-enfance", ev("ase-17-ans", age=17, naissance="2009-06"),
        {"rendez-vous-17-ans": ("rendez-vous", paris(2026, 6, 1, 9))},
        {"age": 22}, "âge supérieur à 21 ans"),
    Cas("enfants-pjj", sig("jeune-suivi-pjj", age=16),
        {"information-droits": ("courrier", recu(3)),
         "invitation-accueil": ("invitation", recu(10))},
        {"age": 22}, "âge supérieur à 21 ans"),
    Cas("etudiants", sig("etudiant-en-difficulte", age=20),
        {"information-droits-etudiants": ("email", recu(2)),
         "invitation-webinaire": ("invitation", recu(10))},
        {"age": 35}, "âge supérieur à 30 ans"),
    Cas("jeunes", sig("jeune-eloigne-des-soins", age=19),
        {"information-sms": ("sms", recu(2)),
         "invitation-rendez-vous": ("invitation", recu(10))},
        {"age": 30}, "âge supérieur à 25 ans"),
    Cas("personnes-ecrouees",
        ev("levee-ecrou", date_effet=date(2026, 7, 1), drapeaux={"beneficiaire_c2s": True}),
        {"anticipation-c2s": ("courrier", paris(2026, 5, 1, 9)),
         "droits-a-la-sortie": ("courrier", paris(2026, 6, 1, 9)),
         "rendez-vous-agence": ("invitation", paris(2026, 7, 16, 9))},
        {"date_effet": date(2025, 6, 1)}, TROP_ANCIEN),
    Cas("demandeurs-d-emploi", ev("perte-emploi", date_effet=date(2026, 3, 1)),
        {"continuite-des-droits": ("courrier", paris(2026, 4, 1, 9)),
         "invitation-rendez-vous": ("invitation", paris(2026, 5, 1, 9))},
        {"date_effet": date(2024, 6, 1)}, TROP_ANCIEN),
    Cas("prevention-desinsertion-professionnelle",
        sig("risque-desinsertion-professionnelle",
            drapeaux={"consentement_contact": True, "actif": True}),
        {"premier-contact-service-social": ("appel", recu(5))},
        {"drapeaux": {"consentement_contact": True}}, "critère « actif » non rempli"),
    Cas("travailleurs-independants-precaires", sig("travailleur-independant-fragile"),
        {"invitation-webinaire": ("invitation", recu(3)), "appel-help": ("appel", recu(10))},
        SANS_ACCORD, ACCORD),
    Cas("partenaires-ess", sig("salarie-structure-ess"),
        {"information-droits": ("email", recu(3))},
        SANS_ACCORD, ACCORD),
    Cas("victimes-d-attentats",
        sig("victime-attentat", detecteur=Detecteur(type="cnam", identifiant="cnam")),
        {"accompagnement-individuel": ("appel", recu(2))},
        {"detecteur": Detecteur(type="ccas", identifiant="ccas-17")}, "détecteur habilité"),
    Cas("habitants-qpv", sig("habitant-qpv"),
        {"information-droits": ("courrier", recu(3)),
         "invitation-permanence": ("invitation", recu(10))},
        SANS_ACCORD, ACCORD),
    Cas("personnes-hebergees", sig("personne-hebergee"),
        {"rencontre-lieu-hebergement": ("rendez-vous", recu(7))},
        SANS_ACCORD, ACCORD),
    Cas("inclusion-numerique", sig("difficulte-numerique"),
        {"invitation-formation-ameli": ("invitation", recu(5)),
         "invitation-webinaire": ("invitation", recu(21))},
        SANS_ACCORD, ACCORD),
]


def _non_eligible(cas: Cas) -> Demande:
    update = dict(cas.non_eligible)
    if "signalement" in update:  # keep the situation, withdraw the consent
        update["signalement"] = {**(cas.declencheur.signalement or {}),
                                 "consentement_contact": False}
    return cas.declencheur.model_copy(update=update)


def test_the_table_covers_every_parcours_of_the_catalogue() -> None:
    assert sorted(c.parcours for c in CAS) == sorted(p.id for p in catalogue().parcours)
    assert len(CAS) == 26


@pytest.mark.parametrize("cas", CAS, ids=[c.parcours for c in CAS])
def test_a_triggering_demand_plans_the_expected_steps_at_the_expected_dates(cas: Cas) -> None:
    outcome = decide(vide(), cas.declencheur, catalogue(), NOW)
    (dossier,) = outcome.dossiers_ouverts
    assert dossier.parcours == cas.parcours
    planned = {a.etape: (a.kind, a.due_le) for a in outcome.actions_planifiees}
    assert planned == cas.attendu
    for a in outcome.actions_planifiees:
        assert a.parcours == cas.parcours and a.dossier_id == dossier.dossier_id
        assert a.due_le >= NOW and a.modele and a.canaux
    decision = next(d for d in outcome.decisions if d.parcours == cas.parcours)
    assert decision.statut == "ouvert" and decision.dossier_id == dossier.dossier_id
    assert all(f"« {etape} »" in texte(decision) for etape in cas.attendu)


@pytest.mark.parametrize("cas", CAS, ids=[c.parcours for c in CAS])
def test_a_non_eligible_demand_plans_nothing_and_gives_the_reason(cas: Cas) -> None:
    outcome = decide(vide(), _non_eligible(cas), catalogue(), NOW)
    assert outcome.actions_planifiees == () and outcome.dossiers_ouverts == ()
    decision = next(d for d in outcome.decisions if d.parcours == cas.parcours)
    assert decision.statut == "refuse" and decision.dossier_id is None
    assert cas.motif in texte(decision)
    assert catalogue().version in texte(decision)

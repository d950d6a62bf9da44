from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared import schemas
from shared.cloudevents import CloudEvent, new_event
from shared.contracts import internes as i
from shared.contracts.evenements import EVENT_MODELS, event_name, event_type, example_event

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(EVENT_MODELS))
def test_every_life_event_round_trips_through_json(name: str) -> None:
    model = EVENT_MODELS[name]
    event = CloudEvent[model].model_validate(example_event(name))  # type: ignore[valid-type]
    again = CloudEvent[model].model_validate_json(event.to_bytes())  # type: ignore[valid-type]
    assert again == event
    assert event_name(event.type) == name


def test_the_contract_names_at_least_the_life_events_of_the_issue() -> None:
    required = {"retraite", "separation", "entree-invalidite", "deces", "sortie-ase", "ase-17-ans",
                "entree-ald", "declaration-grossesse", "perte-emploi", "levee-ecrou",
                "depart-medecin-traitant", "fin-droits-c2s", "complementaire-souscrite"}
    assert required <= set(EVENT_MODELS)
    assert event_type("retraite") == "fr.assurance-maladie.evenement-vie.retraite.v1"
    assert event_name("fr.assurance-maladie.evenement-vie.retraite.v2") is None


def test_unknown_fields_are_ignored_on_read_and_missing_ones_refused() -> None:
    raw = example_event("retraite")
    raw["extension_inconnue"] = "x"
    raw["data"]["champ_futur"] = 1
    model = EVENT_MODELS["retraite"]
    assert CloudEvent[model].model_validate(raw).data.sans_complementaire is True  # type: ignore[valid-type]
    del raw["data"]["sans_complementaire"]
    with pytest.raises(ValidationError) as exc:
        CloudEvent[model].model_validate(raw)  # type: ignore[valid-type]
    assert exc.value.errors()[0]["loc"] == ("data", "sans_complementaire")


def test_a_bad_nir_is_refused_with_a_stable_code() -> None:
    raw = example_event("deces")
    raw["data"]["assure"]["nir"] = "184127645108947"
    with pytest.raises(ValidationError) as exc:
        CloudEvent[EVENT_MODELS["deces"]].model_validate(raw)  # type: ignore[valid-type]
    err = exc.value.errors()[0]
    assert err["type"] == "nir.cle" and err["loc"] == ("data", "assure", "nir")


INTERNAL_EXAMPLES = [
    i.Demande(demande_id="d1", pseudonyme="k1-ab", origine="evenement-vie", evenement="retraite",
              date_effet=date(2026, 1, 1), recu_le=NOW, age=65, naissance="1961-03",
              territoire=i.Territoire(departement="91", commune="Évry"),
              drapeaux={"sans_complementaire": True},
              sources=[i.SourceRef(source="urn:carsat", id="e1")]),
    i.Coordonnees(pseudonyme="k1-ab", nom="Martin", prenom="Claude", maj_le=NOW,
                  securite=i.Securite(violences_intrafamiliales=True, canaux_designes=["email"])),
    i.ActionPlanifiee(action_id="a1", pseudonyme="k1-ab", dossier_id="c1", parcours="seniors",
                      etape="m9", kind="courrier", canaux=["courrier"], due_le=NOW,
                      modele="seniors-m9-complementaire"),
    i.ActionAnnulee(action_id="a1", pseudonyme="k1-ab", dossier_id="c1", raison="deces"),
    i.Decision(decision_id="x", pseudonyme="k1-ab", demande_id="d1", dossier_id="c1",
               parcours="seniors", statut="ouvert", catalogue_version="1", explication=["..."]),
    i.Resultat(resultat_id="r", pseudonyme="k1-ab", action_id="a1", dossier_id="c1",
               parcours="seniors", statut="envoye", canal="courrier", survenu_le=NOW),
    # Optional fields left empty: to_bytes() omits them, so they must be optional on read too.
    i.Decision(decision_id="y", pseudonyme="k1-ab", demande_id="d2", dossier_id=None,
               parcours=None, statut="refuse", catalogue_version="1", explication=["..."]),
    i.Resultat(resultat_id="s", pseudonyme="k1-ab", action_id=None, dossier_id=None,
               parcours=None, statut="objectif-atteint", survenu_le=NOW),
]


@pytest.mark.parametrize("data", INTERNAL_EXAMPLES, ids=lambda d: type(d).__name__)
def test_every_internal_contract_round_trips_inside_a_cloudevent(data: object) -> None:
    event = new_event(type="t", source="urn:test", id="e1", data=data, time=NOW)  # type: ignore[arg-type]
    back = CloudEvent[type(data)].model_validate_json(event.to_bytes())  # type: ignore[misc]
    assert back == event
    assert back.correlationid == "e1", "a chain's first event is its own correlation id"


def test_an_event_caused_by_another_carries_its_correlation_and_causation_ids() -> None:
    first = new_event(type="t", source="urn:a", id="e1", data=INTERNAL_EXAMPLES[0], time=NOW)
    second = new_event(type="t", source="urn:b", id="e2", data=INTERNAL_EXAMPLES[3], cause=first)
    third = new_event(type="t", source="urn:c", id="e3", data=INTERNAL_EXAMPLES[5], cause=second)
    assert (third.correlationid, third.causationid) == ("e1", "e2")


def test_exported_json_schemas_and_asyncapi_match_the_models() -> None:
    """docs/contracts and docs/asyncapi.yaml are what `make contracts` produces now."""
    stale = [
        str(path.relative_to(ROOT))
        for path, text in schemas.render(ROOT / "docs" / "contracts").items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"run `make contracts`: stale {stale}"
    on_disk = {p.name for p in (ROOT / "docs" / "contracts").glob("*.schema.json")}
    assert on_disk == set(schemas.json_schemas())


def test_the_retirement_schema_requires_what_the_model_requires() -> None:
    schema = json.loads((ROOT / "docs/contracts/fr.assurance-maladie.evenement-vie.retraite.v1"
                         ".schema.json").read_text())
    data_ref = schema["properties"]["data"]["$ref"].split("/")[-1]
    assert set(schema["$defs"][data_ref]["required"]) == {"assure", "date_effet",
                                                          "sans_complementaire"}
    assert schema["properties"]["type"]["const"].endswith("retraite.v1")

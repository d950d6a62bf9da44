from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.signalement import intake
from services.signalement.intake import REASONS, Rejected, accept, departement
from tests.inputs import CT, TODAY, mixed_records, valid_event


def _headers(h: list[tuple[str, bytes]]) -> dict[str, bytes]:
    return {k: v for k, v in h}


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 30))
def test_every_record_is_accepted_or_rejected_with_its_expected_code(
    rng: random.Random, n: int
) -> None:
    for value, headers, expected in mixed_records(rng, n):
        try:
            accepted = accept(value, _headers(headers), TODAY)
        except Rejected as exc:
            assert exc.reason.code == expected, exc.reason
            assert exc.reason.code in REASONS
        else:
            assert expected is None, f"expected {expected}"
            assert accepted.event.id


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"", b"application/json",
                                                  b"application/cloudevents+json", b"text/plain"]))
def test_no_bytes_crash_intake(value: bytes, content_type: bytes) -> None:
    try:
        accept(value, {"content-type": content_type} if content_type else {}, TODAY)
    except Rejected as exc:
        assert exc.reason.code in REASONS


def test_messages_never_quote_the_input() -> None:
    event = valid_event(random.Random(1))
    nir = event["data"]["assure"]["nir"]
    event["data"]["assure"]["nir"] = nir[:-2] + "00"
    with pytest.raises(Rejected) as exc:
        accept(json.dumps(event).encode(), {}, TODAY)
    assert nir[:13] not in exc.value.reason.message


def test_a_valid_event_becomes_a_pseudonymous_demand_and_contact_data() -> None:
    event = valid_event(random.Random(2), "retraite")
    event["data"]["assure"]["adresse"] = {"ligne1": "1 rue A", "code_postal": "20090",
                                          "commune": "Ajaccio"}
    a = accept(json.dumps(event).encode(), {"content-type": CT[1]}, TODAY)
    down = intake.to_downstream(a, "k1-abc", datetime(2026, 11, 22, tzinfo=UTC))
    d = down.demande
    assert d.pseudonyme == "k1-abc" and d.evenement == "retraite"
    assert d.territoire.departement == "2A" and d.drapeaux["sans_complementaire"] is True
    text = d.model_dump_json()
    for secret in (event["data"]["assure"]["nir"], event["data"]["assure"]["nom"], "1 rue A"):
        assert secret not in text
    assert down.coordonnees.nom == event["data"]["assure"]["nom"]
    assert d.demande_id == intake.demand_id("k1-abc", "retraite", d.date_effet)


def test_a_death_carries_whether_a_family_contact_is_known() -> None:
    event = valid_event(random.Random(3), "deces")
    a = accept(json.dumps(event).encode(), {}, TODAY)
    down = intake.to_downstream(a, "k1-abc", datetime(2026, 11, 22, tzinfo=UTC))
    assert down.demande.drapeaux["proche_connu"] is True
    assert down.coordonnees.proche is not None and down.coordonnees.decede is True


def test_a_correction_must_name_the_event_it_corrects() -> None:
    event = valid_event(random.Random(4), "retraite")
    event["data"]["nature"] = "correction"
    with pytest.raises(Rejected) as exc:
        accept(json.dumps(event).encode(), {}, TODAY)
    assert exc.value.reason.code == "correction.reference-absente"


@pytest.mark.parametrize(("cp", "dept"), [("91000", "91"), ("20000", "2A"), ("20200", "2B"),
                                          ("97400", "974"), ("17300", "17")])
def test_departement_of_postal_codes(cp: str, dept: str) -> None:
    assert departement(cp) == dept


def test_age_is_counted_in_whole_years() -> None:
    assert intake.age_at(date(2009, 11, 23), date(2026, 11, 22)) == 16
    assert intake.age_at(date(2009, 11, 22), date(2026, 11, 22)) == 17


@pytest.mark.parametrize(("where", "code"), [(("data", "assure", "nom"), "data.invalide"),
                                             (("source",), "enveloppe.invalide")])
def test_a_nul_character_is_refused_with_where_it_is(where: tuple[str, ...], code: str) -> None:
    event = valid_event(random.Random(5))
    target = event
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = "Mar\u0000tin"
    with pytest.raises(Rejected) as exc:
        accept(json.dumps(event).encode(), {}, TODAY)
    assert exc.value.reason.code == code
    assert exc.value.reason.message.endswith(f"{'.'.join(where)}: {intake.NUL_MESSAGE}")
    assert "Mar" not in exc.value.reason.message, "never quotes the input"


def test_a_backslash_followed_by_u0000_is_text_not_a_nul() -> None:
    event = valid_event(random.Random(5))
    event["data"]["assure"]["nom"] = "Martin\\u0000"
    assert accept(json.dumps(event).encode(), {}, TODAY).data.assure.nom == "Martin\\u0000"

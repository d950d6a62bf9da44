"""A NUL character is refused at every door: contracts (on Kafka) and URLs (on HTTP)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from shared.cloudevents import CloudEvent
from shared.contracts import internes as i
from shared.contracts.base import NUL_MESSAGE, sans_nul
from shared.http import RefuseNulInUrl, install_error_handlers

ENVELOPE: dict[str, Any] = {"specversion": "1.0", "id": "e-1", "source": "urn:t", "type": "t",
                            "time": "2026-03-02T10:00:00Z"}


@pytest.mark.parametrize("value", ["a\x00b", ["ok", "a\x00"], {"k": ("x", "\x00")}, {"\x00": 1}])
def test_sans_nul_finds_the_character_in_any_text(value: Any) -> None:
    with pytest.raises(ValueError, match="NUL"):
        sans_nul(value)


@pytest.mark.parametrize("value", ["日本語-ü-🙂", '{"$gt": ""}', ["a", {"b": "c"}], 3, None])
def test_sans_nul_leaves_other_text_alone(value: Any) -> None:
    assert sans_nul(value) == value


def test_a_message_refuses_a_nul_in_a_field_and_says_which() -> None:
    data = {"demande_id": "d-1", "pseudonyme": "p-\x00", "origine": "evenement-vie",
            "evenement": "retraite", "date_effet": "2026-03-01", "recu_le": "2026-03-02T10:00:00Z",
            "age": 62, "naissance": "1964-01", "drapeaux": {"a": "x"}}
    with pytest.raises(ValidationError) as err:
        CloudEvent[i.Demande].model_validate({**ENVELOPE, "type": i.DEMANDE, "data": data})
    [error] = err.value.errors()
    assert f"data.pseudonyme: {NUL_MESSAGE}" in error["msg"]
    data = {**data, "pseudonyme": "p-1", "drapeaux": {"a\x00": "x"}}
    with pytest.raises(ValidationError, match=re.escape("data.drapeaux.a\\x00: ")):
        CloudEvent[i.Demande].model_validate({**ENVELOPE, "type": i.DEMANDE, "data": data})


def test_an_http_model_refuses_a_nul_in_a_nested_contract() -> None:
    from services.signalement.api import FicheSignalement

    body = {"personne": {"nir": "1 84 12 76 451 089 46", "nom": "Lemoine", "prenom": "Rosa",
                         "date_naissance": "1971-05-04",
                         "adresse": {"ligne1": "4 allée\x00", "code_postal": "91000",
                                     "commune": "Évry"}},
            "situation": "renoncement-aux-soins", "consentement_contact": True}
    with pytest.raises(ValidationError) as err:
        FicheSignalement.model_validate(body)
    [error] = err.value.errors()
    assert error["loc"] == ("personne", "adresse") and f"ligne1: {NUL_MESSAGE}" in error["msg"]


def test_the_envelope_refuses_a_nul_too() -> None:
    with pytest.raises(ValidationError, match="NUL"):
        CloudEvent[dict[str, Any]].model_validate({**ENVELOPE, "id": "e\x00", "data": {}})
    with pytest.raises(ValidationError, match="NUL"):
        CloudEvent[dict[str, Any]].model_validate({**ENVELOPE, "data": {"x": ["\x00"]}})


def _client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RefuseNulInUrl)

    @app.get("/v1/items/{ref}")
    async def item(ref: str, q: str = "") -> dict[str, str]:
        return {"ref": ref, "q": q}

    return TestClient(app)


@pytest.mark.parametrize("url", ["/v1/items/a%00b", "/v1/items/a?q=x%00"])
def test_a_url_with_a_nul_is_answered_400_with_the_reason(url: str) -> None:
    response = _client().get(url)
    assert response.status_code == 400
    assert response.json() == {"erreur": "requete-incorrecte",
                               "message": "the NUL character (%00) is not allowed in a URL"}


def test_other_urls_reach_their_route() -> None:
    response = _client().get("/v1/items/a%20b?q=%C3%A9")
    assert response.status_code == 200 and response.json() == {"ref": "a b", "q": "é"}


def test_a_record_is_refused_at_decoding_when_its_json_writes_a_nul() -> None:
    from shared.cloudevents import decode_json

    with pytest.raises(ValueError, match=re.escape(f"data.nom: {NUL_MESSAGE}")):
        decode_json(b'{"id": "e-1", "data": {"nom": "Mar\\u0000tin"}}')
    # a backslash then "u0000" is text, not a NUL
    text = decode_json(b'{"data": {"nom": "Mar\\\\u0000tin"}}')
    assert text == {"data": {"nom": "Mar\\u0000tin"}}


def test_a_message_checked_at_decoding_is_not_walked_again_but_others_are() -> None:
    from shared.cloudevents import VERIFIE

    body = {**ENVELOPE, "data": {"x": "\x00"}}
    with pytest.raises(ValidationError, match="NUL"):
        CloudEvent[dict[str, Any]].model_validate(body)
    # the context is a promise of the caller (decode_json ran): the hot paths keep it
    assert CloudEvent[dict[str, Any]].model_validate(body, context=VERIFIE).data == {"x": "\x00"}

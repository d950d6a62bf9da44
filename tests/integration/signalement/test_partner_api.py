"""The partners' portal API of signalement, on the real broker and database."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from services.signalement.app import create_app
from services.signalement.partners import Partner, new_api_key, partner_document
from shared.calendar import add_business_hours
from shared.clock import ManualClock
from shared.cloudevents import headers_for, new_event
from shared.contracts import internes as i
from tests.inputs import random_nir
from tests.support import eventually, read_all, running

FRIDAY_EVENING = datetime(2026, 11, 20, 17, 30, tzinfo=UTC)  # 18:30 in Paris


def fiche(seed: int = 1, **overrides: Any) -> dict[str, Any]:
    rng = random.Random(seed)
    body: dict[str, Any] = {
        "personne": {"nir": random_nir(rng), "nom": "Lemoinebert", "prenom": "Rosalinde",
                     "date_naissance": "1971-05-04", "telephone": "0611223344",
                     "adresse": {"ligne1": "4 allée des Tilleuls", "code_postal": "91000",
                                 "commune": "Évry-Courcouronnes"}},
        "situation": "renoncement-aux-soins",
        "soins_renonces": ["dentaire", "optique"],
        "motifs": ["reste-a-charge"],
        "consentement_contact": True,
    }
    body.update(overrides)
    return body


async def add_partner(app: Any, pid: str, kind: str = "ccas") -> str:
    deps = app.state.deps
    key_id, secret, key = new_api_key()
    await deps.store.save_partner(partner_document(
        Partner(id=pid, nom=f"Partenaire {pid}", type=kind), key_id, secret,
        deps.settings.api_key_pepper.get_secret_value().encode()))
    return key


async def test_a_referral_is_acknowledged_with_its_48_business_hour_deadline_and_becomes_a_demand(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("signalement")
    app = create_app(settings, clock=ManualClock(FRIDAY_EVENING))
    async with running(app) as http:
        key = await add_partner(app, "ccas-evry")
        resp = await http.post("/v1/signalements", json=fiche(), headers={"X-API-Key": key})
        assert resp.status_code == 202, resp.text
        ack = resp.json()
        demandes = await read_all(settings.kafka_bootstrap_servers,
                                  settings.topic("parcours.demandes"), expect=1)
    deadline = add_business_hours(FRIDAY_EVENING, 48)
    assert datetime.fromisoformat(ack["echeance"]) == deadline
    assert deadline.weekday() == 1, "a Friday-evening referral is due on Tuesday"
    assert "48 heures ouvrées" in ack["engagement"] and ack["statut"] == "recu"
    assert ack["reference"].startswith("SIG-")
    demande = json.loads(demandes[0].value)["data"]
    assert (demande["origine"] == "signalement"
            and demande["signalement"]["reference"] == ack["reference"])
    assert demande["detecteur"] == {"type": "ccas", "identifiant": "ccas-evry"}
    assert "Lemoinebert" not in demandes[0].value.decode()


async def test_a_retried_post_with_the_same_idempotency_key_returns_the_same_reference(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("signalement")
    app = create_app(settings, clock=ManualClock(FRIDAY_EVENING))
    async with running(app) as http:
        key = await add_partner(app, "pass-hopital", "hopital-pass")
        headers = {"X-API-Key": key, "Idempotency-Key": "fiche-2026-0042"}
        first = await http.post("/v1/signalements", json=fiche(), headers=headers)
        second = await http.post("/v1/signalements", json=fiche(), headers=headers)
        conflict = await http.post("/v1/signalements", json=fiche(seed=2), headers=headers)
        demandes = await read_all(settings.kafka_bootstrap_servers,
                                  settings.topic("parcours.demandes"))
    assert first.status_code == second.status_code == 202
    assert first.json()["reference"] == second.json()["reference"]
    assert len(demandes) == 1, "a retried POST makes no second demand"
    assert conflict.status_code == 409 and conflict.json()["erreur"] == "cle-idempotence-reutilisee"


async def test_a_partner_sees_only_its_own_referrals(topics: str, make_settings: Any) -> None:
    settings = make_settings("signalement")
    app = create_app(settings, clock=ManualClock(FRIDAY_EVENING))
    async with running(app) as http:
        a = await add_partner(app, "ccas-a")
        b = await add_partner(app, "mission-locale-b", "mission-locale")
        ref_a = (await http.post("/v1/signalements", json=fiche(3),
                                 headers={"X-API-Key": a})).json()
        for seed in (4, 5):
            await http.post("/v1/signalements", json=fiche(seed), headers={"X-API-Key": b})
        own = await http.get(f"/v1/signalements/{ref_a['reference']}", headers={"X-API-Key": a})
        other = await http.get(f"/v1/signalements/{ref_a['reference']}", headers={"X-API-Key": b})
        unknown = await http.get("/v1/signalements/SIG-00000000-XXXX", headers={"X-API-Key": b})
        list_b = await http.get("/v1/signalements?taille=1&page=2", headers={"X-API-Key": b})
    assert own.status_code == 200 and own.json()["statut"] == "recu"
    assert other.status_code == 404 and unknown.status_code == 404
    assert other.json() == unknown.json(), "someone else's reference looks unknown"
    page = list_b.json()
    assert page["total"] == 2 and len(page["elements"]) == 1
    assert page["elements"][0]["reference"] != ref_a["reference"]


async def test_refusals_say_what_was_wrong(topics: str, make_settings: Any) -> None:
    settings = make_settings("signalement", http_rate_per_minute=5, http_max_body_bytes=4096)
    app = create_app(settings, clock=ManualClock(FRIDAY_EVENING))
    async with running(app) as http:
        key = await add_partner(app, "ccas-c")
        missing = await http.post("/v1/signalements", json=fiche())
        wrong = await http.post("/v1/signalements", json=fiche(), headers={"X-API-Key": "pk_x_y"})
        bad = fiche()
        bad["personne"]["nir"] = bad["personne"]["nir"][:13] + "00"
        invalid = await http.post("/v1/signalements", json=bad, headers={"X-API-Key": key})
        big = fiche(motifs=["autre"], situation="autre")
        big["personne"]["nom"] = "x" * 5000
        too_large = await http.post("/v1/signalements", json=big, headers={"X-API-Key": key})
        statuses = [(await http.get("/v1/signalements", headers={"X-API-Key": key})).status_code
                    for _ in range(6)]
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.json()["erreur"] == "non-authentifie"
    assert invalid.status_code == 422
    detail = invalid.json()["details"][0]
    assert detail["champ"] == "body.personne.nir" and detail["type"] == "nir.cle"
    assert bad["personne"]["nir"] not in invalid.text, "the NIR is not echoed back"
    assert too_large.status_code == 413 and too_large.json()["erreur"] == "trop-volumineux"
    assert 429 in statuses, statuses


async def test_the_status_history_shows_what_orientation_and_notification_published(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("signalement")
    app = create_app(settings, clock=ManualClock(FRIDAY_EVENING))
    async with running(app) as http:
        key = await add_partner(app, "ccas-d")
        ack = (await http.post("/v1/signalements", json=fiche(6),
                               headers={"X-API-Key": key})).json()
        ref = ack["reference"]
        decision = new_event(type=i.DECISION, source="urn:orientation", id="dec-1", data=i.Decision(
            decision_id="dec-1", pseudonyme="k1-x", demande_id="d", dossier_id="c1",
            parcours="renoncement-aux-soins", statut="ouvert", catalogue_version="1",
            explication=["Parcours Renoncement aux soins ouvert"], reference_signalement=ref))
        resultat = new_event(
            type=i.RESULTAT, source="urn:notification", id="res-1", data=i.Resultat(
                resultat_id="res-1", pseudonyme="k1-x", action_id="a1", dossier_id="c1",
                parcours="renoncement-aux-soins", statut="appel", issue_appel="rendez-vous-pris",
                survenu_le=FRIDAY_EVENING, reference_signalement=ref))
        broker = app.state.broker

        def history_of(n: int) -> Any:
            async def check() -> list[dict[str, Any]] | None:
                body = (await http.get(f"/v1/signalements/{ref}",
                                       headers={"X-API-Key": key})).json()
                return body["historique"] if len(body["historique"]) >= n else None
            return check

        async def publish(topic: str, event: Any) -> None:
            await broker.publish(event.to_bytes(), settings.topic(topic), key=b"k1-x",
                                 headers=headers_for(event))

        await publish("parcours.decisions", decision)
        await eventually(history_of(2), timeout=30)
        await publish("parcours.resultats", resultat)
        await publish("parcours.decisions", decision)  # redelivered: recorded once
        history = history_of(3)
        steps = await eventually(history, timeout=30)
    assert [s["statut"] for s in steps] == ["recu", "pris-en-charge", "en-cours"]
    assert steps[-1]["detail"] == "rendez-vous-pris"

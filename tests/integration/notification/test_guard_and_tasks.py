"""The guard before firing (safety, objection, death, conditions, cap) and the agents' phone
queue, on the real broker and database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notification.app import create_app
from shared.clock import ManualClock
from tests.integration.notification.helpers import (
    action,
    at_least,
    coordonnees,
    known,
    planned_event,
    pseudo,
    results,
    send_actions,
    send_coordonnees,
)
from tests.integration.notification.peers import SmsProvider
from tests.support import auth_headers, running

START = datetime(2026, 3, 2, 9, 59, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday, 11:00 in Paris
AGENT_A, AGENT_B = auth_headers("agent", "91", "agent.a"), auth_headers("agent", "91", "agent.b")
AGENT_17 = auth_headers("agent", "17", "agent.c")
SUPERVISEUR_91 = auth_headers("superviseur", "91", "chef.91")


def _settings(make_settings: Any, tmp_path: Any, **extra: Any) -> Any:
    return make_settings("notification", data_dir=tmp_path,
                         notification_scheduler_interval_seconds=0.2, **extra)


async def test_safety_veto_and_objection_stop_letters_and_sms_and_the_reason_is_published(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any, capfd: Any
) -> None:
    with SmsProvider() as provider:
        settings = _settings(make_settings, tmp_path, notification_sms_url=provider.url,
                             notification_contact_cap=2)
        clock = ManualClock(START)
        at_risk, objector, deceased, capped = pseudo(), pseudo(), pseudo(), pseudo()
        await send_coordonnees(
            settings,
            coordonnees(at_risk, NOW, securite={"violences_intrafamiliales": True,
                                                "canaux_designes": ["sms"],
                                                "telephone_sur": "07 98 76 54 32"}),
            coordonnees(objector, NOW, consentement_contact=False),
            coordonnees(deceased, NOW, decede=True,
                        proche={"nom": "Lefèvre", "prenom": "Paul", "lien": "fils",
                                "adresse": {"ligne1": "4 avenue Foch", "code_postal": "91300",
                                            "commune": "Massy"}}),
            coordonnees(capped, NOW),
        )
        household_letter = action(at_risk, NOW)
        household_sms = action(at_risk, NOW, kind="invitation", canaux=["sms"],
                               modele="maternite-ateliers-futurs-parents")
        objector_letter = action(objector, NOW)
        objector_sms = action(objector, NOW, kind="invitation", canaux=["sms"],
                              modele="maternite-ateliers-futurs-parents")
        objector_mandatory = action(objector, NOW, obligatoire=True, modele="c2s-renouvellement")
        to_the_dead = action(deceased, NOW)
        to_the_family = action(deceased, NOW, destinataire="proche", obligatoire=True,
                               condition="proche_connu", modele="perte-proche-contact-famille",
                               parcours="perte-d-un-proche", etape="contact-famille")
        not_at_risk_step = action(at_risk, NOW, condition="sans_violences_intrafamiliales",
                                  canaux=["sms"], modele="separation-droits")
        cap = [action(capped, NOW + timedelta(seconds=n), modele=f"aidants-droits-{n}")
               for n in range(3)]
        everything = [household_letter, household_sms, objector_letter, objector_sms,
                      objector_mandatory, to_the_dead, to_the_family, not_at_risk_step, *cap]
        await send_actions(settings, *[planned_event(a, NOW) for a in everything])
        async with running(create_app(settings, clock=clock)):
            await known(mongo, settings, 4)
            clock.set(NOW + timedelta(minutes=1))
            await at_least(settings, len(everything))
            await asyncio.sleep(1.0)
        got = {g["data"]["action_id"]: g["data"] for g in await results(settings)}
        assert len(got) == len(everything)

        def outcome(a: Any) -> tuple[str, str | None, str | None]:
            r = got[a.action_id]
            return r["statut"], r.get("canal"), r.get("raison")

        assert outcome(household_letter) == ("ignore", None, "securite-aucun-canal-sur")
        assert outcome(household_sms) == ("envoye", "sms", None)
        assert outcome(objector_letter) == ("ignore", None, "opposition-contact")
        assert outcome(objector_sms) == ("ignore", None, "opposition-contact")
        assert outcome(objector_mandatory) == ("envoye", "courrier", None)
        assert outcome(to_the_dead) == ("ignore", None, "personne-decedee")
        assert outcome(to_the_family) == ("envoye", "courrier", None)
        assert outcome(not_at_risk_step) == ("ignore", None, "condition-non-remplie")
        assert sorted(outcome(a) for a in cap) == [("envoye", "courrier", None)] * 2 + [
            ("ignore", None, "plafond-contacts")]
        # The SMS went to the safe number only, never to the household's.
        assert [d["to"] for d in provider.delivered] == ["07 98 76 54 32"]
        letters = {p.name for p in (tmp_path / "letters").rglob("*.pdf")}
        assert f"{household_letter.action_id}.pdf" not in letters
        assert f"{objector_letter.action_id}.pdf" not in letters
        assert f"{to_the_family.action_id}.pdf" in letters
        logs = capfd.readouterr().err
        assert "action_id" in logs, "the service logged its outcomes"
        for secret in ("Lefèvre", "Lef\\u00e8vre", "07 98 76 54 32", "06 12 34 56 78", "Lilas",
                       "josiane.lefevre@example.org", "Foch"):
            assert secret not in logs, f"personal data in the logs: {secret}"


async def test_agents_claim_a_phone_task_record_its_outcome_see_overdue_ones_and_the_outcome_is_published(  # noqa: E501 - the test's name
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    settings = _settings(make_settings, tmp_path)
    clock = ManualClock(START)
    p, q = pseudo(), pseudo()
    await send_coordonnees(settings, coordonnees(p, NOW), coordonnees(q, NOW, nom="Martin",
                                                                     prenom="Ali"))
    referral = action(p, NOW, kind="appel", canaux=["telephone"], modele="misas-prise-en-charge",
                      parcours="renoncement-aux-soins", etape="prise-en-charge", obligatoire=True,
                      echeance=datetime(2026, 3, 4, 10, 0, tzinfo=UTC))
    older = action(q, NOW, kind="appel", canaux=["telephone"], modele="misas-prise-en-charge",
                   parcours="renoncement-aux-soins", etape="prise-en-charge", obligatoire=True,
                   echeance=NOW + timedelta(hours=2))
    elsewhere = action(q, NOW, kind="appel", canaux=["telephone"], modele="c2s-aide-demande",
                       territoire={"departement": "17"}, echeance=NOW + timedelta(days=5))
    await send_actions(settings, *[planned_event(a, NOW) for a in (referral, older, elsewhere)])
    async with running(create_app(settings, clock=clock)) as http:
        await known(mongo, settings, 2)
        clock.set(NOW)
        created = await at_least(settings, 3)
        assert {c["data"]["statut"] for c in created} == {"tache-creee"}
        assert await http.get("/v1/taches", params={"site": "91"}) is not None
        assert (await http.get("/v1/taches", params={"site": "91"})).status_code == 401
        listed = (await http.get("/v1/taches", params={"site": "91"}, headers=AGENT_A)).json()
        assert [t["action_id"] for t in listed] == [older.action_id, referral.action_id]
        assert listed[1]["contact"]["nom"] == "Lefèvre"
        assert listed[1]["contact"]["telephone"] == "06 12 34 56 78"
        assert listed[1]["echeance"].startswith("2026-03-04T10:00")
        task = listed[1]["id"]

        claimed = await http.post(f"/v1/taches/{task}/prise", headers=AGENT_A)
        assert claimed.status_code == 200 and claimed.json()["agent"] == "agent.a"
        assert (await http.post(f"/v1/taches/{task}/prise", headers=AGENT_A)).status_code == 200
        taken = await http.post(f"/v1/taches/{task}/prise", headers=AGENT_B)
        assert taken.status_code == 409 and taken.json()["erreur"] == "tache-deja-prise"
        other = await http.post(f"/v1/taches/{task}/issue", headers=AGENT_B,
                                json={"issue": "joint"})
        assert other.status_code == 409

        clock.set(NOW + timedelta(hours=3))  # the older referral is now overdue
        assert (await http.get("/v1/taches/en-retard", headers=AGENT_A)).status_code == 403
        overdue = (await http.get("/v1/taches/en-retard", headers=SUPERVISEUR_91)).json()
        assert [t["action_id"] for t in overdue] == [older.action_id]
        assert overdue[0]["en_retard"] is True

        done = await http.post(f"/v1/taches/{task}/issue", headers=AGENT_A,
                               json={"issue": "rendez-vous-pris", "commentaire": "RDV dentiste"})
        assert done.status_code == 200 and done.json()["statut"] == "terminee"
        again = await http.post(f"/v1/taches/{task}/issue", headers=AGENT_A,
                                json={"issue": "rendez-vous-pris"})
        assert again.status_code == 200
        conflict = await http.post(f"/v1/taches/{task}/issue", headers=AGENT_A,
                                   json={"issue": "refus"})
        assert conflict.status_code == 409
        open_ = (await http.get("/v1/taches", params={"site": "91"}, headers=AGENT_A)).json()
        assert [t["action_id"] for t in open_] == [older.action_id]
        assert (await http.get("/v1/taches", params={"site": "17"},
                               headers=AGENT_A)).status_code == 403
        assert [t["action_id"] for t in (await http.get(
            "/v1/taches", params={"site": "17"}, headers=AGENT_17)).json()] == [elsewhere.action_id]
        # a task of another site does not exist for this agent (404, nothing leaks)
        assert (await http.get(f"/v1/taches/{task}", headers=AGENT_17)).status_code == 404
        assert (await http.post(f"/v1/taches/{task}/prise", headers=AGENT_17)).status_code == 404
        trail = (await http.get("/v1/audit", params={"objet_id": task},
                                headers=SUPERVISEUR_91)).json()
        assert {(e["acteur"], e["action"], e["resultat"]) for e in trail} >= {
            ("agent.a", "prendre-tache", "ok"), ("agent.b", "prendre-tache", "tache-deja-prise"),
            ("agent.a", "issue-tache", "ok")}
        assert all("Lefèvre" not in str(e) and "06 12" not in str(e) for e in trail)
        assert (await http.get("/v1/audit", headers=AGENT_A)).status_code == 403
        outcomes = await at_least(settings, 4)
    calls = [o["data"] for o in outcomes if o["data"]["statut"] == "appel"]
    assert len(calls) == 1
    assert (calls[0]["action_id"], calls[0]["issue_appel"], calls[0]["canal"]) == (
        referral.action_id, "rendez-vous-pris", "telephone")
    assert "RDV" not in str(outcomes), "the agent's note is never published"

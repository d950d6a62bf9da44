"""orientation on the real broker and database: the death rule, arbitration, outcomes, goals.

Demands and outcomes are published as signalement and notification publish them; what
orientation publishes is read back from parcours.actions and parcours.decisions.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from prometheus_client import generate_latest

from services.orientation.app import create_app
from shared.clock import ManualClock
from shared.contracts import internes as i
from shared.topics import ACTIONS, DECISIONS, RESULTATS
from tests.integration.orientation.helpers import (
    NOW,
    cancelled,
    demande,
    instant,
    of,
    paris,
    planned,
    processed,
    published,
    resultat_event,
    send,
    send_demandes,
    signalement,
)
from tests.support import auth_headers, eventually, running


async def test_death_after_retirement_cancels_the_m9_letter_and_plans_one_family_contact(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation")
    retraite = demande("p-deces", drapeaux={"sans_complementaire": True})
    deces = demande("p-deces", "deces", date_effet=date(2026, 3, 1),
                    drapeaux={"proche_connu": True})
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        await send_demandes(settings, retraite)
        await processed(app, "p-deces", retraite.demande_id)
        before = planned(await published(settings, ACTIONS))
        m9 = next(a for a in before if a["etape"] == "m9-sans-complementaire")
        await send_demandes(settings, deces)
        await processed(app, "p-deces", deces.demande_id)
        vue = (await http.get("/v1/personnes/p-deces/dossiers")).json()

    actions = await published(settings, ACTIONS)
    annulees = {a["action_id"]: a["raison"] for a in cancelled(actions)}
    assert annulees[m9["action_id"]] == "deces", "the M+9 letter is cancelled"
    assert set(annulees) == {a["action_id"] for a in before}, "every pending action cancelled"
    after = planned(actions)[len(before):]
    assert len(after) == 1, "exactly one action planned after the death"
    (contact,) = after
    assert contact["parcours"] == "perte-d-un-proche" and contact["destinataire"] == "proche"
    assert instant(contact["due_le"]) == paris(2026, 3, 8, 9)
    pending = [a for d in vue["dossiers"] for a in d["actions"] if a["statut"] == "planifiee"]
    assert [a["action_id"] for a in pending] == [contact["action_id"]], \
        "nothing else will fire for the deceased"
    assert vue["decede"] is True
    seniors = next(d for d in vue["dossiers"] if d["parcours"] == "accompagnement-des-seniors")
    assert seniors["statut"] == "clos" and seniors["motif_cloture"] == "deces"


async def test_after_a_death_a_retirement_opens_nothing(topics: str, make_settings: Any) -> None:
    settings = make_settings("orientation")
    deces = demande("p-mort", "deces", date_effet=date(2026, 3, 1),
                    drapeaux={"proche_connu": True})
    retraite = demande("p-mort", drapeaux={"sans_complementaire": True})
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        await send_demandes(settings, deces, retraite)
        await processed(app, "p-mort", retraite.demande_id)
    actions = await published(settings, ACTIONS)
    assert [a["parcours"] for a in planned(actions)] == ["perte-d-un-proche"]
    assert cancelled(actions) == []
    decisions = [d["data"] for d in await published(settings, DECISIONS)]
    (refus,) = [d for d in decisions if d["demande_id"] == retraite.demande_id]
    assert refus["statut"] == "refuse" and "Personne décédée" in " ".join(refus["explication"])


async def test_two_events_in_one_week_give_one_merged_contact_and_safety_wins(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation")
    retraite = demande("p-fusion", date_effet=date(2026, 3, 5),
                       drapeaux={"sans_complementaire": True})
    separation = demande("p-fusion", "separation", date_effet=date(2026, 3, 1), age=40,
                         drapeaux={"violences_intrafamiliales": True})
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        await send_demandes(settings, retraite, separation)
        await processed(app, "p-fusion", separation.demande_id)
    actions = await published(settings, ACTIONS)
    lettre = next(a for a in planned(actions) if a["etape"] == "p2-passage-a-la-retraite")
    appel = next(a for a in planned(actions) if a["etape"] == "appel-securite")
    assert appel["priorite"] == 3 and appel["parcours"] == "familles-monoparentales-separation"
    (fusion,) = cancelled(actions)
    assert fusion["action_id"] == lettre["action_id"], "the information letter gives way"
    assert fusion["raison"].startswith("fusionnee") and appel["action_id"] in fusion["raison"]
    week = [a for a in planned(actions) if a["action_id"] != lettre["action_id"]
            and abs(instant(a["due_le"]) - instant(appel["due_le"])) <= timedelta(days=7)]
    assert [a["etape"] for a in week] == ["appel-securite"], "one contact in the week"
    decisions = [d["data"] for d in await published(settings, DECISIONS)
                 if d["data"]["demande_id"] == separation.demande_id]
    seniors = next(d for d in decisions if d["parcours"] == "accompagnement-des-seniors")
    assert "pas contactée deux fois en 7 jours" in " ".join(seniors["explication"])


async def test_three_unanswered_calls_fall_back_to_a_letter(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation")
    pseudo = "p-misas"
    referral = signalement(pseudo, "renoncement-aux-soins")
    clock = ManualClock(NOW)
    app = create_app(settings, clock=clock)
    async with running(app):
        await send_demandes(settings, referral)
        await processed(app, pseudo, referral.demande_id)
        for attempt in range(3):
            call = planned(await published(settings, ACTIONS))[-1]
            assert call["etape"] == "prise-en-charge" and call["kind"] == "appel"
            clock.advance(timedelta(days=1))
            r = i.Resultat(resultat_id=f"res-{attempt}", pseudonyme=pseudo,
                           action_id=call["action_id"], dossier_id=call["dossier_id"],
                           parcours=call["parcours"], statut="appel", canal="telephone",
                           issue_appel="injoignable", survenu_le=clock.now())
            await send(settings, RESULTATS, resultat_event(r))
            await processed(app, pseudo, r.resultat_id)
    actions = planned(await published(settings, ACTIONS))
    assert [a["etape"] for a in actions] == ["prise-en-charge"] * 3 + ["prise-en-charge-repli"]
    repli = actions[-1]
    assert repli["kind"] == "courrier" and repli["canaux"] == ["courrier"]
    assert len({a["action_id"] for a in actions}) == 4
    decisions = [d for d in await published(settings, DECISIONS) if d["causationid"] == "res-2"]
    assert "3 appels sans réponse" in " ".join(decisions[0]["data"]["explication"])


async def test_the_goal_event_closes_the_case_as_converted_and_cancels_the_pending_letter(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation")
    retraite = demande("p-conv", drapeaux={"sans_complementaire": True})
    souscrite = demande("p-conv", "complementaire-souscrite", date_effet=date(2026, 3, 1))
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        await send_demandes(settings, retraite, souscrite)
        await processed(app, "p-conv", souscrite.demande_id)
        vue = (await http.get("/v1/personnes/p-conv/dossiers")).json()
    actions = await published(settings, ACTIONS)
    m9 = next(a for a in planned(actions) if a["etape"] == "m9-sans-complementaire")
    assert m9["action_id"] in {a["action_id"] for a in cancelled(actions)}
    assert {a["raison"] for a in cancelled(actions)} == {"objectif-atteint"}
    (clos,) = [d["data"] for d in of(await published(settings, DECISIONS), i.DECISION)
               if d["data"]["demande_id"] == souscrite.demande_id]
    assert clos["statut"] == "clos" and clos["motif_cloture"] == "objectif-atteint"
    (dossier,) = vue["dossiers"]
    assert dossier["statut"] == "clos" and dossier["motif_cloture"] == "objectif-atteint"


async def test_an_outcome_that_publishes_nothing_leaves_no_outbox_entry_and_no_marker(
    topics: str, make_settings: Any
) -> None:
    """A letter sent changes the person's journal and nothing else: stored without an outbox
    entry, so no acknowledgement marker is written after it (one database write less per
    outcome); delivered again, it publishes nothing and changes nothing."""
    settings = make_settings("orientation")
    retraite = demande("p-envoye", drapeaux={"sans_complementaire": True})
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        store = app.state.deps.store
        await send_demandes(settings, retraite)
        await processed(app, "p-envoye", retraite.demande_id)
        lettre = next(a for a in planned(await published(settings, ACTIONS))
                      if a["etape"] == "p1-avant-la-retraite")
        before = (await published(settings, ACTIONS), await published(settings, DECISIONS))
        markers = await store.publies.count_documents({})
        r = i.Resultat(resultat_id="res-envoye", pseudonyme="p-envoye",
                       action_id=lettre["action_id"], dossier_id=lettre["dossier_id"],
                       parcours=lettre["parcours"], statut="envoye", canal="courrier",
                       survenu_le=NOW)
        await send(settings, RESULTATS, resultat_event(r))
        await processed(app, "p-envoye", r.resultat_id)
        etat = await store.trouver("p-envoye")
        assert r.resultat_id in etat.contexte.journal and etat.a_publier == ()
        assert await store.publies.count_documents({}) == markers, "no marker for nothing"
        stored = await store.personnes.find_one({"_id": "p-envoye"})
        await send(settings, RESULTATS, resultat_event(r))  # delivered again

        async def replayed() -> bool:
            return any(line.startswith("parcours_orientation_redeliveries_total{")
                       and float(line.split()[-1]) >= 1
                       for line in generate_latest(app.state.registry).decode().splitlines())

        await eventually(replayed)
        again = await store.personnes.find_one({"_id": "p-envoye"})
    assert (await published(settings, ACTIONS), await published(settings, DECISIONS)) == before
    assert again["version"] == stored["version"], "the redelivery changed nothing"

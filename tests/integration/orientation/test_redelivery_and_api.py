"""orientation on the real broker and database: redelivery, crash recovery, poison input, the
agents' HTTP API."""

from __future__ import annotations

from typing import Any

from aiokafka.errors import KafkaConnectionError
from prometheus_client import generate_latest

from services.orientation.app import create_app
from shared.clock import ManualClock
from shared.kafka import H_CODE, H_TOPIC
from shared.topics import ACTIONS, DECISIONS, DEMANDES, DLQ, RESULTATS
from tests.inputs import CT
from tests.integration.orientation.helpers import (
    NOW,
    demande,
    demande_event,
    planned,
    processed,
    published,
    send_demandes,
)
from tests.support import auth_headers, commit_group, eventually, produce, read_all, running


def _ids(events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["id"] for e in events)


async def _metric(app: Any, name: str, at_least: float) -> bool:
    total = sum(float(line.split()[-1]) for line in
                generate_latest(app.state.registry).decode().splitlines()
                if line.startswith(name + "{") or line.startswith(name + " "))
    return total >= at_least


async def test_a_redelivered_demand_publishes_nothing_new_even_after_a_restart_from_zero(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation")
    retraite = demande("p-redel", drapeaux={"sans_complementaire": True})
    deces = demande("p-redel", "deces", drapeaux={"proche_connu": True})
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        await send_demandes(settings, retraite, deces)
        await processed(app, "p-redel", deces.demande_id)
        actions, decisions = (await published(settings, ACTIONS),
                              await published(settings, DECISIONS))
        state = await app.state.deps.store.trouver("p-redel")
        await send_demandes(settings, retraite)  # the same CloudEvent, delivered again
        await eventually(lambda: _metric(app, "parcours_orientation_redeliveries_total", 1))
    assert _ids(await published(settings, ACTIONS)) == _ids(actions)
    assert _ids(await published(settings, DECISIONS)) == _ids(decisions)

    # The consumer stopped before committing: everything is read again by a new instance.
    await commit_group(settings.kafka_bootstrap_servers, f"{settings.topic_prefix}orientation",
                  settings.topic(DEMANDES), settings.topic(RESULTATS))
    again = create_app(settings, clock=ManualClock(NOW))
    async with running(again):
        await eventually(lambda: _metric(again, "parcours_orientation_redeliveries_total", 3),
                         timeout=60)
        after = await again.state.deps.store.trouver("p-redel")
    assert _ids(await published(settings, ACTIONS)) == _ids(actions), "no new action"
    assert _ids(await published(settings, DECISIONS)) == _ids(decisions), "no new decision"
    assert after.contexte == state.contexte, "the stored cases did not change"


async def test_a_broker_failure_after_storing_republishes_the_same_ids_and_loses_nothing(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation", transient_retry_max_seconds=30)
    retraite = demande("p-crash", drapeaux={"sans_complementaire": True})
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        deps = app.state.deps
        real, calls = deps.publier, []

        async def crashes_once_midway(messages: Any) -> None:
            calls.append(len(messages))
            if len(calls) == 1:  # half the messages reach the broker, then it fails
                await real(messages[: len(messages) // 2])
                raise KafkaConnectionError()
            await real(messages)

        deps.publier = crashes_once_midway
        await send_demandes(settings, retraite)
        await processed(app, "p-crash", retraite.demande_id)
    assert len(calls) == 2 and calls[0] == calls[1], "the same messages, published again"
    actions = await published(settings, ACTIONS)
    decisions = await published(settings, DECISIONS)
    assert len(actions) == 4 // 2 + 4, "the first half twice, then the rest"
    assert len(set(_ids(actions))) == 4 and len(planned(actions)) == 6
    assert {a["etape"] for a in planned(actions)} == {
        "p1-avant-la-retraite", "p2-passage-a-la-retraite", "m9-sans-complementaire",
        "p3-bien-vieillir"}, "nothing lost"
    assert len(set(_ids(decisions))) == 1


async def test_poison_input_goes_to_the_dead_letter_topic_and_the_next_one_is_processed(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation")
    bootstrap = settings.kafka_bootstrap_servers
    bad_json = b'{"specversion": "1.0", "id": '
    wrong_contract = demande_event(demande("p-poison")).model_dump(mode="json")
    del wrong_contract["data"]["age"]
    import json

    wrong = json.dumps(wrong_contract).encode()
    unknown_type = json.dumps({**wrong_contract, "type": "fr.assurance-maladie.autre.v1"}).encode()
    good = demande("p-poison", drapeaux={"sans_complementaire": True})
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        await produce(bootstrap, settings.topic(DEMANDES),
                      [(b"p-poison", v, [CT]) for v in (bad_json, wrong, unknown_type)])
        await send_demandes(settings, good)
        await processed(app, "p-poison", good.demande_id)
        dead = await read_all(bootstrap, settings.topic(DLQ), expect=3, timeout=30)
    assert sorted(r.value for r in dead) == sorted([bad_json, wrong, unknown_type]), \
        "original bytes kept"
    headers = [dict(r.headers) for r in dead]
    assert all(h[H_TOPIC] == settings.topic(DEMANDES).encode() for h in headers)
    assert all(h[H_CODE].startswith(b"erreur.") for h in headers)
    assert len(planned(await published(settings, ACTIONS))) == 4


async def test_agents_read_a_persons_cases_with_explanations_and_the_catalogue(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation")
    retraite = demande("p-api", drapeaux={"sans_complementaire": True})
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        await send_demandes(settings, retraite)
        await processed(app, "p-api", retraite.demande_id)
        vue = await http.get("/v1/personnes/p-api/dossiers")
        inconnu = await http.get("/v1/personnes/personne-inconnue/dossiers")
        catalogue = await http.get("/v1/catalogue")
        seniors = await http.get("/v1/catalogue/accompagnement-des-seniors")
        absent = await http.get("/v1/catalogue/parcours-imaginaire")
        ready = await http.get("/health/ready")
        metrics = await http.get("/metrics")
        openapi = await http.get("/openapi.json")

    assert vue.status_code == 200
    (dossier,) = vue.json()["dossiers"]
    assert dossier["parcours"] == "accompagnement-des-seniors" and dossier["statut"] == "ouvert"
    assert dossier["nom"] == "Accompagnement des seniors"
    assert {a["etape"] for a in dossier["actions"]} >= {"m9-sans-complementaire"}
    (explication,) = dossier["explications"]
    assert explication["statut"] == "ouvert" and explication["demande_id"] == retraite.demande_id
    assert any("m9-sans-complementaire" in p and "+9 mois" in p
               for p in explication["explication"])
    assert inconnu.status_code == 404
    assert inconnu.json()["erreur"] == "introuvable"
    assert "personne-inconnue" in inconnu.json()["message"]
    assert catalogue.status_code == 200 and catalogue.json()["version"] == "2026.11-2"
    assert len(catalogue.json()["parcours"]) == 26
    assert seniors.json()["id"] == "accompagnement-des-seniors"
    assert absent.status_code == 404 and "parcours-imaginaire" in absent.json()["message"]
    assert ready.status_code == 200 and ready.json()["checks"] == {"kafka": "ok", "mongo": "ok"}
    assert "parcours_orientation_actions_planned_total" in metrics.text
    assert "/v1/personnes/{pseudonyme}/dossiers" in openapi.json()["paths"]

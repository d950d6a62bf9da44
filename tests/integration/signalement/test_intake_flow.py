"""signalement's intake of life events, on the real broker and database."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from services.signalement.app import create_app
from shared.clock import ManualClock
from shared.kafka import H_CODE
from tests.inputs import CT, mixed_records, valid_event
from tests.support import commit_group, eventually, produce, read_all, running

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


async def _taken(store: Any) -> int:
    return int(await store.evenements.count_documents({"publie": True}))


async def test_every_record_is_accepted_or_rejected_with_its_code_and_none_disappears(
    topics: str, make_settings: Any, capfd: Any
) -> None:
    settings = make_settings("signalement")
    records = mixed_records(random.Random(20261122), 240)
    expected_rejects = Counter(code for _, _, code in records if code)
    expected_valid = sum(1 for *_, code in records if code is None)
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        await produce(settings.kafka_bootstrap_servers, settings.topic("evenements-vie"),
                      [(f"k{n}".encode(), v, h) for n, (v, h, _) in enumerate(records)])
        rejets = await read_all(settings.kafka_bootstrap_servers,
                                settings.topic("evenements-vie.rejets"),
                                expect=sum(expected_rejects.values()), timeout=60)
        demandes = await read_all(settings.kafka_bootstrap_servers,
                                  settings.topic("parcours.demandes"),
                                  expect=expected_valid, timeout=60)
    assert len(demandes) + len(rejets) == len(records), "accepted + rejected = received"
    assert Counter(dict(r.headers)[H_CODE].decode() for r in rejets) == expected_rejects
    originals = {v for v, _, code in records if code}
    assert {r.value for r in rejets} == originals, "each reject keeps its original bytes"
    assert len({json.loads(d.value)["data"]["demande_id"] for d in demandes}) == expected_valid

    # Nothing in clear downstream: no NIR, name or address outside personnes.coordonnees.
    secrets = set()
    for value, _, code in records:
        if code is None:
            person = json.loads(value)["data"]["assure"]
            secrets |= {person["nir"], person["nom"], person["adresse"]["ligne1"]}
    for topic in ("parcours.demandes", "parcours.actions", "parcours.decisions",
                  "parcours.resultats", "parcours.dlq"):
        for record in await read_all(settings.kafka_bootstrap_servers, settings.topic(topic)):
            blob = (record.value or b"").decode("utf-8", "replace")
            assert not any(s in blob for s in secrets), f"personal data on {topic}"
    logs = capfd.readouterr().err
    assert logs, "the service logged"
    assert not any(s in logs for s in secrets), "personal data in the logs"


async def test_the_same_batch_delivered_again_makes_no_second_demand(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("signalement")
    rng = random.Random(7)
    events = [valid_event(rng) for _ in range(30)]
    records = [(b"k", json.dumps(e).encode(), [CT]) for e in events]
    bootstrap, source = settings.kafka_bootstrap_servers, settings.topic("evenements-vie")
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        await produce(bootstrap, source, records)
        await eventually(lambda: _count(app, 30), timeout=60)
    first = await read_all(bootstrap, settings.topic("parcours.demandes"), expect=30)

    await commit_group(bootstrap, f"{settings.topic_prefix}signalement", source)
    app2 = create_app(settings, clock=ManualClock(NOW))
    async with running(app2):
        # wait until the whole topic was read again by the restarted consumer
        await eventually(lambda: _metric(app2, "parcours_signalement_events_received_total", 30),
                         timeout=60)
    again = await read_all(bootstrap, settings.topic("parcours.demandes"))
    assert len(first) == len(again) == 30, "redelivery published no second demand"


async def _count(app: Any, n: int) -> bool:
    return await app.state.deps.store.evenements.count_documents({"publie": True}) >= n


async def _metric(app: Any, name: str, n: float) -> bool:
    from prometheus_client import generate_latest

    text = generate_latest(app.state.registry).decode()
    return any(line.startswith(name) and float(line.split()[-1]) >= n for line in text.splitlines())


async def test_one_life_event_from_two_sources_makes_one_demand_recording_both(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("signalement")
    event = valid_event(random.Random(9), "deces")
    other = {**event, "id": "etat-civil-123", "source": "urn:fr:insee:etat-civil"}
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        await produce(settings.kafka_bootstrap_servers, settings.topic("evenements-vie"),
                      [(b"a", json.dumps(event).encode(), [CT]),
                       (b"b", json.dumps(other).encode(), [CT])])
        await eventually(lambda: _count(app, 2), timeout=60)
        demandes = await read_all(settings.kafka_bootstrap_servers,
                                  settings.topic("parcours.demandes"))
        assert len(demandes) == 1
        demande_id = json.loads(demandes[0].value)["data"]["demande_id"]
        stored = await app.state.deps.store.demand(demande_id)
    assert {s["source"] for s in stored["sources"]} == {event["source"], other["source"]}


async def test_corrections_and_retractions_are_passed_on_as_such(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("signalement")
    rng = random.Random(11)
    retraite = valid_event(rng, "retraite")
    correction = {**retraite, "id": retraite["id"] + "-c",
                  "data": {**retraite["data"], "date_effet": "2026-03-01", "nature": "correction",
                           "evenement_reference": retraite["id"]}}
    deces = valid_event(rng, "deces")
    retractation = {**deces, "id": deces["id"] + "-a",
                    "data": {**deces["data"], "nature": "annulation",
                             "evenement_reference": deces["id"]}}
    orphan = {**valid_event(rng, "retraite"), "id": "orphan"}
    orphan["data"] = {**orphan["data"], "nature": "correction", "evenement_reference": "inconnu"}
    app = create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        await produce(settings.kafka_bootstrap_servers, settings.topic("evenements-vie"),
                      [(b"a", json.dumps(e).encode(), [CT])
                       for e in (retraite, correction, deces, retractation, orphan)])
        demandes = await read_all(settings.kafka_bootstrap_servers,
                                  settings.topic("parcours.demandes"), expect=4, timeout=60)
        rejets = await read_all(settings.kafka_bootstrap_servers,
                                settings.topic("evenements-vie.rejets"), expect=1)
        coordonnees = await read_all(settings.kafka_bootstrap_servers,
                                     settings.topic(topics_name := "personnes.coordonnees"),
                                     expect=4)
    by_nature = {json.loads(d.value)["data"]["nature"] + json.loads(d.value)["data"]["evenement"]:
                 json.loads(d.value)["data"] for d in demandes}
    first = by_nature["initialretraite"]
    assert by_nature["correctionretraite"]["demande_reference"] == first["demande_id"]
    assert by_nature["correctionretraite"]["date_effet"] == "2026-03-01"
    assert (by_nature["annulationdeces"]["demande_reference"]
            == by_nature["initialdeces"]["demande_id"])
    assert dict(rejets[0].headers)[H_CODE] == b"correction.reference-inconnue"
    last_for_deceased = [json.loads(c.value)["data"] for c in coordonnees
                         if json.loads(c.value)["data"]["pseudonyme"]
                         == by_nature["initialdeces"]["pseudonyme"]]
    assert [c["decede"] for c in last_for_deceased] == [True, False], topics_name

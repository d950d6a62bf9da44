"""The operations CLI (``parcours``) against the real broker (and signalement on the real
database where a flow needs it)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from services.signalement.app import create_app
from shared import topics as t
from shared.cli import H_REPLAY, app
from shared.clock import ManualClock
from shared.cloudevents import new_event
from shared.contracts import internes as i
from shared.kafka import H_CODE, H_TOPIC, REJECT_HEADERS, RawProducer, Reason
from shared.nir import Pseudonymizer
from tests.inputs import CT, random_nir, valid_event
from tests.support import eventually, produce, read_all, running

KEY = "test-pseudonym-key-0123456789"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
WHY = ["retraite le 01/10/2026", "sans complémentaire: courrier M+9"]
runner = CliRunner()


def env_for(bootstrap: str, prefix: str) -> dict[str, str]:
    return {"PARCOURS_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PARCOURS_TOPIC_PREFIX": prefix,
            "PARCOURS_PSEUDONYM_KEY": KEY, "PARCOURS_PSEUDONYM_KEY_ID": "k1"}


async def cli(env: dict[str, str], *args: str) -> Result:
    """Run the CLI in a thread (it runs its own event loop)."""
    result = await asyncio.to_thread(runner.invoke, app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


async def test_topics_ensure_creates_then_checks_and_status_counts(infra: Any, prefix: str) -> None:
    env = env_for(infra.bootstrap_servers, prefix)
    first = await cli(env, "topics", "ensure")
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == len(t.load_topics())
    again = await cli(env, "topics", "ensure")
    assert again.exit_code == 0 and "created" not in again.output
    assert again.output.count(" ok") == len(t.load_topics())

    status = await cli(env, "topics", "status", "--json")
    body = json.loads(status.stdout)
    assert body["topics"][f"{prefix}{t.EVENEMENTS_VIE}"] == {"partitions": 6, "records": 0}
    assert body["topics"][f"{prefix}{t.DLQ}"]["partitions"] == 3


async def test_publish_reaches_intake_and_the_trail_shows_the_person_with_explanations(
    topics: str, make_settings: Any, tmp_path: Path
) -> None:
    settings = make_settings("signalement", pseudonym_key=KEY)
    env = env_for(settings.kafka_bootstrap_servers, topics)
    nir = random_nir(random.Random(7))
    event = valid_event(random.Random(7), "retraite")
    event["data"]["assure"]["nir"] = nir
    event["data"]["date_effet"] = "2026-10-01"
    path = tmp_path / "retraite.json"
    path.write_text(json.dumps(event, ensure_ascii=False))
    pseudo = Pseudonymizer(KEY.encode(), "k1").pseudonym(nir)

    async with running(create_app(settings, clock=ManualClock(NOW))):
        published = await cli(env, "publish", str(path))
        assert published.exit_code == 0, published.output
        demandes = await read_all(settings.kafka_bootstrap_servers, settings.topic(t.DEMANDES),
                                  expect=1, timeout=60)
        assert len(demandes) == 1 and demandes[0].key == pseudo.encode()

        async def intake_committed() -> bool:
            status = json.loads((await cli(env, "topics", "status", "--json")).stdout)
            groups = {(g["group"], g["topic"]): g for g in status["groups"]}
            g = groups.get((f"{topics}signalement", settings.topic(t.EVENEMENTS_VIE)))
            return bool(g and g["end"] == 1 and g["lag"] == 0)

        await eventually(intake_committed, timeout=30, interval=0.5)

    # What orientation would say about this person, and about somebody else.
    demande = json.loads(demandes[0].value)
    decision = new_event(
        type=i.DECISION, source="urn:parcours:orientation", id="dec-1", time=NOW + timedelta(1),
        data=i.Decision(decision_id="dec-1", pseudonyme=pseudo,
                        demande_id=demande["data"]["demande_id"], dossier_id="dos-1",
                        parcours="accompagnement-seniors", statut="ouvert", catalogue_version="1",
                        explication=WHY))
    other = new_event(
        type=i.DECISION, source="urn:parcours:orientation", id="dec-2", time=NOW,
        data=i.Decision(decision_id="dec-2", pseudonyme="k1-someone-else", demande_id="x",
                        dossier_id=None, parcours=None, statut="refuse", catalogue_version="1",
                        explication=["not this person"]))
    await produce(settings.kafka_bootstrap_servers, settings.topic(t.DECISIONS), [
        (pseudo.encode(), decision.to_bytes(), [CT]),
        (b"k1-someone-else", other.to_bytes(), [CT]),
    ])

    by_nir = json_lines(await cli(env, "trail", "--nir", nir, "--json"))
    by_pseudo = json_lines(await cli(env, "trail", pseudo, "--json"))
    assert by_nir == by_pseudo
    assert [e["topic"] for e in by_nir] == [t.DEMANDES, t.DECISIONS], "in time order"
    assert "evenement=retraite" in by_nir[0]["summary"]
    assert "sans_complementaire" in by_nir[0]["summary"]
    assert by_nir[1]["explication"] == WHY
    assert "not this person" not in json.dumps(by_nir)
    table = await cli(env, "trail", "--nir", nir)
    assert table.exit_code == 0 and "courrier M+9" in table.stdout
    assert nir not in table.stdout, "the NIR is never printed"
    unknown = await cli(env, "trail", "k1-nobody")
    assert unknown.exit_code == 1 and "nothing about" in unknown.output


async def _park(bootstrap: str, source_topic: str, parked_topic: str, reason: Reason) -> list[Any]:
    """Park every record of ``source_topic`` as signalement / the dead-letter router does."""
    records = await read_all(bootstrap, source_topic)
    raw = RawProducer(bootstrap, "test")
    await raw.start()
    try:
        await raw.reject(((r, reason) for r in records), parked_topic, "test")
    finally:
        await raw.stop()
    return records


async def test_rejects_replay_sends_the_originals_back_once_and_intake_takes_each_once(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("signalement", pseudonym_key=KEY)
    bootstrap = settings.kafka_bootstrap_servers
    env = env_for(bootstrap, topics)
    vie, rejets = settings.topic(t.EVENEMENTS_VIE), settings.topic(t.REJETS)
    rng = random.Random(11)
    events = [valid_event(rng, "deces") for _ in range(3)]
    for e in events:
        e["data"]["date_effet"] = "2026-11-01"
    await produce(bootstrap, vie, [(f"k{n}".encode(), json.dumps(e).encode(), [CT])
                                   for n, e in enumerate(events)])
    # As if a since-fixed bug in intake had refused them.
    originals = await _park(bootstrap, vie, rejets, Reason("erreur.interne", "bug #42"))

    listed = json_lines(await cli(env, "rejects", "list", "--json"))
    assert len(listed) == 3 and {r["code"] for r in listed} == {"erreur.interne"}
    assert {r["original_topic"] for r in listed} == {vie}
    assert {r["event_id"] for r in listed} == {e["id"] for e in events}
    table = await cli(env, "rejects", "list")
    assert events[0]["data"]["assure"]["nir"] not in table.stdout, "never the content"

    dry = await cli(env, "rejects", "replay", "--dry-run")
    assert "would replay 3" in dry.stdout
    assert len(await read_all(bootstrap, vie)) == 3, "a dry run sends nothing"

    first = await cli(env, "rejects", "replay")
    assert first.exit_code == 0 and "replayed 3" in first.stdout, first.output
    after = await read_all(bootstrap, vie)
    assert len(after) == 6
    replayed = after_only(after, originals)
    assert sorted((r.key, r.value) for r in replayed) == sorted((r.key, r.value) for r in originals)
    for r in replayed:
        names = [k for k, _ in r.headers]
        assert not set(names) & set(REJECT_HEADERS) and H_REPLAY in names
        assert dict(r.headers)["content-type"] == CT[1]

    second = await cli(env, "rejects", "replay")
    assert "replayed 0" in second.stdout, "a second replay sends nothing new"
    assert len(await read_all(bootstrap, vie)) == 6

    # A new reject later: only that one goes.
    extra = valid_event(rng, "deces")
    extra["data"]["date_effet"] = "2026-11-02"
    await RawProducerOnce(bootstrap).reject_value(rejets, json.dumps(extra).encode(), vie)
    third = await cli(env, "rejects", "replay")
    assert "replayed 1" in third.stdout
    assert len(await read_all(bootstrap, vie)) == 7

    # Intake reads originals and replays: each event is taken once (dedup by source and id).
    async with running(create_app(settings, clock=ManualClock(NOW))):
        demandes = await read_all(bootstrap, settings.topic(t.DEMANDES), expect=4, timeout=60)
        await asyncio.sleep(2)
        demandes = await read_all(bootstrap, settings.topic(t.DEMANDES))
    assert len(demandes) == 4


def after_only(after: list[Any], originals: list[Any]) -> list[Any]:
    seen = {(r.partition, r.offset) for r in originals}
    return [r for r in after if (r.partition, r.offset) not in seen]


class RawProducerOnce:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    async def reject_value(self, topic: str, value: bytes, original_topic: str) -> None:
        await produce(self.bootstrap, topic, [(None, value, [
            CT, (H_CODE, b"erreur.interne"), (H_TOPIC, original_topic.encode())])])


async def test_dlq_replay_returns_each_dead_letter_to_its_own_topic(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation")
    bootstrap = settings.kafka_bootstrap_servers
    env = env_for(bootstrap, topics)
    demandes, actions, dlq = (settings.topic(n) for n in (t.DEMANDES, t.ACTIONS, t.DLQ))
    await produce(bootstrap, demandes, [(b"k1-a", b'{"n": 1}', [CT]), (b"k1-b", b'{"n": 2}', [CT])])
    await produce(bootstrap, actions, [(b"k1-c", b'{"n": 3}', [CT])])
    await _park(bootstrap, demandes, dlq, Reason("erreur.KeyError", "a bug"))
    await _park(bootstrap, actions, dlq, Reason("erreur.ValueError", "another bug"))

    listed = json_lines(await cli(env, "dlq", "list", "--json"))
    assert sorted(r["original_topic"] for r in listed) == [actions, demandes, demandes]

    only = await cli(env, "dlq", "replay", "--code", "erreur.ValueError")
    assert "replayed 1" in only.stdout and f"{actions}: 1" in only.stdout
    assert len(await read_all(bootstrap, actions)) == 2
    assert len(await read_all(bootstrap, demandes)) == 2

    everything = await cli(env, "dlq", "replay")
    assert "replayed 3" in everything.stdout
    got = await read_all(bootstrap, demandes)
    assert sorted((r.key, r.value) for r in got) == [(b"k1-a", b'{"n": 1}')] * 2 + \
        [(b"k1-b", b'{"n": 2}')] * 2
    assert "replayed 0" in (await cli(env, "dlq", "replay")).stdout

"""reporting's projections on the real broker and database: every topic becomes facts, once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaProducer

from services.reporting.app import create_app
from shared import topics as t
from shared.clock import ManualClock
from shared.kafka import H_AT, H_BY, H_CODE, H_OFFSET, H_PARTITION, H_TOPIC
from tests.integration.reporting import builders as b
from tests.support import auth_headers, eventually, produce, read_all, running

NOW = b.utc(2026, 3, 20, 12)


def volumes_of(body: dict[str, Any]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for row in body["lignes"]:
        key = (row["indicateur"], row["motif"])
        out[key] = out.get(key, 0) + row["valeur"]
    return out


async def test_every_topic_is_projected_and_counted_once_even_when_redelivered(
    topics: str, make_settings: Any
) -> None:
    s = make_settings("reporting")
    when = b.utc(2026, 3, 2, 9)
    dem = b.demande("p1", "retraite", when)
    dec = b.decision("p1", dem.data.demande_id, "d1", "accompagnement-des-seniors", "ouvert", when)
    act = b.action(
        "p1",
        "d1",
        "accompagnement-des-seniors",
        "p1-info",
        "courrier",
        "courrier",
        when,
        modele="seniors-p1-information",
    )
    res = b.resultat("p1", "envoye", b.utc(2026, 3, 3, 9), planned=act)
    skipped = b.action(
        "p1", "d1", "accompagnement-des-seniors", "p1-sms", "sms", "sms", when, modele="x"
    )
    res2 = b.resultat(
        "p1", "ignore", b.utc(2026, 3, 3, 10), planned=skipped, raison="sans-consentement"
    )
    cancel = b.annulation("p1", skipped, "deces", b.utc(2026, 3, 4, 9))
    reject_headers = [
        (H_CODE, b"nir.cle"),
        (H_TOPIC, b"evenements-vie"),
        (H_PARTITION, b"0"),
        (H_OFFSET, b"17"),
        (H_AT, b"2026-03-02T10:00:00+00:00"),
        (H_BY, b"signalement"),
    ]
    app = create_app(s, clock=ManualClock(NOW))
    async with running(app) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        bs = s.kafka_bootstrap_servers
        for _ in range(2):  # everything twice: a redelivery changes nothing
            await produce(bs, s.topic(t.DEMANDES), [b.record(dem)])
            await produce(bs, s.topic(t.DECISIONS), [b.record(dec)])
            await produce(
                bs, s.topic(t.ACTIONS), [b.record(act), b.record(skipped), b.record(cancel)]
            )
            await produce(bs, s.topic(t.RESULTATS), [b.record(res), b.record(res2)])
            await produce(bs, s.topic(t.REJETS), [(b"k", b"{not read}", reject_headers)])

        async def all_seen() -> Any:
            body = (await http.get("/v1/etat")).json()
            done = {f["topic"]: f["messages_en_retard"] for f in body["fraicheur"]}
            return all(v == 0 for v in done.values()) and body

        etat = await eventually(all_seen, timeout=60)
        got = volumes_of((await http.get("/v1/indicateurs/volumes?granularite=mois")).json())
    assert got == {
        ("evenements-recus", "retraite"): 1,
        ("dossiers-ouverts", ""): 1,
        ("actions-planifiees", "courrier"): 1,
        ("actions-planifiees", "sms"): 1,
        ("actions-annulees", "deces"): 1,
        ("actions-envoyees", ""): 1,
        ("actions-ignorees", "sans-consentement"): 1,
        ("evenements-rejetes", "nir.cle"): 1,
    }
    fresh = {f["topic"]: f for f in etat["fraicheur"]}
    assert fresh["parcours.actions"]["dernier_evenement"] == "2026-03-04T09:00:00+00:00"
    assert fresh["parcours.actions"]["age_secondes"] == (NOW - b.utc(2026, 3, 4, 9)).total_seconds()
    lag = {(r["topic"], r["groupe"]): r for r in etat["retard_consommateurs"]}
    assert lag[("parcours.resultats", "reporting-resultats")] == {
        "topic": "parcours.resultats",
        "groupe": "reporting-resultats",
        "fin": 4,
        "engage": 4,
        "retard": 0,
    }


async def test_a_poison_event_goes_to_the_dead_letter_topic_and_the_rest_is_projected(
    topics: str, make_settings: Any
) -> None:
    s = make_settings("reporting")
    good = b.demande("p2", "retraite", b.utc(2026, 3, 2, 9))
    bad = good.model_dump(mode="json")
    del bad["data"]["pseudonyme"]
    app = create_app(s, clock=ManualClock(NOW))
    async with running(app) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        await produce(
            s.kafka_bootstrap_servers,
            s.topic(t.DEMANDES),
            [
                (
                    b"p2",
                    json.dumps(bad).encode(),
                    [("content-type", b"application/cloudevents+json")],
                ),
                b.record(good),
            ],
        )
        dead = await read_all(s.kafka_bootstrap_servers, s.topic(t.DLQ), expect=1, timeout=60)

        async def counted() -> Any:
            body = (await http.get("/v1/indicateurs/volumes?granularite=mois")).json()
            return body["lignes"]

        rows = await eventually(counted, timeout=60)
    assert [(r["indicateur"], r["valeur"]) for r in rows] == [("evenements-recus", 1)]
    assert len(dead) == 1 and dead[0].value == json.dumps(bad).encode()
    assert dict(dead[0].headers)[H_BY] == b"reporting"


async def test_a_batch_of_actions_counts_its_actions_ignores_other_types_and_dead_letters_poison(
    topics: str, make_settings: Any
) -> None:
    """One batch, three kinds of record: an action is projected, a CloudEvent of a type
    reporting does not count is skipped (not poison: a newer producer may add types), a record
    that is not JSON goes to the dead-letter topic with its bytes, and none holds the others."""
    s = make_settings("reporting")
    when = b.utc(2026, 3, 2, 9)
    act = b.action("p3", "d3", "accompagnement-des-seniors", "p3-info", "courrier", "courrier",
                   when, modele="seniors-p1-information")
    other = act.model_dump(mode="json") | {"type": "parcours.action-rappelee.v1", "id": "x-1"}
    ce = [("content-type", b"application/cloudevents+json")]
    app = create_app(s, clock=ManualClock(NOW))
    async with running(app) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        await produce(s.kafka_bootstrap_servers, s.topic(t.ACTIONS),
                      [(b"p3", b"{not json", ce), (b"p3", json.dumps(other).encode(), ce),
                       b.record(act)])
        dead = await read_all(s.kafka_bootstrap_servers, s.topic(t.DLQ), expect=1, timeout=60)

        async def counted() -> Any:
            rows = (await http.get("/v1/indicateurs/volumes?granularite=mois")).json()["lignes"]
            return rows or None

        rows = await eventually(counted, timeout=60)
        metrics = (await http.get("/metrics")).text
    assert [(r["indicateur"], r["motif"], r["valeur"]) for r in rows] == [
        ("actions-planifiees", "courrier", 1)]
    assert [d.value for d in dead] == [b"{not json"]
    assert dict(dead[0].headers)[H_BY] == b"reporting"
    assert f'reporting_ignored_total{{topic="{t.ACTIONS}"}} 1.0' in metrics
    assert f'reporting_facts_total{{topic="{t.ACTIONS}"}} 1.0' in metrics


async def test_the_store_writes_new_facts_by_insert_and_applies_what_follows_in_order(
    make_settings: Any, mongo: Any
) -> None:
    """Facts new to the store are inserted; a fact already stored (a redelivery) is replaced;
    fields set on a fact apply in offset order, whether the fact is new, seen earlier in the
    batch, or stored by an earlier batch (a cancellation after the plan, or before it)."""
    from services.reporting.store import ReportingStore

    s = make_settings("reporting")
    store = ReportingStore(mongo, s.database_name)
    await store.write("demandes", [{"_id": "d1", "v": 1}, {"_id": "d2", "v": 1}], [])
    await store.write("demandes", [{"_id": "d2", "v": 2}, {"_id": "d3", "v": 1},
                                   {"_id": "d3", "v": 2}], [])
    demandes = {d["_id"]: d async for d in store.db["demandes"].find({})}
    assert demandes == {"d1": {"_id": "d1", "v": 1}, "d2": {"_id": "d2", "v": 2},
                        "d3": {"_id": "d3", "v": 2}}

    await store.write("actions", [], [("a1", {"planifiee_le": 1, "statut": "x"}),
                                      ("a2", {"annulee_le": 2})])  # a2: cancelled first
    await store.write("actions", [], [
        ("a3", {"planifiee_le": 3, "statut": "x"}), ("a1", {"annulee_le": 4}),
        ("a3", {"annulee_le": 5, "statut": "y"}), ("a2", {"planifiee_le": 6}),
        ("a1", {"planifiee_le": 1, "statut": "x"}),  # a redelivered plan
    ])
    actions = {d["_id"]: d async for d in store.db["actions"].find({})}
    assert actions == {
        "a1": {"_id": "a1", "planifiee_le": 1, "statut": "x", "annulee_le": 4},
        "a2": {"_id": "a2", "annulee_le": 2, "planifiee_le": 6},
        "a3": {"_id": "a3", "planifiee_le": 3, "statut": "y", "annulee_le": 5},
    }


async def test_outcomes_that_trickle_in_are_projected_in_few_batches(
    topics: str, make_settings: Any, monkeypatch: Any
) -> None:
    """One outcome every 25 ms for a second (notification fires one action after another):
    projected in a few batches (two database commands each), not one batch per outcome."""
    from services.reporting.store import ReportingStore

    writes: list[int] = []
    real_write = ReportingStore.write

    async def counted(self: ReportingStore, collection: str, docs: Any, fields: Any) -> None:
        if collection == "resultats":
            writes.append(len(docs))
        await real_write(self, collection, docs, fields)

    monkeypatch.setattr(ReportingStore, "write", counted)
    s = make_settings("reporting")
    when = b.utc(2026, 3, 2, 9)
    outcomes = []
    for k in range(40):
        act = b.action(f"p{k}", f"d{k}", "accompagnement-des-seniors", "p1-info", "courrier",
                       "courrier", when, modele="seniors-p1-information")
        outcomes.append(b.resultat(f"p{k}", "envoye", b.utc(2026, 3, 3, 9), planned=act))
    app = create_app(s, clock=ManualClock(NOW))
    async with running(app) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            for o in outcomes:
                key, value, headers = b.record(o)
                await producer.send_and_wait(s.topic(t.RESULTATS), value, key=key,
                                             headers=headers)
                await asyncio.sleep(0.025)
        finally:
            await producer.stop()

        async def all_projected() -> bool:
            got = volumes_of((await http.get("/v1/indicateurs/volumes?granularite=mois")).json())
            return sum(v for (k, _), v in got.items() if k == "actions-envoyees") == 40

        await eventually(all_projected, timeout=60)
    assert sum(writes) == 40
    assert len(writes) <= 8, f"{len(writes)} batches for 40 outcomes over a second: {writes}"

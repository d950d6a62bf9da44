from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.errors import DuplicateKeyError

from shared.topics import ensure_topics, load_topics
from tests.conftest import Endpoints


async def test_a_second_insert_of_the_same_id_is_refused_with_duplicate_key_error(
    mongo: Any,
) -> None:
    col = mongo[f"t{uuid.uuid4().hex[:8]}"]["effets"]
    await col.insert_one({"_id": "action-1", "statut": "envoye"})
    with pytest.raises(DuplicateKeyError):
        await col.insert_one({"_id": "action-1", "statut": "envoye"})
    assert await col.count_documents({}) == 1


async def test_a_unique_index_refuses_a_second_document_with_the_same_key(mongo: Any) -> None:
    col = mongo[f"t{uuid.uuid4().hex[:8]}"]["sources"]
    await col.create_index([("source", 1), ("id", 1)], unique=True)
    await col.insert_one({"_id": "a", "source": "urn:caf", "id": "e1"})
    await col.insert_one({"_id": "b", "source": "urn:carsat", "id": "e1"})
    with pytest.raises(DuplicateKeyError):
        await col.insert_one({"_id": "c", "source": "urn:caf", "id": "e1"})


async def test_the_declared_topics_are_created_with_their_partitions_and_policies(
    infra: Endpoints, prefix: str
) -> None:
    first = await ensure_topics(infra.bootstrap_servers, prefix)
    assert set(first) == {prefix + n for n in load_topics()} and set(first.values()) == {"created"}
    again = await ensure_topics(infra.bootstrap_servers, prefix)
    assert set(again.values()) == {"ok"}, "applying the declaration twice changes nothing"

    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    try:
        described = {d["topic"]: d for d in await admin.describe_topics(list(first))}
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        resources = [ConfigResource(ConfigResourceType.TOPIC, prefix + n) for n in load_topics()]
        configs = await admin.describe_configs(resources)
    finally:
        await admin.close()
    for name, spec in load_topics().items():
        assert len(described[prefix + name]["partitions"]) == spec.partitions
    found: dict[str, dict[str, str]] = {}
    for response in configs:
        for resource in response.resources:
            found[resource[3]] = {c[0]: c[1] for c in resource[4]}
    assert found[prefix + "personnes.coordonnees"]["cleanup.policy"] == "compact"
    assert found[prefix + "evenements-vie"]["retention.ms"] == str(
        load_topics()["evenements-vie"].retention_ms)
    assert load_topics()["parcours.actions"].partitions >= 3, "internal topics are partitioned"


# FerretDB 1.24 keeps one PostgreSQL connection per update statement until the command ends;
# the local pool has 300: a redelivered batch of 500 facts, or 500 known persons' new contact
# data, sent as one command, hung the database for every client (docs/adr/0012, addendum 2).
MORE_THAN_THE_POOL = 500


async def test_a_redelivered_batch_larger_than_the_database_pool_is_written_and_the_database_still_answers(  # noqa: E501
    mongo: Any,
) -> None:
    from services.reporting.store import ReportingStore

    store = ReportingStore(mongo, f"t{uuid.uuid4().hex[:8]}")
    facts = [{"_id": f"r{k}", "statut": "envoye", "n": k} for k in range(MORE_THAN_THE_POOL)]
    await store.write("resultats", facts, [])
    again = [{**f, "n": -f["n"]} for f in facts]  # redelivered, each fact already stored
    fields = [(f["_id"], {"canal": "courrier"}) for f in facts]
    async with asyncio.timeout(120):
        await store.write("resultats", again, fields)
        assert await mongo.admin.command("ping")
    stored = {d["_id"]: d async for d in store.db["resultats"].find({})}
    assert len(stored) == MORE_THAN_THE_POOL
    assert all(d["n"] == -int(i[1:]) and d["canal"] == "courrier" for i, d in stored.items())


async def test_new_contact_data_of_more_known_persons_than_the_database_pool_is_kept(
    mongo: Any,
) -> None:
    from services.notification.store import NotificationStore

    store = NotificationStore(mongo, f"t{uuid.uuid4().hex[:8]}")
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    first = {f"p{k}": ({"v": 1}, t0) for k in range(MORE_THAN_THE_POOL)}
    assert await store.save_coordonnees_many(first) == MORE_THAN_THE_POOL
    later = {p: ({"v": 2}, t0 + timedelta(hours=1)) for p in first}
    async with asyncio.timeout(120):
        assert await store.save_coordonnees_many(later) == MORE_THAN_THE_POOL
        assert await mongo.admin.command("ping")
    assert {d["data"]["v"] async for d in store.coordonnees.find({})} == {2}

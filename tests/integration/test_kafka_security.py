"""Kafka security by configuration, on a real broker with a SASL/SCRAM listener and ACLs.

This module starts its own Kafka broker (deploy/local LocalInfra with ``sasl=True``: SCRAM-SHA-512
listener, StandardAuthorizer, ``allow.everyone.if.no.acl.found=false``, super user admin), on
free ports and a small heap, creates SCRAM credentials for every principal of deploy/acls.yaml,
applies the ACLs of deploy/acls.yaml with shared/acls.py, and stops the broker at the end.
The database is the shared one (the ``infra`` fixture).
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from aiokafka.structs import TopicPartition

import services.signalement.app as signalement_app
from deploy.local.infra import LocalInfra, free_port
from shared import topics
from shared.acls import apply_acls, bindings, load_acls
from shared.clock import ManualClock
from shared.contracts import internes
from shared.kafka import kafka_client_config
from shared.settings import Settings
from tests.inputs import CT, TODAY, valid_event
from tests.support import running

NOW = datetime(TODAY.year, TODAY.month, TODAY.day, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalInfra, Path]]:
    state = tmp_path_factory.mktemp("sasl-kafka")
    secrets = state / "secrets"
    secrets.mkdir()
    users: dict[str, str] = {}
    for p in load_acls().principals.values():
        users[p.user] = uuid.uuid4().hex
        (secrets / p.user).write_text(users[p.user] + "\n")
    local = LocalInfra(state=state, kafka_port=free_port(), controller_port=free_port(),
                       mongo_port=free_port(), kafka_heap="256m", sasl=True, sasl_users=users)
    try:
        local.start_kafka(timeout=120)
        report = local.ensure_topics()
        assert all(v in ("created", "ok") for v in report.values()), report
        applied = asyncio.run(apply_acls(local.bootstrap_servers, bindings(load_acls()),
                                         **local.admin_client_config()))
        assert applied > 0
        yield local, secrets
    finally:
        local.kafka.stop()


def settings_of(secure: tuple[LocalInfra, Path], user: str, **more: Any) -> Settings:
    """A service's settings with its own principal: the password comes from a file."""
    local, secrets = secure
    return Settings(service_name=user, kafka_bootstrap_servers=local.bootstrap_servers,
                    kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-512",
                    kafka_sasl_username=user, kafka_sasl_password_file=secrets / user, **more)


async def subscribe_and_poll(s: Settings, topic: str, group: str) -> dict[Any, Any]:
    """What a service's subscriber does: join a group on a topic and fetch."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=s.kafka_bootstrap_servers,
                                group_id=group, auto_offset_reset="earliest",
                                **kafka_client_config(s))
    try:
        await consumer.start()
        return await asyncio.wait_for(consumer.getmany(timeout_ms=2000), 30)
    finally:
        await consumer.stop()


async def read_as(s: Settings, topic: str, expect: int, within: float = 60.0) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                **kafka_client_config(s))
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in range(topics.load_topics()[topic].partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(records) < expect and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def produce_as(s: Settings, topic: str, value: bytes, key: bytes | None = None,
                     headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks="all",
                                enable_idempotence=True, request_timeout_ms=15000,
                                **kafka_client_config(s))
    try:
        await producer.start()
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=key, headers=headers), 30)
    finally:
        await producer.stop()


async def test_signalement_takes_life_events_and_publishes_with_its_own_credentials(
    secure_kafka: tuple[LocalInfra, Path], infra: Any
) -> None:
    db = f"sec{uuid.uuid4().hex[:8]}_signalement"
    settings = settings_of(secure_kafka, "signalement", mongo_uri=infra.mongo_uri,
                           mongo_database=db, pseudonym_key="test-pseudonym-key-0123456789",
                           log_json=True)
    event = valid_event(random.Random(9), "retraite")
    app = signalement_app.create_app(settings, clock=ManualClock(NOW))
    async with running(app):
        sources = settings_of(secure_kafka, "sources")
        await produce_as(sources, topics.EVENEMENTS_VIE, json.dumps(event).encode(), key=b"k1",
                         headers=[CT])
        await produce_as(sources, topics.EVENEMENTS_VIE, b"not a life event", key=b"k2",
                         headers=[CT])
        admin = Settings(kafka_bootstrap_servers=secure_kafka[0].bootstrap_servers,
                         kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="admin",
                         kafka_sasl_password_file=_admin_password_file(secure_kafka))
        demandes = await read_as(admin, topics.DEMANDES, expect=1)
        assert len(demandes) == 1, "signalement consumed evenements-vie and wrote parcours.demandes"
        assert json.loads(demandes[0].value)["type"] == internes.DEMANDE
        rejets = await read_as(admin, topics.REJETS, expect=1)
        assert [r.value for r in rejets] == [b"not a life event"], "rejected by its raw producer"

    # notification, and only notification, reads the contact data signalement wrote
    coordonnees = await read_as(settings_of(secure_kafka, "notification"), topics.COORDONNEES,
                                expect=1)
    assert len(coordonnees) == 1
    with pytest.raises(TopicAuthorizationFailedError):
        await subscribe_and_poll(settings_of(secure_kafka, "reporting"), topics.COORDONNEES,
                                 "reporting-coordonnees")


def _admin_password_file(secure: tuple[LocalInfra, Path]) -> Path:
    local, secrets = secure
    path = secrets / "admin"
    path.write_text(local.admin_password)
    return path


@pytest.mark.parametrize("topic", [topics.COORDONNEES, topics.ACTIONS, topics.DEMANDES])
async def test_signalement_may_not_read_a_topic_it_has_no_right_to(
    secure_kafka: tuple[LocalInfra, Path], topic: str
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await subscribe_and_poll(settings_of(secure_kafka, "signalement"), topic, "signalement")


async def test_signalement_reads_its_own_topics_with_its_own_group(
    secure_kafka: tuple[LocalInfra, Path],
) -> None:
    s = settings_of(secure_kafka, "signalement")
    assert await subscribe_and_poll(s, topics.DECISIONS, "signalement-statuts") is not None
    with pytest.raises(GroupAuthorizationFailedError):
        await subscribe_and_poll(s, topics.DECISIONS, "orientation")


async def test_signalement_may_not_write_orientations_topics(
    secure_kafka: tuple[LocalInfra, Path],
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await produce_as(settings_of(secure_kafka, "signalement"), topics.ACTIONS, b"{}",
                         key=b"k1-0000")


@pytest.mark.parametrize("topic", [topics.COORDONNEES, topics.EVENEMENTS_VIE])
async def test_reporting_may_not_read_personal_data(
    secure_kafka: tuple[LocalInfra, Path], topic: str
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await subscribe_and_poll(settings_of(secure_kafka, "reporting"), topic, "reporting-x")


async def test_a_wrong_password_is_refused(
    secure_kafka: tuple[LocalInfra, Path], tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    s = settings_of(secure_kafka, "signalement").model_copy(
        update={"kafka_sasl_password_file": wrong})
    with pytest.raises(KafkaConnectionError):
        await produce_as(s, topics.DEMANDES, b"{}")


async def test_without_credentials_nothing_is_possible(
    secure_kafka: tuple[LocalInfra, Path],
) -> None:
    plain = Settings(kafka_bootstrap_servers=secure_kafka[0].bootstrap_servers)
    with pytest.raises(KafkaConnectionError):
        await produce_as(plain, topics.DEMANDES, b"{}")

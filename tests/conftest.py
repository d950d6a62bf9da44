"""Test infrastructure: the real Kafka broker and the real database.

Where they come from, in order:
1. environment variables pointing at running ones: ``PARCOURS_TEST_KAFKA_BOOTSTRAP_SERVERS``
   and ``PARCOURS_TEST_MONGO_URI``;
2. testcontainers, when a Docker engine answers;
3. ``deploy/local`` (Kafka from the official jars, FerretDB through our runner), started once
   per test session on free ports in a temporary folder, and stopped at its end.

Every test gets its own topics (a unique prefix) and its own database names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from pymongo import AsyncMongoClient

from deploy.local.infra import LocalInfra
from shared.settings import Settings
from shared.topics import ensure_topics


@dataclass
class Endpoints:
    bootstrap_servers: str
    mongo_uri: str
    how: str
    local: LocalInfra | None = None


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    kafka = os.environ.get("PARCOURS_TEST_KAFKA_BOOTSTRAP_SERVERS")
    mongo = os.environ.get("PARCOURS_TEST_MONGO_URI")
    if kafka and mongo:
        yield Endpoints(kafka, mongo, "environment")
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.mongodb import MongoDbContainer

        with (KafkaContainer("apache/kafka:4.3.1").with_kraft() as k,
              MongoDbContainer("mongo:7") as m):
            yield Endpoints(k.get_bootstrap_server(), m.get_connection_url(), "testcontainers")
        return
    local = LocalInfra.ephemeral(tmp_path_factory.mktemp("infra"))
    try:
        local.up(services=False)
        yield Endpoints(local.bootstrap_servers, local.mongo_uri, "deploy/local", local)
    finally:
        local.down()


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test's own."""
    return unique("t") + "."


@pytest.fixture
async def topics(infra: Endpoints, prefix: str) -> AsyncIterator[str]:
    """The declared topics, created under this test's prefix, deleted after the test (a
    session's thousands of partitions would otherwise weigh on the broker). Yields the prefix."""
    report = await ensure_topics(infra.bootstrap_servers, prefix)
    assert all(v in ("created", "ok") for v in report.values()), report
    await wait_until_writable(infra.bootstrap_servers, list(report))
    yield prefix
    await delete_topics(infra.bootstrap_servers, prefix)


async def wait_until_writable(bootstrap_servers: str, names: list[str],
                              timeout: float = 30) -> None:  # noqa: ASYNC109 - a polling loop's deadline
    """A new partition is in the metadata before its log is loaded on the broker; a record sent
    in between gets NOT_LEADER_FOR_PARTITION, and aiokafka 0.14 was seen retrying that forever.
    Wait until the broker answers ListOffsets (which needs the loaded log) for every partition."""
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await consumer._client.force_metadata_update()
                tps = [TopicPartition(n, p) for n in names
                       for p in sorted(consumer.partitions_for_topic(n) or ())]
                if tps and len({tp.topic for tp in tps}) == len(names):
                    await asyncio.wait_for(consumer.end_offsets(tps), 5)
                    return
            except (KafkaError, TimeoutError):
                pass
            if loop.time() > deadline:
                raise AssertionError(f"topics not writable after {timeout}s: {names}")
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()


async def delete_topics(bootstrap_servers: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


@pytest.fixture
def make_settings(infra: Endpoints, prefix: str):  # type: ignore[no-untyped-def]
    """Settings of a service under test: this test's topics and database."""
    db_suffix = prefix.rstrip(".")

    def build(service: str = "test", **overrides: object) -> Settings:
        values: dict[str, object] = {
            "service_name": service,
            "kafka_bootstrap_servers": infra.bootstrap_servers,
            "mongo_uri": infra.mongo_uri,
            "topic_prefix": prefix,
            "mongo_database": f"{db_suffix}_{service}",
            "log_json": True,
            "pseudonym_key": "test-pseudonym-key-0123456789",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return build


@pytest.fixture
async def mongo(infra: Endpoints) -> AsyncIterator[AsyncMongoClient]:
    client: AsyncMongoClient = AsyncMongoClient(infra.mongo_uri, serverSelectionTimeoutMS=5000,
                                                tz_aware=True)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="session", autouse=True)
async def no_task_left_behind() -> AsyncIterator[None]:
    """At the end of the session, every task a test or an app started must be gone: one left
    running (a consumer, a timer loop...) is a leak, and one that ignores cancellation would hang
    the event loop's shutdown. Cancel what is left, name it, and fail loudly instead."""
    import asyncio

    yield
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if not left:
        return
    names = sorted({f"{t.get_name()}: {t.get_coro()!r}"[:200] for t in left})
    for t in left:
        t.cancel()
    _, stuck = await asyncio.wait(left, timeout=15)
    report = "\n".join(names)
    if stuck:
        raise RuntimeError("tasks ignore cancellation at the end of the session:\n"
                           + "\n".join(f"{t.get_name()}: {t.get_coro()!r}" for t in stuck)
                           + f"\n(all tasks left: {report})")
    print(f"\n[tests] {len(left)} task(s) were still running at the end of the session and were "
          f"cancelled:\n{report}")

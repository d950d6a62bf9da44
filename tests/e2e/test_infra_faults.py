"""Infrastructure faults, with a count of expected effects before and after: the Kafka broker
restarted in the middle of a stream of life events, the database (FerretDB) restarted in the
middle of one, and its storage (PostgreSQL) crashed in the middle of one. The four services run
as processes and must come through on their own (no
restart of theirs): no life event lost (each becomes exactly one demand), every reject
accounted for, no letter, e-mail, SMS or task duplicated, nothing effected before the outage
undone after it. Half the stream is fed before the outage (which comes in the middle of its
processing), the other half after it.

These tests restart the broker and the database, so each runs its own (``LocalInfra`` on free
ports in a temporary folder), never the shared ones. Stream size: ``PARCOURS_E2E_INFRA_STREAM``
(default 240 records).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.infra import LocalInfra
from shared import topics as t
from tests.conftest import Endpoints, unique
from tests.e2e.conftest import System, new_system
from tests.e2e.stream import Stream, check, effects, feed, make_stream
from tests.e2e.test_faults import at_least, settled
from tests.integration.notification.peers import SmsProvider, SmtpServer

N = int(os.environ.get("PARCOURS_E2E_INFRA_STREAM", "240"))
OUTAGE_SECONDS = 12.0


@pytest.fixture
def own_infra(tmp_path: Path) -> Iterator[LocalInfra]:
    """A broker and a database of this test's own (it restarts them), stopped at the end
    whatever happens."""
    local = LocalInfra.ephemeral(tmp_path / "infra")
    # a handful of topics: the shared broker's big heap is not needed (the machine is small)
    local.kafka_heap = os.environ.get("PARCOURS_E2E_INFRA_KAFKA_HEAP", "768m")
    try:
        local.up(services=False)
        yield local
    finally:
        local.down()


@pytest.fixture
def own_system(own_infra: LocalInfra, tmp_path: Path) -> Iterator[System]:
    prefix = unique("f") + "."
    report = own_infra.ensure_topics(prefix)
    assert all(v in ("created", "ok") for v in report.values()), report
    endpoints = Endpoints(own_infra.bootstrap_servers, own_infra.mongo_uri, "deploy/local",
                          own_infra)
    with SmtpServer() as smtp, SmsProvider() as sms:
        system = new_system(endpoints, prefix, tmp_path / "system")
        system.smtp, system.sms = smtp, sms
        system.extra_env["signalement"] = {"PARCOURS_INTAKE_BATCH_SIZE": "50"}
        try:
            yield system
        finally:
            system.stop_all()


def _alive(system: System) -> None:
    """Every service still runs and is ready (none gave up during the outage)."""
    for name in ("signalement", "orientation", "notification", "reporting"):
        assert system.proc(name).running(), f"{name} died:\n{system.proc(name).log_tail()}"
        system.wait_ready(name, 0, 90.0)


async def _run(system: System, stream: Stream, outage: str, restart: object,
               results_first: int = 0) -> None:
    """Half the stream, the outage in the middle of its processing, the other half after."""
    await asyncio.to_thread(system.start_all)
    fresh = await effects(system)
    assert fresh.summary() == dict.fromkeys(fresh.summary(), 0), "a fresh platform"
    t0 = time.monotonic()
    half = len(stream.records) // 2
    first = Stream(records=stream.records[:half])
    await feed(system, first)
    valid_first = sum(1 for key, _, _ in first.records if key.decode() in stream.valid)
    await at_least(system, t.DEMANDES, valid_first // 3)
    if results_first:
        await at_least(system, t.RESULTATS, results_first)
    before = await effects(system)
    print(f"[{time.strftime('%X')}] before the {outage} restart: {before.summary()}", flush=True)
    await asyncio.to_thread(restart)  # type: ignore[arg-type]
    print(f"[{time.strftime('%X')}] {outage} back", flush=True)
    await feed(system, Stream(records=stream.records[half:]))

    after = await settled(system, len(stream.records), timeout=300.0)
    print(f"\n{len(stream.records)} records in {time.monotonic() - t0:.0f}s, {outage} restarted: "
          f"{after.summary()} {dict(after.by_channel)}", flush=True)
    check(stream, after)
    # what was effected before the outage is still there, once
    for name, count in before.summary().items():
        assert after.summary()[name] >= count, (name, before.summary(), after.summary())
    assert set(before.letters) <= set(after.letters)
    assert set(before.emails) <= set(after.emails)
    assert set(before.tasks) <= set(after.tasks)
    assert after.letters and after.emails and after.tasks, "every kind of effect was exercised"
    assert after.summary()["demands"] == len(stream.valid)
    assert after.summary()["rejects"] == len(stream.invalid)
    await asyncio.to_thread(_alive, system)


@pytest.mark.timeout(420)
async def test_kafka_broker_restarted_mid_stream_loses_and_duplicates_nothing(
    own_infra: LocalInfra, own_system: System,
) -> None:
    def restart() -> None:
        own_infra.kafka.stop(timeout=60)
        time.sleep(OUTAGE_SECONDS)  # the services see the broker gone for a while
        own_infra.start_kafka()

    stream = make_stream(own_system, N, seed=21)
    await _run(own_system, stream, "Kafka broker", restart)


@pytest.mark.timeout(420)
async def test_database_restarted_mid_stream_loses_and_duplicates_nothing(
    own_infra: LocalInfra, own_system: System,
) -> None:
    def restart() -> None:
        own_infra.ferretdb.kill()  # as a crash would
        time.sleep(OUTAGE_SECONDS)
        own_infra.start_ferretdb()

    stream = make_stream(own_system, N, seed=22)
    # notification in the middle of its sends when the database goes
    await _run(own_system, stream, "database", restart, results_first=8)


@pytest.mark.timeout(420)
async def test_database_storage_crashed_mid_stream_loses_and_duplicates_nothing(
    own_infra: LocalInfra, own_system: System,
) -> None:
    """PostgreSQL, FerretDB's storage (ADR 0012), killed as a crash would (every process of it
    at once, no shutdown checkpoint), then started again: it recovers from its write-ahead
    log, and nothing acknowledged to a service is lost."""
    if own_infra.db_backend != "postgresql":
        pytest.fail("this test is about the PostgreSQL storage; PARCOURS_LOCAL_DB_BACKEND="
                    f"{own_infra.db_backend}")

    def crash() -> None:
        own_infra.postgres.kill()
        time.sleep(OUTAGE_SECONDS)
        own_infra.start_ferretdb()  # starts PostgreSQL again, FerretDB reconnects by itself

    stream = make_stream(own_system, N, seed=23)
    await _run(own_system, stream, "database storage", crash, results_first=8)

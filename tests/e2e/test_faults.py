"""Faults, with a count of expected effects before and after: services killed with SIGKILL in
the middle of a stream of life events and restarted; one of two notification instances killed.
(The broker and database restarts: test_infra_faults.py.) In every case: no life event lost
(each becomes exactly one demand), every reject accounted for, no letter, SMS or task
duplicated, and no e-mail either but those SMTP cannot protect: the ones the killed process had
sent in the instant before recording them, sent again with the same Message-ID (at most one per
firing it had under way; ``stream.check``).

Stream size: ``PARCOURS_E2E_STREAM`` (default 400 records, about 2 minutes here; 1000 passed
in 343 s on the shared 2-core machine: notification fires about 3 actions a second on FerretDB).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest

from shared import topics as t
from shared.settings import Settings
from tests.e2e.conftest import System
from tests.e2e.flows import until
from tests.e2e.stream import Effects, check, effects, end_count, feed, make_stream
from tests.integration.notification.peers import SmsProvider, SmtpServer

N = int(os.environ.get("PARCOURS_E2E_STREAM", "400"))
# the firings a notification process has under way at once: the e-mails a kill can repeat
FIRE_CONCURRENCY = Settings().notification_fire_concurrency


@pytest.fixture
def peers(system: System) -> Iterator[System]:
    with SmtpServer() as smtp, SmsProvider() as sms:
        system.smtp, system.sms = smtp, sms
        system.extra_env["signalement"] = {"PARCOURS_INTAKE_BATCH_SIZE": "50"}
        yield system


async def settled(system: System, stream_size: int, timeout: float = 240.0) -> Effects:  # noqa: ASYNC109
    """Wait until every record is accounted for and every due action has its outcome."""
    last: dict[str, int] = {}

    async def done() -> Effects | None:
        got = await effects(system)
        last.update(got.summary())
        print(f"[{time.strftime('%X')}] {last} {dict(got.by_channel)}", flush=True)
        demands, rejects = len(got.demands), len(got.rejects)
        if demands + rejects < stream_size:
            return None
        if not got.due or not got.due <= set(got.results):
            return None
        if len(got.batch) < got.by_channel["envoye:courrier"]:
            return None  # the print batch is rewritten a moment after its letters
        return got

    try:
        return await until(done, timeout, interval=3.0, what="the stream settled")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last counts {last}\n{system.logs()[-4000:]}") from None


async def at_least(system: System, topic: str, n: int, timeout: float = 180.0) -> None:  # noqa: ASYNC109
    async def reached() -> bool:
        return await end_count(system, topic) >= n

    await until(reached, timeout, interval=0.5, what=f"{n} records on {topic}")
    print(f"[{time.strftime('%X')}] {n} records on {topic}", flush=True)


@pytest.mark.timeout(420)
async def test_each_service_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
    peers: System,
) -> None:
    system = peers
    await asyncio.to_thread(system.start_all)
    stream = make_stream(system, N, seed=11)
    valid = len(stream.valid)
    before = await effects(system)
    assert before.summary() == dict.fromkeys(before.summary(), 0), "a fresh platform"
    t0 = time.monotonic()
    await feed(system, stream)

    # signalement, in the middle of its intake
    await at_least(system, t.DEMANDES, valid // 4)
    system.kill("signalement")
    await asyncio.to_thread(system.start, "signalement")
    # orientation, in the middle of its decisions
    await at_least(system, t.ACTIONS, valid // 2)
    system.kill("orientation")
    await asyncio.to_thread(system.start, "orientation")
    # notification, in the middle of its sends
    await at_least(system, t.RESULTATS, valid // 3)
    system.kill("notification")
    await asyncio.to_thread(system.start, "notification")
    # reporting, reading everything
    system.kill("reporting")
    await asyncio.to_thread(system.start, "reporting")

    after = await settled(system, len(stream.records))
    print(f"\n{N} records in {time.monotonic() - t0:.0f}s: {after.summary()} "
          f"{dict(after.by_channel)}")
    check(stream, after, emails_in_flight=FIRE_CONCURRENCY)  # one notification killed
    assert after.letters and after.emails and after.tasks, "every kind of effect was exercised"
    await _reporting_caught_up(system)


@pytest.mark.timeout(300)
async def test_one_of_two_notification_instances_killed_hands_over_without_duplicates(
    peers: System,
) -> None:
    system = peers
    await asyncio.to_thread(system.start_all)
    await asyncio.to_thread(system.start, "notification", 1)
    stream = make_stream(system, N // 2, seed=12)
    await feed(system, stream)
    await at_least(system, t.RESULTATS, len(stream.valid) // 4)
    system.kill("notification", 1)
    after = await settled(system, len(stream.records))
    check(stream, after, emails_in_flight=FIRE_CONCURRENCY)
    assert after.letters and after.emails and after.tasks


async def _reporting_caught_up(system: System) -> None:
    from shared.cli import topic_status

    async def no_lag() -> bool:
        _, lags = await topic_status(system.settings())
        mine = [g for g in lags if "reporting" in g.group]
        return bool(mine) and all(g.lag == 0 for g in mine)

    await until(no_lag, 90, interval=1.0, what="reporting read every topic")

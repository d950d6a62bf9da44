"""The bench's completion check on the real broker and database: the whole platform is done
only once every consumer group of its services has committed every offset and notification
has no due timer left (a timer still due means letters still to make, even with every topic
read)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench import e2e
from shared import topics
from shared.topics import ensure_topics
from tests.conftest import Endpoints, delete_topics, unique
from tests.support import commit_group, produce


async def _returns_within(awaitable: Any, seconds: float) -> bool:
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False
    task.result()
    return True


async def test_done_only_when_every_group_committed_and_no_timer_is_due(
    infra: Endpoints, mongo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(e2e, "mongo_uri", lambda: infra.mongo_uri)
    prefix, servers = unique("bench") + ".", infra.bootstrap_servers
    await ensure_topics(servers, prefix)
    db = unique("benchnotif")
    actions = prefix + topics.ACTIONS
    await produce(servers, actions, [(b"p1", b"{}", [])])
    timers = mongo[db]["minuteries"]
    await timers.insert_one({"_id": "due", "du": datetime.now(UTC) - timedelta(seconds=5)})
    await timers.insert_one({"_id": "later", "du": datetime.now(UTC) + timedelta(days=30)})
    try:
        async with e2e.Offsets(servers) as offsets:
            assert await offsets.lag(prefix + "notification", actions) == 1
            check = e2e.caught_up(offsets, prefix, ("notification",), db)
            assert not await _returns_within(check, 4), "a record not read: not done"

            await commit_group(servers, prefix + "notification", actions, to="end")
            assert await offsets.lag(prefix + "notification", actions) == 0
            check = e2e.caught_up(offsets, prefix, ("notification",), db)
            assert not await _returns_within(check, 4), "a timer still due: not done"

            await timers.delete_one({"_id": "due"})  # fired; the one due next month stays
            check = e2e.caught_up(offsets, prefix, ("notification",), db)
            assert await _returns_within(check, 20), "every record read, no timer due: done"
    finally:
        await mongo.drop_database(db)
        await delete_topics(servers, prefix)

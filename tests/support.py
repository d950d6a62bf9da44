"""Helpers for tests on the real broker: read what a topic holds, wait for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float = 30.0, interval: float = 0.2  # noqa: ASYNC109 - a polling loop's deadline
) -> T:
    """Poll an async ``check`` until it returns a truthy value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last  # type: ignore[no-any-return]
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


async def read_all(bootstrap: str, topic: str, *, expect: int | None = None,
                   timeout: float = 20.0) -> list[ConsumerRecord[bytes, bytes]]:  # noqa: ASYNC109 - a polling loop's deadline
    """Every record of ``topic`` from the beginning, without a consumer group.

    With ``expect``, waits until that many are there (or the timeout); otherwise reads until
    the end offsets seen at the start.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()  # metadata of a topic
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        end = await consumer.end_offsets(tps)
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                records.extend(msgs)
            if expect is not None:
                if len(records) >= expect:
                    break
                end = await consumer.end_offsets(tps)
            elif all([await _position(consumer, tp) >= end[tp] for tp in tps]):
                break
        return records
    finally:
        await consumer.stop()


async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return await consumer.position(tp)


async def commit_group(bootstrap: str, group: str, *names: str,
                       to: Literal["start", "end"] = "start") -> None:
    """Commit, for ``group``, offset 0 of every partition of the topics (as if its consumer had
    stopped before committing anything: all is delivered again) or their end offsets (as if it
    had read everything). The group must have no running member."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()]
        assert tps, f"no partition of {names}"
        offsets = await consumer.end_offsets(tps) if to == "end" else dict.fromkeys(tps, 0)
        consumer.assign(tps)
        await consumer.commit({tp: OffsetAndMetadata(offsets[tp], "") for tp in tps})
    finally:
        await consumer.stop()


async def produce(
    bootstrap: str, topic: str,
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
) -> None:
    """Send (key, value, headers) records and wait for the acknowledgements."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


class running:
    """Run a service's FastAPI app in this process (its lifespan starts its broker and
    clients), with an HTTP client bound to it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lifespan: Any = None

    async def __aenter__(self) -> Any:
        import httpx

        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                        base_url="http://test")
        return self.client

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.aclose()
        await self._lifespan.__aexit__(*exc)


# ---- bearer tokens (shared/auth.py): every settings built by the tests keep the dev HS256 secret

def token(role: str | list[str], site: str | None = "91", sub: str | None = None,
          settings: Any = None, **claims: Any) -> str:
    """A valid bearer token: ``token("agent", "91")``, ``token(["superviseur"], "17")``."""
    from shared.auth import mint
    from shared.settings import Settings

    roles = [role] if isinstance(role, str) else list(role)
    return mint(settings or Settings(), sub or f"{roles[0]}.{site or 'national'}", roles, site,
                **claims)


def auth_headers(role: str | list[str], site: str | None = "91", sub: str | None = None,
                 settings: Any = None, **claims: Any) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` for httpx calls."""
    return {"Authorization": f"Bearer {token(role, site, sub, settings, **claims)}"}

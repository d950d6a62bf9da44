"""The delivery guarantees of shared/kafka.py, on the real broker."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

from faststream.kafka import KafkaBroker, KafkaMessage
from pymongo.errors import AutoReconnect

from shared.kafka import (
    H_CODE,
    H_OFFSET,
    H_TOPIC,
    RawProducer,
    dead_letter_router,
    make_broker,
    subscriber_options,
)
from shared.topics import DEMANDES, DLQ, load_topics
from tests.support import eventually, produce, read_all


async def _publish_keyed(broker: KafkaBroker, topic: str, n_people: int, per_person: int) -> None:
    for i in range(per_person):
        for p in range(n_people):
            await broker.publish({"person": p, "seq": i}, topic, key=f"person-{p}".encode())


async def test_messages_of_one_person_land_on_one_partition_and_are_read_in_order(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("delivery")
    topic = settings.topic(DEMANDES)
    seen: dict[int, list[tuple[int, int]]] = defaultdict(list)

    broker = make_broker(settings)

    @broker.subscriber(topic, **subscriber_options(settings, "ordering"))
    async def handle(body: dict[str, int], msg: KafkaMessage) -> None:
        seen[body["person"]].append((msg.raw_message.partition, body["seq"]))

    async with broker:
        await broker.start()
        await _publish_keyed(broker, topic, n_people=12, per_person=5)
        await eventually(lambda: _count(seen, 60), timeout=30)

    assert load_topics()[DEMANDES].partitions > 1
    partitions_used = {p for events in seen.values() for p, _ in events}
    assert len(partitions_used) > 1, "keys should spread over several partitions"
    for person, events in seen.items():
        assert len({p for p, _ in events}) == 1, f"person {person} spread over partitions"
        assert [s for _, s in events] == list(range(5)), f"person {person} out of order"


async def _count(seen: dict[int, list[Any]], n: int) -> bool:
    return sum(len(v) for v in seen.values()) >= n


async def test_a_handler_that_raises_leaves_the_message_to_be_read_again(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("delivery")
    topic = settings.topic(DEMANDES)
    group = subscriber_options(settings, "redelivery")
    calls: list[int] = []
    done = asyncio.Event()

    broker = make_broker(settings)

    @broker.subscriber(topic, **group)
    async def flaky(body: dict[str, int]) -> None:
        calls.append(body["n"])
        if len(calls) == 1:
            raise RuntimeError("boom before the effect is stored")
        done.set()

    async with broker:
        await broker.start()
        await broker.publish({"n": 1}, topic, key=b"k")
        await asyncio.wait_for(done.wait(), 30)

    assert calls == [1, 1], "the failed message is read again, then succeeds"

    # Committed once processed: a new consumer of the same group gets nothing back.
    replayed: list[int] = []
    broker2 = make_broker(settings)

    @broker2.subscriber(topic, **group)
    async def after(body: dict[str, int]) -> None:
        replayed.append(body["n"])

    async with broker2:
        await broker2.start()
        await broker2.publish({"n": 2}, topic, key=b"k")
        await eventually(lambda: _nonempty(replayed))
    assert replayed == [2]


async def _nonempty(xs: list[Any]) -> bool:
    return bool(xs)


async def test_offsets_are_not_committed_before_the_handler_returns(
    topics: str, make_settings: Any
) -> None:
    """A consumer stopped while its handler still fails leaves the record to the next one."""
    settings = make_settings("delivery")
    topic = settings.topic(DEMANDES)
    group = subscriber_options(settings, "crash")
    attempts = 0

    broker = make_broker(settings)

    @broker.subscriber(topic, **group)
    async def always_fails(body: dict[str, int]) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("never stored")

    async with broker:
        await broker.start()
        await broker.publish({"n": 7}, topic, key=b"k")
        await eventually(lambda: _at_least(lambda: attempts, 2))

    got: list[int] = []
    broker2 = make_broker(settings)

    @broker2.subscriber(topic, **group)
    async def recovers(body: dict[str, int]) -> None:
        got.append(body["n"])

    async with broker2:
        await broker2.start()
        await eventually(lambda: _nonempty(got))
    assert got == [7]


async def _at_least(value: Any, n: int) -> bool:
    return bool(value() >= n)


async def test_poison_goes_to_the_dead_letter_topic_untouched_and_transient_errors_are_retried(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("delivery")
    topic, dlq = settings.topic(DEMANDES), settings.topic(DLQ)
    raw = RawProducer(settings.kafka_bootstrap_servers, "test")
    await raw.start()
    processed: list[int] = []
    transient_failures = 0

    router = dead_letter_router(dlq_topic=dlq, producer=lambda: raw, service="test",
                                retry_budget_seconds=10)

    @router.subscriber(topic, **subscriber_options(settings, "dlq"))
    async def handle(body: dict[str, Any]) -> None:
        nonlocal transient_failures
        if body.get("poison"):
            raise ValueError("cannot be processed, ever")
        if body["n"] == 2 and transient_failures < 2:
            transient_failures += 1
            raise AutoReconnect("database unavailable")
        processed.append(body["n"])

    broker = make_broker(settings)
    broker.include_router(router)
    poison = json.dumps({"poison": True}).encode()
    try:
        async with broker:
            await broker.start()
            await produce(settings.kafka_bootstrap_servers, topic, [
                (b"p1", json.dumps({"n": 1}).encode(), [("content-type", b"application/json")]),
                (b"p1", poison, [("content-type", b"application/json"), ("x-own", b"\xff\x00")]),
                (b"p1", json.dumps({"n": 2}).encode(), [("content-type", b"application/json")]),
            ])
            await eventually(lambda: _at_least(lambda: len(processed), 2))
    finally:
        await raw.stop()

    assert processed == [1, 2], "the poison does not block the next record of the partition"
    assert transient_failures == 2
    dead = await read_all(settings.kafka_bootstrap_servers, dlq, expect=1)
    assert len(dead) == 1
    record = dead[0]
    headers = dict(record.headers)
    assert record.value == poison and record.key == b"p1"
    assert headers["x-own"] == b"\xff\x00", "the record's own headers are kept byte for byte"
    assert headers[H_CODE] == b"erreur.ValueError"
    assert headers[H_TOPIC] == topic.encode() and headers[H_OFFSET] == b"1"


async def test_the_raw_producer_sends_bytes_untouched_in_order_per_key_on_kafkas_partitions(
    topics: str, make_settings: Any
) -> None:
    from aiokafka.partitioner import DefaultPartitioner

    settings = make_settings("delivery")
    a, b = settings.topic(DEMANDES), settings.topic(DLQ)
    # small record batches, so that a call fills several per partition
    producer = RawProducer(settings.kafka_bootstrap_servers, "raw-test", max_batch_size=2048)
    records = [(a if n % 3 else b, json.dumps({"person": n % 17, "seq": n}).encode() + b"\xff",
                f"person-{n % 17}".encode(), [("h", bytes([n % 256])), ("x", b"\x00\x01")])
               for n in range(600)]
    records.append((b, b"no key", None, []))
    await producer.start()
    try:
        await producer.send_many(records[:300])
        await producer.send_many(records[300:])
    finally:
        await producer.stop()
    got = await read_all(settings.kafka_bootstrap_servers, a) + \
        await read_all(settings.kafka_bootstrap_servers, b)
    assert len(got) == len(records)
    sent = {(t, v): (k, h) for t, v, k, h in records}
    declared = {a: load_topics()[DEMANDES].partitions, b: load_topics()[DLQ].partitions}
    for r in got:
        key, headers = sent[(r.topic, r.value)]
        assert (r.key, list(r.headers)) == (key, headers)
        if key is not None:  # the partition Kafka's clients give the key
            every = list(range(declared[r.topic]))
            assert r.partition == DefaultPartitioner()(key, every, every)
    order: dict[tuple[str, bytes], list[int]] = defaultdict(list)
    for r in sorted(got, key=lambda r: (r.topic, r.partition, r.offset)):
        if r.key is not None:
            order[(r.topic, r.key)].append(json.loads(r.value[:-1])["seq"])
    assert all(seqs == sorted(seqs) for seqs in order.values()), "order kept per key"

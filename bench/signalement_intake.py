"""Throughput of signalement's intake consumer alone, on the real broker and database.

    python -m bench.signalement_intake [N] [BATCH]

Publishes N valid life events to a fresh set of topics, then starts signalement (in this
process) and measures the time from its start to the moment its consumer group has committed
every offset of ``evenements-vie`` (offsets are committed only once every event is stored,
published downstream and marked published). The check reads Kafka offsets, never the
database (a count on FerretDB scans the collection). Needs the local infrastructure (`make up`) or
PARCOURS_KAFKA_BOOTSTRAP_SERVERS / PARCOURS_MONGO_URI.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from bench.e2e import Offsets
from services.signalement.app import create_app
from shared.settings import Settings
from shared.topics import ensure_topics
from tests.inputs import CT, valid_event
from tests.support import running


async def publish(bootstrap: str, topic: str, n: int) -> float:
    rng = random.Random(42)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for k in range(n):
            event = valid_event(rng)
            futures.append(await producer.send(topic, json.dumps(event).encode(),
                                               key=str(k).encode(), headers=[CT]))
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def run(n: int, batch: int) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = Settings(service_name="signalement", topic_prefix=prefix,
                        mongo_database=f"bench_{prefix[5:-1]}", intake_batch_size=batch,
                        log_level="WARNING", log_json=True)
    await ensure_topics(settings.kafka_bootstrap_servers, prefix)
    publish_s = await publish(settings.kafka_bootstrap_servers, settings.topic("evenements-vie"), n)
    app = create_app(settings)
    cpu0 = time.process_time()
    started = time.perf_counter()
    async with running(app):
        async with Offsets(settings.kafka_bootstrap_servers) as offsets:
            while await offsets.lag(f"{prefix}signalement",  # noqa: ASYNC110 - polls Kafka
                                    settings.topic("evenements-vie")) > 0:
                await asyncio.sleep(0.25)
        elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.mongo_uri)
    await client.drop_database(settings.database_name)
    await client.close()
    await delete_topics(settings.kafka_bootstrap_servers, prefix)
    return {"n": n, "batch": batch, "publish_s": publish_s, "elapsed_s": elapsed,
            "events_per_s": n / elapsed, "cpu_s": cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


async def delete_topics(servers: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.topics import load_topics

    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.delete_topics([prefix + name for name in load_topics()])
    finally:
        await admin.close()


def main(argv: list[str]) -> int:
    write = "--write" in argv
    argv = [a for a in argv if a != "--write"]
    n = int(argv[0]) if argv else 20_000
    batches = [int(argv[1])] if len(argv) > 1 else [500]
    from bench.e2e import machine, write_section

    rows = [f"Machine: {machine()}. Command: `python -m bench intake {' '.join(argv)}`.", "",
            "| stage | N | batch | time | events/s | CPU | peak RSS |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for batch in batches:
        r = asyncio.run(run(n, batch))
        rows.append(f"| signalement intake alone | {r['n']:,} | {r['batch']} | "
                    f"{r['elapsed_s']:.1f} s | "
                    f"{r['events_per_s']:,.0f} | {r['cpu_s']:.1f} s | {r['peak_rss_mb']:.0f} MB |")
    text = "\n".join(rows)
    print(text)
    if write:
        write_section("intake", text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Rebuild reporting from the topics: an operator's procedure, also used by the tests.

1. stop every reporting instance;
2. point ``PARCOURS_MONGO_DATABASE`` at an empty database (or drop reporting's);
3. ``python -m services.reporting.rebuild`` rewinds reporting's consumer groups to the
   beginning of each topic;
4. start reporting: it replays every topic (within their retention: 400 days for the internal
   topics, 30 days for rejects) and computes the same figures (facts are keyed by the
   producers' ids, and indicators are computed from the facts, whatever the replay order).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from services.reporting.handlers import GROUPS
from shared.kafka import kafka_client_config
from shared.settings import Settings


async def rewind_groups(settings: Settings) -> dict[str, int]:
    """Commit the beginning offsets of each topic for reporting's group on it (the groups
    must have no running member). Returns the partitions rewound per group."""
    done: dict[str, int] = {}
    for topic, group in GROUPS.items():
        name = settings.topic(topic)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, **kafka_client_config(settings),
            group_id=settings.topic_prefix + group,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(name)
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(name) or set()
            tps = [TopicPartition(name, p) for p in sorted(parts)]
            begin = await consumer.beginning_offsets(tps)
            consumer.assign(tps)
            await consumer.commit({tp: OffsetAndMetadata(begin[tp], "") for tp in tps})
            done[settings.topic_prefix + group] = len(tps)
        finally:
            await consumer.stop()
    return done


if __name__ == "__main__":
    print(asyncio.run(rewind_groups(Settings(service_name="reporting"))))

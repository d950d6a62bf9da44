"""Consumer lag per topic and group, and freshness of the indicators (I/O: Kafka admin).

Lag = end offset − committed offset, summed over a topic's partitions, for every consumer
group (of this deployment's topic prefix) that has committed offsets on a platform topic.
Freshness = per topic, the time of the newest event reporting has projected, how long ago
that was (by the service clock), and reporting's own lag on it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from services.reporting.handlers import GROUPS
from shared.kafka import kafka_client_config
from shared.settings import Settings
from shared.topics import load_topics


async def consumer_lag(settings: Settings, within_s: float = 10.0) -> list[dict[str, Any]]:
    async with asyncio.timeout(within_s):
        return await _consumer_lag(settings)


async def _consumer_lag(settings: Settings) -> list[dict[str, Any]]:
    prefix = settings.topic_prefix
    wanted = {settings.topic(name): name for name in load_topics()}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, client_id=f"{settings.client_id}-lag",
        **kafka_client_config(settings),
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, **kafka_client_config(settings),
        client_id=f"{settings.client_id}-lag",
        enable_auto_commit=False,
    )
    await admin.start()
    await consumer.start()
    try:
        groups = sorted(
            {g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix)}
            | {settings.topic_prefix + g for g in GROUPS.values()}
        )
        committed: dict[tuple[str, str], dict[TopicPartition, int]] = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            for tp, meta in offsets.items():
                if tp.topic in wanted and meta.offset >= 0:
                    committed.setdefault((tp.topic, group), {})[tp] = meta.offset
        # reporting's own groups are always listed, even before their first commit
        for topic, group in GROUPS.items():
            committed.setdefault((settings.topic(topic), prefix + group), {})
        tps: set[TopicPartition] = set()
        for topic, _ in committed:
            parts = consumer.partitions_for_topic(topic)
            if parts is None:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or set()
            tps |= {TopicPartition(topic, p) for p in parts}
        ends = await consumer.end_offsets(list(tps)) if tps else {}
        rows = []
        for (topic, group), offsets in sorted(committed.items()):
            topic_tps = [tp for tp in tps if tp.topic == topic]
            fin = sum(ends.get(tp, 0) for tp in topic_tps)
            retard = sum(max(0, ends.get(tp, 0) - offsets.get(tp, 0)) for tp in topic_tps)
            rows.append(
                {
                    "topic": wanted.get(topic, topic),
                    "groupe": group.removeprefix(prefix),
                    "fin": fin,
                    "engage": sum(offsets.values()),
                    "retard": retard,
                }
            )
        return rows
    finally:
        await consumer.stop()
        await admin.close()


def freshness(
    positions: list[dict[str, Any]],
    lag_rows: list[dict[str, Any]],
    settings: Settings,
    now: datetime,
) -> list[dict[str, Any]]:
    """Per topic reporting reads: newest event projected, its age, reporting's lag."""
    rows = []
    for topic, group in GROUPS.items():
        mine = [p for p in positions if p.get("topic") == topic]
        last = max(
            (p["dernier_evenement"] for p in mine if p.get("dernier_evenement")), default=None
        )
        taken = max((p["traite_le"] for p in mine if p.get("traite_le")), default=None)
        lag = next(
            (r["retard"] for r in lag_rows if r["topic"] == topic and r["groupe"] == group), None
        )
        rows.append(
            {
                "topic": topic,
                "groupe": group,
                "dernier_evenement": last.isoformat() if last else None,
                "age_secondes": round((now - last).total_seconds(), 1) if last else None,
                "dernier_traitement": taken.isoformat() if taken else None,
                "messages_en_retard": lag,
            }
        )
    return rows

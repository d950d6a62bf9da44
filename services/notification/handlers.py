"""Kafka subscribers of notification: thin, they hand records to the use cases.

``parcours.actions`` carries two types (planned, cancelled): dispatch on the CloudEvent
``type``; an unknown type is poison (dead-lettered with its reason). Its rebalance listener
tells the scheduler which partitions' timers this instance fires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import CollectorRegistry

from services.notification.retention import forget_person
from services.notification.scheduler import Ownership
from services.notification.service import Deps, cancel_action, keep_coordonnees, plan_action
from shared import topics
from shared.cloudevents import CloudEvent
from shared.contracts import internes as i
from shared.kafka import dead_letter_router, subscriber_options
from shared.logging import bind_message_context
from shared.settings import Settings


class UnknownEventType(ValueError):
    pass


def router_for(s: Settings, get_deps: Callable[[], Deps], ownership: Ownership,
               registry: CollectorRegistry | None = None) -> KafkaRouter:
    r = dead_letter_router(dlq_topic=s.topic(topics.DLQ), producer=lambda: get_deps().raw,
                           service="notification", registry=registry,
                           retry_budget_seconds=s.transient_retry_max_seconds)

    @r.subscriber(s.topic(topics.ACTIONS), listener=ownership,
                  **subscriber_options(s, "notification"))
    async def on_action(event: CloudEvent[dict[str, Any]], msg: KafkaMessage) -> None:
        bind_message_context(correlationid=event.correlationid, causationid=event.id)
        partition = int(msg.raw_message.partition)  # type: ignore[union-attr]  # not a batch
        if event.type == i.ACTION_PLANIFIEE:
            await plan_action(event, partition, get_deps())
        elif event.type == i.ACTION_ANNULEE:
            await cancel_action(event, partition, get_deps())
        else:
            raise UnknownEventType(f"type {event.type!r} is not handled on {topics.ACTIONS}")
        get_deps().wake()

    @r.subscriber(s.topic(topics.COORDONNEES), **subscriber_options(s, "notification-coordonnees"))
    async def on_coordonnees(msg: KafkaMessage) -> None:
        record = msg.raw_message
        value, key = record.value, record.key  # type: ignore[union-attr]  # not a batch
        if value is None:  # tombstone: the person's data was purged upstream (retention)
            if not key:
                raise ValueError("tombstone without a key on personnes.coordonnees")
            await forget_person(key.decode("utf-8"), get_deps())
            return
        event = CloudEvent[dict[str, Any]].model_validate_json(value)
        if event.type != i.COORDONNEES:
            raise UnknownEventType(f"type {event.type!r} is not handled on {topics.COORDONNEES}")
        await keep_coordonnees(event, get_deps())

    return r

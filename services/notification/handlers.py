"""Kafka subscribers of notification: thin, they hand records to the use cases, in batches
(one offset commit, a few database round trips per batch: one message at a time cost more
than the message itself, docs/performance.md).

``parcours.actions`` carries two types (planned, cancelled): dispatch on the CloudEvent
``type``; an unknown type is poison (dead-lettered alone, with its bytes and its reason; the
rest of the batch goes on). Order is kept: the plans before a cancellation are stored before
it. Its rebalance listener tells the scheduler which partitions' timers this instance fires.
``personnes.coordonnees``: the latest data of each person; a tombstone (the person's data
purged upstream) forgets the person, after what came before it in the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import CollectorRegistry

from services.notification.retention import forget_person
from services.notification.scheduler import Ownership
from services.notification.service import Deps, cancel_actions, keep_coordonnees_many, plan_actions
from shared import topics
from shared.cloudevents import VERIFIE, CloudEvent, decode_json
from shared.contracts import internes as i
from shared.kafka import (
    Reason,
    dead_letter,
    dead_letter_router,
    error_reason,
    raw_bodies,
    subscriber_options,
)
from shared.settings import Settings


class UnknownEventType(ValueError):
    pass


BATCH = 500


def _event(value: bytes, expected: tuple[str, ...], topic: str) -> CloudEvent[dict[str, Any]]:
    event = CloudEvent[dict[str, Any]].model_validate(decode_json(value), context=VERIFIE)
    if event.type not in expected:
        raise UnknownEventType(f"type {event.type!r} is not handled on {topic}")
    return event


async def take_actions(records: tuple[Any, ...], deps: Deps) -> list[tuple[Any, Reason]]:
    """Plans stored together, cancellations applied together, in their order (the plans
    before a cancellation are stored before it, and the cancellations before a plan applied
    before it); returns the poison records."""
    rejects: list[tuple[Any, Reason]] = []
    plans: list[tuple[CloudEvent[Any], i.ActionPlanifiee, int]] = []
    cancels: list[tuple[i.ActionAnnulee, int]] = []
    for record in records:
        try:
            event = _event(record.value, (i.ACTION_PLANIFIEE, i.ACTION_ANNULEE), topics.ACTIONS)
            data = (i.ActionPlanifiee if event.type == i.ACTION_PLANIFIEE
                    else i.ActionAnnulee).model_validate(event.data)
        except Exception as exc:  # not JSON, not the contract: poison, alone
            rejects.append((record, error_reason(exc)))
            continue
        if isinstance(data, i.ActionPlanifiee):
            await cancel_actions(cancels, deps)
            cancels = []
            plans.append((event, data, int(record.partition)))
        else:
            await plan_actions(plans, deps)
            plans = []
            cancels.append((data, int(record.partition)))
    await plan_actions(plans, deps)
    await cancel_actions(cancels, deps)
    return rejects


async def take_coordonnees(records: tuple[Any, ...], deps: Deps) -> list[tuple[Any, Reason]]:
    rejects: list[tuple[Any, Reason]] = []
    pending: list[i.Coordonnees] = []
    for record in records:
        if record.value is None:  # tombstone: the person's data was purged upstream
            if not record.key:
                rejects.append((record, error_reason(
                    ValueError("tombstone without a key on personnes.coordonnees"))))
                continue
            await keep_coordonnees_many(pending, deps)
            pending = []
            await forget_person(record.key.decode("utf-8"), deps)
            continue
        try:
            event = _event(record.value, (i.COORDONNEES,), topics.COORDONNEES)
            pending.append(i.Coordonnees.model_validate(event.data))
        except Exception as exc:
            rejects.append((record, error_reason(exc)))
    await keep_coordonnees_many(pending, deps)
    return rejects


def router_for(s: Settings, get_deps: Callable[[], Deps], ownership: Ownership,
               registry: CollectorRegistry | None = None) -> KafkaRouter:
    r = dead_letter_router(dlq_topic=s.topic(topics.DLQ), producer=lambda: get_deps().raw,
                           service="notification", registry=registry,
                           retry_budget_seconds=s.transient_retry_max_seconds)

    @r.subscriber(s.topic(topics.ACTIONS), batch=True, max_records=BATCH, batch_timeout_ms=200,
                  decoder=raw_bodies, listener=ownership, **subscriber_options(s, "notification"))
    async def on_actions(msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        rejects = await take_actions(records, get_deps())
        await dead_letter(get_deps().raw, rejects, s.topic(topics.DLQ), "notification",
                          r.dead_letters)  # type: ignore[attr-defined]
        get_deps().wake()

    @r.subscriber(s.topic(topics.COORDONNEES), batch=True, max_records=BATCH,
                  batch_timeout_ms=200, decoder=raw_bodies,
                  **subscriber_options(s, "notification-coordonnees"))
    async def on_coordonnees(msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        rejects = await take_coordonnees(records, get_deps())
        await dead_letter(get_deps().raw, rejects, s.topic(topics.DLQ), "notification",
                          r.dead_letters)  # type: ignore[attr-defined]

    return r

"""Kafka subscribers of signalement: thin, they hand records to the use cases."""


from collections.abc import Callable
from typing import Any

from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import CollectorRegistry

from shared import topics
from shared.cloudevents import CloudEvent
from shared.contracts import internes as i
from shared.kafka import dead_letter_router, subscriber_options
from shared.settings import Settings
from shared.logging import bind_message_context, get_logger
from services.signalement.service import Deps, follow_decision, follow_result, take_life_events

log = get_logger("signalement")


async def raw_bodies(msg: Any) -> Any:
    """Intake validates each record itself: no JSON decoding before the handler."""
    return msg.body


def router_for(s: Settings, get_deps: Callable[[], Deps],
               registry: CollectorRegistry | None = None) -> KafkaRouter:
    r = dead_letter_router(dlq_topic=s.topic(topics.DLQ), producer=lambda: get_deps().raw,
                           service="signalement", registry=registry,
                           retry_budget_seconds=s.transient_retry_max_seconds)

    @r.subscriber(s.topic(topics.EVENEMENTS_VIE), batch=True, max_records=s.intake_batch_size,
                  batch_timeout_ms=200, decoder=raw_bodies,
                  **subscriber_options(s, "signalement"))
    async def on_life_events(msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        report = await take_life_events(records, get_deps())
        log.info("lot traité", recus=report.received, acceptes=report.accepted,
                 rejetes=sum(report.rejected.values()), doublons=report.duplicates)

    @r.subscriber(s.topic(topics.DECISIONS), **subscriber_options(s, "signalement-statuts"))
    async def on_decision(event: CloudEvent[i.Decision]) -> None:
        bind_message_context(correlationid=event.correlationid, causationid=event.id)
        await follow_decision(event, get_deps().store)

    @r.subscriber(s.topic(topics.RESULTATS), **subscriber_options(s, "signalement-statuts"))
    async def on_result(event: CloudEvent[i.Resultat]) -> None:
        bind_message_context(correlationid=event.correlationid, causationid=event.id)
        await follow_result(event, get_deps().store)

    return r

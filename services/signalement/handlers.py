"""Kafka subscribers of signalement: thin, they hand records to the use cases.

The status feed reads every decision and every outcome of the platform, of which only those of
a partner's referral (``reference_signalement`` set: a few) concern it. It takes them in
batches, one offset commit per batch (one per record cost the broker and this service more
than the record itself: docs/performance.md), and validates only those of a referral: the
others are orientation's and notification's outputs, which reporting validates (and
dead-letters) in full. A record that is not JSON or not a CloudEvent of one of the two types,
or a referral's that is not the contract, goes to ``parcours.dlq`` alone, with its bytes and
a reason; the rest of the batch goes on. Redelivered after an outage, a batch changes nothing
twice: a status entry carries the id of the event that caused it.
"""

from collections.abc import Callable
from typing import Any

from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import CollectorRegistry

from services.signalement.service import Deps, follow_decision, follow_result, take_life_events
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
from shared.logging import bind_message_context, get_logger
from shared.settings import Settings

log = get_logger("signalement")
STATUS_BATCH = 500
FEED: dict[str, Any] = {i.DECISION: (CloudEvent[i.Decision], follow_decision),
                        i.RESULTAT: (CloudEvent[i.Resultat], follow_result)}


async def follow_statuses(records: tuple[Any, ...], store: Any) -> list[tuple[Any, Reason]]:
    """Apply the referrals' statuses of a batch in offset order; return the poison records."""
    rejects: list[tuple[Any, Reason]] = []
    for record in records:
        try:
            body = decode_json(record.value)
            kind = body.get("type") if isinstance(body, dict) else None
            if kind not in FEED:
                raise TypeError(f"type {str(kind)[:80]!r}: expected {i.DECISION} or {i.RESULTAT}")
            data = body.get("data")
            if isinstance(data, dict) and not data.get("reference_signalement"):
                continue  # not a referral's: nothing to follow (its readers validate it)
            model, follow = FEED[kind]
            event = model.model_validate(body, context=VERIFIE)
        except Exception as exc:  # not JSON, not the contract: poison, alone
            rejects.append((record, error_reason(exc)))
            continue
        bind_message_context(correlationid=event.correlationid, causationid=event.id)
        await follow(event, store)
    return rejects


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

    @r.subscriber(s.topic(topics.DECISIONS), s.topic(topics.RESULTATS), batch=True,
                  max_records=STATUS_BATCH, batch_timeout_ms=200, decoder=raw_bodies,
                  title="signalement-statuts",
                  description="Decisions and outcomes; those of a partner's referral update "
                  "its status (parcours.decision.v1, parcours.resultat.v1).",
                  **subscriber_options(s, "signalement-statuts"))
    async def on_statuses(msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        rejects = await follow_statuses(records, get_deps().store)
        await dead_letter(get_deps().raw, rejects, s.topic(topics.DLQ), "signalement",
                          r.dead_letters)  # type: ignore[attr-defined]

    return r

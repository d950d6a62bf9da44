"""Kafka wiring shared by the services: broker factory, delivery policy, rejects and dead letters.

Delivery policy (ARCHITECTURE.md rules 4 and 5), never FastStream's default (``ACK_FIRST`` is
at-most-once):

- every subscriber has a ``group_id``, reads from ``earliest`` and uses
  ``AckPolicy.NACK_ON_ERROR``: offsets are committed only after the handler returned; a
  handler that raises leaves its record(s) to be read again;
- :class:`DeadLetterMiddleware` (router level) retries *transient* failures (database or
  broker unavailable) with backoff and then nacks, so they are never dropped nor
  dead-lettered; *poison* input (validation, domain errors) goes to ``parcours.dlq`` with its
  original bytes, key and headers, and a reason;
- the producer is idempotent with ``acks=all``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy, BaseMiddleware
from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage, decode_message
from faststream.prometheus.container import MetricsContainer
from faststream.prometheus.manager import MetricsManager
from faststream.prometheus.types import PublishingStatus
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from shared.cloudevents import JSON_CONTENT_TYPES, headers_for
from shared.logging import get_logger, scrub_text
from shared.metrics import add_counts
from shared.mongo import TRANSIENT_ERRORS, storage_unavailable
from shared.settings import Settings

log = get_logger("shared.kafka")

TRANSIENT: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, KafkaError, asyncio.TimeoutError)

# Headers added to a rejected or dead-lettered record (its own headers are kept untouched).
H_CODE = "parcours-reject-code"
H_MESSAGE = "parcours-reject-message"
H_TOPIC = "parcours-original-topic"
H_PARTITION = "parcours-original-partition"
H_OFFSET = "parcours-original-offset"
H_AT = "parcours-rejected-at"
H_BY = "parcours-rejected-by"
REJECT_HEADERS = (H_CODE, H_MESSAGE, H_TOPIC, H_PARTITION, H_OFFSET, H_AT, H_BY)


def is_transient(exc: BaseException) -> bool:
    """The database or the broker is unavailable right now: retry, never dead-letter. Catch
    with ``except Exception`` and ask this, rather than ``except TRANSIENT``: some outages come
    as ordinary errors whose message tells (``shared.mongo.storage_unavailable``)."""
    return isinstance(exc, TRANSIENT) or storage_unavailable(exc)


async def cloudevents_decoder(
    msg: StreamMessage[Any], original_decoder: Callable[[StreamMessage[Any]], Awaitable[Any]]
) -> Any:
    """FastStream only JSON-decodes ``application/json``; CloudEvents use their own type."""
    content_type = (msg.content_type or "").split(";")[0].strip()
    if content_type in JSON_CONTENT_TYPES:
        return decode_message(_with_json_type(msg))
    return await original_decoder(msg)


async def lenient_parser(
    record: Any, original_parser: Callable[[Any], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    """FastStream decodes header values as UTF-8 and fails on anything else (a foreign
    producer's bytes): the record would never reach the handler nor a dead-letter topic. Parse
    a copy with leniently decoded headers, and keep the untouched record as ``raw_message``.
    """
    records = record if isinstance(record, tuple) else (record,)
    if all(_utf8_headers(r) for r in records):
        return await original_parser(record)
    safe = tuple(_lenient_copy(r) for r in records)
    parsed = await original_parser(safe if isinstance(record, tuple) else safe[0])
    parsed.raw_message = record
    return parsed


def _utf8_headers(record: Any) -> bool:
    try:
        for _, value in record.headers or ():
            value.decode("utf-8")
    except (UnicodeDecodeError, AttributeError):
        return False
    return True


def _lenient_copy(record: Any) -> Any:
    headers = tuple(
        (k, (v or b"").decode("utf-8", "replace").encode("utf-8")) for k, v in record.headers or ()
    )
    copy = dataclasses.replace(record, headers=headers)
    if hasattr(record, "consumer"):
        copy.consumer = record.consumer
    return copy


class _JsonView:
    def __init__(self, msg: StreamMessage[Any]) -> None:
        self.body = msg.body
        self.content_type = "application/json"


def _with_json_type(msg: StreamMessage[Any]) -> Any:
    return _JsonView(msg)


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the SSL and SASL_SSL protocols (None otherwise): the system's trust
    store or ``kafka_ssl_cafile``, the client certificate for mutual TLS if given."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def kafka_client_config(settings: Settings) -> dict[str, Any]:
    """Security options of every aiokafka client (producer, consumer, admin) of a service:
    ``AIOKafkaProducer(bootstrap_servers=..., **kafka_client_config(settings))``.

    Empty with PLAINTEXT (the local default), so clients behave exactly as before.
    """
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    config: dict[str, Any] = {"security_protocol": protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        config.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password is not None else None,
        )
    return config


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The FastStream security object matching the settings (None with PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = kafka_ssl_context(settings)
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    kind = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256,
            "PLAIN": SASLPlaintext}[settings.kafka_sasl_mechanism]
    password = settings.kafka_sasl_password
    return kind(
        settings.kafka_sasl_username or "",
        password.get_secret_value() if password is not None else "",
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
    )


def make_broker(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    logger: Any = None,
    security: Any = None,
) -> KafkaBroker:
    """The service's FastStream broker. ``security`` defaults to the settings' own
    (:func:`broker_security`)."""
    middlewares: list[Any] = []
    if registry is not None:
        middlewares.append(
            KafkaPrometheusMiddleware(registry=registry, app_name=settings.service_name)
        )
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        partitioner=keyed_partitioner,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        allow_auto_create_topics=False,
        graceful_timeout=30.0,
        decoder=cloudevents_decoder,
        parser=lenient_parser,
        logger=logger if logger is not None else get_logger("faststream"),
        log_level=logging.DEBUG,  # one line per message is for debugging, not production
        middlewares=middlewares,
        security=security if security is not None else broker_security(settings),
    )


def subscriber_options(settings: Settings, group: str) -> dict[str, Any]:
    """The options every subscriber of the platform uses (at-least-once)."""
    return {
        "group_id": f"{settings.topic_prefix}{group}",
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "max_poll_interval_ms": 600_000,
    }


@dataclass(frozen=True)
class Reason:
    """Why a record was rejected: a stable code and a readable message."""

    code: str
    message: str


def reject_headers(
    record: ConsumerRecord[Any, Any], reason: Reason, rejected_by: str
) -> list[tuple[str, bytes]]:
    """The record's own headers untouched, then the reason and where it came from."""
    own = [(k, v) for k, v in (record.headers or ()) if k not in REJECT_HEADERS]
    return [
        *own,
        (H_CODE, reason.code.encode()),
        (H_MESSAGE, reason.message[:2000].encode("utf-8", "replace")),
        (H_TOPIC, record.topic.encode()),
        (H_PARTITION, str(record.partition).encode()),
        (H_OFFSET, str(record.offset).encode()),
        (H_AT, datetime.now(UTC).isoformat().encode()),
        (H_BY, rejected_by.encode()),
    ]


DEFAULT_PARTITIONER = DefaultPartitioner()


@functools.lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def keyed_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Kafka's default partitioner (murmur2 of the key, as the Java client and aiokafka), with
    the hash of recent keys kept: a person's messages (demand and contact data, decision and
    actions) share a key, and aiokafka's murmur2 is pure Python (3 % of the services' CPU)."""
    if key is None:
        return DEFAULT_PARTITIONER(key, all_partitions, available)  # type: ignore[no-any-return]
    return all_partitions[_key_hash(key) % len(all_partitions)]


class RawProducer:
    """An idempotent producer that sends bytes, key and headers exactly as given.

    Used for rejects and dead letters, whose value, key and headers must stay untouched (any
    header bytes, not only UTF-8 strings).
    """

    def __init__(self, bootstrap_servers: str, client_id: str, **config: Any) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=f"{client_id}-raw",
            acks="all",
            enable_idempotence=True,
            partitioner=keyed_partitioner,
            # The hot paths send a batch's thousands of messages at once: record batches of up
            # to 512 KB per partition rather than aiokafka's 16 KB (fewer batches to build,
            # fewer requests; the broker accepts up to 1 MB).
            **{"max_batch_size": 512 * 1024, **config},
        )

    @classmethod
    def from_settings(cls, settings: Settings, **config: Any) -> RawProducer:
        """The service's raw producer, with the settings' security options."""
        return cls(settings.kafka_bootstrap_servers, settings.client_id,
                   **{**kafka_client_config(settings), **config})

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send_many(
        self, records: Iterable[tuple[str, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]]
    ) -> None:
        """Send (topic, value, key, headers) records and wait until all are acknowledged.

        The records are grouped by partition (the keyed partitioner's, in their order) into
        record batches handed to the producer whole: ``send`` per record cost 16 µs of CPU,
        appending to a batch 4.5 µs (docs/performance.md). Order per partition is kept, and the
        producer stays idempotent (sequence numbers are given when a batch is drained)."""
        groups: dict[tuple[str, int], list[tuple[bytes | None, bytes | None,
                                                 Sequence[tuple[str, bytes]]]]] = {}
        partitions: dict[str, list[int]] = {}
        for topic, value, key, headers in records:
            if topic not in partitions:
                partitions[topic] = sorted(await self._producer.partitions_for(topic))
            every = partitions[topic]
            part = keyed_partitioner(key, every, every)
            groups.setdefault((topic, part), []).append((value, key, headers))
        futures = []
        for (topic, part), items in groups.items():
            batch = self._producer.create_batch()
            for value, key, headers in items:
                record = {"key": key, "value": value, "timestamp": None, "headers": list(headers)}
                if batch.append(**record) is None:  # full: send it, start the next one
                    batch.close()
                    futures.append(await self._producer.send_batch(batch, topic, partition=part))
                    batch = self._producer.create_batch()
                    if batch.append(**record) is None:
                        raise ValueError(f"a record of {len(value or b'')} bytes does not fit "
                                         f"in a record batch of {topic}")
            batch.close()
            futures.append(await self._producer.send_batch(batch, topic, partition=part))
        if futures:
            await asyncio.gather(*futures)

    async def reject(
        self, records: Iterable[tuple[ConsumerRecord[Any, Any], Reason]], topic: str,
        rejected_by: str,
    ) -> None:
        await self.send_many(
            (topic, r.value, r.key, reject_headers(r, reason, rejected_by)) for r, reason in records
        )


class EventPublisher:
    """Publishes CloudEvents in bulk through the service's raw producer (acks=all, idempotent),
    and waits for every acknowledgement.

    The hot paths (signalement's intake, orientation) publish several messages per input:
    FastStream's ``broker.publish`` costs about 35 µs of CPU per message against 12 µs for the
    producer's own ``send`` (docs/performance.md). The records are the same (key, value, the
    headers of :func:`shared.cloudevents.headers_for` and ``correlation_id``, as FastStream
    sets it), and so are the metrics: FastStream's ``faststream_published_messages_total`` and
    its duration histogram, per topic, in the service's registry.
    """

    def __init__(self, producer: RawProducer, settings: Settings,
                 registry: CollectorRegistry | None = None) -> None:
        self._producer = producer
        self._metrics = (
            MetricsManager(MetricsContainer(registry, custom_label_names=()),
                           app_name=settings.service_name)
            if registry is not None else None
        )

    async def publish(self, events: Iterable[tuple[str, Any, str]]) -> None:
        """Publish ``(topic, CloudEvent, key)`` in order; return once all are acknowledged."""
        started = time.perf_counter()
        per_topic: dict[str, int] = {}
        records = []
        for topic, event, key in events:
            headers = headers_for(event)
            headers.setdefault("correlation_id", event.id)
            records.append((topic, event.to_bytes(), key.encode(),
                            [(k, v.encode()) for k, v in headers.items()]))
            per_topic[topic] = per_topic.get(topic, 0) + 1
        status = PublishingStatus.error
        try:
            await self._producer.send_many(records)
            status = PublishingStatus.success
        finally:
            if self._metrics is not None:
                duration = time.perf_counter() - started
                for topic, n in per_topic.items():
                    self._metrics.add_published_message(broker="kafka", destination=topic,
                                                        status=status, amount=n)
                    self._metrics.observe_published_message_duration(
                        duration=duration, broker="kafka", destination=topic)


def describe_error(exc: BaseException) -> str:
    """A readable reason that never quotes the input (which may hold personal data)."""
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '(racine)'}: {e['msg']} [{e['type']}]"
            for e in exc.errors(include_input=False, include_url=False)[:10]
        ]
        return scrub_text("; ".join(parts))[:2000]
    return scrub_text(f"{type(exc).__name__}: {exc}")[:2000]


def error_reason(exc: BaseException) -> Reason:
    """Why a record is poison: ``erreur.<exception type>`` and a message without the input."""
    return Reason(f"erreur.{type(exc).__name__}", describe_error(exc))


async def raw_bodies(msg: Any) -> Any:
    """Decoder of the batch subscribers: the records' bytes untouched, each one validated by its
    handler, so that a bad record is rejected alone (``dead_letter``) and the batch goes on."""
    return msg.body


async def dead_letter(producer: RawProducer, rejects: list[tuple[ConsumerRecord[Any, Any], Reason]],
                      topic: str, service: str, counter: Any = None) -> None:
    """Send poison records to the dead-letter topic (original bytes, reason in the headers),
    count them by reason and say so in the logs."""
    if not rejects:
        return
    await producer.reject(rejects, topic, service)
    if counter is not None:
        add_counts(counter, (reason.code for _, reason in rejects))
    log.error("dead-lettered", records=len(rejects),
              reasons=sorted({reason.code for _, reason in rejects}))


DLQ_COUNTER_NAME = "parcours_dead_letters_total"


def dead_letter_router(
    *,
    dlq_topic: str,
    producer: Callable[[], RawProducer],
    service: str,
    registry: CollectorRegistry | None = None,
    retry_budget_seconds: float = 60.0,
    **router_options: Any,
) -> KafkaRouter:
    """A router whose subscribers retry transient failures and dead-letter poison messages.

    ``producer`` is called at message time (the producer is started in the lifespan).
    """
    counter = (
        Counter(DLQ_COUNTER_NAME, "Records sent to the dead-letter topic", ["reason"],
                registry=registry)
        if registry is not None
        else None
    )

    class DeadLetterMiddleware(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            delay, started = 0.2, time.monotonic()
            while True:
                try:
                    return await call_next(msg)
                except NackMessage:
                    raise
                except Exception as exc:
                    if is_transient(exc):
                        if time.monotonic() - started > retry_budget_seconds:
                            log.warning("transient failure, record left for redelivery",
                                        error=repr(exc))
                            raise NackMessage() from exc
                        log.info("transient failure, retrying", error=repr(exc), delay=delay)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 5.0)
                        continue
                    records = (msg.raw_message if isinstance(msg.raw_message, tuple)
                               else (msg.raw_message,))
                    reason = error_reason(exc)
                    await dead_letter(producer(), [(r, reason) for r in records], dlq_topic,
                                      service, counter)
                    return None

    router = KafkaRouter(middlewares=[DeadLetterMiddleware], **router_options)
    # For a batch handler that dead-letters single records itself (orientation).
    router.dead_letters = counter  # type: ignore[attr-defined]
    return router

"""Kafka subscriber of orientation: thin, it hands each input to a use case.

One consumer reads both ``parcours.demandes`` and ``parcours.resultats``, with the *range*
assignor: both topics are keyed by pseudonym and have the same partition count, so partition
p of each goes to the same consumer. Every input about one person therefore reaches one
writer (ARCHITECTURE.md rules 2 and 3); the version check of the store only matters while
partitions move between instances.

Inputs are taken in batches (``PARCOURS_ORIENTATION_BATCH_SIZE``) and handed to
``service.traiter_lot``: persons seen for the first time together (one insert for all their
documents, one publication, one insert of acknowledgements), the others one input at a time
in offset order, several persons at the same time (``PARCOURS_ORIENTATION_CONCURRENCY``), so
the round trips to the database and the broker's acknowledgements overlap instead of adding
up (docs/performance.md). The offsets are committed only when every input of the batch is
stored and its messages acknowledged.

An input that cannot be read (not JSON, not the contract, an unknown type) or that a use case
refuses goes to ``parcours.dlq`` alone, with its original bytes and a reason; the rest of the
batch goes on. A database or broker outage is retried (the whole batch, whose inputs already
handled are recognised and change nothing), never dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from faststream.kafka import KafkaMessage, KafkaRouter
from prometheus_client import CollectorRegistry

from services.orientation.service import Deps, Entree, TypeInattendu, traiter_lot
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
from shared.logging import get_logger
from shared.settings import Settings

GROUP = "orientation"
CONTRACTS: dict[str, type[CloudEvent[Any]]] = {
    i.DEMANDE: CloudEvent[i.Demande], i.RESULTAT: CloudEvent[i.Resultat]}
log = get_logger("orientation")


def decode(record: Any, deps: Deps) -> Entree:
    """A record as an input of orientation, or the reason it is not one."""
    body = decode_json(record.value)
    kind = body.get("type") if isinstance(body, dict) else None
    model = CONTRACTS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise TypeInattendu(f"type {kind!r}: orientation reads {i.DEMANDE} and {i.RESULTAT}")
    return Entree.of(model.model_validate(body, context=VERIFIE), deps, record)


def by_person(entrees: Iterable[Entree]) -> list[list[Entree]]:
    """The batch's inputs grouped by person, each group in offset order (both topics are keyed
    by pseudonym, and both partitions of a person are ours)."""
    groups: dict[str, list[Entree]] = {}
    for entree in entrees:
        groups.setdefault(entree.pseudonyme, []).append(entree)
    return list(groups.values())


async def handle_batch(records: tuple[Any, ...], deps: Deps, dlq_topic: str,
                       concurrency: int, dead_letters: Any = None) -> None:
    rejects: list[tuple[Any, Reason]] = []
    entrees: list[Entree] = []
    for record in records:
        try:
            entrees.append(decode(record, deps))
        except Exception as exc:  # not JSON, not the contract, another type: poison
            rejects.append((record, error_reason(exc)))
    await traiter_lot(by_person(entrees), deps, concurrency,
                      lambda entree, exc: rejects.append((entree.source, error_reason(exc))))
    # Only once the batch went through: a batch read again after an outage finds its poison
    # inputs again, and dead-letters them then, once.
    await dead_letter(deps.raw, rejects, dlq_topic, "orientation", dead_letters)


def router_for(s: Settings, get_deps: Callable[[], Deps],
               registry: CollectorRegistry | None = None) -> KafkaRouter:
    r = dead_letter_router(dlq_topic=s.topic(topics.DLQ), producer=lambda: get_deps().raw,
                           service="orientation", registry=registry,
                           retry_budget_seconds=s.transient_retry_max_seconds)

    @r.subscriber(s.topic(topics.DEMANDES), s.topic(topics.RESULTATS),
                  batch=True, max_records=s.orientation_batch_size, batch_timeout_ms=100,
                  decoder=raw_bodies,
                  partition_assignment_strategy=(RangePartitionAssignor,),
                  title="orientation", description="Demands to orient and outcomes of actions, "
                  "keyed by pseudonym (CloudEvents of type parcours.demande.v1 and "
                  "parcours.resultat.v1).",
                  **subscriber_options(s, GROUP))
    async def on_inputs(msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        await handle_batch(records, get_deps(), s.topic(topics.DLQ), s.orientation_concurrency,
                           r.dead_letters)  # type: ignore[attr-defined]

    return r

"""Kafka subscriber of orientation: thin, it hands each message to a use case.

One consumer reads both ``parcours.demandes`` and ``parcours.resultats``, with the *range*
assignor: both topics are keyed by pseudonym and have the same partition count, so partition
p of each goes to the same consumer, which handles one message at a time. Every input about
one person therefore reaches one writer, in order (ARCHITECTURE.md rules 2 and 3); the version
check of the store only matters while partitions move between instances.

A message that cannot be read (not JSON, not the contract, an unknown type) goes to
``parcours.dlq`` with its original bytes and a reason (``dead_letter_router``); a database or
broker outage is retried, never dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from faststream.kafka import KafkaRouter
from prometheus_client import CollectorRegistry

from services.orientation.service import Deps, TypeInattendu, orienter, suivre_resultat
from shared import topics
from shared.cloudevents import CloudEvent
from shared.contracts import internes as i
from shared.kafka import dead_letter_router, subscriber_options
from shared.logging import bind_message_context
from shared.settings import Settings

GROUP = "orientation"


def router_for(s: Settings, get_deps: Callable[[], Deps],
               registry: CollectorRegistry | None = None) -> KafkaRouter:
    r = dead_letter_router(dlq_topic=s.topic(topics.DLQ), producer=lambda: get_deps().raw,
                           service="orientation", registry=registry,
                           retry_budget_seconds=s.transient_retry_max_seconds)

    @r.subscriber(s.topic(topics.DEMANDES), s.topic(topics.RESULTATS),
                  partition_assignment_strategy=(RangePartitionAssignor,),
                  title="orientation", description="Demands to orient and outcomes of actions, "
                  "keyed by pseudonym (CloudEvents of type parcours.demande.v1 and "
                  "parcours.resultat.v1).",
                  **subscriber_options(s, GROUP))
    async def on_input(body: dict[str, Any]) -> None:
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == i.DEMANDE:
            demande = CloudEvent[i.Demande].model_validate(body)
            bind_message_context(correlationid=demande.correlationid, causationid=demande.id)
            await orienter(demande, get_deps())
        elif kind == i.RESULTAT:
            resultat = CloudEvent[i.Resultat].model_validate(body)
            bind_message_context(correlationid=resultat.correlationid, causationid=resultat.id)
            await suivre_resultat(resultat, get_deps())
        else:
            raise TypeInattendu(f"type {kind!r}: orientation reads {i.DEMANDE} and {i.RESULTAT}")

    return r

"""Helpers of orientation's integration tests: demands and outcomes as signalement and
notification publish them, and reading what orientation published."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from shared import topics
from shared.cloudevents import CloudEvent, new_event
from shared.contracts import internes as i
from shared.settings import Settings
from tests.inputs import CT
from tests.support import eventually, produce, read_all

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in Paris
SIGNALEMENT = "urn:fr:assurance-maladie:parcours:signalement"
NOTIFICATION = "urn:fr:assurance-maladie:parcours:notification"


def demande(pseudo: str, evenement: str = "retraite", demande_id: str | None = None,
            **kw: Any) -> i.Demande:
    data: dict[str, Any] = {
        "demande_id": demande_id or f"{pseudo}-{evenement}", "pseudonyme": pseudo,
        "origine": "evenement-vie", "evenement": evenement, "date_effet": date(2026, 7, 1),
        "recu_le": NOW, "age": 62, "naissance": "1964-01",
    }
    data.update(kw)
    return i.Demande(**data)


def signalement(pseudo: str, situation: str, demande_id: str | None = None) -> i.Demande:
    return demande(
        pseudo, "signalement", demande_id or f"{pseudo}-{situation}", origine="signalement",
        date_effet=NOW.date(), age=40, drapeaux={"consentement_contact": True},
        detecteur=i.Detecteur(type="ccas", identifiant="ccas-17-rochefort"),
        signalement={"reference": f"SIG-{pseudo}", "situation": situation,
                     "consentement_contact": True})


def demande_event(d: i.Demande) -> CloudEvent[Any]:
    return new_event(type=i.DEMANDE, source=SIGNALEMENT, id=d.demande_id, data=d,
                     subject=d.pseudonyme, time=NOW, correlationid=f"ev-{d.demande_id}")


def resultat_event(r: i.Resultat) -> CloudEvent[Any]:
    return new_event(type=i.RESULTAT, source=NOTIFICATION, id=r.resultat_id, data=r,
                     subject=r.pseudonyme, time=r.survenu_le)


async def send(settings: Settings, topic: str, *events: CloudEvent[Any]) -> None:
    await produce(settings.kafka_bootstrap_servers, settings.topic(topic),
                  [(e.data.pseudonyme.encode(), e.to_bytes(), [CT]) for e in events])


async def send_demandes(settings: Settings, *demandes: i.Demande) -> None:
    await send(settings, topics.DEMANDES, *(demande_event(d) for d in demandes))


async def processed(app: Any, pseudo: str, cause: str, within: float = 60) -> None:
    """Wait until orientation stored the cause and the broker acknowledged its messages."""

    async def done() -> bool:
        etat = await app.state.deps.store.trouver(pseudo)
        return (etat is not None and cause in etat.contexte.journal
                and etat.en_attente(cause) is None)

    await eventually(done, timeout=within)


async def published(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every CloudEvent on a topic (as dicts), with the record's key as ``_key``."""
    records = await read_all(settings.kafka_bootstrap_servers, settings.topic(topic))
    return [{**json.loads(r.value), "_key": (r.key or b"").decode()} for r in records]


def of(events: list[dict[str, Any]], type_: str, pseudo: str | None = None
       ) -> list[dict[str, Any]]:
    return [e for e in events
            if e["type"] == type_ and (pseudo is None or e["data"]["pseudonyme"] == pseudo)]


def planned(events: list[dict[str, Any]], pseudo: str | None = None) -> list[dict[str, Any]]:
    return [e["data"] for e in of(events, i.ACTION_PLANIFIEE, pseudo)]


def cancelled(events: list[dict[str, Any]], pseudo: str | None = None) -> list[dict[str, Any]]:
    return [e["data"] for e in of(events, i.ACTION_ANNULEE, pseudo)]


def paris(*args: int) -> datetime:
    """A Paris wall-clock time, as an aware instant."""
    from shared.calendar import PARIS

    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)

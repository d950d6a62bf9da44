"""Builders and fakes for notification's tests on the real broker and database."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from shared import topics
from shared.cloudevents import headers_for, new_event
from shared.contracts import internes as i
from shared.ids import derive_id
from tests.support import produce, read_all

ORIENTATION = "urn:fr:assurance-maladie:parcours:orientation"
SIGNALEMENT = "urn:fr:assurance-maladie:parcours:signalement"


def pseudo() -> str:
    return "p-" + uuid.uuid4().hex


def action(p: str, due: datetime, *, kind: str = "courrier", canaux: list[str] | None = None,
           modele: str = "seniors-m9-complementaire", **extra: Any) -> i.ActionPlanifiee:
    aid = extra.pop("action_id", None) or str(uuid.uuid4())
    values: dict[str, Any] = {
        "action_id": aid, "pseudonyme": p, "dossier_id": derive_id("dossier", p),
        "parcours": "accompagnement-des-seniors", "etape": "m9-sans-complementaire",
        "kind": kind, "canaux": canaux or ["courrier"], "due_le": due, "modele": modele,
        "territoire": {"departement": "91", "commune": "Évry"},
    }
    values.update(extra)
    return i.ActionPlanifiee(**values)


def coordonnees(p: str, when: datetime, **extra: Any) -> i.Coordonnees:
    values: dict[str, Any] = {
        "pseudonyme": p, "nom": "Lefèvre", "prenom": "Josiane",
        "adresse": {"ligne1": "12 rue des Lilas", "code_postal": "91000", "commune": "Évry"},
        "telephone": "06 12 34 56 78", "email": "josiane.lefevre@example.org", "maj_le": when,
    }
    values.update(extra)
    return i.Coordonnees(**values)


def planned_event(
    a: i.ActionPlanifiee, now: datetime
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    ev = new_event(type=i.ACTION_PLANIFIEE, source=ORIENTATION, id=a.action_id, data=a,
                   subject=a.pseudonyme, time=now)
    return (a.pseudonyme.encode(), ev.to_bytes(),
            [(k, v.encode()) for k, v in headers_for(ev).items()])


def cancelled_event(a: i.ActionPlanifiee, now: datetime, raison: str = "objectif-atteint"
                    ) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    c = i.ActionAnnulee(action_id=a.action_id, pseudonyme=a.pseudonyme, dossier_id=a.dossier_id,
                        raison=raison)
    ev = new_event(type=i.ACTION_ANNULEE, source=ORIENTATION,
                   id=derive_id("annulation", a.action_id), data=c, subject=a.pseudonyme, time=now)
    return (a.pseudonyme.encode(), ev.to_bytes(),
            [(k, v.encode()) for k, v in headers_for(ev).items()])


def coordonnees_event(c: i.Coordonnees) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    ev = new_event(type=i.COORDONNEES, source=SIGNALEMENT, id=str(uuid.uuid4()), data=c,
                   subject=c.pseudonyme, time=c.maj_le)
    return (c.pseudonyme.encode(), ev.to_bytes(),
            [(k, v.encode()) for k, v in headers_for(ev).items()])


async def send_actions(
    settings: Any, *records: tuple[bytes, bytes, list[tuple[str, bytes]]]
) -> None:
    await produce(settings.kafka_bootstrap_servers, settings.topic(topics.ACTIONS), list(records))


async def send_coordonnees(settings: Any, *cs: i.Coordonnees) -> None:
    await produce(settings.kafka_bootstrap_servers, settings.topic(topics.COORDONNEES),
                  [coordonnees_event(c) for c in cs])


async def results(settings: Any, *, expect: int | None = None, timeout: float = 5.0  # noqa: ASYNC109
                  ) -> list[dict[str, Any]]:
    records = await read_all(settings.kafka_bootstrap_servers, settings.topic(topics.RESULTATS),
                             expect=expect, timeout=timeout)
    out = []
    for r in records:
        body = json.loads(r.value)
        body["_key"] = r.key.decode() if r.key else None
        out.append(body)
    return out


async def at_least(settings: Any, n: int, timeout: float = 60.0  # noqa: ASYNC109
                   ) -> list[dict[str, Any]]:
    """Wait until ``parcours.resultats`` holds at least ``n`` records; return them all."""
    from tests.support import eventually

    async def check() -> list[dict[str, Any]] | None:
        got = await results(settings, expect=n, timeout=2.0)
        return got if len(got) >= n else None

    return await eventually(check, timeout=timeout)


async def known(mongo: Any, settings: Any, n: int) -> None:
    """Wait until the service stored the contact data of ``n`` persons (the two topics are
    consumed independently: an action may otherwise fire before its person's data arrived,
    and wait for it)."""
    from tests.support import eventually

    coll = mongo[settings.database_name]["coordonnees"]

    async def check() -> bool:
        return await coll.count_documents({}) >= n

    await eventually(check, timeout=60)

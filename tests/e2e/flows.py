"""Building blocks of the end-to-end tests: life events and referrals as upstream systems and
partners send them, and reading what the platform did, from its sources of truth."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from shared import topics as t
from shared.calendar import PARIS
from shared.contracts import internes as i
from shared.contracts.evenements import example_event
from tests.e2e.conftest import System
from tests.inputs import CT, random_nir
from tests.support import produce

T = TypeVar("T")


def paris_today(system: System) -> date:
    return system.now().astimezone(PARIS).date()


PEOPLE: list[dict[str, Any]] = []  # every person made by person(), for the leak scans


def person(rng: random.Random, born: date, **extra: Any) -> dict[str, Any]:
    """An insured person (personal data: only evenements-vie and personnes.coordonnees carry it)."""
    nom = "Valmont" + "".join(rng.choice("abcdefghij") for _ in range(6))
    prenom = "Solange" + "".join(rng.choice("klmnopqrst") for _ in range(5))
    body: dict[str, Any] = {
        "nir": random_nir(rng), "nom": nom, "prenom": prenom,
        "date_naissance": born.isoformat(),
        "adresse": {"ligne1": f"{rng.randint(1, 99)} rue des Glycines", "code_postal": "91000",
                    "commune": "Évry-Courcouronnes"},
        "telephone": f"06 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} "
                     f"{rng.randint(10, 99)}",
    }
    body.update(extra)
    PEOPLE.append(body)
    return body


def personal_strings(p: dict[str, Any]) -> set[str]:
    """What must never leave the edges: NIR, names, phone, street, e-mail."""
    out = {p["nir"], p["nom"], p["prenom"]}
    if p.get("telephone"):
        out.add(p["telephone"])
    if p.get("email"):
        out.add(p["email"])
    if p.get("adresse"):
        out.add(p["adresse"]["ligne1"])
    return {x for x in out if x}


def life_event(name: str, assure: dict[str, Any], date_effet: date, *, event_id: str,
               source: str = "urn:fr:carsat:sud-est", **data: Any) -> dict[str, Any]:
    event = example_event(name, **data)
    event["data"]["assure"] = assure
    event["data"]["date_effet"] = date_effet.isoformat()
    event["id"] = event_id
    event["source"] = source
    return event


async def send_events(system: System, *events: dict[str, Any]) -> None:
    """Publish life events on evenements-vie as an upstream system does (keyed by its id)."""
    await produce(system.bootstrap, system.topic(t.EVENEMENTS_VIE),
                  [(e["id"].encode(), json.dumps(e).encode(), [CT]) for e in events])


async def until(check: Callable[[], Awaitable[T | None]], timeout: float = 60.0,  # noqa: ASYNC109
                interval: float = 0.5, what: str = "condition") -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s (last: {last!r})")


async def events_of(system: System, topic: str, pseudo: str, type_: str | None = None
                    ) -> list[dict[str, Any]]:
    return [e for e in await system.published(topic, timeout=5)
            if e.get("_key") == pseudo and (type_ is None or e.get("type") == type_)]


async def planned(system: System, pseudo: str) -> list[dict[str, Any]]:
    return [e["data"] for e in await events_of(system, t.ACTIONS, pseudo, i.ACTION_PLANIFIEE)]


async def cancelled(system: System, pseudo: str) -> list[dict[str, Any]]:
    return [e["data"] for e in await events_of(system, t.ACTIONS, pseudo, i.ACTION_ANNULEE)]


async def results(system: System, pseudo: str) -> list[dict[str, Any]]:
    return [e["data"] for e in await events_of(system, t.RESULTATS, pseudo, i.RESULTAT)]


async def wait_planned(system: System, pseudo: str, etapes: set[str],
                       timeout: float = 90.0) -> dict[str, dict[str, Any]]:  # noqa: ASYNC109
    async def check() -> dict[str, dict[str, Any]] | None:
        got = {a["etape"]: a for a in await planned(system, pseudo)}
        return got if etapes <= set(got) else None

    return await until(check, timeout, what=f"actions {sorted(etapes)} planned")


async def wait_results(system: System, pseudo: str, action_ids: set[str],
                       timeout: float = 90.0) -> dict[str, dict[str, Any]]:  # noqa: ASYNC109
    async def check() -> dict[str, dict[str, Any]] | None:
        got = {r["action_id"]: r for r in await results(system, pseudo)}
        return got if action_ids <= set(got) else None

    try:
        return await until(check, timeout, what=f"results of {sorted(action_ids)}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nnotification's view: {stories(system, action_ids)}\n"
                             f"services' now: {system.now()}") from None


def stories(system: System, action_ids: set[str]) -> list[Any]:
    """notification's record of actions (their history), to explain a failure."""
    from pymongo import MongoClient

    with MongoClient(system.infra.mongo_uri, serverSelectionTimeoutMS=5000) as client:
        coll = client[system.database("notification")]["actions"]
        return [coll.find_one({"_id": a}) for a in sorted(action_ids)]


def close(a: str | datetime, b: str | datetime, within: timedelta = timedelta(seconds=1)) -> bool:
    """Two instants equal up to storage precision (the database keeps milliseconds)."""
    da = datetime.fromisoformat(a) if isinstance(a, str) else a
    db = datetime.fromisoformat(b) if isinstance(b, str) else b
    return abs(da - db) <= within


def due(action: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(action["due_le"])


def advance_past(system: System, when: datetime, margin: timedelta = timedelta(hours=2)) -> None:
    """Move the clock just past ``when`` (never backwards)."""
    gap = when + margin - system.now()
    if gap > timedelta(0):
        system.advance(gap)


def agent_headers(system: System, site: str = "91", sub: str = "agent.e2e") -> dict[str, str]:
    """What an agent of ``site`` sends to the agents' queue: a bearer token (shared/auth.py,
    the dev HS256 secret the services run with here) and the older ``X-Agent`` header."""
    headers = {"X-Agent": sub}
    try:
        from shared.auth import AGENT, mint
    except ImportError:  # before agents' authentication existed
        return headers
    headers["Authorization"] = f"Bearer {mint(system.settings(), sub, [AGENT], site)}"
    return headers


async def tasks_of(system: System, site: str = "91") -> list[dict[str, Any]]:
    import httpx

    async with httpx.AsyncClient(base_url=system.url("notification"), timeout=30) as http:
        resp = await http.get("/v1/taches", params={"site": site, "limite": 500},
                              headers=agent_headers(system, site))
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]

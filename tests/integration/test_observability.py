"""Observability (issue 7, point 3), on the real broker and database:

- the four services, as processes, carry one life event to its e-mail: the same correlation id
  is on signalement's, orientation's and notification's JSON log lines; each /metrics has the
  messages in and out per topic, the handler latency, the errors and dead letters by kind,
  notification's pending timers and overdue tasks; each serves the AsyncAPI document;
- readiness: each service answers 503 while its database is unreachable, 200 again after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.infra import SERVICES
from shared import topics as t
from shared.clock import ManualClock
from shared.schemas import asyncapi, json_schemas
from tests.conftest import Endpoints
from tests.e2e.conftest import BASE, System, new_system
from tests.e2e.flows import life_event, paris_today, person, until
from tests.inputs import CT
from tests.integration.gate import Gate
from tests.integration.notification.peers import SmsProvider, SmtpServer
from tests.support import auth_headers, produce, running

INPUT = {"signalement": t.EVENEMENTS_VIE, "orientation": t.DEMANDES,
         "notification": t.ACTIONS, "reporting": t.RESULTATS}
OUTPUT = {"signalement": t.DEMANDES, "orientation": t.ACTIONS, "notification": t.RESULTATS}
# a topic each service reads as CloudEvents, where garbage is poison (dead-lettered)
POISON = {"signalement": t.DECISIONS, "orientation": t.DEMANDES, "notification": t.ACTIONS,
          "reporting": t.RESULTATS}


@pytest.fixture
def system(infra: Endpoints, topics: str, tmp_path: Path) -> Iterator[System]:
    with SmtpServer() as smtp, SmsProvider() as sms:
        sys_ = new_system(infra, topics, tmp_path / "system")
        sys_.smtp, sys_.sms = smtp, sms
        try:
            yield sys_
        finally:
            sys_.stop_all()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("content-type", ""), exc.read().decode()


def _json_lines(system: System, service: str) -> list[dict[str, Any]]:
    out = []
    for line in system.proc(service).log_tail(10**8).splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict):
                out.append(doc)
    return out


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one series: (labels, value)."""
    got = []
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
            got.append((labels, float(m.group(2))))
    return got


def _with(samples: list[tuple[dict[str, str], float]], text: str) -> float:
    """Sum of the samples one of whose label values contains ``text``."""
    return sum(v for labels, v in samples if any(text in x for x in labels.values()))


@pytest.mark.timeout(300)
async def test_one_life_event_to_its_email_is_traced_counted_and_documented_by_every_service(
    system: System,
) -> None:
    await asyncio.to_thread(system.start_all)
    rng = random.Random(7)
    today = paris_today(system)
    someone = person(rng, date(today.year - 45, 5, 5), email="suivi.obs@example.org")
    event_id = "obs-evenement-0001"
    ev = life_event("entree-invalidite", someone, today - timedelta(days=15), event_id=event_id,
                    source="urn:fr:elsm:91", categorie=2)
    await produce(system.bootstrap, system.topic(t.EVENEMENTS_VIE),
                  [(event_id.encode(), json.dumps(ev).encode(), [CT])])

    # the e-mail went out; notification logged it under the life event's correlation id
    async def sent() -> bool:
        return any(d.get("event") == "action exécutée" and d.get("correlationid") == event_id
                   for d in _json_lines(system, "notification"))

    await until(sent, 120, interval=1.0, what="the e-mail's log line")
    assert system.smtp is not None and len(system.smtp.messages) == 1

    # -- the correlation id, from the life event to the letter, in each service's logs
    for service in ("signalement", "orientation", "notification"):
        lines = [d for d in _json_lines(system, service) if d.get("correlationid") == event_id]
        assert lines, f"{service}: no JSON log line with correlationid={event_id}"
    names = {d.get("event") for d in _json_lines(system, "signalement")
             if d.get("correlationid") == event_id}
    assert "événement accepté" in names
    logs = system.logs()
    assert someone["nir"] not in logs and "suivi.obs@example.org" not in logs, "personal data"

    # -- poison on a topic each service reads: dead-lettered, and counted by kind
    await asyncio.gather(*(produce(system.bootstrap, system.topic(topic),
                                   [(b"poison", b"{not json", [CT])])
                           for topic in set(POISON.values())))

    async def scraped() -> dict[str, str] | None:
        texts = {}
        for service in SERVICES:
            status, _, text = await asyncio.to_thread(_get, f"{system.url(service)}/metrics")
            assert status == 200
            if not _with(_samples(text, "parcours_dead_letters_total"), "erreur."):
                return None
            texts[service] = text
        return texts

    metrics = await until(scraped, 60, interval=1.0, what="dead letters counted by every service")
    for service, text in metrics.items():
        # messages in, per topic
        received = _samples(text, "faststream_received_messages_total")
        assert _with(received, system.topic(INPUT[service])) >= 1, (service, received)
        # handler latency
        latency = "faststream_received_processed_messages_duration_seconds"
        assert _samples(text, f"{latency}_count"), service
        assert _samples(text, f"{latency}_bucket"), service
        # errors by kind: the processing status and exception type series, the dead letters
        assert "# TYPE faststream_received_processed_messages_exceptions_total counter" in text
        processed = _samples(text, "faststream_received_processed_messages_total")
        assert {labels.get("status") for labels, _ in processed} >= {"acked"}, (service, processed)
        letters = _samples(text, "parcours_dead_letters_total")
        assert any(labels["reason"].startswith("erreur.") for labels, _ in letters), letters
        # messages out, per topic
        if service in OUTPUT:
            published = _samples(text, "faststream_published_messages_total")
            assert _with(published, system.topic(OUTPUT[service])) >= 1, (service, published)
    gauges = metrics["notification"]
    assert _samples(gauges, "parcours_notification_timers_pending")
    assert _samples(gauges, "parcours_notification_tasks_overdue") == [({}, 0.0)]
    assert _samples(gauges, "parcours_notification_tasks_open")
    assert _samples(gauges, "parcours_notification_timers_behind_seconds") == [({}, 0.0)]

    dead = await system.published(t.DLQ, timeout=10)
    by = {e["_headers"].get("parcours-rejected-by", b"").decode() for e in dead}
    assert by >= set(SERVICES), by

    # -- the AsyncAPI document of every topic, from every service
    expected = asyncapi()
    declared = set(t.load_topics())
    for service in SERVICES:
        status, ctype, body = await asyncio.to_thread(_get, f"{system.url(service)}/asyncapi.yaml")
        assert status == 200 and "yaml" in ctype
        doc = yaml.safe_load(body)
        assert doc == expected
        assert set(doc["channels"]) == declared
    status, _, body = await asyncio.to_thread(_get, f"{system.url('orientation')}/asyncapi.json")
    assert status == 200 and json.loads(body) == expected
    ref = next(iter(expected["components"]["messages"].values()))["payload"]["$ref"]
    status, _, body = await asyncio.to_thread(
        _get, f"{system.url('notification')}/{ref.removeprefix('./')}")
    assert status == 200 and json.loads(body) == json_schemas()[ref.rsplit("/", 1)[1]]


def test_the_served_document_is_the_one_in_docs() -> None:
    committed = yaml.safe_load((Path(__file__).parents[2] / "docs" / "asyncapi.yaml").read_text())
    assert committed == asyncapi(), "docs/asyncapi.yaml is stale: python -m shared.schemas"


# --------------------------------------------------------------------------- readiness


def _app(service: str, settings: Any) -> Any:
    import importlib

    module = importlib.import_module(f"services.{service}.app")
    return module.create_app(settings, clock=ManualClock(BASE))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("service", list(SERVICES))
async def test_readiness_is_503_while_the_database_is_unreachable_and_200_after(
    service: str, infra: Endpoints, topics: str, make_settings: Any,
) -> None:
    gate = Gate(infra.mongo_uri)
    await gate.open()
    settings = make_settings(service, mongo_uri=gate.uri, mongo_timeout_ms=1000,
                             http_docs_public=False)
    try:
        async with running(_app(service, settings)) as http:
            ready = await http.get("/health/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"kafka": "ok", "mongo": "ok"}

            await gate.close()
            down = await http.get("/health/ready")
            assert down.status_code == 503, down.text
            assert down.json() == {"status": "unavailable",
                                   "checks": {"kafka": "ok", "mongo": "ko"}}
            assert (await http.get("/health/live")).status_code == 200
            # /metrics still answers without its database (the gauges keep their last values)
            assert (await http.get("/metrics")).status_code == 200

            await gate.open()

            async def back() -> bool:
                return (await http.get("/health/ready")).status_code == 200

            await until(back, 30, interval=0.5, what="ready again")
            # the AsyncAPI document needs a role when the docs are not public
            assert (await http.get("/asyncapi.yaml")).status_code == 401
            ok = await http.get("/asyncapi.yaml", headers=auth_headers("lecteur-indicateurs"))
            assert ok.status_code == 200 and yaml.safe_load(ok.text) == asyncapi()
    finally:
        await gate.close()

"""The database unreachable right after an e-mail went out: the send is recorded once the
database is back, and the e-mail is not sent a second time (SMTP has no idempotency key).
Real broker, real database behind a relay the test cuts (tests/integration/gate.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from services.notification.app import create_app
from shared.clock import ManualClock
from tests.integration.gate import Gate
from tests.integration.notification.helpers import (
    action,
    at_least,
    coordonnees,
    known,
    planned_event,
    pseudo,
    results,
    send_actions,
    send_coordonnees,
)
from tests.integration.notification.peers import SmtpServer
from tests.support import running

START = datetime(2026, 3, 2, 9, 55, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday, 11:00 in Paris
OUTAGE = 4.0


async def test_an_email_sent_just_before_a_database_outage_is_recorded_after_it_and_sent_once(
    infra: Any, topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    gate = Gate(infra.mongo_uri)
    await gate.open()
    cuts: list[str] = []

    def outage_after_sending(step: str, action_id: str) -> None:
        if step == "apres-effet" and not cuts:
            cuts.append(action_id)
            gate.cut()  # the e-mail is out; the database goes away before it is recorded
            loop = asyncio.get_running_loop()
            loop.call_later(OUTAGE, lambda: loop.create_task(gate.open()))

    with SmtpServer() as smtp:
        settings = make_settings("notification", data_dir=tmp_path, mongo_uri=gate.uri,
                                 mongo_timeout_ms=1000,
                                 notification_scheduler_interval_seconds=0.2,
                                 notification_smtp_port=smtp.port)
        clock = ManualClock(START)
        p = pseudo()
        mail = action(p, NOW, kind="invitation", canaux=["email"],
                      modele="maternite-ateliers-futurs-parents")
        await send_coordonnees(settings, coordonnees(p, NOW))
        await send_actions(settings, planned_event(mail, NOW))
        try:
            async with running(create_app(settings, clock=clock, fault=outage_after_sending)):
                await known(mongo, settings, 1)
                clock.set(NOW)
                await at_least(settings, 1, timeout=60)
                await asyncio.sleep(1.5)  # a second firing would have sent by now
        finally:
            await gate.close()
        assert cuts == [mail.action_id], "the outage happened right after the send"
        assert len(smtp.messages) == 1, "one e-mail, not sent again after the outage"
    got = await results(settings)
    assert [(g["data"]["statut"], g["data"]["canal"]) for g in got] == [("envoye", "email")]
    attempt = await mongo[settings.database_name]["envois"].find_one({"_id": mail.action_id})
    assert attempt["etat"] != "en-cours" and attempt.get("reference")

"""Channels against real protocol peers: PDF letters and print batch, SMTP, SMS over HTTP;
quiet hours. Real broker, real database, the clock moved forward."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pypdf import PdfReader

from services.notification.app import create_app
from shared.clock import ManualClock
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
from tests.integration.notification.peers import SmsProvider, SmtpServer
from tests.support import auth_headers, eventually, running

START = datetime(2026, 3, 2, 9, 55, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday, 11:00 in Paris


def _settings(make_settings: Any, tmp_path: Any, **extra: Any) -> Any:
    return make_settings("notification", data_dir=tmp_path,
                         notification_scheduler_interval_seconds=0.2, **extra)


def _text(path: Any) -> str:
    pages = PdfReader(io.BytesIO(path.read_bytes())).pages
    return " ".join(" ".join(page.extract_text() for page in pages).split())


async def test_a_letter_is_a_valid_pdf_with_the_name_and_step_text_its_falc_differs_and_the_batch_lists_it_once(  # noqa: E501 - the test's name
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    settings = _settings(make_settings, tmp_path)
    clock = ManualClock(START)
    p = pseudo()
    letter = action(p, NOW - timedelta(minutes=1))
    generic = action(p, NOW - timedelta(minutes=1), modele="ald-suivi",
                     parcours="affection-longue-duree", etape="axe2-suivi", canaux=["courrier"])
    await send_coordonnees(settings, coordonnees(p, NOW))
    # The same action delivered twice (a redelivery): one letter.
    await send_actions(settings, planned_event(letter, NOW), planned_event(letter, NOW),
                       planned_event(generic, NOW))
    async with running(create_app(settings, clock=clock)) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        await known(mongo, settings, 1)
        clock.set(NOW)
        await at_least(settings, 2)
        await asyncio.sleep(1.0)
        day = NOW.date().isoformat()
        batch = (await http.get(f"/v1/lots-impression/{day}")).json()
    got = await results(settings)
    assert (sorted(g["data"]["action_id"] for g in got)
            == sorted([letter.action_id, generic.action_id]))
    assert {g["data"]["statut"] for g in got} == {"envoye"}

    folder = tmp_path / "letters" / day
    standard, falc = folder / f"{letter.action_id}.pdf", folder / f"{letter.action_id}-falc.pdf"
    assert standard.read_bytes().startswith(b"%PDF-")
    text = _text(standard)
    assert "Josiane Lefèvre 12 rue des Lilas 91000 ÉVRY" in text
    assert "Complémentaire santé solidaire" in text
    assert "Le 2 mars 2026" in text and "Caisse primaire d'assurance maladie" in text
    falc_text = _text(falc)
    assert "facile à lire" in falc_text and "Josiane Lefèvre" in falc_text
    assert falc_text != text
    # A step without a dedicated template renders through the generic one, with its text.
    assert "Axe 2" in _text(folder / f"{generic.action_id}.pdf")

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == batch
    ids = [e["action_id"] for e in manifest["lettres"]]
    assert sorted(ids) == sorted([letter.action_id, generic.action_id])
    assert len(ids) == len(set(ids))
    rows = (folder / "manifest.csv").read_text().splitlines()
    assert [r.split(";")[0] for r in rows[1:]].count(letter.action_id) == 1
    # No personal data in the manifest.
    assert "Lefèvre" not in json.dumps(manifest) and "Lilas" not in json.dumps(manifest)


async def test_the_print_batch_on_disk_lists_every_letter_of_a_burst_and_is_not_rewritten_per_letter(  # noqa: E501 - the test's name
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    """Six letters due at once: the day's manifest on disk lists the six, written by the
    service itself (no request to the API), and from fewer reads of the day than letters (a
    rewrite per letter reads the whole day each time: quadratic over a monthly batch)."""
    settings = _settings(make_settings, tmp_path)
    clock = ManualClock(START)
    persons = [pseudo() for _ in range(6)]
    planned = [action(p, NOW - timedelta(minutes=1)) for p in persons]
    await send_coordonnees(settings, *(coordonnees(p, NOW) for p in persons))
    await send_actions(settings, *(planned_event(a, NOW) for a in planned))
    app = create_app(settings, clock=clock)
    async with running(app):
        await known(mongo, settings, 6)
        deps = app.state.deps
        reads: list[str] = []
        letters_of_day = deps.store.letters_of_day

        def counted(day: str) -> Any:
            reads.append(day)
            return letters_of_day(day)

        deps.store.letters_of_day = counted
        clock.set(NOW)
        await at_least(settings, 6)
        manifest = tmp_path / "letters" / NOW.date().isoformat() / "manifest.json"

        async def listed() -> Any:
            if not manifest.exists():
                return None
            ids = [e["action_id"] for e in json.loads(manifest.read_text())["lettres"]]
            return ids if len(ids) == 6 else None

        ids = await eventually(listed, timeout=30)
    assert sorted(ids) == sorted(a.action_id for a in planned)
    assert 1 <= len(reads) < 6


async def test_the_smtp_server_receives_exactly_one_message_per_email_action_even_when_redelivered(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    with SmtpServer() as smtp:
        settings = _settings(make_settings, tmp_path, notification_smtp_port=smtp.port)
        clock = ManualClock(START)
        p, q = pseudo(), pseudo()
        a1 = action(p, NOW, kind="courrier", canaux=["email", "courrier"],
                    modele="seniors-p1-information")
        a2 = action(q, NOW, kind="courrier", canaux=["email", "courrier"],
                    modele="ald-information-entree")
        await send_coordonnees(settings, coordonnees(p, NOW),
                               coordonnees(q, NOW, email="marcel.dupuis@example.org", nom="Dupuis",
                                           prenom="Marcel"))
        await send_actions(settings, *[planned_event(a, NOW) for a in (a1, a2, a1, a2, a1)])
        async with running(create_app(settings, clock=clock)):
            await known(mongo, settings, 2)
            clock.set(NOW)
            await at_least(settings, 2)
            await asyncio.sleep(1.5)
        assert len(smtp.messages) == 2
        by_id = {str(m["Message-ID"]).strip(): m for m in smtp.messages}
        m1 = by_id[f"<{a1.action_id}@{settings.notification_message_id_domain}>"]
        assert m1["X-Envelope-To"] == "josiane.lefevre@example.org"
        assert "retraite" in m1["Subject"].lower()
        m2 = by_id[f"<{a2.action_id}@{settings.notification_message_id_domain}>"]
        assert m2["X-Envelope-To"] == "marcel.dupuis@example.org"
    got = await results(settings)
    assert sorted((g["data"]["action_id"], g["data"]["canal"]) for g in got) == sorted(
        [(a1.action_id, "email"), (a2.action_id, "email")])


async def test_one_sms_per_action_even_when_the_send_is_retried_after_a_crash(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    crashed: list[str] = []

    def crash_once_after_sending(step: str, action_id: str) -> None:
        if step == "apres-effet" and action_id not in crashed:
            crashed.append(action_id)
            raise RuntimeError("simulated crash after the provider accepted the SMS")

    with SmsProvider() as provider:
        token = tmp_path / "sms-token"
        token.write_text("s3cret-token\n")
        settings = _settings(make_settings, tmp_path, notification_sms_url=provider.url,
                             notification_sms_token_file=token)
        clock = ManualClock(START)
        p = pseudo()
        sms = action(p, NOW, kind="invitation", canaux=["sms", "email"],
                     modele="maternite-ateliers-futurs-parents")
        await send_coordonnees(settings, coordonnees(p, NOW))
        await send_actions(settings, planned_event(sms, NOW), planned_event(sms, NOW))
        async with running(create_app(settings, clock=clock, fault=crash_once_after_sending)):
            await known(mongo, settings, 1)
            clock.set(NOW)
            await at_least(settings, 1)
            await asyncio.sleep(1.5)
        assert crashed == [sms.action_id]
        assert len(provider.delivered) == 1, "one SMS delivered"
        assert {r["key"] for r in provider.requests} == {sms.action_id}, "the retry reused the key"
        assert len(provider.requests) == 2, "sent, crash, resent with the same key"
        assert provider.delivered[0]["to"] == "06 12 34 56 78"
        assert provider.requests[0]["auth"] == "Bearer s3cret-token"
    got = await results(settings)
    assert [(g["data"]["statut"], g["data"]["canal"]) for g in got] == [("envoye", "sms")]


async def test_a_crash_after_publishing_an_outcome_publishes_the_same_outcome_again_and_no_second_letter(  # noqa: E501 - the test's name
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    # The window: the outcome is on the topic, the action not yet closed. The timer fires again
    # and publishes the outcome again from what was stored; it must be the very same event
    # (consumers deduplicate on the id, reporting reads its time), and the letter is not made
    # again. The clock carries microseconds, which a BSON date does not keep.
    crashed: list[str] = []

    def crash_once_after_publishing(step: str, action_id: str) -> None:
        if step == "apres-publication" and action_id not in crashed:
            crashed.append(action_id)
            raise RuntimeError("simulated crash between the outcome and the action's closing")

    settings = _settings(make_settings, tmp_path)
    clock = ManualClock(START)
    p = pseudo()
    letter = action(p, NOW - timedelta(minutes=1))
    await send_coordonnees(settings, coordonnees(p, NOW))
    await send_actions(settings, planned_event(letter, NOW))
    async with running(create_app(settings, clock=clock, fault=crash_once_after_publishing)):
        await known(mongo, settings, 1)
        clock.set(NOW + timedelta(microseconds=123_456))
        got = await at_least(settings, 2)
        await asyncio.sleep(1.0)
    assert crashed == [letter.action_id]
    got = await results(settings)
    assert len(got) == 2 and got[0] == got[1], "the outcome published again is the same event"
    assert got[0]["data"]["statut"] == "envoye"
    assert datetime.fromisoformat(got[0]["time"]) == NOW + timedelta(microseconds=123_000)
    assert len(list(tmp_path.rglob(f"{letter.action_id}.pdf"))) == 1, "one letter"
    action_doc = await mongo[settings.database_name]["actions"].find_one({"_id": letter.action_id})
    assert action_doc["statut"] == "terminee"


async def test_an_sms_due_in_quiet_hours_is_deferred_to_the_next_allowed_time(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    with SmsProvider() as provider:
        settings = _settings(make_settings, tmp_path, notification_sms_url=provider.url)
        saturday_evening = datetime(2026, 3, 7, 19, 30, tzinfo=UTC)  # 20:30 in Paris
        monday_nine = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)  # 09:00 in Paris (Sunday skipped)
        clock = ManualClock(saturday_evening - timedelta(hours=1))
        p = pseudo()
        sms = action(p, saturday_evening, kind="invitation", canaux=["sms"],
                     modele="maternite-ateliers-futurs-parents")
        await send_coordonnees(settings, coordonnees(p, NOW))
        await send_actions(settings, planned_event(sms, NOW))
        actions = mongo[settings.database_name]["actions"]
        async with running(create_app(settings, clock=clock)):
            await eventually(lambda: actions.find_one({"_id": sms.action_id}))
            await known(mongo, settings, 1)
            clock.set(saturday_evening + timedelta(minutes=1))

            async def deferred() -> Any:
                doc = await actions.find_one({"_id": sms.action_id})
                return [h for h in doc["historique"] if h["quoi"] == "reportee"]
            history = await eventually(deferred)
            assert history[0]["a"] == monday_nine and history[0]["pourquoi"] == "heures-calmes"
            clock.set(monday_nine - timedelta(minutes=1))  # Sunday and early Monday: nothing
            await asyncio.sleep(1.0)
            assert provider.requests == []
            clock.set(monday_nine + timedelta(seconds=30))
            got = await at_least(settings, 1)
        assert len(provider.delivered) == 1
        assert got[0]["data"]["statut"] == "envoye"
        assert datetime.fromisoformat(got[0]["data"]["survenu_le"]) >= monday_nine

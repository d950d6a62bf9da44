"""Cases past their parcours' maximum duration, on the real broker and database: orientation's
periodic job closes them (their pending actions cancelled, the decision published) even when
the person sends nothing more, once, and the person is purged after the retention."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from services.orientation.app import create_app
from shared.clock import ManualClock
from shared.contracts import internes as i
from shared.topics import ACTIONS, DECISIONS
from tests.integration.orientation.helpers import (
    NOW,
    cancelled,
    demande,
    of,
    planned,
    processed,
    published,
    send_demandes,
)
from tests.support import running


async def test_a_case_past_its_maximum_duration_is_closed_by_the_job_and_later_purged(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation", retention_days=30, retention_interval_seconds=3600)
    clock = ManualClock(NOW)
    p = "p-exp-" + uuid.uuid4().hex[:8]
    retraite = demande(p)  # accompagnement-des-seniors: 15 months at most
    app = create_app(settings, clock=clock)
    async with running(app):
        await send_demandes(settings, retraite)
        await processed(app, p, retraite.demande_id)
        actions = planned(await published(settings, ACTIONS), p)
        assert actions

        clock.set(NOW + timedelta(days=300))  # within the 15 months: nothing to close
        assert await app.state.purge() == 0
        assert cancelled(await published(settings, ACTIONS), p) == []
        assert [d["data"]["statut"] for d in of(await published(settings, DECISIONS),
                                                 i.DECISION, p)] == ["ouvert"]

        clock.set(NOW + timedelta(days=470))  # past them, and no input came
        assert await app.state.purge() == 0  # closed now: its retention starts now
        decisions = of(await published(settings, DECISIONS), i.DECISION, p)
        assert [(d["data"]["statut"], d["data"].get("motif_cloture")) for d in decisions] == [
            ("ouvert", None), ("clos", "delai-depasse")]
        dossier = (await app.state.deps.store.trouver(p)).contexte.dossiers[0]
        assert (dossier.statut, dossier.motif_cloture) == ("clos", "delai-depasse")
        pending = {s.action.action_id for s in dossier.actions if s.statut == "annulee"}
        assert pending and {a["action_id"] for a in cancelled(
            await published(settings, ACTIONS), p)} == pending

        before = [e["id"] for e in await published(settings, ACTIONS)] + \
                 [e["id"] for e in await published(settings, DECISIONS)]
        assert await app.state.purge() == 0  # the job again: nothing more to close or send
        assert [e["id"] for e in await published(settings, ACTIONS)] + \
               [e["id"] for e in await published(settings, DECISIONS)] == before

        clock.set(NOW + timedelta(days=470 + 31))  # the retention after the closing
        assert await app.state.purge() == 1
        assert await app.state.deps.store.trouver(p) is None


async def test_a_closing_stored_but_not_published_is_published_by_the_next_run(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation", transient_retry_max_seconds=1)
    clock = ManualClock(NOW)
    p = "p-exp-" + uuid.uuid4().hex[:8]
    retraite = demande(p)
    app = create_app(settings, clock=clock)
    async with running(app):
        await send_demandes(settings, retraite)
        await processed(app, p, retraite.demande_id)
        deps = app.state.deps
        real = deps.publier

        async def broker_away(messages: Any) -> None:
            raise KafkaConnectionError()

        deps.publier = broker_away
        clock.set(NOW + timedelta(days=470))
        with pytest.raises(KafkaConnectionError):
            await app.state.purge()  # the closing is stored, its messages are not sent
        assert (await deps.store.trouver(p)).contexte.dossiers[0].statut == "clos"
        assert of(await published(settings, DECISIONS), i.DECISION, p)[-1]["data"][
            "statut"] == "ouvert"

        deps.publier = real
        assert await app.state.purge() == 0
        decisions = of(await published(settings, DECISIONS), i.DECISION, p)
        assert [d["data"]["statut"] for d in decisions] == ["ouvert", "clos"]
        assert cancelled(await published(settings, ACTIONS), p)
        assert (await deps.store.trouver(p)).a_publier == ()
        await app.state.purge()
        assert len(of(await published(settings, DECISIONS), i.DECISION, p)) == 2


async def test_one_persons_unexpected_error_does_not_stop_the_job_for_the_others(
    topics: str, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.orientation import retention

    settings = make_settings("orientation")
    clock = ManualClock(NOW)
    broken, fine = ("p-exp-" + uuid.uuid4().hex[:8] for _ in range(2))
    app = create_app(settings, clock=clock)
    real = retention.expirer_dossiers

    async def fails_for_one(pseudonyme: str, deps: Any) -> Any:
        if pseudonyme == broken:
            raise ValueError("a bug on this person's context")
        return await real(pseudonyme, deps)

    monkeypatch.setattr(retention, "expirer_dossiers", fails_for_one)
    async with running(app):
        await send_demandes(settings, demande(broken), demande(fine))
        await processed(app, fine, demande(fine).demande_id)
        await processed(app, broken, demande(broken).demande_id)
        clock.set(NOW + timedelta(days=470))
        await app.state.purge()
        assert (await app.state.deps.store.trouver(fine)).contexte.dossiers[0].statut == "clos"
        assert (await app.state.deps.store.trouver(broken)).contexte.dossiers[0].statut == "ouvert"

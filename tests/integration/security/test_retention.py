"""Retention, on the real broker and database: after the period, nothing personal remains for
the person in any database; the purge publishes a tombstone that notification accepts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notification.app import create_app as notification_app
from services.orientation.app import create_app as orientation_app
from services.orientation.store import contexte_de, vers_document
from services.signalement.app import create_app as signalement_app
from shared.clock import ManualClock
from tests.inputs import random_nir
from tests.integration.signalement.test_partner_api import add_partner, fiche
from tests.support import eventually, read_all, running

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


async def _scan(mongo: Any, databases: list[str], needles: list[str]) -> list[str]:
    """Every (database.collection) whose documents contain one of ``needles``."""
    found = []
    for name in databases:
        db = mongo[name]
        for col in await db.list_collection_names():
            async for doc in db[col].find({}):
                text = str(doc)
                found += [f"{name}.{col}: {n}" for n in needles if n in text]
    return found


async def test_after_the_retention_nothing_personal_remains_and_the_tombstone_is_accepted(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Any
) -> None:
    clock = ManualClock(NOW)
    s_sig = make_settings("signalement", retention_days=30, retention_interval_seconds=3600)
    s_ori = make_settings("orientation", retention_days=30, retention_interval_seconds=3600,
                          retention_days_by_parcours={"renoncement-aux-soins": 90})
    s_not = make_settings("notification", data_dir=tmp_path, retention_days=30,
                          retention_interval_seconds=3600)
    nir = random_nir(random.Random(7))
    body = fiche(7, personne={**fiche(7)["personne"], "nir": nir,
                              "email": "rosalinde.lemoinebert@example.fr"})
    sig, ori, notif = signalement_app(s_sig, clock=clock), orientation_app(s_ori, clock=clock), \
        notification_app(s_not, clock=clock)
    async with running(sig) as http, running(ori), running(notif):
        key = await add_partner(sig, "ccas-evry")
        resp = await http.post("/v1/signalements", json=body, headers={"X-API-Key": key})
        assert resp.status_code == 202, resp.text
        reference = resp.json()["reference"]
        pseudo = (await mongo[s_sig.database_name]["signalements"].find_one(
            {"_id": reference}))["pseudonyme"]
        coord = mongo[s_not.database_name]["coordonnees"]
        assert await eventually(lambda: coord.find_one({"_id": pseudo}))
        people = mongo[s_ori.database_name]["personnes"]
        assert await eventually(lambda: people.find_one({"_id": pseudo}), timeout=60)
        dbs = [s.database_name for s in (s_sig, s_ori, s_not)]
        needles = ["Lemoinebert", "Rosalinde", nir, "0611223344", "06 11 22 33 44",
                   "Tilleuls", "rosalinde.lemoinebert"]
        assert await _scan(mongo, dbs, needles), "the scan must see the data before the purge"

        # the case closes (as orientation would record it); its parcours keeps data 90 days
        async def settled() -> Any:  # the demand and the task's outcome, both acknowledged
            etat = await ori.state.deps.store.trouver(pseudo)
            if etat is None or len(etat.contexte.journal) < 2 or etat.a_publier:
                return None
            return await people.find_one({"_id": pseudo})

        doc = await eventually(settled, timeout=60)
        ctx = contexte_de(doc)
        closed = ctx.model_copy(update={"dossiers": tuple(
            d.model_copy(update={"statut": "clos", "clos_le": NOW,
                                 "motif_cloture": "objectif-atteint"}) for d in ctx.dossiers)})
        await people.replace_one({"_id": pseudo},
                                 vers_document(closed, doc["version"], (), doc["maj_le"]))
        clock.set(NOW + timedelta(days=31))
        assert await ori.state.purge() == 0  # renoncement-aux-soins: 90 days, not yet
        assert await sig.state.purge() == 1
        assert await sig.state.purge() == 0  # idempotent
        clock.set(NOW + timedelta(days=91))
        assert await ori.state.purge() == 1
        assert await notif.state.purge() >= 0

        async def forgotten() -> bool:
            return await coord.find_one({"_id": pseudo}) is None

        await eventually(forgotten)
        left = await _scan(mongo, dbs, needles)
        assert left == [], left
        assert await people.find_one({"_id": pseudo}) is None
        for col in ("coordonnees", "contacts", "taches"):
            assert await mongo[s_not.database_name][col].find_one({"_id": pseudo}) is None
        referral = await mongo[s_sig.database_name]["signalements"].find_one({"_id": reference})
        assert "pseudonyme" not in referral and referral["purge_le"]
        seen = (await http.get(f"/v1/signalements/{reference}",
                               headers={"X-API-Key": key})).json()
        assert seen["reference"] == reference  # the partner still sees its status

    tombstones = [r for r in await read_all(s_sig.kafka_bootstrap_servers,
                                            s_sig.topic("personnes.coordonnees"))
                  if r.value is None]
    assert [t.key.decode() for t in tombstones] == [pseudo]
    dlq = await read_all(s_sig.kafka_bootstrap_servers, s_sig.topic("parcours.dlq"))
    assert dlq == [], [r.headers for r in dlq]

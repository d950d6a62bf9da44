"""Retention in orientation: a person's cases are deleted once every case is closed and the
retention of each case's parcours has passed since it closed (shared/retention.py).

The periodic job scans ``personnes`` (a rare job: on FerretDB any non-``_id`` filter scans
anyway) and deletes by ``_id``: the person's document, their outbox markers (``publies``)
and their ``connus`` entry. Idempotent: two instances, or a run interrupted and repeated,
delete the same documents. A person with an open case, or pending messages in the outbox,
is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.orientation.service import Deps
from shared.retention import retention


def purgeable(doc: dict[str, Any], deps: Deps, now: datetime) -> bool:
    ctx = doc.get("contexte") or {}
    dossiers = ctx.get("dossiers") or []
    if not dossiers:
        return False
    for d in dossiers:
        if d.get("statut") != "clos" or not d.get("clos_le"):
            return False
        clos = d["clos_le"]
        if isinstance(clos, str):
            clos = datetime.fromisoformat(clos)
        if clos + retention(deps.settings, d.get("parcours")) > now:
            return False
    return True


async def purge(deps: Deps) -> int:
    store, now = deps.store, deps.clock.now()
    n = 0
    async for doc in store.personnes.find({}, {"_id": 1, "contexte.dossiers": 1,
                                                "a_publier": 1}):
        if not purgeable(doc, deps, now):
            continue
        pseudonyme = doc["_id"]
        etat = await store.trouver(pseudonyme)
        if etat is None or etat.a_publier:  # messages not acknowledged yet: next run
            continue
        n += (await store.personnes.delete_one({"_id": pseudonyme})).deleted_count
        await store.connus.delete_one({"_id": pseudonyme})
    return n

"""Retention in orientation: a person's cases are deleted once every case is closed and the
retention of each case's parcours has passed since it closed (shared/retention.py).

The periodic job scans ``personnes`` (a rare job: on FerretDB any non-``_id`` filter scans
anyway) and deletes by ``_id``: the person's document, and their ``connus`` entry, which
earlier versions wrote. Idempotent: two instances, or a run interrupted and repeated,
delete the same documents. A person with an open case, or pending messages in the outbox,
is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.orientation.service import Deps
from services.orientation.store import contexte_de
from shared.retention import retention


def purgeable(doc: dict[str, Any], deps: Deps, now: datetime) -> bool:
    dossiers = contexte_de(doc).dossiers
    if not dossiers:
        return False
    for d in dossiers:
        if d.statut != "clos" or d.clos_le is None:
            return False
        if d.clos_le + retention(deps.settings, d.parcours) > now:
            return False
    return True


async def purge(deps: Deps) -> int:
    store, now = deps.store, deps.clock.now()
    n = 0
    async for doc in store.personnes.find({}, {"_id": 1, "contexte": 1, "a_publier": 1}):
        if not purgeable(doc, deps, now):
            continue
        pseudonyme = doc["_id"]
        etat = await store.trouver(pseudonyme)
        if etat is None or etat.a_publier:  # messages not acknowledged yet: next run
            continue
        n += (await store.personnes.delete_one({"_id": pseudonyme})).deleted_count
        await store.connus.delete_one({"_id": pseudonyme})
    return n

"""Orientation's periodic job: the cases past their parcours' maximum duration are closed
(``service.expirer_dossiers``: their pending actions cancelled, the decision published), and
a person's cases are deleted once every case is closed and the retention of each case's
parcours has passed since it closed (shared/retention.py). Without the first, a case whose
person sends nothing more would stay open, and its person would never be purged.

The periodic job scans ``personnes`` (a rare job: on FerretDB any non-``_id`` filter scans
anyway) and deletes by ``_id``: the person's document, and their ``connus`` entry, which
earlier versions wrote. Idempotent: two instances, or a run interrupted and repeated,
delete the same documents. A person with an open case, or pending messages in the outbox,
is kept.
"""

from __future__ import annotations

from datetime import datetime

from faststream.exceptions import NackMessage

from services.orientation.rules import PersonContext, expirer
from services.orientation.service import Deps, expirer_dossiers
from services.orientation.store import contexte_de
from shared.kafka import is_transient
from shared.logging import get_logger
from shared.retention import retention

log = get_logger("orientation")


def purgeable(contexte: PersonContext, deps: Deps, now: datetime) -> bool:
    dossiers = contexte.dossiers
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
    n = expired = 0
    async for doc in store.personnes.find({}, {"_id": 1, "version": 1, "contexte": 1,
                                               "a_publier": 1}):
        # a closing by an earlier run (no message caused it) whose messages the broker never
        # acknowledged: no input will bring this person back, so this job publishes them
        unpublished = [not await store.acquitte(doc["_id"], int(doc.get("version", 0)), e["cause"])
                       for e in doc.get("a_publier", ()) if e.get("evenement") is None]
        contexte = contexte_de(doc)
        if any(unpublished) or expirer(contexte, deps.catalogue, now).dossiers_clos:
            try:
                outcome = await expirer_dossiers(doc["_id"], deps)
            except NackMessage:  # the person's consumer kept writing: the next run
                outcome = None
            except Exception as exc:
                if is_transient(exc):  # the broker or the database is away: the next run
                    raise
                # one person's bug must not stop the job for every other person
                log.exception("dossiers non clos, erreur inattendue")
                outcome = None
            expired += len(outcome.dossiers_clos) if outcome else 0
            continue  # closed now: its retention starts now
        if not purgeable(contexte, deps, now):
            continue
        pseudonyme = doc["_id"]
        etat = await store.trouver(pseudonyme)
        if etat is None or etat.a_publier:  # messages not acknowledged yet: next run
            continue
        n += (await store.personnes.delete_one({"_id": pseudonyme})).deleted_count
        await store.connus.delete_one({"_id": pseudonyme})
    if expired:
        log.info("dossiers clos, durée maximale dépassée", nombre=expired)
    return n

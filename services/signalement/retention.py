"""Retention in signalement: partners' referrals lose their personal fields, and the person's
contact data is tombstoned downstream, once the retention has passed since receipt.

Signalement does not see cases close; a referral is handed over within 48 business hours, so
the retention (``retention_days``, or the per-parcours value of the referral's ``situation``
when one is configured) counts from its receipt. The job, idempotent:
1. publishes a tombstone on ``personnes.coordonnees`` (key = pseudonym, null value): notification
   then forgets the person (contact data, tasks, letters) and compaction drops the last
   contact record;
2. removes the referral's ``pseudonyme`` (by ``_id``): what remains (reference, partner,
   situation, status history, which the partner may still read) no longer points to anyone;
3. deletes the stored event markers' personal fields (none are stored: ``evenements`` holds
   ids and the demand id only) and the ``idempotence`` entries of the referral.
The safety flags of ``personnes`` (deceased, at risk) are kept: they protect the person if a
later event arrives, and hold no identity.
"""

from __future__ import annotations

from services.signalement.service import Deps
from shared import topics
from shared.retention import expired


async def purge(deps: Deps) -> int:
    store, s, now = deps.store, deps.settings, deps.clock.now()
    n = 0
    async for doc in store.signalements.find({"pseudonyme": {"$exists": True}}):
        if not expired(s, doc.get("situation"), doc.get("recu_le"), now):
            continue
        if not doc.get("publie"):
            continue  # not handed over yet: the intake still needs it
        pseudonyme = doc["pseudonyme"]
        await deps.raw.send_many([(s.topic(topics.COORDONNEES), None,
                                   str(pseudonyme).encode("utf-8"), [])])
        await store.signalements.update_one(
            {"_id": doc["_id"]}, {"$unset": {"pseudonyme": ""},
                                  "$set": {"purge_le": now}})
        await store.idempotence.delete_many({"reference": doc["_id"]})
        n += 1
    return n

"""Retention in notification: forget a person on a tombstone, purge closed tasks and letters.

- A tombstone on ``personnes.coordonnees`` (key = pseudonym, null value: signalement purged
  the person) deletes everything notification holds about that person: contact data, the
  contact history of the cap, tasks, letters (documents and PDF files), actions, attempts and
  pending timers.
- The periodic job deletes tasks closed (``terminee``) and letters produced more than the
  parcours' retention ago (shared/retention.py).
Deletes are idempotent (redelivered tombstones, two instances): they change nothing twice.
"""

from __future__ import annotations

import shutil
from typing import Any

from services.notification.service import Deps
from shared.retention import expired


async def forget_person(pseudonyme: str, deps: Deps) -> int:
    store = deps.store
    n = 0
    actions = [d["_id"] async for d in store.actions.find({"action.pseudonyme": pseudonyme},
                                                            {"_id": 1})]
    for aid in actions:
        letter = await store.courriers.find_one({"_id": aid})
        if letter is not None:
            _delete_files(deps, letter)
    if actions:
        for col in (store.courriers, store.envois, store.actions):
            n += (await col.delete_many({"_id": {"$in": actions}})).deleted_count
        n += (await store.minuteries.delete_many({"action_id": {"$in": actions}})).deleted_count
    n += await store.forget_tasks([t["_id"] async for t in store.taches.find(
        {"pseudonyme": pseudonyme}, {"_id": 1})])
    for col in (store.coordonnees, store.contacts):
        n += (await col.delete_one({"_id": pseudonyme})).deleted_count
    return n


async def purge(deps: Deps) -> int:
    """Closed tasks and letters past their parcours' retention."""
    now, s, store = deps.clock.now(), deps.settings, deps.store
    n = 0
    async for task in store.taches.find({"statut": "terminee"}):
        if expired(s, task.get("parcours"), task.get("issue_le"), now):
            n += await store.forget_tasks([task["_id"]])
    async for letter in store.courriers.find({}):
        if expired(s, letter.get("parcours"), letter.get("le"), now):
            _delete_files(deps, letter)
            n += (await store.courriers.delete_one({"_id": letter["_id"]})).deleted_count
    return n


def _delete_files(deps: Deps, letter: dict[str, Any]) -> None:
    day = deps.letters_dir / str(letter.get("jour", ""))
    for name in letter.get("fichiers", []):
        path = day / str(name)
        if path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)

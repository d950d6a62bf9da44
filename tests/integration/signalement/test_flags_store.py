"""The persons' safety flags, appended in one insert per batch, on the real database."""

from __future__ import annotations

from typing import Any

from services.signalement.store import PersonFlags, SignalementStore


async def test_a_batch_appends_next_versions_and_a_raced_person_takes_the_one_after(
    make_settings: Any, mongo: Any
) -> None:
    settings = make_settings("signalement")
    store = SignalementStore(mongo, settings.database_name)
    await store.set_person_flags("p-a", PersonFlags(violences=True), 0)  # version 1
    # p-a was read at version 0 by this batch while another writer appended version 1
    await store.set_persons_flags([("p-a", PersonFlags(decede=True), 0),
                                   ("p-b", PersonFlags(decede=True), 0)])
    assert await store.person_flags("p-a") == (PersonFlags(decede=True), 2)
    assert await store.person_flags("p-b") == (PersonFlags(decede=True), 1)

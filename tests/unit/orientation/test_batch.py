"""Orientation's batches, without I/O (fake store and publisher): persons seen for the first
time decided in memory and stored, published and acknowledged together; the others one input
at a time, in order, several persons at once; a poison input alone; an outage for the whole
batch. The same batches on the real broker and database: tests/integration/orientation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymongo.errors import AutoReconnect

from services.orientation import handlers
from services.orientation.service import Deps, Entree, Message, Metrics, traiter_lot
from services.orientation.store import depuis_document
from shared.clock import ManualClock
from shared.cloudevents import new_event
from shared.contracts import internes as i
from shared.kafka import Reason
from shared.settings import Settings
from tests.unit.orientation.test_decide import NOW, catalogue, demande


@dataclass
class Store:
    known: set[str] = field(default_factory=set)
    taken_by_another: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)
    docs: list[dict[str, Any]] = field(default_factory=list)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)
    outage: bool = False

    async def inserer_nouveaux(self, docs: list[dict[str, Any]]) -> set[str]:
        if self.outage:
            raise AutoReconnect("database gone")
        self.log.append(f"store {len(docs)}")
        there = self.known | self.taken_by_another
        self.docs += [d for d in docs if d["_id"] not in there]
        return {d["_id"] for d in docs} & there

    async def publies_nouveaux(self, causes: list[tuple[str, str]]) -> None:
        self.log.append(f"acknowledged {len(causes)}")
        self.acknowledged += causes


@dataclass
class Raw:
    rejected: list[tuple[Any, Reason]] = field(default_factory=list)

    async def reject(self, records: Any, topic: str, by: str) -> None:
        self.rejected.extend(records)


def deps_of(store: Store, sent: list[Sequence[Message]]) -> Deps:
    async def publier(batch: Sequence[Message]) -> None:
        sent.append(batch)
        store.log.append(f"publish {len(batch)}")

    return Deps(settings=Settings(), store=store, clock=ManualClock(NOW),  # type: ignore[arg-type]
                catalogue=catalogue(), merge_window_days=7, broker=None,  # type: ignore[arg-type]
                raw=Raw(), metrics=Metrics(CollectorRegistry(), "test"),  # type: ignore[arg-type]
                publier=publier)


def entree(deps: Deps, person: str, n: int, evenement: str = "retraite") -> Entree:
    d = demande(evenement, f"dem-{person}-{n}", pseudonyme=person,
                drapeaux={"sans_complementaire": True})
    return Entree.of(new_event(type=i.DEMANDE, source="urn:test", id=d.demande_id, data=d,
                               time=NOW), deps, source=f"record {person}-{n}")


@pytest.fixture
def one_by_one(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Entree.traiter (the known persons' path) replaced by a recorder that yields to the loop
    as a database would."""
    seen: dict[str, Any] = {"order": [], "running": 0, "most": 0}

    async def traiter(self: Entree, deps: Deps) -> None:
        seen["running"] += 1
        seen["most"] = max(seen["most"], seen["running"])
        try:
            await asyncio.sleep(0.01)
            if "poison" in self.cause:
                raise ValueError("refused by the rules")
            if "outage" in self.cause:
                raise AutoReconnect("database gone")
            seen["order"].append(self.cause)
        finally:
            seen["running"] -= 1

    monkeypatch.setattr(Entree, "traiter", traiter)
    return seen


async def test_new_persons_are_stored_published_and_acknowledged_together() -> None:
    store, sent = Store(), []
    deps = deps_of(store, sent)
    groups = [[entree(deps, p, 0)] for p in ("p1", "p2", "p3")]
    await traiter_lot(groups, deps, 8, lambda e, exc: pytest.fail(str(exc)))
    assert store.log == ["store 3", "publish 15", "acknowledged 3"]
    assert {d["_id"] for d in store.docs} == {"p1", "p2", "p3"}
    assert all(d["version"] == 1 for d in store.docs)
    assert sorted(store.acknowledged) == [("p1", "dem-p1-0"), ("p2", "dem-p2-0"),
                                          ("p3", "dem-p3-0")]


async def test_a_new_persons_inputs_are_decided_in_order_into_one_document() -> None:
    store, sent = Store(), []
    deps = deps_of(store, sent)
    group = [entree(deps, "p1", 0), entree(deps, "p1", 1, "entree-ald")]
    await traiter_lot([group], deps, 8, lambda e, exc: pytest.fail(str(exc)))
    [doc] = store.docs
    etat = depuis_document(doc)
    assert [a.cause for a in etat.a_publier] == ["dem-p1-0", "dem-p1-1"], "both in the outbox"
    assert list(etat.contexte.journal) == ["dem-p1-0", "dem-p1-1"], "decided in offset order"
    causes = [e.causationid for _, e, _ in sent[0]]
    assert causes.index("dem-p1-1") > max(k for k, c in enumerate(causes) if c == "dem-p1-0")


async def test_the_same_input_twice_in_a_batch_is_decided_once() -> None:
    store, sent = Store(), []
    deps = deps_of(store, sent)
    twice = entree(deps, "p1", 0)
    await traiter_lot([[twice, twice]], deps, 8, lambda e, exc: pytest.fail(str(exc)))
    assert len(sent[0]) == 5 and store.acknowledged == [("p1", "dem-p1-0")]


async def test_known_persons_go_one_input_at_a_time_in_order_several_at_once(
    one_by_one: dict[str, Any],
) -> None:
    store, sent = Store(known={"a", "b", "c", "d"}), []
    deps = deps_of(store, sent)
    groups = [[entree(deps, p, n) for n in range(4)] for p in "abcd"]
    await traiter_lot(groups, deps, 8, lambda e, exc: pytest.fail(str(exc)))
    for p in "abcd":
        assert [c for c in one_by_one["order"] if c.startswith(f"dem-{p}-")] == [
            f"dem-{p}-{n}" for n in range(4)]
    assert one_by_one["most"] == 4 and sent == [] and store.docs == [], \
        "tried as new persons, found stored: nothing written, nothing published by that path"


async def test_concurrency_is_bounded(one_by_one: dict[str, Any]) -> None:
    store = Store(known={f"p{k}" for k in range(20)})
    deps = deps_of(store, [])
    await traiter_lot([[entree(deps, f"p{k}", 0)] for k in range(20)], deps, 3,
                      lambda e, exc: pytest.fail(str(exc)))
    assert len(one_by_one["order"]) == 20 and one_by_one["most"] == 3


async def test_a_new_person_another_writer_stored_first_goes_one_input_at_a_time(
    one_by_one: dict[str, Any],
) -> None:
    store, sent = Store(taken_by_another={"p2"}), []
    deps = deps_of(store, sent)
    await traiter_lot([[entree(deps, "p1", 0)], [entree(deps, "p2", 0)]], deps, 8,
                      lambda e, exc: pytest.fail(str(exc)))
    assert one_by_one["order"] == ["dem-p2-0"]
    assert store.acknowledged == [("p1", "dem-p1-0")] and len(sent[0]) == 5


async def test_a_poison_input_goes_alone_and_its_person_goes_on(one_by_one: dict[str, Any]) -> None:
    store = Store(known={"a"})
    deps = deps_of(store, [])
    poison = entree(deps, "a", 1)
    poison = Entree(poison.pseudonyme, "dem-a-poison", poison.event, poison.kind, poison.what,
                    poison.decider, "record a-poison")
    refused: list[Entree] = []
    await traiter_lot([[entree(deps, "a", 0), poison, entree(deps, "a", 2)]], deps, 8,
                      lambda e, exc: refused.append(e))
    assert refused == [poison] and one_by_one["order"] == ["dem-a-0", "dem-a-2"]


async def test_an_outage_is_raised_once_the_others_finished(one_by_one: dict[str, Any]) -> None:
    store = Store(known={"a", "b"})
    deps = deps_of(store, [])
    down = entree(deps, "a", 0)
    down = Entree(down.pseudonyme, "dem-a-outage", down.event, down.kind, down.what,
                  down.decider)
    with pytest.raises(AutoReconnect):
        await traiter_lot([[down, entree(deps, "a", 1)], [entree(deps, "b", 0)]], deps, 8,
                          lambda e, exc: pytest.fail("an outage is never poison"))
    assert one_by_one["order"] == ["dem-b-0"], "the person stopped at the outage"


# --------------------------------------------------------------------------- the handler


@dataclass
class Rec:
    key: bytes | None
    value: bytes | None


def record(deps: Deps, person: str, n: int) -> Rec:
    return Rec(person.encode(), entree(deps, person, n).event.to_bytes())


async def test_the_handler_dead_letters_what_is_not_an_input_and_takes_the_rest() -> None:
    store, sent = Store(), []
    deps = deps_of(store, sent)
    bad = [Rec(b"k", b"\xff not json"), Rec(b"k", json.dumps({"type": "autre"}).encode()),
           Rec(b"k", None)]
    good = [record(deps, "p1", 0), record(deps, "p2", 0)]
    await handlers.handle_batch((bad[0], good[0], bad[1], good[1], bad[2]), deps, "dlq", 8)
    assert [r for r, _ in deps.raw.rejected] == bad  # type: ignore[attr-defined]
    codes = [reason.code for _, reason in deps.raw.rejected]  # type: ignore[attr-defined]
    assert codes == ["erreur.UnicodeDecodeError", "erreur.TypeInattendu", "erreur.TypeError"]
    assert {d["_id"] for d in store.docs} == {"p1", "p2"}


async def test_the_handler_dead_letters_nothing_when_the_batch_fails() -> None:
    store = Store(outage=True)
    deps = deps_of(store, [])
    with pytest.raises(AutoReconnect):
        await handlers.handle_batch((Rec(b"k", b"not json"), record(deps, "p1", 0)), deps,
                                    "dlq", 8)
    assert deps.raw.rejected == [], "read again after the outage, dead-lettered then, once"  # type: ignore[attr-defined]


def test_by_person_keeps_offset_order() -> None:
    deps = deps_of(Store(), [])
    es = [entree(deps, "a", 1), entree(deps, "b", 2), entree(deps, "a", 3), entree(deps, "b", 4)]
    assert [[e.cause for e in g] for g in handlers.by_person(es)] == [
        ["dem-a-1", "dem-a-3"], ["dem-b-2", "dem-b-4"]]


async def test_an_outcome_goes_one_input_at_a_time_without_being_tried_as_new(
    one_by_one: dict[str, Any],
) -> None:
    store, sent = Store(), []
    deps = deps_of(store, sent)
    r = i.Resultat(resultat_id="res-1", pseudonyme="p9", action_id="a-1", dossier_id="c-1",
                   parcours="accompagnement-des-seniors", statut="envoye", survenu_le=NOW)
    outcome = Entree.of(new_event(type=i.RESULTAT, source="urn:test", id="res-1", data=r,
                                  time=NOW), deps)
    await traiter_lot([[outcome]], deps, 8, lambda e, exc: pytest.fail(str(exc)))
    assert one_by_one["order"] == ["res-1"] and store.docs == [] and sent == []


async def test_a_group_the_rules_refuse_on_an_empty_context_is_decided_again_alone(
    one_by_one: dict[str, Any],
) -> None:
    store, sent = Store(), []
    deps = deps_of(store, sent)
    ok = entree(deps, "p1", 0)

    def refuse(ctx: Any, now: Any) -> Any:
        raise ValueError("not on an empty context")

    odd = entree(deps, "p2", 0)
    odd = Entree(odd.pseudonyme, odd.cause, odd.event, odd.kind, odd.what, refuse, odd.source)
    refused: list[Entree] = []
    await traiter_lot([[ok], [odd]], deps, 8, lambda e, exc: refused.append(e))
    assert refused == [], "not poison before it is decided against the stored context"
    assert one_by_one["order"] == ["dem-p2-0"] and [d["_id"] for d in store.docs] == ["p1"]

"""orientation's shell without I/O: start-up validation of the catalogue, the stored document,
the messages built from an outcome, and the order of effects (store, publish, acknowledge)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from services.orientation.api import vue_personne
from services.orientation.app import OrientationConfig, create_app
from services.orientation.catalogue import DEFAULT_PATH, CatalogueError
from services.orientation.rules import PersonContext
from services.orientation.service import Deps, Message, Metrics, messages, orienter
from services.orientation.store import (
    ConflitEcriture,
    EnAttente,
    EtatPersonne,
    depuis_document,
    vers_document,
)
from shared.clock import ManualClock
from shared.cloudevents import CloudEvent, new_event
from shared.contracts import internes as i
from shared.settings import Settings
from tests.unit.orientation.test_decide import NOW, PSEUDO, catalogue, demande, suite

# --------------------------------------------------------------------------- start-up


def _catalogue_file(tmp_path: Path, change: Any) -> Path:
    raw = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_an_invalid_catalogue_stops_the_service_at_start_up_naming_every_problem(
    tmp_path: Path,
) -> None:
    def break_it(raw: dict[str, Any]) -> None:
        seniors = next(p for p in raw["parcours"] if p["id"] == "accompagnement-des-seniors")
        seniors["plan"][2]["action"] = "pigeon"
        seniors["plan"][2]["condition"] = "inconnue"

    with pytest.raises(CatalogueError) as err:
        create_app(Settings(), config=OrientationConfig(
            catalogue_path=_catalogue_file(tmp_path, break_it)))
    message = str(err.value)
    assert "accompagnement-des-seniors" in message and "m9-sans-complementaire" in message
    assert "pigeon" in message


def test_a_catalogue_where_death_triggers_no_parcours_is_refused(tmp_path: Path) -> None:
    def no_death(raw: dict[str, Any]) -> None:
        raw["parcours"] = [p for p in raw["parcours"] if p["id"] != "perte-d-un-proche"]

    with pytest.raises(CatalogueError, match="deces"):
        create_app(Settings(), config=OrientationConfig(
            catalogue_path=_catalogue_file(tmp_path, no_death)))


def test_an_unreadable_catalogue_says_so(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text("version: [unclosed", encoding="utf-8")
    with pytest.raises(CatalogueError, match="YAML illisible"):
        create_app(Settings(), config=OrientationConfig(catalogue_path=path))


# --------------------------------------------------------------------------- stored document


def test_the_stored_document_gives_back_the_same_context_and_journal_order() -> None:
    outcomes = suite(demande(drapeaux={"sans_complementaire": True}),
                     demande("deces", "dem-deces", date_effet=date(2026, 3, 1),
                             drapeaux={"proche_connu": True}))
    ctx = outcomes[-1].contexte
    outbox = (EnAttente("dem-deces", "ce-1", "corr-1"),)
    doc = vers_document(ctx, 3, outbox, NOW)
    assert doc["_id"] == PSEUDO and doc["version"] == 3
    assert isinstance(doc["contexte"], str), "one value for the database, never field names"
    back = depuis_document(doc)
    assert back.contexte == ctx and back.version == 3 and back.a_publier == outbox
    assert list(back.contexte.journal) == ["dem-1", "dem-deces"]


def test_a_document_stored_nested_before_the_context_became_text_is_still_read() -> None:
    outcomes = suite(demande(drapeaux={"sans_complementaire": True}),
                     demande("deces", "dem-deces", date_effet=date(2026, 3, 1),
                             drapeaux={"proche_connu": True}))
    ctx = outcomes[-1].contexte
    nested = ctx.model_dump(mode="json")
    nested["journal"] = list(nested["journal"].values())  # the former layout
    back = depuis_document({"_id": PSEUDO, "version": 2, "contexte": nested, "a_publier": []})
    assert back.contexte == ctx and list(back.contexte.journal) == ["dem-1", "dem-deces"]


# --------------------------------------------------------------------------- messages


def test_messages_have_ids_derived_from_the_cause_and_content_in_a_safe_order() -> None:
    retraite, deces = suite(demande(drapeaux={"sans_complementaire": True}),
                            demande("deces", "dem-deces", drapeaux={"proche_connu": True}))
    attente = EnAttente("dem-deces", "ce-deces", "ev-origine")
    first = messages(deces, attente, NOW)
    again = messages(deces, attente, datetime(2027, 1, 1, tzinfo=NOW.tzinfo))
    assert [e.id for _, e, _ in first] == [e.id for _, e, _ in again], "same ids on replay"
    assert len({e.id for _, e, _ in first}) == len(first)
    types = [e.type for _, e, _ in first]
    assert types == sorted(types, key=[i.ACTION_ANNULEE, i.ACTION_PLANIFIEE,
                                       i.DECISION].index), "cancel, plan, then explain"
    assert {k for _, _, k in first} == {PSEUDO}
    assert {(e.causationid, e.correlationid) for _, e, _ in first} == {("ce-deces",
                                                                        "ev-origine")}
    other = messages(retraite, EnAttente("dem-1", "ce-1", "ev-1"), NOW)
    assert not {e.id for _, e, _ in first} & {e.id for _, e, _ in other}


def test_the_agents_view_puts_each_explanation_under_its_case() -> None:
    (o,) = suite(demande(drapeaux={"sans_complementaire": True}))
    vue = vue_personne(o.contexte, catalogue())
    (dossier,) = vue.dossiers
    assert dossier.nom == "Accompagnement des seniors"
    assert [e.statut for e in dossier.explications] == ["ouvert"]
    assert len(dossier.actions) == 4 and not vue.autres_decisions


# --------------------------------------------------------------------------- order of effects


class _Store:
    """In memory, with the version check of the real one (unit tests only)."""

    def __init__(self, conflicts: int = 0) -> None:
        self.etat: EtatPersonne | None = None
        self.conflicts = conflicts
        self.log: list[str] = []

    async def charger(self, pseudonyme: str) -> EtatPersonne:
        return self.etat or EtatPersonne(contexte=PersonContext(pseudonyme=pseudonyme))

    async def enregistrer(self, avant: EtatPersonne, contexte: PersonContext,
                          a_publier: tuple[EnAttente, ...], now: datetime) -> EtatPersonne:
        if self.conflicts:
            self.conflicts -= 1
            self.log.append("conflit")
            raise ConflitEcriture(contexte.pseudonyme)
        self.etat = EtatPersonne(contexte, avant.version + 1, a_publier)
        self.log.append(f"store {[e.cause for e in a_publier]}")
        return self.etat

    async def publie(self, etat: EtatPersonne, cause: str) -> EtatPersonne:
        self.etat = EtatPersonne(etat.contexte, etat.version,
                                 tuple(e for e in etat.a_publier if e.cause != cause))
        self.log.append(f"acknowledged {cause}")
        return self.etat


def _deps(store: _Store, sent: list[Sequence[Message]]) -> Deps:
    async def publier(batch: Sequence[Message]) -> None:
        sent.append(batch)
        store.log.append(f"publish {len(batch)}")

    return Deps(settings=Settings(), store=store, clock=ManualClock(NOW),  # type: ignore[arg-type]
                catalogue=catalogue(), merge_window_days=7, broker=None,  # type: ignore[arg-type]
                raw=None, metrics=Metrics(CollectorRegistry(), "test"),  # type: ignore[arg-type]
                publier=publier)


def _event(d: i.Demande) -> CloudEvent[Any]:
    return new_event(type=i.DEMANDE, source="urn:test", id=d.demande_id, data=d, time=NOW)


async def test_state_and_outbox_are_stored_before_publishing_and_cleared_after() -> None:
    store, sent = _Store(), []
    await orienter(_event(demande(drapeaux={"sans_complementaire": True})), _deps(store, sent))
    assert store.log == ["store ['dem-1']", "publish 5", "acknowledged dem-1"]
    assert store.etat is not None and store.etat.a_publier == ()


async def test_a_write_conflict_decides_again_from_the_fresh_document() -> None:
    store, sent = _Store(conflicts=2), []
    await orienter(_event(demande(drapeaux={"sans_complementaire": True})), _deps(store, sent))
    assert store.log[:2] == ["conflit", "conflit"] and len(sent) == 1


async def test_a_cause_left_in_the_outbox_is_published_before_the_next_input() -> None:
    store, sent = _Store(), []
    (o,) = suite(demande(drapeaux={"sans_complementaire": True}))
    store.etat = EtatPersonne(o.contexte, 1, (EnAttente("dem-1", "ce-1", "ev-1"),))
    await orienter(_event(demande("entree-ald", "dem-2", date_effet=date(2026, 3, 1))),
                   _deps(store, sent))
    assert store.log[:2] == ["publish 5", "acknowledged dem-1"]
    assert [e.id for _, e, _ in sent[0]] == [e.id for _, e, _ in messages(
        o, EnAttente("dem-1", "ce-1", "ev-1"), NOW)]


async def test_a_redelivered_input_already_acknowledged_publishes_nothing() -> None:
    store, sent = _Store(), []
    deps = _deps(store, sent)
    event = _event(demande(drapeaux={"sans_complementaire": True}))
    await orienter(event, deps)
    await orienter(event, deps)
    assert len(sent) == 1

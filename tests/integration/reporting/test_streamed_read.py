"""A read of reporting's store on the real database: the facts come person by person (each
collection in pseudonym order, merged) and make the same figures as all the facts at once."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from pymongo import AsyncMongoClient

from services.reporting import indicators as ind
from services.reporting import projections as p
from services.reporting.store import ReportingStore
from shared import topics as t
from shared.contracts import internes as i
from tests.conftest import unique
from tests.integration.reporting import scenarios

REJECTS = [
    {"_id": f"rejet-{n}", "code": code, "rejete_le": scenarios.MISAS_NOW, "rejete_par": "x",
     "topic_origine": "evenements-vie", "ce_type": None}
    for n, code in enumerate(("nir.cle", "nir.cle", "contrat"))
]


def written(events: dict[str, list[Any]]) -> dict[str, tuple[list[Any], list[Any]]]:
    """By collection: the documents and the fields a store write takes, as the consumers
    project them."""
    fields = [
        (e.data.action_id, p.action_planned_fields(e) if e.type == i.ACTION_PLANIFIEE
         else p.action_cancelled_fields(e))
        for e in events.get(t.ACTIONS, [])
    ]
    return {
        "demandes": ([p.demande_fact(e) for e in events.get(t.DEMANDES, [])], []),
        "decisions": ([p.decision_fact(e) for e in events.get(t.DECISIONS, [])], []),
        "actions": ([], fields),
        "resultats": ([p.resultat_fact(e) for e in events.get(t.RESULTATS, [])], []),
        "rejets": (REJECTS, []),
    }


async def test_facts_come_person_by_person_and_make_the_figures_of_the_whole_store(
    mongo: AsyncMongoClient[Any],
) -> None:
    events: dict[str, list[Any]] = {}
    for part in (scenarios.misas(), scenarios.cohort()):
        for topic, evs in part.items():
            events.setdefault(topic, []).extend(evs)
    store = ReportingStore(mongo, unique("streamed"))
    await store.ensure_indexes()
    rng = random.Random(7)
    for name, (docs, fields) in written(events).items():
        # in batches whose order is not the pseudonyms' (as a topic's partitions deliver them);
        # an action's fields in their event order (planned, then cancelled)
        docs = rng.sample(docs, len(docs))
        for k in range(0, max(len(docs), len(fields)), 37):
            await store.write(name, docs[k:k + 37], fields[k:k + 37])
    stored = ind.Facts(**{name: [d async for d in store.db[name].find({})]
                          for name in ind.FACT_KINDS})
    persons = {d["pseudonyme"] for name in ind.PERSON_FACTS for d in getattr(stored, name)}
    assert len(persons) > 150

    seen: list[str] = []
    async for one in store.persons(batch_size=7):  # several batches per collection
        who = {d["pseudonyme"] for name in ind.PERSON_FACTS for d in getattr(one, name)}
        assert len(who) == 1, "one person at a time"
        seen.append(who.pop())
        assert one.rejets == []
    assert seen == sorted(persons), "each person once, in pseudonym order"

    streamed = await store.fill(ind.Cube(scenarios.MISAS_NOW))
    assert streamed.persons == len(persons)
    assert streamed.facts == stored.size()
    whole = ind.Cube(scenarios.MISAS_NOW)
    whole.add_person(stored)  # every fact at once: the joins across the whole store
    for table in ind.TABLES:
        for f in (ind.Filtre(granularite="mois"),
                  ind.Filtre(granularite="jour", par=("parcours", "detecteur")),
                  ind.Filtre(du=date(2026, 3, 5), au=date(2026, 3, 9), par=("canal",))):
            expected = whole.rows(table, f)
            assert streamed.rows(table, f) == expected, (table, f)
    assert sum(r["valeur"] for r in streamed.rows("volumes", ind.Filtre(granularite="mois"))
               if r["indicateur"] == "evenements-rejetes") == 3
    assert streamed.rows("misas", ind.Filtre(granularite="mois"))
    assert streamed.rows("conversion", ind.Filtre(granularite="mois"))

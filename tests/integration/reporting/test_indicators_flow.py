"""reporting's indicators from events fed through the real broker into the real database."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from services.reporting.app import create_app
from services.reporting.indicators import TABLE_COLUMNS, TABLES
from services.reporting.rebuild import rewind_groups
from shared import topics as t
from shared.clock import ManualClock
from shared.kafka import H_AT, H_BY, H_CODE, H_OFFSET, H_PARTITION, H_TOPIC
from tests.integration.reporting import builders as b
from tests.integration.reporting import scenarios
from tests.support import auth_headers, eventually, produce, running


async def publish(settings: Any, events: scenarios.Events) -> int:
    n = 0
    for topic, evs in events.items():
        await produce(
            settings.kafka_bootstrap_servers, settings.topic(topic), [b.record(e) for e in evs]
        )
        n += len(evs)
    return n


async def caught_up(http: Any, expected: dict[str, int], timeout: float = 120) -> dict[str, Any]:  # noqa: ASYNC109 - passed on to eventually()
    """Until reporting's groups have committed every record (expected = records per topic)."""

    async def check() -> Any:
        body = (await http.get("/v1/etat")).json()
        mine = {
            r["topic"]: r
            for r in body["retard_consommateurs"]
            if r["groupe"].startswith("reporting-")
        }
        ok = all(
            mine.get(topic, {}).get("engage") == n and mine[topic]["retard"] == 0
            for topic, n in expected.items()
        )
        return body if ok else None

    return await eventually(check, timeout=timeout, interval=0.5)


def counts(events: scenarios.Events, extra: dict[str, int] | None = None) -> dict[str, int]:
    out = {topic: len(evs) for topic, evs in events.items()}
    for k, v in (extra or {}).items():
        out[k] = out.get(k, 0) + v
    return out


async def test_cohort_conversion_after_the_m9_letter_is_42_33_percent(
    topics: str, make_settings: Any
) -> None:
    s = make_settings("reporting")
    events = scenarios.cohort()
    async with running(create_app(s, clock=ManualClock(scenarios.COHORT_NOW))) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        await publish(s, events)
        await caught_up(http, counts(events))
        body = (await http.get("/v1/indicateurs/conversion", params={"granularite": "mois"})).json()
        late = (
            await http.get(
                "/v1/indicateurs/conversion", params={"granularite": "mois", "fenetre_mois": 12}
            )
        ).json()
        csv_text = (await http.get("/v1/indicateurs/conversion.csv?granularite=mois")).text
    [row] = body["lignes"]
    assert (
        row["personnes"],
        row["converties_dans_la_fenetre"],
        row["converties_apres_la_fenetre"],
    ) == (scenarios.COHORT_N, scenarios.COHORT_CONVERTED, scenarios.COHORT_LATE)
    assert row["taux_conversion"] == 0.4233
    assert late["lignes"][0]["converties_dans_la_fenetre"] == 127 + 11
    [csv_row] = list(csv.DictReader(io.StringIO(csv_text)))
    assert csv_row["taux_conversion"] == "0.4233" and csv_row["personnes"] == "300"


PERSON = {
    "nir": "2640391228004 21",
    "nom": "DUPONTEL",
    "prenom": "Héloïse",
    "adresse": "12 rue des Glycines",
    "telephone": "0612345678",
}


def reject_record(n: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A reject as signalement publishes it: the refused input (with personal data) as value."""
    value = json.dumps(
        {
            "specversion": "1.0",
            "type": "fr.x.retraite",
            "data": {
                "assure": {
                    "nir": PERSON["nir"].replace(" ", ""),
                    "nom": PERSON["nom"],
                    "prenom": PERSON["prenom"],
                    "adresse": {"ligne1": PERSON["adresse"]},
                    "telephone": PERSON["telephone"],
                }
            },
        }
    ).encode()
    code = b"nir.cle" if n % 3 else b"json.invalide"
    return (
        b"upstream-key",
        value,
        [
            (H_CODE, code),
            (H_TOPIC, b"evenements-vie"),
            (H_PARTITION, b"1"),
            (H_OFFSET, str(n).encode()),
            (H_AT, f"2026-03-1{n % 5}T10:00:00+00:00".encode()),
            (H_BY, b"signalement"),
        ],
    )


async def snapshot(http: Any) -> dict[str, Any]:
    out = {}
    for table in TABLES:
        for params in (
            {"granularite": "mois"},
            {"granularite": "jour", "par": "detecteur,parcours"},
            {"granularite": "semaine", "par": "departement,commune,canal"},
        ):
            body = (await http.get(f"/v1/indicateurs/{table}", params=params)).json()
            out[f"{table}?{sorted(params.items())}"] = body["lignes"]
    return out


async def dump(mongo: Any, database: str) -> str:
    db = mongo[database]
    docs = []
    for name in await db.list_collection_names():
        docs += [repr(d) async for d in db[name].find({})]
    return "\n".join(docs)


async def test_hand_checked_scenario_csv_rebuild_and_no_personal_data(
    topics: str, make_settings: Any, mongo: Any
) -> None:
    s = make_settings("reporting")
    events = scenarios.misas()
    rejects = [reject_record(n) for n in range(6)]
    expected = counts(events, {t.REJETS: len(rejects)})
    clock = ManualClock(scenarios.MISAS_NOW)
    async with running(create_app(s, clock=clock)) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        await publish(s, events)
        await produce(s.kafka_bootstrap_servers, s.topic(t.REJETS), rejects)
        await caught_up(http, expected)
        p48 = (await http.get("/v1/indicateurs/prise-en-charge-48h?granularite=mois")).json()
        misas = (
            await http.get("/v1/indicateurs/misas?granularite=mois&parcours=renoncement-aux-soins")
        ).json()
        rejets = (await http.get("/v1/indicateurs/rejets?granularite=mois")).json()
        csvs = {
            table: await http.get(f"/v1/indicateurs/{table}.csv", params={"par": "detecteur"})
            for table in TABLES
        }
        csv_alt = await http.get(
            "/v1/indicateurs/volumes", params={"format": "csv", "par": "detecteur"}
        )
        page = await http.get("/")
        page2 = await http.get("/tableau-de-bord")
        data = (await http.get("/v1/tableau-de-bord/donnees?granularite=mois")).json()
        openapi = (await http.get("/openapi.json")).json()
        before = await snapshot(http)

    assert p48["lignes"] == [
        {
            "periode": "2026-03",
            "prises_en_charge_dues": 6,
            "dans_les_delais": 4,
            "hors_delai": 2,
            "en_cours": 1,
            "taux_48h": 0.6667,
            "delai_median_heures_ouvrees": 24.0,
            "delai_p90_heures_ouvrees": 52.0,
        }
    ]
    assert misas["lignes"][0]["indicateur_composite"] == 0.48
    assert (
        misas["lignes"][0]["avec_soins_ou_inclusion"],
        misas["lignes"][0]["interrompus"],
        misas["lignes"][0]["interrompus_avec_droits"],
    ) == (2, 3, 2)
    assert {r["code"]: r["valeur"] for r in rejets["lignes"]} == {"nir.cle": 4, "json.invalide": 2}

    # CSV export of every table: a header with the table's columns, one line per JSON row
    for table, response in csvs.items():
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/csv"
        )
        header, *lines = list(csv.reader(io.StringIO(response.text)))
        assert header == ["periode", "detecteur", *TABLE_COLUMNS[table]]
        assert len(lines) >= (0 if table == "conversion" else 1), (
            table
        )  # no letter in this scenario
    assert csv_alt.text == csvs["volumes"].text
    assert "/v1/indicateurs/{table}.csv" in openapi["paths"]

    # the dashboard page is served, in French, with the data it draws
    for response in (page, page2):
        assert response.status_code == 200 and "text/html" in response.headers["content-type"]
        for label in (
            "Taux de prise en charge sous 48 heures",
            "Entonnoir",
            "Rejets par motif",
            "Suivi par détecteur",
            "Retard des consommateurs",
            "Fraîcheur",
        ):
            assert label in response.text
        assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")
    assert data["misas"]["indicateur_composite"] == 0.48
    assert data["calcule_le"] == scenarios.MISAS_NOW.isoformat(), "when the figures were computed"
    assert {d["detecteur"]: d["taux_pertinence"] for d in data["detecteurs"]} == {
        "ccas:ccas-91-evry": 0.75,
        "mission-locale:ml-91": 0.6667,
    }
    assert data["entonnoir"] == {
        "demandes": 7,
        "orientees": 7,
        "contactees": 5,
        "objectif_atteint": 1,
    }

    # Rebuild: an empty database, the groups rewound, the topics replayed: identical figures.
    await rewind_groups(s)
    rebuilt = s.model_copy(update={"mongo_database": s.database_name + "_rebuilt"})
    async with running(create_app(rebuilt, clock=clock)) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        await caught_up(http, expected)
        after = await snapshot(http)
    assert after == before

    # Replayed again into the same database (a redelivery of everything): nothing changes.
    await rewind_groups(s)
    async with running(create_app(s, clock=clock)) as http:
        http.headers.update(auth_headers("superviseur", "91"))
        await caught_up(http, expected)
        again = await snapshot(http)
    assert again == before

    # No NIR, name, address or phone anywhere in reporting's databases.
    for database in (s.database_name, rebuilt.database_name):
        stored = await dump(mongo, database)
        assert "misas-p1" in stored, "the scan reads the facts"
        for value in (*PERSON.values(), PERSON["nir"].replace(" ", "")):
            assert value not in stored, f"personal data stored by reporting: {value!r}"

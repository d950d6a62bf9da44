"""Operator injection on every door, on the real database: ``{"$gt": ""}``, ``{"$ne": null}``
and ``{"$where": "1"}``, as a string in every path parameter, query parameter, header and body
field, and as a JSON object in every body field. Each answer is 4xx (422 where the value is
malformed) or treats the value as a literal: a seeded document is never matched by it, while
its real id (the control) matches it."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from services.notification.app import create_app as notification_app
from services.orientation.app import create_app as orientation_app
from services.reporting.app import create_app as reporting_app
from services.signalement.app import create_app as signalement_app
from shared import topics as t
from shared.clock import ManualClock
from tests.integration.orientation import helpers as oh
from tests.integration.reporting import builders as rb
from tests.integration.signalement.test_partner_api import FRIDAY_EVENING, add_partner, fiche
from tests.support import auth_headers, eventually, produce, running

OPERATORS: list[Any] = [{"$gt": ""}, {"$ne": None}, {"$where": "1"}]
STRINGS = [json.dumps(o) for o in OPERATORS] + ['{"$gt":""}', "[$gt]=", "$where"]
SUPERVISEUR = auth_headers("superviseur", "91")
AGENT = auth_headers("agent", "91", sub="agent.h")


def _paths(body: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every leaf of a JSON body."""
    if isinstance(body, dict):
        return [p for k, v in body.items() for p in _paths(v, (*at, k))]
    if isinstance(body, list):
        return [p for n, v in enumerate(body) for p in _paths(v, (*at, n))]
    return [at]


def _with(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(body)
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return out


async def _audit_literal(http: Any, field: str, real: str) -> None:
    """The audit filters: the real value finds entries; an operator finds only the entries
    holding that very string (the reads made with it), never the others."""
    found = await http.get("/v1/audit", params={field: real}, headers=SUPERVISEUR)
    assert found.status_code == 200 and found.json(), found.text
    for s in STRINGS:
        resp = await http.get("/v1/audit", params={field: s}, headers=SUPERVISEUR)
        assert resp.status_code == 200, resp.text
        # only entries that recorded this very string (the reads done above with it)
        assert all(e[field] == s for e in resp.json()), (field, s, resp.text)


async def test_signalement_never_lets_an_operator_reach_the_database(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("signalement", http_rate_per_minute=1_000_000)
    app = signalement_app(settings, clock=ManualClock(FRIDAY_EVENING))
    async with running(app) as http:
        key = await add_partner(app, "ccas-evry")
        h = {"X-API-Key": key}
        seeded = await http.post("/v1/signalements", json=fiche(),
                                 headers={**h, "Idempotency-Key": "fiche-1"})
        assert seeded.status_code == 202, seeded.text
        ref = seeded.json()["reference"]
        assert (await http.get(f"/v1/signalements/{ref}", headers=h)).status_code == 200

        for s in STRINGS:
            resp = await http.get(f"/v1/signalements/{quote(s, safe='')}", headers=h)
            assert resp.status_code == 404, (s, resp.text)
            for param in ("page", "taille"):
                resp = await http.get("/v1/signalements", params={param: s}, headers=h)
                assert resp.status_code == 422, (param, s, resp.text)
            # the API key itself: never a match of someone's key
            assert (await http.get("/v1/signalements", headers={"X-API-Key": s})).status_code == 401
            assert (await http.get("/v1/signalements",
                                   headers={"X-API-Key": f"pk_{s}_{s}"})).status_code == 401
            # an Idempotency-Key matching the seeded one would answer its reference or 409
            other = await http.post("/v1/signalements", json=fiche(seed=5),
                                    headers={**h, "Idempotency-Key": s})
            assert other.status_code == 202 and other.json()["reference"] != ref, other.text

        body = fiche(seed=3, soins_renonces=["dentaire"], motifs=["reste-a-charge"])
        body["personne"]["email"] = "rosalinde@example.org"
        for path in _paths(body):
            for value in [*OPERATORS, *STRINGS]:
                resp = await http.post("/v1/signalements", json=_with(body, path, value), headers=h)
                assert resp.status_code in (202, 422), (path, value, resp.status_code, resp.text)
                if not isinstance(value, str):
                    assert resp.status_code == 422, (path, value, resp.text)
                if resp.status_code == 202:  # a literal: its own new referral
                    assert resp.json()["reference"] != ref
        listed = (await http.get("/v1/signalements", params={"taille": 100}, headers=h)).json()
        assert all(isinstance(e["reference"], str) for e in listed["elements"])
        await _audit_literal(http, "acteur", "partenaire:ccas-evry")
        await _audit_literal(http, "objet_id", ref)
        await _audit_literal(http, "action", "lire-signalement")


async def test_orientation_never_lets_an_operator_reach_the_database(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("orientation")
    app = orientation_app(settings, clock=ManualClock(oh.NOW))
    pseudo = "p-injection-seeded"
    d = oh.demande(pseudo)
    async with running(app) as http:
        await oh.send_demandes(settings, d)
        await oh.processed(app, pseudo, d.demande_id)
        real = await http.get(f"/v1/personnes/{pseudo}/dossiers", headers=SUPERVISEUR)
        assert real.status_code == 200, real.text
        for s in STRINGS:
            for who in (SUPERVISEUR, AGENT):
                resp = await http.get(f"/v1/personnes/{quote(s, safe='')}/dossiers", headers=who)
                assert resp.status_code == 404, (s, resp.text)
            resp = await http.get(f"/v1/catalogue/{quote(s, safe='')}", headers=AGENT)
            assert resp.status_code == 404, (s, resp.text)
            resp = await http.get(f"/v1/personnes/{pseudo}/dossiers",
                                  headers={**SUPERVISEUR, "X-Motif": s})
            assert resp.status_code == 422, (s, resp.text)
        await _audit_literal(http, "objet_id", pseudo)
        await _audit_literal(http, "acteur", "superviseur.91")


NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


async def test_notification_never_lets_an_operator_reach_the_database(
    topics: str, make_settings: Any, tmp_path: Any
) -> None:
    settings = make_settings("notification", data_dir=tmp_path)
    app = notification_app(settings, clock=ManualClock(NOW))
    async with running(app) as http:
        store = app.state.deps.store
        task = {"_id": "tache-seeded", "action_id": "action-seeded", "pseudonyme": "p-seeded",
                "site": "91", "statut": "a-faire", "echeance": NOW + timedelta(hours=2),
                "cree_le": NOW, "parcours": "renoncement-aux-soins", "etape": "prise-en-charge",
                "kind": "appel", "modele": "misas-prise-en-charge", "priorite": 0,
                "obligatoire": True}
        await store.taches.insert_one(task)
        await store.actions.insert_one({"_id": "action-seeded", "statut": "planifiee",
                                        "historique": []})
        assert (await http.get("/v1/taches/tache-seeded", headers=AGENT)).status_code == 200
        assert (await http.get("/v1/actions/action-seeded", headers=AGENT)).status_code == 200
        for s in STRINGS:
            q = quote(s, safe="")
            for method, path in (("GET", f"/v1/taches/{q}"), ("POST", f"/v1/taches/{q}/prise"),
                                 ("GET", f"/v1/actions/{q}")):
                resp = await http.request(method, path, headers=AGENT)
                assert resp.status_code == 404, (path, resp.text)
            resp = await http.post(f"/v1/taches/{q}/issue", headers=AGENT, json={"issue": "joint"})
            assert resp.status_code == 404, resp.text
            for params in ({"statut": s}, {"site": s}, {"limite": s}):
                resp = await http.get("/v1/taches", params=params, headers=AGENT)
                assert resp.status_code == 422, (params, resp.text)
            resp = await http.get(f"/v1/lots-impression/{q}", headers=SUPERVISEUR)
            assert resp.status_code in (404, 422), resp.text
        for value in [*OPERATORS, *STRINGS]:
            resp = await http.post("/v1/taches/tache-seeded/issue", headers=AGENT,
                                   json={"issue": value})
            assert resp.status_code == 422, (value, resp.text)
        for value in OPERATORS:
            resp = await http.post("/v1/taches/tache-seeded/issue", headers=AGENT,
                                   json={"issue": "joint", "commentaire": value})
            assert resp.status_code == 422, (value, resp.text)
        stored = await store.task("tache-seeded")
        assert stored["statut"] == "a-faire" and "agent" not in stored, "untouched by any of it"
        # a comment that looks like an operator is kept as the text it is
        assert (await http.post("/v1/taches/tache-seeded/prise", headers=AGENT)).status_code == 200
        done = await http.post("/v1/taches/tache-seeded/issue", headers=AGENT,
                               json={"issue": "joint", "commentaire": STRINGS[0]})
        assert done.status_code == 200, done.text
        assert (await store.task("tache-seeded"))["statut"] == "terminee"
        listed = (await http.get("/v1/taches", params={"statut": "terminee"}, headers=AGENT)).json()
        assert [x["id"] for x in listed] == ["tache-seeded"]
        await _audit_literal(http, "objet_id", "tache-seeded")
        await _audit_literal(http, "acteur", "agent.h")


async def test_reporting_treats_every_filter_as_a_literal(
    topics: str, make_settings: Any
) -> None:
    settings = make_settings("reporting")
    when = rb.utc(2026, 3, 2, 10)
    app = reporting_app(settings, clock=ManualClock(when + timedelta(days=1)))
    lecteur = auth_headers("lecteur-indicateurs", None)
    async with running(app) as http:
        await produce(settings.kafka_bootstrap_servers, settings.topic(t.DEMANDES),
                      [rb.record(rb.demande("p-reporting", "retraite", when))])

        async def total(params: dict[str, str]) -> int:
            resp = await http.get("/v1/indicateurs/volumes", params=params, headers=lecteur)
            assert resp.status_code == 200, (params, resp.text)
            return sum(int(r.get("valeur") or 0) for r in resp.json()["lignes"])

        await eventually(lambda: total({"departement": "91"}), timeout=60)
        for s in STRINGS:
            for dim in ("parcours", "detecteur", "departement", "commune", "canal"):
                assert await total({dim: s}) == 0, (dim, s)
            for params in ({"par": s}, {"du": s}, {"granularite": s}, {"format": s}):
                resp = await http.get("/v1/indicateurs/volumes", params=params, headers=lecteur)
                assert resp.status_code == 422, (params, resp.text)
            resp = await http.get(f"/v1/indicateurs/{quote(s, safe='')}", headers=lecteur)
            assert resp.status_code == 422, resp.text
            resp = await http.get("/v1/indicateurs/conversion",
                                  params={"modele": s, "objectif": s}, headers=lecteur)
            assert resp.status_code == 200, resp.text

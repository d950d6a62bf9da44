"""One test per flow, from evenements-vie or the partner API to the effect, the four services
running as separate processes on the real broker and database, the clock moved forward.

The module shares one running platform (``platform``): each flow has its own people, and
computes its dates from the services' clock, which only moves forward.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from shared.calendar import PARIS, add_business_hours
from tests.e2e.conftest import System
from tests.e2e.flows import (
    advance_past,
    agent_headers,
    cancelled,
    close,
    due,
    life_event,
    paris_today,
    person,
    planned,
    results,
    send_events,
    tasks_of,
    until,
    wait_planned,
    wait_results,
)
from tests.support import eventually


def _years_before(d: date, years: int) -> date:
    return d.replace(year=d.year - years)


def _pdfs_of(system: System, action_id: str) -> list[Any]:
    return [p for p in system.letters() if p.stem == action_id]


def _manifest_entries(system: System, action_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(m["jour"], e) for m in system.manifests() for e in m["lettres"]
            if e["action_id"] == action_id]


async def _listed(system: System, action_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The print batch entries of a letter, once notification rewrote its day's batch (at most
    a second or so after the letter: the batch is rewritten once for the letters of a moment)."""
    async def entries() -> list[tuple[str, dict[str, Any]]] | None:
        return _manifest_entries(system, action_id) or None

    return await eventually(entries, timeout=30)  # type: ignore[no-any-return]


async def test_retirement_without_complementary_ends_as_the_m9_letter_in_the_print_batch(
    platform: System,
) -> None:
    rng = random.Random(101)
    today = paris_today(platform)
    assure = person(rng, date(today.year - 62, 1, 15))
    pseudo = platform.pseudonym(assure["nir"])
    await send_events(platform, life_event("retraite", assure, today, event_id="carsat-e2e-101",
                                           sans_complementaire=True))
    actions = await wait_planned(platform, pseudo, {"m9-sans-complementaire"})
    m9 = actions["m9-sans-complementaire"]
    assert m9["kind"] == "courrier" and m9["canaux"] == ["courrier"]
    assert due(m9).astimezone(PARIS).date() == _plus_months(today, 9)

    advance_past(platform, due(m9))
    got = await wait_results(platform, pseudo, {m9["action_id"]})
    assert (got[m9["action_id"]]["statut"], got[m9["action_id"]]["canal"]) == ("envoye", "courrier")

    (pdf,) = _pdfs_of(platform, m9["action_id"])
    assert pdf.read_bytes().startswith(b"%PDF")
    assert (pdf.parent / f"{m9['action_id']}-falc.pdf").exists(), "the easy-read copy is enclosed"
    entries = await _listed(platform, m9["action_id"])
    assert [day for day, _ in entries] == [pdf.parent.name], "listed once, in its day's batch"
    assert entries[0][1]["modele"] == "seniors-m9-complementaire"
    # once: nothing more happens to it however long we wait
    platform.advance(timedelta(days=1))
    await _quiet(platform)
    assert [r for r in await results(platform, pseudo) if r["action_id"] == m9["action_id"]] \
        == [got[m9["action_id"]]]
    assert len(_pdfs_of(platform, m9["action_id"])) == 1
    assert len(_manifest_entries(platform, m9["action_id"])) == 1


async def test_separation_with_domestic_violence_gets_a_safe_contact_only(
    platform: System,
) -> None:
    rng = random.Random(202)
    today = paris_today(platform)
    assure = person(rng, date(today.year - 35, 6, 1),
                    email=f"victime.{rng.randint(1, 9999)}@example.org")
    pseudo = platform.pseudonym(assure["nir"])
    letters_before, sms_before = set(platform.letters()), len(platform.sms.requests)
    await send_events(platform, life_event("separation", assure, today, event_id="caf-e2e-202",
                                           source="urn:fr:caf:91",
                                           violences_intrafamiliales=True, enfants_a_charge=1))
    actions = await wait_planned(platform, pseudo, {"appel-securite"})
    call = actions["appel-securite"]
    assert call["kind"] == "appel" and call["canaux"] == ["telephone"] and call["obligatoire"]
    assert "information-droits-separation" not in actions, "no letter to the household address"
    advance_past(platform, max(due(a) for a in actions.values()))
    got = await wait_results(platform, pseudo, {a["action_id"] for a in actions.values()})
    assert (got[call["action_id"]]["statut"], got[call["action_id"]]["canal"]) == \
        ("tache-creee", "telephone")
    (task,) = [t for t in await tasks_of(platform, "91") if t["action_id"] == call["action_id"]]
    assert task["obligatoire"] and task["etape"] == "appel-securite"
    assert close(task["echeance"], call["echeance"])
    assert task["contact"]["telephone"] is None, "never the household's (shared) number"
    await _quiet(platform)
    assert set(platform.letters()) == letters_before, "no letter at the household address"
    assert len(platform.sms.requests) == sms_before, "no SMS to the shared number"
    assert not [m for m in platform.smtp.messages if assure["email"] in m["X-Envelope-To"]], \
        "no e-mail"
    assert [r["statut"] for r in await results(platform, pseudo)] == ["tache-creee"]


async def test_invalidity_ends_as_the_meeting_invitation(platform: System) -> None:
    rng = random.Random(303)
    today = paris_today(platform)
    email = f"invalide.{rng.randint(1, 9999)}@example.org"
    assure = person(rng, date(today.year - 48, 3, 9), email=email)
    pseudo = platform.pseudonym(assure["nir"])
    await send_events(platform, life_event("entree-invalidite", assure, today,
                                           event_id="elsm-e2e-303", source="urn:fr:elsm:91",
                                           categorie=2))
    actions = await wait_planned(platform, pseudo, {"invitation-reunion-information"})
    invitation = actions["invitation-reunion-information"]
    assert due(invitation).astimezone(PARIS).date() == today + timedelta(days=15)
    advance_past(platform, due(invitation))
    got = await wait_results(platform, pseudo, {invitation["action_id"]})
    assert (got[invitation["action_id"]]["statut"], got[invitation["action_id"]]["canal"]) == \
        ("envoye", "email")
    await _quiet(platform)
    mails = [m for m in platform.smtp.messages if m["X-Envelope-To"] == email]
    assert len(mails) == 1, [m["Subject"] for m in mails]
    assert "réunion" in mails[0]["Subject"].lower() or "reunion" in mails[0]["Subject"].lower(), \
        mails[0]["Subject"]


async def test_death_after_a_retirement_gives_one_family_contact_and_nothing_else(
    platform: System,
) -> None:
    rng = random.Random(404)
    today = paris_today(platform)
    assure = person(rng, date(today.year - 64, 2, 2))
    pseudo = platform.pseudonym(assure["nir"])
    await send_events(platform, life_event("retraite", assure, today + timedelta(days=60),
                                           event_id="carsat-e2e-404", sans_complementaire=True))
    retirement = await wait_planned(platform, pseudo, {"m9-sans-complementaire"})
    proche = {"nom": "Valmontier", "prenom": "Gaspard", "lien": "enfant",
              "telephone": "0611223344",
              "adresse": {"ligne1": "8 impasse des Saules", "code_postal": "91300",
                          "commune": "Massy"}}
    await send_events(platform, life_event("deces", assure, today, event_id="etat-civil-e2e-404",
                                           source="urn:fr:insee:etat-civil", proche=proche))
    after = await wait_planned(platform, pseudo, {"contact-famille"})
    family = after["contact-famille"]
    assert family["destinataire"] == "proche"

    async def all_cancelled() -> bool:
        gone = {c["action_id"] for c in await cancelled(platform, pseudo)}
        return {a["action_id"] for a in retirement.values()} <= gone

    await until(all_cancelled, what="the retirement's actions cancelled")
    advance_past(platform, due(retirement["p3-bien-vieillir"]) + timedelta(days=1))
    got = await wait_results(platform, pseudo, {family["action_id"]})
    assert (got[family["action_id"]]["statut"], got[family["action_id"]]["canal"]) == \
        ("envoye", "courrier")
    await _quiet(platform)
    outcomes = await results(platform, pseudo)
    sent = [r for r in outcomes if r["statut"] in ("envoye", "tache-creee")]
    assert [r["action_id"] for r in sent] == [family["action_id"]], outcomes
    assert len(_pdfs_of(platform, family["action_id"])) == 1
    assert not _pdfs_of(platform, retirement["m9-sans-complementaire"]["action_id"]), \
        "the M+9 letter is never sent"


async def test_ase_at_17_ends_as_the_appointment_proposal(platform: System) -> None:
    rng = random.Random(505)
    today = paris_today(platform)
    assure = person(rng, _years_before(today, 17))
    pseudo = platform.pseudonym(assure["nir"])
    await send_events(platform, life_event("ase-17-ans", assure, today, event_id="ase-e2e-505",
                                           source="urn:fr:departement:91:ase"))
    actions = await wait_planned(platform, pseudo, {"rendez-vous-17-ans"})
    rdv = actions["rendez-vous-17-ans"]
    assert rdv["kind"] == "rendez-vous" and rdv["modele"] == "ase-rendez-vous-droits"
    advance_past(platform, due(rdv))
    got = await wait_results(platform, pseudo, {rdv["action_id"]})
    assert (got[rdv["action_id"]]["statut"], got[rdv["action_id"]]["canal"]) == \
        ("envoye", "courrier")
    assert len(_pdfs_of(platform, rdv["action_id"])) == 1
    assert [e["modele"] for _, e in await _listed(platform, rdv["action_id"])] == \
        ["ase-rendez-vous-droits"]


async def test_a_partner_referral_becomes_a_task_with_its_48_hour_deadline_seen_by_the_partner(
    platform: System,
) -> None:
    rng = random.Random(606)
    key = platform.add_partner("ccas-evry-e2e")
    fiche = {"personne": person(rng, date(1971, 5, 4)), "situation": "renoncement-aux-soins",
             "soins_renonces": ["dentaire"], "motifs": ["reste-a-charge"],
             "consentement_contact": True}
    pseudo = platform.pseudonym(fiche["personne"]["nir"])
    async with httpx.AsyncClient(base_url=platform.url("signalement"), timeout=30) as http:
        resp = await http.post("/v1/signalements", json=fiche,
                               headers={"X-API-Key": key, "Idempotency-Key": "fiche-e2e-606"})
        assert resp.status_code == 202, resp.text
        ack = resp.json()
        recu, echeance = (datetime.fromisoformat(ack["recu_le"]),
                          datetime.fromisoformat(ack["echeance"]))
        assert echeance == add_business_hours(recu, 48)
        assert "48 heures ouvrées" in ack["engagement"]

        actions = await wait_planned(platform, pseudo, {"prise-en-charge"})
        call = actions["prise-en-charge"]
        got = await wait_results(platform, pseudo, {call["action_id"]})
        assert got[call["action_id"]]["statut"] == "tache-creee"

        queue = await tasks_of(platform, "91")
        (task,) = [t for t in queue if t["action_id"] == call["action_id"]]
        assert close(task["echeance"], echeance), "the deadline the partner was given"
        assert task["statut"] == "a-faire" and task["obligatoire"] and not task["en_retard"]
        assert task["contact"]["telephone"] == fiche["personne"]["telephone"]

        async def history() -> list[str] | None:
            view = (await http.get(f"/v1/signalements/{ack['reference']}",
                                   headers={"X-API-Key": key})).json()
            statuses = [h["statut"] for h in view["historique"]]
            return statuses if len(statuses) >= 2 else None

        statuses = await until(history, what="the referral's status history")
        assert statuses[0] == "recu" and "pris-en-charge" in statuses

        # The agent calls and records the outcome: the partner sees it in the history.
        agent = agent_headers(platform, "91")
        async with httpx.AsyncClient(base_url=platform.url("notification"), timeout=30) as q:
            claimed = await q.post(f"/v1/taches/{task['id']}/prise", headers=agent)
            assert claimed.status_code == 200, claimed.text
            done = await q.post(f"/v1/taches/{task['id']}/issue", headers=agent,
                                json={"issue": "rendez-vous-pris"})
            assert done.status_code == 200, done.text

        async def outcome_seen() -> list[dict[str, Any]] | None:
            view = (await http.get(f"/v1/signalements/{ack['reference']}",
                                   headers={"X-API-Key": key})).json()
            steps = [h for h in view["historique"] if h.get("detail") == "rendez-vous-pris"]
            return steps or None

        (step,) = await until(outcome_seen, what="the call's outcome in the partner's history")
        assert step["statut"] == "en-cours"
        other = platform.add_partner("mission-locale-e2e", "mission-locale")
        hidden = await http.get(f"/v1/signalements/{ack['reference']}",
                                headers={"X-API-Key": other})
        assert hidden.status_code == 404, "another partner does not see it"


def _plus_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, d.day)


async def _quiet(system: System, seconds: float = 3.0) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_no_nir_nor_name_leaves_the_edges_during_the_flows(platform: System) -> None:
    """After every flow above (and a referral of its own): the personal data of every person
    fed appears only on evenements-vie(.rejets) and personnes.coordonnees, never on another
    topic, never in any service's log nor in the local database's (bytes scanned)."""
    from shared import topics as t
    from shared.topics import load_topics
    from tests.e2e.flows import PEOPLE, personal_strings
    from tests.support import read_all

    rng = random.Random(707)
    key = platform.add_partner("pass-e2e", "hopital-pass")
    fiche = {"personne": person(rng, date(1980, 1, 1), email="leak.check@example.org"),
             "situation": "besoin-complementaire-sante", "consentement_contact": True}
    async with httpx.AsyncClient(base_url=platform.url("signalement"), timeout=30) as http:
        resp = await http.post("/v1/signalements", json=fiche, headers={"X-API-Key": key})
        assert resp.status_code == 202, resp.text
    pseudo = platform.pseudonym(fiche["personne"]["nir"])
    await until(lambda: planned(platform, pseudo), what="the referral's plan")
    await _quiet(platform)
    secrets = {s.encode() for p in PEOPLE for s in personal_strings(p)}
    secrets |= {b"Valmontier", b"8 impasse des Saules"}  # the family contact
    assert len(PEOPLE) >= 6
    allowed = {t.EVENEMENTS_VIE, t.REJETS, t.COORDONNEES}
    scanned: dict[str, int] = {}
    for name in load_topics():
        records = await read_all(platform.bootstrap, platform.topic(name), timeout=10)
        blob = b"\n".join((r.key or b"") + b"|" + (r.value or b"") + b"|" +
                          b"|".join(v for _, v in (r.headers or [])) for r in records)
        scanned[name] = len(records)
        found = sorted(s.decode() for s in secrets if s in blob)
        if name in allowed:
            if name == t.COORDONNEES:
                assert found, "the scan finds what is there"
            continue
        assert not found, f"personal data on {name}: {found}"
    assert scanned[t.COORDONNEES] > 0 and scanned[t.DEMANDES] > 0 and scanned[t.ACTIONS] > 0
    logs = platform.logs().encode()
    assert len(logs) > 1000, "the services did log"
    leaked = sorted(s.decode() for s in secrets if s in logs)
    assert not leaked, f"personal data in the services' logs: {leaked}"
    local = platform.infra.local
    if local is not None:  # the database's own logs too (FerretDB, PostgreSQL: ADR 0012)
        database_logs = b"".join(p.logfile.read_bytes() for p in (local.ferretdb, local.postgres)
                                 if p.logfile.exists())
        assert database_logs, "the database did log"
        leaked = sorted(s.decode() for s in secrets if s in database_logs)
        assert not leaked, f"personal data in the database's logs: {leaked}"

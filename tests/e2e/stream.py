"""A stream of life events for the fault tests, with what each must become, and the count of
every effect from its source of truth (topics, letters folder and print batches, the SMTP
server, the SMS provider, the agents' queue)."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from shared import topics as t
from shared.contracts import internes as i
from tests.e2e.conftest import System
from tests.e2e.flows import life_event, paris_today, person, tasks_of
from tests.inputs import CT, invalid_record
from tests.support import produce


@dataclass
class Stream:
    records: list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)
    valid: dict[str, str] = field(default_factory=dict)  # record key -> pseudonym
    invalid: dict[str, str] = field(default_factory=dict)  # record key -> reason code


def make_stream(system: System, n: int, seed: int = 1, invalid_share: float = 0.15) -> Stream:
    """``n`` records: life events whose first action is due at once (letters, e-mails, phone
    tasks) and invalid records. Every valid event is about a different person (91)."""
    rng = random.Random(seed)
    today = paris_today(system)
    out = Stream()
    for k in range(n):
        key = f"rec-{seed}-{k:05d}"
        if rng.random() < invalid_share:
            value, headers, reason = invalid_record(rng)
            out.records.append((key.encode(), value, headers))
            out.invalid[key] = reason or "?"
            continue
        roll = rng.random()
        email = f"p{seed}.{k}@example.org"
        if roll < 0.40:  # the meeting invitation, by e-mail, due now
            a = person(rng, date(today.year - rng.randint(30, 60), 5, 5), email=email)
            ev = life_event("entree-invalidite", a, today - timedelta(days=15), event_id=key,
                            source="urn:fr:elsm:91", categorie=rng.choice([1, 2, 3]))
        elif roll < 0.65:  # P2 of the retirement, by e-mail, due now (M+9 later)
            a = person(rng, date(today.year - 62, 3, 3), email=email)
            ev = life_event("retraite", a, today, event_id=key, sans_complementaire=True)
        elif roll < 0.80:  # the safety call: a task in the agents' queue
            a = person(rng, date(today.year - 33, 7, 7))
            ev = life_event("separation", a, today, event_id=key, source="urn:fr:caf:91",
                            violences_intrafamiliales=True)
        elif roll < 0.92:  # the family letter (PDF), due now
            a = person(rng, date(today.year - 80, 1, 1))
            ev = life_event("deces", a, today - timedelta(days=7), event_id=key,
                            source="urn:fr:insee:etat-civil",
                            proche={"nom": "Prochard", "prenom": "Lise", "lien": "enfant",
                                    "adresse": {"ligne1": "1 place du Marché",
                                                "code_postal": "91000", "commune": "Évry"}})
        else:  # ASE at 17: the appointment proposal (letter), due now
            a = person(rng, today.replace(year=today.year - 17))
            ev = life_event("ase-17-ans", a, today, event_id=key,
                            source="urn:fr:departement:91:ase")
        out.records.append((key.encode(), json.dumps(ev).encode(), [CT]))
        out.valid[key] = system.pseudonym(a["nir"])
    return out


async def feed(system: System, stream: Stream, chunk: int = 200) -> None:
    for start in range(0, len(stream.records), chunk):
        await produce(system.bootstrap, system.topic(t.EVENEMENTS_VIE),
                      stream.records[start:start + chunk])


async def end_count(system: System, topic: str) -> int:
    """Records on a topic (sum of end offsets): cheap progress."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=system.bootstrap)
    await consumer.start()
    try:
        name = system.topic(topic)
        parts = consumer.partitions_for_topic(name)
        if parts is None:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(name) or set()
        ends = await consumer.end_offsets([TopicPartition(name, p) for p in parts])
        return sum(ends.values())
    finally:
        await consumer.stop()


@dataclass
class Effects:
    """What happened, counted from the sources of truth."""

    demands: Counter[str]  # pseudonym -> distinct demand ids
    rejects: Counter[str]  # record key -> reject records
    due: set[str]  # planned, not cancelled, due now: must each have one outcome
    results: Counter[str]  # action id -> distinct result ids (non-call outcomes)
    statuts: Counter[str]
    letters: Counter[str]  # action id -> PDF files
    batch: Counter[str]  # action id -> entries in the print batches
    emails: Counter[str]  # Message-ID -> messages received
    sms: Counter[str]  # Idempotency-Key -> deliveries
    tasks: Counter[str]  # action id -> tasks in the queue
    by_channel: Counter[str]

    def summary(self) -> dict[str, int]:
        return {"demands": sum(self.demands.values()), "rejects": sum(self.rejects.values()),
                "due": len(self.due), "results": sum(self.results.values()),
                "letters": sum(self.letters.values()), "batch": sum(self.batch.values()),
                "emails": sum(self.emails.values()), "sms": sum(self.sms.values()),
                "tasks": sum(self.tasks.values())}


async def effects(system: System) -> Effects:
    demands: dict[str, set[str]] = {}
    for e in await system.published(t.DEMANDES, timeout=15):
        d = e.get("data") or {}
        demands.setdefault(d.get("pseudonyme", "?"), set()).add(d.get("demande_id", "?"))
    rejects = Counter(e["_key"] for e in await system.published(t.REJETS, timeout=15))
    now = system.now()
    planned: dict[str, Any] = {}
    gone: set[str] = set()
    for e in await system.published(t.ACTIONS, timeout=15):
        if e.get("type") == i.ACTION_PLANIFIEE:
            planned[e["data"]["action_id"]] = e["data"]
        elif e.get("type") == i.ACTION_ANNULEE:
            gone.add(e["data"]["action_id"])
    from datetime import datetime

    due = {a for a, d in planned.items()
           if a not in gone and datetime.fromisoformat(d["due_le"]) <= now}
    result_ids: dict[str, set[str]] = {}
    statuts: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    for e in await system.published(t.RESULTATS, timeout=15):
        r = e.get("data") or {}
        if r.get("statut") == "appel":
            continue
        ids = result_ids.setdefault(r["action_id"], set())
        if e["id"] not in ids:
            ids.add(e["id"])
            statuts[r["statut"]] += 1
            by_channel[f"{r['statut']}:{r.get('canal')}"] += 1
    letters = Counter(p.stem for p in system.letters())
    batch = Counter(entry["action_id"] for m in system.manifests() for entry in m["lettres"])
    emails = Counter(str(m["Message-ID"]) for m in (system.smtp.messages if system.smtp else []))
    # The provider delivers an Idempotency-Key once: one key per action is one SMS.
    sms = Counter({str(k): 1
                   for k in {r["key"] for r in (system.sms.requests if system.sms else [])}})
    tasks = Counter(x["action_id"] for x in await tasks_of(system, "91"))
    return Effects(Counter({p: len(v) for p, v in demands.items()}), rejects, due,
                   Counter({a: len(v) for a, v in result_ids.items()}), statuts, letters, batch,
                   emails, sms, tasks, by_channel)


def check(stream: Stream, got: Effects, emails_in_flight: int = 0) -> None:
    """Every event accounted for; no effect twice, except what the platform's contract allows
    when a notification process is killed: SMTP has no idempotency, so an e-mail whose server
    accepted it in the instant between the send and its record is sent again by the next
    firing, with the same Message-ID (mail clients and gateways collapse it;
    services/notification/channels.py, docs/operations.md). ``emails_in_flight``: how many
    sends the killed processes may have had under way (their fire concurrency); each such
    e-mail at most twice. Letters, SMS and tasks: never twice."""
    expected_people = set(stream.valid.values())
    assert set(got.demands) == expected_people, (
        f"lost: {len(expected_people - set(got.demands))}, "
        f"unexpected: {len(set(got.demands) - expected_people)}")
    assert set(got.demands.values()) == {1}, "one demand per life event"
    assert set(got.rejects) == set(stream.invalid), (
        f"rejects missing: {sorted(set(stream.invalid) - set(got.rejects))[:5]}")
    assert set(got.results) == got.due, (
        f"due without outcome: {len(got.due - set(got.results))}, "
        f"outcome not due: {len(set(got.results) - got.due)}")
    assert set(got.results.values()) == {1}, "one outcome per action"
    dup = {k: v for c in (got.letters, got.batch, got.sms, got.tasks)
           for k, v in c.items() if v > 1}
    assert not dup, f"duplicated effects: {dup}"
    resent = {k: v for k, v in got.emails.items() if v > 1}
    assert all(v == 2 for v in resent.values()) and len(resent) <= emails_in_flight, (
        f"e-mails sent again: {resent} (at most {emails_in_flight}, once each, allowed)")
    assert len(got.letters) == got.by_channel["envoye:courrier"] == len(got.batch)
    assert len(got.emails) == got.by_channel["envoye:email"]
    assert len(got.sms) == got.by_channel["envoye:sms"]
    assert len(got.tasks) == got.by_channel["tache-creee:telephone"]
    assert got.statuts["echec"] == 0, got.statuts

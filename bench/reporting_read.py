"""What one read of the indicators costs reporting, against the size of its store.

    python -m bench reporting [PERSONS ...] [--write]

For each size: PERSONS persons, each with the facts of a usual path (a life event, a case
opened, a letter and a call planned, the letter sent, the call answered: six facts, made by
reporting's own projection functions from contract events), written by reporting's store into a
fresh database. Then a separate process, as the service does on a read (ADR 0006), streams
every fact person by person into the indicators' counts (the cube), then reads every table from
them; it reports the time of each part, the cells the counts take, and its memory before and at
its peak, with the database's (FerretDB sorts in its own memory what MongoDB reads from an
index). Reading every fact grows with the store; the memory of the read should not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from pymongo import AsyncMongoClient

from bench.e2e import machine, mongo_uri, write_section
from services.reporting import indicators as ind
from services.reporting import projections as p
from services.reporting.store import ReportingStore
from shared.cloudevents import new_event
from shared.contracts import internes as i
from shared.ids import derive_id

START = datetime(2026, 3, 2, 8, tzinfo=UTC)
TERRITOIRE = i.Territoire(departement="91", commune="Évry-Courcouronnes")


def facts_of(k: int) -> dict[str, tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]]:
    """The six facts of person ``k``, by collection: (documents, fields set on a fact)."""
    pseudo, when = f"bench-{k:08d}", START + timedelta(minutes=k % (30 * 24 * 60))
    dossier = derive_id("dossier", pseudo)
    dem = i.Demande(demande_id=derive_id("demande", pseudo), pseudonyme=pseudo,
                    origine="evenement-vie", evenement="retraite", date_effet=when.date(),
                    recu_le=when, age=62, naissance="1964-03", territoire=TERRITOIRE)
    dec = i.Decision(decision_id=derive_id("decision", pseudo), pseudonyme=pseudo,
                     demande_id=dem.demande_id, dossier_id=dossier,
                     parcours="accompagnement-des-seniors", statut="ouvert",
                     catalogue_version="bench", explication=["bench"], territoire=TERRITOIRE)
    actions, resultats = [], []
    for etape, kind, canal, statut in (("p1-info", "courrier", "courrier", "envoye"),
                                        ("appel", "appel", "telephone", "appel")):
        a = i.ActionPlanifiee(action_id=derive_id("action", pseudo, etape), pseudonyme=pseudo,
                              dossier_id=dossier, parcours="accompagnement-des-seniors",
                              etape=etape, kind=kind, canaux=[canal],  # type: ignore[list-item]
                              due_le=when, echeance=when + timedelta(days=2),
                              modele="seniors-p1-information", territoire=TERRITOIRE)
        actions.append(new_event(type=i.ACTION_PLANIFIEE, source="/orientation",
                                 id=a.action_id, data=a, time=when))
        r = i.Resultat(resultat_id=derive_id("resultat", a.action_id), pseudonyme=pseudo,
                       action_id=a.action_id, dossier_id=dossier, parcours=a.parcours,
                       statut=statut, canal=canal,  # type: ignore[arg-type]
                       issue_appel="joint" if kind == "appel" else None,
                       survenu_le=when + timedelta(hours=5))
        resultats.append(new_event(type=i.RESULTAT, source="/notification", id=r.resultat_id,
                                   data=r, time=r.survenu_le))
    return {
        "demandes": ([p.demande_fact(new_event(type=i.DEMANDE, source="/signalement",
                                               id=dem.demande_id, data=dem, time=when))], []),
        "decisions": ([p.decision_fact(new_event(type=i.DECISION, source="/orientation",
                                                 id=dec.decision_id, data=dec, time=when))], []),
        "actions": ([], [(e.data.action_id, p.action_planned_fields(e)) for e in actions]),
        "resultats": ([p.resultat_fact(e) for e in resultats], []),
    }


async def fill(database: str, persons: int) -> int:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri(), tz_aware=True)
    store, written = ReportingStore(client, database), 0
    try:
        for start in range(0, persons, 500):
            lot: dict[str, tuple[list[Any], list[Any]]] = {}
            for k in range(start, min(start + 500, persons)):
                for name, (docs, fields) in facts_of(k).items():
                    lot.setdefault(name, ([], []))
                    lot[name][0].extend(docs)
                    lot[name][1].extend(fields)
            for name, (docs, fields) in lot.items():
                await store.write(name, docs, fields)
                written += len(docs) + len(fields)
    finally:
        await client.close()
    return written


async def read(database: str) -> dict[str, float]:
    """One read as the service makes it: every fact streamed into the counts, every table."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri(), tz_aware=True)
    database_peak = DatabasePeak()
    try:
        before = psutil.Process().memory_info().rss / 2**20
        database_peak.start()
        t0 = time.monotonic()
        cube = await ReportingStore(client, database).fill(ind.Cube(datetime.now(UTC)))
        t1 = time.monotonic()
        f = ind.Filtre(granularite="mois")
        for table in ind.TABLES:
            cube.rows(table, f)
        t2 = time.monotonic()
    finally:
        database_peak.stop()
        await client.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"load_s": t1 - t0, "compute_s": t2 - t1, "cells": cube.size(),
            "rss_before_mb": before, "rss_peak_mb": peak,
            "db_before_mb": database_peak.before, "db_peak_mb": database_peak.peak}


class DatabasePeak:
    """The local database's memory (FerretDB's process) during the read, sampled."""

    def __init__(self) -> None:
        self.before = self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        found = [proc for proc in psutil.process_iter(["name"])
                 if "ferretdb" in (proc.info["name"] or "").lower()]
        self._proc = found[0] if found else None

    def start(self) -> None:
        if self._proc is not None:
            self.before = self.peak = self._rss()
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _rss(self) -> float:
        assert self._proc is not None
        return float(self._proc.memory_info().rss) / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self._rss())


async def drop(database: str) -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri())
    try:
        await client.drop_database(database)
    finally:
        await client.close()


def measure(persons: int) -> dict[str, Any]:
    database = f"benchreporting{uuid.uuid4().hex[:6]}"
    try:
        facts = asyncio.run(fill(database, persons))
        out = subprocess.run(  # noqa: S603 - our own module, a database name we made
            [sys.executable, "-m", "bench.reporting_read", "--read", database],
            check=True, capture_output=True, text=True)
        return {"persons": persons, "facts": facts, **json.loads(out.stdout)}
    finally:
        asyncio.run(drop(database))


def report(rows: list[dict[str, Any]], command: str) -> str:
    lines = [f"Machine: {machine()}. Command: `{command}`.", "",
             "| persons | facts | every fact into the counts | every table from them | cells "
             "| memory of the read (before → peak) | the database's (FerretDB) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        database = (f"{r['db_before_mb']:.0f} → {r['db_peak_mb']:.0f} MB"
                    if r.get("db_peak_mb") else "-")
        lines.append(f"| {r['persons']:,} | {r['facts']:,} | {r['load_s']:.1f} s | "
                     f"{r['compute_s']:.2f} s | {r['cells']:,} | {r['rss_before_mb']:.0f} → "
                     f"{r['rss_peak_mb']:.0f} MB | {database} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench reporting")
    parser.add_argument("persons", type=int, nargs="*", default=[10_000, 40_000])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--read", metavar="DATABASE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.read:
        print(json.dumps(asyncio.run(read(args.read))))
        return 0
    rows = [measure(n) for n in args.persons]
    text = report(rows, " ".join(["python -m bench reporting", *argv]))
    print(text)
    if args.write:
        write_section("reporting", text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

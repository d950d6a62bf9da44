"""What rewriting a day's print batch costs notification, against the letters of the day.

    python -m bench print-batch [LETTERS ...] [--write]

For each size: LETTERS letters' records of one day, written by notification's store into a
fresh database. Then a separate process rewrites the day's print batch as the service does
(``service.write_batch``: the records streamed from the database into the manifest's files)
and reports its time and its memory before and at its peak, with the database's (FerretDB
sorts in its own memory what MongoDB reads from the index on ``(jour, _id)``). In the same
run, for comparison, another process does what the service did before 2026-11-24: every
record of the day in a list, then the whole manifest as one JSON text. A monthly batch gives
one day hundreds of thousands of letters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
from pymongo import AsyncMongoClient

from bench.e2e import machine, mongo_uri, write_section
from bench.reporting_read import DatabasePeak, drop
from services.notification import service
from services.notification.store import NotificationStore

DAY = "2026-03-02"


def record(k: int) -> dict[str, Any]:
    aid = str(uuid.UUID(int=k))
    return {"_id": aid, "jour": DAY, "fichiers": [f"{aid}.pdf", f"{aid}-falc.pdf"],
            "sha256": [f"{k:064x}", f"{k + 1:064x}"], "pages": [1, 2],
            "parcours": "accompagnement-des-seniors", "modele": "seniors-m9-complementaire",
            "le": DAY}


async def fill(database: str, letters: int) -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri())
    try:
        store = NotificationStore(client, database)
        await store.setup()
        for start in range(0, letters, 1000):
            await store.save_letters([record(k) for k in range(start, min(start + 1000, letters))])
    finally:
        await client.close()


async def rewrite(database: str, at_once: bool) -> dict[str, float]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri(), tz_aware=True)
    store = NotificationStore(client, database)
    database_peak = DatabasePeak()
    with tempfile.TemporaryDirectory() as folder:
        try:
            before = psutil.Process().memory_info().rss / 2**20
            database_peak.start()
            t0 = time.monotonic()
            if at_once:  # the former rewrite, for comparison
                docs = [d async for d in store.courriers.find({"jour": DAY})]
                entries = sorted(({"action_id": d["_id"], "fichiers": d["fichiers"],
                                   "sha256": d["sha256"], "pages": d["pages"],
                                   "parcours": d.get("parcours"), "modele": d.get("modele"),
                                   "enveloppe": "C5 fenêtre"} for d in docs),
                                 key=lambda e: e["action_id"])
                text = json.dumps({"jour": DAY, "courriers": len(entries), "lettres": entries},
                                  ensure_ascii=False, indent=2)
                (Path(folder) / "manifest.json").write_text(text, encoding="utf-8")
            else:
                deps = SimpleNamespace(store=store, letters_dir=Path(folder))
                await service.write_batch(DAY, deps)  # type: ignore[arg-type]
            elapsed = time.monotonic() - t0
        finally:
            database_peak.stop()
            await client.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s": elapsed, "rss_before_mb": before, "rss_peak_mb": peak,
            "db_before_mb": database_peak.before, "db_peak_mb": database_peak.peak}


def measure(letters: int) -> dict[str, Any]:
    database = f"benchprint{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(fill(database, letters))
        row: dict[str, Any] = {"letters": letters}
        for mode, flag in (("streamed", []), ("at_once", ["--at-once"])):
            out = subprocess.run(  # noqa: S603 - our own module, a database name we made
                [sys.executable, "-m", "bench.print_batch", "--rewrite", database, *flag],
                check=True, capture_output=True, text=True)
            row[mode] = json.loads(out.stdout)
        return row
    finally:
        asyncio.run(drop(database))


def report(rows: list[dict[str, Any]], command: str) -> str:
    lines = [f"Machine: {machine()}. Command: `{command}`.", "",
             "| letters of the day | rewrite | its memory (before → peak) | the database's "
             "(FerretDB) | the former rewrite (all at once) | its memory |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, o = r["streamed"], r["at_once"]
        database = (f"{s['db_before_mb']:.0f} → {s['db_peak_mb']:.0f} MB"
                    if s.get("db_peak_mb") else "-")
        lines.append(f"| {r['letters']:,} | {s['s']:.1f} s | {s['rss_before_mb']:.0f} → "
                     f"{s['rss_peak_mb']:.0f} MB | {database} | {o['s']:.1f} s | "
                     f"{o['rss_before_mb']:.0f} → {o['rss_peak_mb']:.0f} MB |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench print-batch")
    parser.add_argument("letters", type=int, nargs="*", default=[20_000, 100_000])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--rewrite", metavar="DATABASE", help=argparse.SUPPRESS)
    parser.add_argument("--at-once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rewrite:
        print(json.dumps(asyncio.run(rewrite(args.rewrite, args.at_once))))
        return 0
    rows = [measure(n) for n in args.letters]
    text = report(rows, " ".join(["python -m bench print-batch", *argv]))
    print(text)
    if args.write:
        write_section("print-batch", text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

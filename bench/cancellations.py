"""What applying a batch's cancellations costs notification: together or one at a time.

    python -m bench cancellations [N] [--write]

N actions planned by notification's own use case into a fresh database, then cancelled (a
monthly batch's deaths cancel the pending actions of their cases) by ``cancel_actions``, in
batches of 500 as the consumer reads them, and, on another fresh database, one cancellation
per call: the same statements, each step of its own (what notification did before
2026-11-24). Twice each way, interleaved; the database's CPU (FerretDB and PostgreSQL) beside.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from bench.e2e import infra_cpu, machine, mongo_uri, write_section
from services.notification import service
from services.notification.store import NotificationStore
from shared.clock import ManualClock
from shared.cloudevents import new_event
from shared.contracts import internes as i
from shared.ids import derive_id

NOW = datetime(2026, 3, 2, 10, tzinfo=UTC)
BATCH = 500  # notification's consumer batch (services/notification/handlers.py)


def planned(k: int) -> i.ActionPlanifiee:
    p = f"bench-{k:08d}"
    return i.ActionPlanifiee(
        action_id=str(uuid.uuid4()), pseudonyme=p, dossier_id=derive_id("dossier", p),
        parcours="deces-accompagnement", etape="e1", kind="courrier", canaux=["courrier"],
        due_le=NOW + timedelta(days=30), modele="generique")


def database_cpu() -> float:
    """FerretDB's and PostgreSQL's CPU so far (bench.e2e.infra_cpu, the broker left out)."""
    return sum(cpu for kind, cpu in infra_cpu().items() if kind != "Kafka broker")


async def run(n: int, together: bool) -> dict[str, Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri(), tz_aware=True)
    name = f"benchcancel{uuid.uuid4().hex[:6]}"
    store = NotificationStore(client, name)
    deps: Any = SimpleNamespace(store=store, clock=ManualClock(NOW), hint=lambda due: None,
                                metrics=service.Metrics(CollectorRegistry()))
    try:
        actions = [planned(k) for k in range(n)]
        for start in range(0, n, BATCH):
            await service.plan_actions(
                [(new_event(type=i.ACTION_PLANIFIEE, source="bench", id=a.action_id, data=a,
                            subject=a.pseudonyme, time=NOW), a, 0)
                 for a in actions[start:start + BATCH]], deps)
        cancels = [(i.ActionAnnulee(action_id=a.action_id, pseudonyme=a.pseudonyme,
                                    dossier_id=a.dossier_id, raison="deces"), 0) for a in actions]
        cpu0, t0 = database_cpu(), time.monotonic()
        if together:
            for start in range(0, n, BATCH):
                await service.cancel_actions(cancels[start:start + BATCH], deps)
        else:
            for c in cancels:
                await service.cancel_actions([c], deps)
        elapsed, cpu = time.monotonic() - t0, database_cpu() - cpu0
        assert await store.actions.count_documents({"statut": "annulee"}) == n
        assert await store.minuteries.count_documents({}) == 0
        return {"together": together, "s": elapsed, "db_cpu_s": cpu}
    finally:
        await client.drop_database(name)
        await client.close()


def report(n: int, rows: list[dict[str, Any]], command: str) -> str:
    lines = [f"Machine: {machine()}. Command: `{command}`.", "",
             "| N cancellations | how | time | per cancellation | database CPU |",
             "|---:|---|---:|---:|---:|"]
    for r in rows:
        how = f"together, in batches of {BATCH}" if r["together"] else "one at a time"
        lines.append(f"| {n:,} | {how} | {r['s']:.1f} s | {1000 * r['s'] / n:.2f} ms | "
                     f"{r['db_cpu_s']:.1f} s |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cancellations")
    parser.add_argument("n", type=int, nargs="?", default=2000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    rows = [asyncio.run(run(args.n, together)) for together in (False, True, False, True)]
    text = report(args.n, rows, " ".join(["python -m bench cancellations", *argv]))
    print(text)
    if args.write:
        write_section("cancellations", text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

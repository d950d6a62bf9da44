"""``make run``: the whole platform on this machine, fed with a synthetic département.

    python -m deploy.local.demo [--size 400] [--seed 17] [--departement 17] [--months 12]
                                [--no-wait]

1. fetches what it needs and starts Kafka, the database (FerretDB) and every service that
   exists (``deploy/local/infra.py``; ports 9092, 27017, 8001-8004, or the
   ``PARCOURS_LOCAL_*`` variables); a port already taken by something else stops it with a
   clear message;
2. registers the demo's partners (CCAS, mission locale, PASS, France Travail) and their API keys;
3. feeds a sample of life events (``evenements-vie``) and partners' referrals
   (``POST /v1/signalements``), plus a few invalid records, from
   ``deploy/local/generator.py``, with a progress bar;
4. moves the shared clock forward week by week (``.local/run/clock.json``), so that months of
   follow-ups (the letter 9 months after retirement, reminders, deadlines) happen in minutes;
5. prints what happened and where to look, then runs until Ctrl-C, which stops everything.

``--no-wait`` stops everything right after step 5 (tests, CI). A summary is also written to
``<state>/demo-summary.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import hashlib
import json
import logging
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from deploy.local.generator import PARTENAIRES, Departement, Item, counts
from deploy.local.infra import SERVICES, InfraError, LocalInfra, infra_from_env, port_open
from deploy.local.sinks import Sinks
from shared import topics as t
from shared.auth import mint
from shared.calendar import PARIS
from shared.clock import FileOffsetClock, read_offset, write_offset
from shared.settings import Settings

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def say(*parts: object) -> None:
    console.print("[bold cyan]\\[demo][/bold cyan]", *parts)


# --------------------------------------------------------------------------- ports


def taken_ports(infra: LocalInfra) -> list[str]:
    """Ports the demo needs that another program holds (ours, already running, are fine)."""
    wanted: list[tuple[str, int, bool]] = [
        ("Kafka", infra.kafka_port, infra.kafka.running()),
        ("Kafka controller", infra.controller_port, infra.kafka.running()),
        ("FerretDB (MongoDB protocol)", infra.mongo_port, infra.ferretdb.running()),
    ]
    for name in infra.existing_services():
        wanted.append((f"service {name}", infra.service_ports[name], infra.service(name).running()))
    return [f"port {port} ({what})" for what, port, ours in wanted if not ours and port_open(port)]


def running_services(infra: LocalInfra) -> list[str]:
    return [n for n in infra.existing_services() if infra.service(n).running()]


# --------------------------------------------------------------------------- partners


@dataclass(frozen=True)
class DemoPartner:
    id: str
    nom: str
    type: str
    api_key: str


def register_partners(infra: LocalInfra) -> list[DemoPartner]:
    """The demo's partners and fresh API keys, in signalement's database (what the partners'
    onboarding would do). Re-running replaces the keys."""
    from pymongo import MongoClient

    from services.signalement.partners import Partner, partner_document

    s = Settings(service_name="signalement")
    pepper = s.api_key_pepper.get_secret_value().encode()
    out: list[DemoPartner] = []
    client: MongoClient[dict[str, Any]] = MongoClient(infra.mongo_uri,
                                                      serverSelectionTimeoutMS=10_000)
    with client:
        coll = client[s.database_name]["partenaires"]
        for pid, nom, kind in PARTENAIRES:
            key_id = hashlib.sha256(f"demo:{pid}".encode()).hexdigest()[:16]
            secret = secrets.token_urlsafe(24)
            doc = partner_document(Partner(pid, nom, kind), key_id, secret, pepper)
            coll.replace_one({"_id": key_id}, doc, upsert=True)
            out.append(DemoPartner(pid, nom, kind, f"pk_{key_id}_{secret}"))
    return out


# --------------------------------------------------------------------------- feeding


@dataclass
class FeedReport:
    events: int = 0
    invalid: int = 0
    referrals_accepted: int = 0
    referrals_refused: dict[str, int] = field(default_factory=dict)
    referrals_skipped: int = 0
    references: list[str] = field(default_factory=list)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console)


async def feed(infra: LocalInfra, items: list[Item], partners: list[DemoPartner],
               progress: Progress, label: str = "life events (Kafka)") -> FeedReport:
    import httpx
    from aiokafka import AIOKafkaProducer

    from shared.cloudevents import CONTENT_TYPE

    report = FeedReport()
    task = progress.add_task(label, total=len(items), info="")
    keys = {p.id: p.api_key for p in partners}
    signalement = (f"http://127.0.0.1:{infra.service_ports['signalement']}"
                   if "signalement" in running_services(infra) else None)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all",
                                enable_idempotence=True, client_id="demo", linger_ms=10)
    await producer.start()
    limit = asyncio.Semaphore(4)
    try:
        async with httpx.AsyncClient(timeout=30) as http:

            async def refer(item: Item) -> None:
                if signalement is None:
                    report.referrals_skipped += 1
                    return
                async with limit:
                    for _ in range(10):
                        resp = await http.post(
                            f"{signalement}/v1/signalements", json=item.payload,
                            headers={"X-API-Key": keys[item.partenaire or PARTENAIRES[0][0]],
                                     "Idempotency-Key": item.id})
                        if resp.status_code != 429:
                            break
                        await asyncio.sleep(min(float(resp.headers.get("Retry-After", 5)), 60))
                if resp.status_code == 202:
                    report.referrals_accepted += 1
                    report.references.append(resp.json()["reference"])
                else:
                    code = f"http {resp.status_code}"
                    report.referrals_refused[code] = report.referrals_refused.get(code, 0) + 1
                progress.advance(task)

            pending_http: list[asyncio.Task[None]] = []
            futures = []
            topic = t.EVENEMENTS_VIE
            for item in items:
                if item.kind == "signalement":
                    pending_http.append(asyncio.create_task(refer(item)))
                    continue
                headers = [("content-type", CONTENT_TYPE.encode()), ("ce_id", item.id.encode())]
                futures.append(await producer.send(topic, item.value(), key=item.id.encode(),
                                                   headers=headers))
                if item.kind == "invalide":
                    report.invalid += 1
                else:
                    report.events += 1
                progress.advance(task)
                if len(futures) >= 200:
                    await asyncio.gather(*futures)
                    futures.clear()
            await asyncio.gather(*futures)
            await asyncio.gather(*pending_http)
    finally:
        await producer.stop()
    progress.update(task, info=(f"{report.referrals_accepted} accepted" if not report.events
                                else f"{report.events} events, {report.invalid} invalid"))
    return report


# --------------------------------------------------------------------------- waiting


def _settings(infra: LocalInfra) -> Settings:
    return Settings(service_name="demo", kafka_bootstrap_servers=infra.bootstrap_servers,
                    topic_prefix="")


async def lag(infra: LocalInfra) -> tuple[int, dict[str, int]]:
    """Total lag of the services' consumer groups, and each topic's end offsets (sum)."""
    from shared.cli import REPLAY_GROUP, topic_status

    offsets, lags = await topic_status(_settings(infra))
    total = sum(g.lag for g in lags if not g.group.startswith(REPLAY_GROUP)
                and g.group != "demo")
    return total, {name: sum(p.values()) for name, p in offsets.items()}


async def settle(infra: LocalInfra, timeout: float,  # noqa: ASYNC109
                 progress: Progress | None = None, label: str = "services catching up") -> bool:
    """Wait until every consumer group has read everything (or the timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    task = progress.add_task(label, total=None, info="") if progress else None
    first: int | None = None
    try:
        while True:
            behind, _ = await lag(infra)
            if progress is not None and task is not None:
                first = behind if first is None else max(first, behind)
                progress.update(task, total=first or 1, completed=(first or 1) - behind,
                                info=f"{behind} record(s) behind")
            if behind == 0:
                return True
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.5)
    finally:
        if progress is not None and task is not None:
            progress.update(task, visible=False)


async def wait_for_intake(infra: LocalInfra, expected: int, timeout: float,  # noqa: ASYNC109
                          progress: Progress) -> None:
    """Signalement has read every record fed (its group's committed offsets)."""
    from shared.cli import topic_status

    task = progress.add_task("intake (signalement)", total=expected, info="")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        _, lags = await topic_status(_settings(infra))
        done = [g for g in lags if g.group == "signalement" and g.topic == t.EVENEMENTS_VIE]
        behind = done[0].lag if done else expected
        progress.update(task, completed=max(0, expected - behind), info=f"{behind} to go")
        if done and behind == 0:
            return
        await asyncio.sleep(0.5)
    progress.update(task, info="[yellow]still reading; carrying on[/yellow]")


async def move_clock(infra: LocalInfra, months: float, step_days: float, pause: float,
                     progress: Progress) -> None:
    """Forward the shared clock step by step; after each step let the services fire what
    became due and read what that produced."""
    days = months * 30
    steps = max(1, round(days / step_days)) if days > 0 else 0
    if not steps:
        return
    clock = FileOffsetClock(infra.clock_file)
    task = progress.add_task("moving the clock", total=steps, info="")
    for _ in range(steps):
        # Land on 11:00 in Paris, never a Sunday: jumps that always landed before 09:00 would
        # leave calls and SMS deferred by the quiet hours for ever (real time moves on).
        now = clock.now()
        target = (now + timedelta(days=step_days)).astimezone(PARIS).replace(
            hour=11, minute=0, second=0, microsecond=0)
        if target.weekday() == 6:
            target += timedelta(days=1)
        write_offset(infra.clock_file,
                     read_offset(infra.clock_file) + (target - now).total_seconds())
        progress.update(task, info=f"services' date: {clock.now():%d/%m/%Y}")
        await asyncio.sleep(pause)
        await settle(infra, timeout=30)
        progress.advance(task)


# --------------------------------------------------------------------------- what happened


async def observe(infra: LocalInfra, items: list[Item], partners: list[DemoPartner],
                  site: str) -> dict[str, Any]:
    """What the services did, from the topics and each existing service's HTTP API."""
    import httpx

    from shared.cli import pseudonym_of

    behind, topic_counts = await lag(infra)
    services = running_services(infra)
    found: dict[str, Any] = {"topics": topic_counts, "lag": behind, "services": services}
    base = {n: f"http://127.0.0.1:{infra.service_ports[n]}" for n in services}
    people = [i.personne for i in items if i.kind != "invalide" and i.personne is not None]
    s = Settings(service_name="demo")
    async with httpx.AsyncClient(timeout=10) as http:
        if "signalement" in base and partners:
            found["signalement"] = await _get_json(
                http, f"{base['signalement']}/v1/signalements?taille=1",
                {"X-API-Key": partners[0].api_key}, lambda b: {"partner_referrals": b["total"]})
        if "orientation" in base:
            with_case = 0
            checked = people[:25]
            for p in checked:
                r = await _try(http.get(
                    f"{base['orientation']}/v1/personnes/{pseudonym_of(p.nir, s)}/dossiers",
                    headers=_bearer(s, "superviseur", site)))
                if r is not None and r.status_code == 200 and r.json():
                    with_case += 1
            found["orientation"] = {"people_checked": len(checked), "with_a_case": with_case}
        if "notification" in base:
            found["notification"] = await _get_json(
                http, f"{base['notification']}/v1/taches?site={site}&limite=500",
                _bearer(s, "agent", site),
                lambda b: {"tasks": len(b) if isinstance(b, list) else
                           b.get("total", len(b.get("elements", b.get("taches", []))))})
        if "reporting" in base:
            r = await _try(http.get(f"{base['reporting']}/"))
            found["reporting"] = {"dashboard_http": r.status_code if r is not None else None}
    data = infra.state / "data"
    found["files"] = {"pdf": len(list(data.rglob("*.pdf"))) if data.exists() else 0,
                      "all": sum(1 for f in data.rglob("*") if f.is_file()) if data.exists() else 0}
    return found


async def _try(coro: Any) -> Any:
    try:
        return await coro
    except Exception:
        return None


async def _get_json(http: Any, url: str, headers: dict[str, str], pick: Any) -> dict[str, Any]:
    r = await _try(http.get(url, headers=headers))
    if r is None or r.status_code != 200:
        return {"http": r.status_code if r is not None else None}
    try:
        return dict(pick(r.json()))
    except Exception:
        return {"http": 200}


def print_summary(infra: LocalInfra, sample: dict[str, int], report: FeedReport,
                  found: dict[str, Any], partners: list[DemoPartner], example: str | None,
                  wait: bool, site: str) -> None:
    table = Table(title="what the sample held")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for kind, n in sorted(sample.items(), key=lambda kv: -kv[1]):
        table.add_row(kind, str(n))
    console.print(table)
    topics = Table(title="records on each topic")
    topics.add_column("topic")
    topics.add_column("records", justify="right")
    for name, n in found["topics"].items():
        topics.add_row(name, str(n))
    console.print(topics)
    for name in ("signalement", "orientation", "notification", "reporting"):
        if name in found:
            console.print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in found[name].items()))
    ports = infra.service_ports
    exists = set(running_services(infra))

    def url(name: str, path: str, what: str) -> str:
        if name in infra.existing_services() and name not in exists:
            return f"(the {name} service did not start: see {infra.service(name).logfile})"
        if name not in exists:
            return f"(the {name} service is not built yet: {what} appears once it is)"
        return f"http://127.0.0.1:{ports[name]}{path}"

    lines = [
        f"Dashboard (reporting)      {url('reporting', '/', 'the dashboard')}",
        f"Letters and print batches  {infra.state / 'data' / 'letters'}"
        + ("" if "notification" in exists else "  (once notification is built)"),
        f"E-mails received (SMTP)    {infra.state / 'data' / 'boite-mail'}",
        f"SMS received (provider)    {infra.state / 'data' / 'sms' / 'envoyes.jsonl'}",
        f"Agents' phone queue        {url('notification', f'/v1/taches?site={site}', 'the queue')}"
        + ("  (header Authorization: Bearer <agent token below>)" if "notification" in exists
           else ""),
        "API docs (OpenAPI)         " + ("\n                           ".join(
            f"http://127.0.0.1:{ports[n]}/docs  ({n})" for n in SERVICES if n in exists)
            or "(no service yet)"),
    ]
    demo = Settings(service_name="demo")
    lines.append("Demo tokens (12 h, signed with the dev key PARCOURS_AUTH_JWT_SECRET; "
                 "mint others: python -m shared.auth token <sub> <role> <site>)")
    for role in ("agent", "superviseur", "lecteur-indicateurs"):
        minted = mint(demo, f"demo.{role}", [role], site, ttl_seconds=43200)
        lines.append(f"  {role + ':':<21}{minted}")
    if "reporting" in exists:
        lines.append(f"  dashboard: {url('reporting', '/tableau-de-bord', 'the dashboard')}#jeton="
                     + mint(demo, "demo.lecteur", ["lecteur-indicateurs"], site, ttl_seconds=43200))
    if partners and "signalement" in exists:
        lines.append(f"Partner API key (demo)     {partners[0].api_key}  ({partners[0].nom})")
        lines.append(f"  try: curl -H 'X-API-Key: {partners[0].api_key}' "
                     f"http://127.0.0.1:{ports['signalement']}/v1/signalements")
    env = ""
    if infra.kafka_port != 9092:
        env = f"PARCOURS_KAFKA_BOOTSTRAP_SERVERS={infra.bootstrap_servers} "
    if example:
        lines.append(f"A person's trail           {env}parcours trail {example}")
    lines += [
        f"Topics, consumer lag       {env}parcours topics status",
        f"Rejected inputs            {env}parcours rejects list   ({report.invalid} sent on "
        "purpose)",
        "Shared clock               parcours clock show | parcours clock advance 30d",
        f"Logs                       {infra.state / 'logs'}",
        ("Stop                       Ctrl-C stops the services, the database and Kafka "
         "(data stays in " + str(infra.state) + "; make clean removes it)") if wait else
        "Stop                       (--no-wait: stopping everything now)",
    ]
    console.print(Panel("\n".join(lines), title="where to look", expand=False))


# --------------------------------------------------------------------------- main


def start_all(infra: LocalInfra, extra_env: dict[str, dict[str, str]] | None = None
              ) -> dict[str, str]:
    """``infra.up()``, except that a service that fails to start is reported and left out
    instead of stopping the demo (the others still show their part). Returns the failures."""
    infra.state.mkdir(parents=True, exist_ok=True)
    infra.fetch()
    infra.start_kafka()
    infra.start_ferretdb()
    for name, result in sorted(infra.ensure_topics().items()):
        if result not in ("ok", "created"):
            say(f"[yellow]topic {name}: {result}[/yellow]")
    failed: dict[str, str] = {}
    for name in infra.existing_services():
        try:
            infra.start_service(name, (extra_env or {}).get(name))
        except InfraError as exc:
            failed[name] = str(exc)[-1500:]
            infra.service(name).stop()
            say(f"[red]service {name} did not start[/red]; carrying on without it. "
                f"Its log: {infra.service(name).logfile}")
    infra._write_ports()
    return failed


def run(infra: LocalInfra, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.monotonic()
    say(f"starting Kafka, the database and the services ({', '.join(infra.existing_services())})"
        " — the first run downloads Kafka and builds the database runner")
    sinks = Sinks(infra.state / "data").__enter__()
    atexit.register(sinks.__exit__)
    failed = start_all(infra, {"notification": sinks.notification_env()})
    services = [n for n in infra.existing_services() if n not in failed]
    missing = [n for n in SERVICES if n not in infra.existing_services()]
    if missing:
        say(f"not built yet, skipped: {', '.join(missing)}")
    partners = register_partners(infra) if "signalement" in services else []
    clock = FileOffsetClock(infra.clock_file)
    today = clock.now().date()
    departement = Departement(args.departement, args.seed)
    items = departement.sample(args.size, today)
    sample = counts(items)
    say(f"sample of {len(items)} items for {departement.nom} ({departement.code}), "
        f"services' date {today:%d/%m/%Y}")

    async def flow() -> tuple[FeedReport, dict[str, Any]]:
        with _progress() as progress:
            # Upstream systems' events first, then the partners' referrals once intake has
            # read them: each phase's progress is then readable on its own.
            report = await feed(infra, [i for i in items if i.kind != "signalement"], partners,
                                progress)
            if "signalement" in services:
                fed = report.events + report.invalid
                await wait_for_intake(infra, fed, timeout=120 + fed / 20, progress=progress)
            referrals = await feed(infra, [i for i in items if i.kind == "signalement"],
                                   partners, progress, label="partners' referrals (HTTP)")
            report.referrals_accepted = referrals.referrals_accepted
            report.referrals_refused = referrals.referrals_refused
            report.referrals_skipped = referrals.referrals_skipped
            report.references = referrals.references
            await settle(infra, timeout=60, progress=progress)
            await move_clock(infra, args.months, args.step_days, args.pause, progress)
            await asyncio.sleep(args.pause)
            await settle(infra, timeout=60, progress=progress, label="last follow-ups")
        return report, await observe(infra, items, partners, departement.code)

    report, found = asyncio.run(flow())
    example = None
    if "signalement" in services:
        from shared.cli import pseudonym_of

        first = next((i for i in items if i.kind == "evenement" and i.name == "retraite"), None)
        if first is not None and first.personne is not None:
            example = pseudonym_of(first.personne.nir, Settings(service_name="demo"))
    summary = {"sample": sample, "failed_services": failed, "fed": report.__dict__, "found": found,
               "clock_offset_days": round(read_offset(infra.clock_file) / 86400, 1),
               "elapsed_seconds": round(time.monotonic() - t0, 1),
               "example_pseudonym": example}
    (infra.state / "demo-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print_summary(infra, sample, report, found, partners, example, wait=not args.no_wait,
                  site=departement.code)
    return summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploy.local.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=400, help="items in the sample (default 400)")
    p.add_argument("--seed", type=int, default=17, help="random seed of the sample")
    p.add_argument("--departement", default="17", help="17 (Charente-Maritime) or 91 (Essonne)")
    p.add_argument("--months", type=float, default=12,
                   help="how far to move the clock forward (default 12 months)")
    p.add_argument("--step-days", type=float, default=7, help="clock step (default 7 days)")
    p.add_argument("--pause", type=float, default=1.0,
                   help="seconds given to the services after each clock step (default 1)")
    p.add_argument("--no-wait", action="store_true",
                   help="stop everything once the sample is fed (tests, CI)")
    args = p.parse_args(argv)
    if args.size < 1 or args.step_days <= 0 or args.months < 0:
        p.error("--size must be >= 1, --step-days > 0, --months >= 0")
    return args


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The broker's client logs every refused connection while Kafka starts: not news here.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    infra = infra_from_env()
    taken = taken_ports(infra)
    if taken:
        say("[red]cannot start:[/red] " + "; ".join(taken) + " already in use by another "
            "program.\n  Stop it, or choose other ports with PARCOURS_LOCAL_KAFKA_PORT, "
            "PARCOURS_LOCAL_CONTROLLER_PORT, PARCOURS_LOCAL_MONGO_PORT, "
            "PARCOURS_LOCAL_SERVICE_PORTS=name=port,...")
        return 2
    # Ctrl-C and SIGTERM stop everything (even when started in the background, where a shell
    # leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    code = 0
    try:
        summary = run(infra, args)
        if args.no_wait and summary["failed_services"]:
            say(f"[red]failed to start:[/red] {', '.join(summary['failed_services'])}")
            code = 1
        if not args.no_wait:
            say("running; [bold]Ctrl-C[/bold] stops everything")
            watch(infra)
    except KeyboardInterrupt:
        console.print()
        say("Ctrl-C: stopping")
    except InfraError as exc:
        say(f"[red]error:[/red] {exc}")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop
        say("stopping the services, the database and Kafka...")
        infra.down()
        say("everything stopped")
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return code


def watch(infra: LocalInfra) -> None:
    """Until Ctrl-C: say once if a process dies, with where its log is."""
    reported: set[str] = set()
    while True:
        time.sleep(5)
        procs = {"kafka": infra.kafka, "ferretdb": infra.ferretdb,
                 **{n: infra.service(n) for n in running_services(infra)}}
        for name, proc in procs.items():
            if name not in reported and not proc.running():
                reported.add(name)
                say(f"[yellow]{name} stopped[/yellow]; see {proc.logfile}")


def _bearer(s: Settings, role: str, site: str) -> dict[str, str]:
    """A demo token of ``role`` at ``site`` (signed with the dev HS256 secret of the settings)."""
    return {"Authorization": f"Bearer {mint(s, f'demo.{role}', [role], site)}"}


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())

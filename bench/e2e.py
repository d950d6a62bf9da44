"""End to end: life events in, planned actions out, the services as separate processes.

    python -m bench e2e [N] [--instances K] [--no-baseline] [--profile SECONDS] [--whole]

On the running broker and database (PARCOURS_KAFKA_BOOTSTRAP_SERVERS / PARCOURS_MONGO_URI,
else the local ones of `make up`), with a fresh topic prefix and fresh databases:

1. starts signalement and orientation, K instances each (uvicorn processes, one consumer group
   per service, as in production); with ``--whole``, notification and reporting too;
2. publishes N generated life events to ``evenements-vie`` as fast as the producer goes (a
   monthly batch arriving at once);
3. waits until both consumer groups have committed every offset (a service commits only once
   the effects are stored and the broker acknowledged what it published); with ``--whole``,
   then until every consumer group of the four services has, and notification has no due
   timer left to fire (its timers collection, read-only);
4. reads back the records of every stage (their Kafka timestamps, and the ``correlation_id``
   header that ties a demand and its actions to the life event) for the latencies;
5. then, on the same broker and the same input topic, runs the **baseline**: a bare aiokafka
   consumer that reads the N records and produces them to another topic (acks=all,
   idempotent, offsets committed after the acknowledgements), nothing else;
6. drops the databases and deletes the topics.

CPU seconds and peak RSS come from /proc (psutil) for each service process, with its own
child processes (notification's letter renderers); memory is also sampled during the run to
show whether it grows with N.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from pymongo import AsyncMongoClient

from deploy.local.infra import ROOT, Proc, free_port
from services.reporting.handlers import GROUPS as REPORTING_GROUPS
from shared import topics
from shared.settings import Settings
from shared.topics import ensure_topics, load_topics
from tests.inputs import CT, valid_event

SERVICES = ("signalement", "orientation")
WHOLE = (*SERVICES, "notification", "reporting")
# Every consumer group of each service and the topics it reads (``--whole`` waits for them all).
GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "signalement": (("signalement", topics.EVENEMENTS_VIE),
                    ("signalement-statuts", topics.DECISIONS),
                    ("signalement-statuts", topics.RESULTATS)),
    "orientation": (("orientation", topics.DEMANDES), ("orientation", topics.RESULTATS)),
    "notification": (("notification", topics.ACTIONS),
                     ("notification-coordonnees", topics.COORDONNEES)),
    "reporting": tuple((group, topic) for topic, group in REPORTING_GROUPS.items()),
}
PSEUDONYM_KEY = "bench-pseudonym-key-0123456789abcdef"
RELAY = "bench.relay"


@dataclass
class ProcStats:
    name: str
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    rss_samples_mb: list[float] = field(default_factory=list)


@dataclass
class Result:
    n: int
    instances: int
    whole_s: float = 0.0  # --whole: until every group of the four services has caught up
    publish_s: float = 0.0
    e2e_s: float = 0.0
    done_s: float = 0.0
    demandes: int = 0
    actions: int = 0
    with_actions: int = 0
    latencies: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    procs: list[ProcStats] = field(default_factory=list)
    machine_cpu_busy_s: float = 0.0
    baseline_s: float = 0.0
    profiles: dict[str, str] = field(default_factory=dict)
    infra_cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.n / self.e2e_s if self.e2e_s else 0.0

    @property
    def baseline_rate(self) -> float:
        return self.n / self.baseline_s if self.baseline_s else 0.0


# Settings the bench passes on to the services when set in its environment (A/B experiments).
TUNING = ("PARCOURS_GC_THRESHOLD", "PARCOURS_INTAKE_BATCH_SIZE", "PARCOURS_ORIENTATION_BATCH_SIZE",
          "PARCOURS_ORIENTATION_CONCURRENCY", "PARCOURS_NOTIFICATION_FIRE_CONCURRENCY")


def bootstrap() -> str:
    return Settings().kafka_bootstrap_servers


def mongo_uri() -> str:
    return Settings().mongo_uri


def generate(n: int, seed: int = 8) -> list[bytes]:
    rng = random.Random(seed)
    return [json.dumps(valid_event(rng)).encode() for _ in range(n)]


async def publish(servers: str, topic: str, values: list[bytes]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True,
                                linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for k, value in enumerate(values):
            futures.append(await producer.send(topic, value, key=str(k).encode(), headers=[CT]))
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


class Offsets:
    """Committed offsets of a group against the end offsets of a topic (no database scan)."""

    def __init__(self, servers: str) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=servers)

    async def __aenter__(self) -> Offsets:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def end(self, topic: str) -> int:
        """How many records the topic has had (the sum of its partitions' end offsets)."""
        return sum((await self.consumer.end_offsets(partitions(topic))).values())

    async def lag(self, group: str, topic: str) -> int:
        tps = partitions(topic)
        ends = await self.consumer.end_offsets(tps)
        committed = await self.admin.list_consumer_group_offsets(group, partitions=tps)
        return sum(max(0, ends[tp] - (committed[tp].offset if tp in committed
                                      and committed[tp].offset >= 0 else 0)) for tp in tps)


async def caught_up(offsets: Offsets, prefix: str, services: tuple[str, ...],
                    notification_db: str) -> None:
    """Until every consumer group of ``services`` has committed every offset of its topics, and
    notification has no due timer left to fire, twice in a row a second apart (what one service
    publishes late, e.g. an outcome, is read too)."""
    pairs = [(prefix + g, prefix + t) for service in services for g, t in GROUPS[service]]
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri(), tz_aware=True)
    timers = client[notification_db]["minuteries"]
    try:
        quiet, outcomes = 0, -1
        while quiet < 2:
            lagging = any([await offsets.lag(g, t) for g, t in pairs])
            # Notification publishes an outcome for each action it makes: while their count
            # moves, it is still firing, and there is no need to ask its database.
            before, outcomes = outcomes, await offsets.end(prefix + topics.RESULTATS)
            if lagging or outcomes != before:
                quiet = 0
                await asyncio.sleep(0.5 if lagging else 1.0)
                continue
            # a scan of the pending timers on FerretDB (no range pushdown): only once the
            # topics are read and no outcome came for a second
            due = await timers.find_one({"du": {"$lte": datetime.now(UTC)}}, {"_id": 1})
            quiet = 0 if due is not None else quiet + 1
            await asyncio.sleep(1.0)
    finally:
        await client.close()


def partitions(topic: str) -> list[TopicPartition]:
    """The partitions of a (prefixed) topic, from deploy/topics.yaml."""
    specs = load_topics()
    name = next(n for n in specs if topic.endswith(n) and topic[: -len(n)].endswith("."))
    return [TopicPartition(topic, p) for p in range(specs[name].partitions)]


async def _every_record(servers: str, topic: str, take: Any) -> None:
    """``take(record)`` for every record of a topic, from the start to its end offsets."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=servers, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        tps = consumer.assignment()
        while not tps:
            await asyncio.sleep(0.05)
            tps = consumer.assignment()
        ends = await consumer.end_offsets(list(tps))
        while await _behind(consumer, tps, ends):
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for r in records:
                    take(r)
    finally:
        await consumer.stop()


async def read_stage(servers: str, topic: str) -> list[tuple[int, str | None]]:
    """(timestamp ms, correlation id header) of every record of a topic."""
    out: list[tuple[int, str | None]] = []
    await _every_record(servers, topic, lambda r: out.append((r.timestamp, next(
        (v.decode() for k, v in r.headers or () if k == "correlation_id"), None))))
    return out


async def _behind(consumer: AIOKafkaConsumer, tps: Any, ends: dict[Any, int]) -> bool:
    for tp in tps:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False


async def event_ids(servers: str, topic: str) -> dict[str, int]:
    """CloudEvent id -> record timestamp of the input topic."""
    out: dict[str, int] = {}

    def take(r: Any) -> None:
        out[json.loads(r.value)["id"]] = r.timestamp

    await _every_record(servers, topic, take)
    return out


async def relay(servers: str, source: str, target: str, group: str, n: int) -> float:
    """The baseline: read and produce again, at least once, nothing else."""
    consumer = AIOKafkaConsumer(source, bootstrap_servers=servers, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_poll_records=500)
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True,
                                linger_ms=5)
    await producer.start()
    await consumer.start()
    started = time.perf_counter()
    done = 0
    try:
        while done < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            futures = [await producer.send(target, r.value, key=r.key,
                                           headers=list(r.headers or ()))
                       for records in batch.values() for r in records]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
                done += len(futures)
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (0.0, 0.0, 0.0)
    values = sorted(values)
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return (q[49], q[98], values[-1])


class System:
    def __init__(self, prefix: str, instances: int, state: Path,
                 services: tuple[str, ...] = SERVICES) -> None:
        self.prefix, self.instances, self.state = prefix, instances, state
        self.services = services
        self.procs: list[tuple[str, Proc, int]] = []

    def database(self, service: str) -> str:
        return f"{self.prefix.rstrip('.')}_{service}"

    def start(self) -> None:
        for service in self.services:
            for k in range(self.instances):
                port = free_port()
                proc = Proc(f"{service}-{k}", self.state)
                env = {"PARCOURS_SERVICE_NAME": service,
                       "PARCOURS_KAFKA_BOOTSTRAP_SERVERS": bootstrap(),
                       "PARCOURS_MONGO_URI": mongo_uri(),
                       "PARCOURS_MONGO_DATABASE": self.database(service),
                       "PARCOURS_TOPIC_PREFIX": self.prefix, "PARCOURS_HTTP_PORT": str(port),
                       "PARCOURS_DATA_DIR": str(self.state / "data"),
                       "PARCOURS_PSEUDONYM_KEY": PSEUDONYM_KEY, "PARCOURS_LOG_JSON": "true",
                       "PARCOURS_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
                       **{k: os.environ[k] for k in TUNING if k in os.environ}}
                proc.start([sys.executable, "-m", "uvicorn", f"services.{service}.app:create_app",
                            "--factory", "--host", "127.0.0.1", "--port", str(port),
                            "--no-access-log", "--log-level", "warning"], env=env, cwd=ROOT)
                self.procs.append((f"{service}-{k}", proc, port))
        for name, proc, port in self.procs:
            wait_ready(name, proc, port)

    def pids(self) -> dict[str, int]:
        return {name: pid for name, proc, _ in self.procs if (pid := proc.pid()) is not None}

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            proc.stop(timeout=25)


def wait_ready(name: str, proc: Proc, port: int, timeout: float = 120.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            raise RuntimeError(f"{name} exited:\n{proc.log_tail()}")
        with contextlib.suppress(OSError):
            url = f"http://127.0.0.1:{port}/health/ready"
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        time.sleep(0.3)
    raise RuntimeError(f"{name} not ready:\n{proc.log_tail()}")


async def sample(pids: dict[str, int], stats: dict[str, ProcStats], stop: asyncio.Event) -> None:
    handles = {name: psutil.Process(pid) for name, pid in pids.items()}
    while not stop.is_set():
        for name, p in handles.items():
            with contextlib.suppress(psutil.Error):
                rss = sum(q.memory_info().rss for q in _with_children(p))
                stats[name].rss_samples_mb.append(rss / 2**20)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def _with_children(p: psutil.Process) -> list[psutil.Process]:
    """A service's process and its own (notification's letter renderers): they count as its."""
    with contextlib.suppress(psutil.Error):
        return [p, *p.children(recursive=True)]
    return [p]


def infra_cpu() -> dict[str, float]:
    """CPU seconds so far of the broker and database processes of this machine (read only;
    shared with whoever else uses them during the run)."""
    out: dict[str, float] = {}
    for p in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        cmd = " ".join(p.info["cmdline"] or ())
        name = p.info["name"] or ""
        postgres = name == "postgres" or cmd.startswith("postgres:")
        kind = ("FerretDB (database)" if "ferretdb" in name else
                "PostgreSQL (FerretDB's storage)" if postgres
                else "Kafka broker" if "kafka.Kafka" in cmd else None)
        if kind and p.info["cpu_times"] is not None:
            t = p.info["cpu_times"]
            # PostgreSQL's backends come and go (FerretDB's pool closes idle connections): the
            # exited ones count in their parent's children times, or their CPU would vanish.
            children = t.children_user + t.children_system if " -D " in cmd else 0.0
            out[kind] = out.get(kind, 0.0) + t.user + t.system + children
    return out


def finish_stats(pids: dict[str, int], stats: dict[str, ProcStats]) -> None:
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error, OSError):
            procs = _with_children(psutil.Process(pid))
            stats[name].cpu_s = sum(t.user + t.system for t in (q.cpu_times() for q in procs))
            stats[name].peak_rss_mb = 0.0
            for q in procs:  # the sum of each one's peak: an upper bound of their peak together
                for line in Path(f"/proc/{q.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        stats[name].peak_rss_mb += int(line.split()[1]) / 1024


def start_profiles(pids: dict[str, int], seconds: int, out: Path) -> list[Any]:
    import subprocess

    running = []
    for name, pid in pids.items():
        if not name.endswith("-0"):
            continue
        target = out / f"{name}.txt"
        running.append((name, target, subprocess.Popen(  # noqa: S603 - our own command
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
             "--duration", str(seconds), "--rate", "50", "--format", "raw", "--nonblocking",
             "--output", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)))
    return running


def top_frames(collapsed: Path, top: int = 12) -> str:
    """Self-time share of the hottest functions of a py-spy raw (collapsed) profile."""
    counts: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        leaf = frames[-1]
        counts[leaf] = counts.get(leaf, 0) + c
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + c
    if not total:
        return "(no samples)"
    lines = [f"{total} samples; self time:"]
    for frame, c in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * c / total:5.1f} %  {frame}")
    lines.append("inclusive time (selected frames):")
    keys = ("take_life_events", "_read_flags", "claim_events", "add_demands", "mark_published",
            "_send", "orienter", "charger", "enregistrer", "publie", "_publier", "publier",
            "accept", "to_bytes", "model_validate", "_process_message", "consume")
    for frame, c in sorted(inclusive.items(), key=lambda kv: -kv[1]):
        if any(f"{k} (" in frame for k in keys):
            lines.append(f"  {100 * c / total:5.1f} %  {frame}")
    return "\n".join(lines[:40])


async def run(n: int, instances: int = 1, baseline: bool = True, profile: int = 0,
              whole: bool = False) -> Result:
    servers = bootstrap()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    state = Path(tempfile.mkdtemp(prefix="parcours-bench-"))
    result = Result(n=n, instances=instances)
    await ensure_topics(servers, prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    await admin.create_topics([NewTopic(prefix + RELAY, 6, 1)])
    values = generate(n)
    system = System(prefix, instances, state, WHOLE if whole else SERVICES)
    try:
        system.start()
        await asyncio.sleep(3 + 2 * instances)  # consumer groups join and settle
        pids = system.pids()
        stats = {name: ProcStats(name) for name in pids}
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(pids, stats, stop))
        cpu0 = psutil.cpu_times()
        infra0 = infra_cpu()
        profiles = start_profiles(pids, profile, state) if profile else []
        t0 = time.time()
        result.publish_s = await publish(servers, prefix + "evenements-vie", values)
        async with Offsets(servers) as offsets:
            while True:
                lag_s = await offsets.lag(prefix + "signalement", prefix + "evenements-vie")
                lag_o = await offsets.lag(prefix + "orientation", prefix + "parcours.demandes")
                if lag_s == 0 and lag_o == 0:
                    break
                await asyncio.sleep(0.5)
            result.done_s = time.time() - t0
            if whole:
                await caught_up(offsets, prefix, system.services,
                                system.database("notification"))
                result.whole_s = time.time() - t0
        cpu1 = psutil.cpu_times()
        result.machine_cpu_busy_s = ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system))
        result.infra_cpu_s = {k: v - infra0.get(k, 0.0) for k, v in infra_cpu().items()}
        finish_stats(pids, stats)
        stop.set()
        await sampler
        for name, target, p in profiles:
            with contextlib.suppress(Exception):
                # SIGINT, not SIGTERM: py-spy writes what it sampled so far on Ctrl-C, so a
                # run shorter than --profile still gets its profile.
                p.send_signal(signal.SIGINT)
                p.wait(timeout=30)
            if target.exists():
                result.profiles[name] = top_frames(target)
                if keep := os.environ.get("PARCOURS_BENCH_KEEP_PROFILES"):
                    Path(keep).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (raw, for flame graphs)
                    shutil.copy(target, Path(keep) / target.name)
        result.procs = list(stats.values())
    except BaseException:
        system.stop()
        await cleanup(admin, prefix, system)
        shutil.rmtree(state, ignore_errors=True)
        raise
    system.stop()

    try:
        await measure(servers, prefix, result, baseline)
    finally:
        await cleanup(admin, prefix, system)
        shutil.rmtree(state, ignore_errors=True)  # the services' logs and data of this run
    return result


async def measure(servers: str, prefix: str, result: Result, baseline: bool) -> None:
    n = result.n
    inputs = await event_ids(servers, prefix + "evenements-vie")
    demandes = await read_stage(servers, prefix + "parcours.demandes")
    actions = await read_stage(servers, prefix + "parcours.actions")
    first_in = min(inputs.values())
    result.e2e_s = (max(ts for ts, _ in actions) - first_in) / 1000 if actions else result.done_s
    result.demandes, result.actions = len(demandes), len(actions)
    demand_at = {c: ts for ts, c in demandes if c}
    first_action: dict[str, int] = {}
    for ts, c in actions:
        if c and (c not in first_action or ts < first_action[c]):
            first_action[c] = ts
    result.with_actions = len(first_action)
    result.latencies = {
        "intake (publish → demand)": percentiles(
            [(ts - inputs[c]) / 1000 for c, ts in demand_at.items() if c in inputs]),
        "orientation (demand → first action)": percentiles(
            [(ts - demand_at[c]) / 1000 for c, ts in first_action.items() if c in demand_at]),
        "end to end (publish → first action)": percentiles(
            [(ts - inputs[c]) / 1000 for c, ts in first_action.items() if c in inputs]),
    }

    if baseline:
        result.baseline_s = await relay(servers, prefix + "evenements-vie", prefix + RELAY,
                                        prefix + "relay", n)


async def cleanup(admin: AIOKafkaAdminClient, prefix: str, system: System) -> None:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri())
    try:
        for service in system.services:
            await client.drop_database(system.database(service))
    finally:
        await client.close()
    names = [prefix + s.name for s in load_topics().values()] + [prefix + RELAY]
    with contextlib.suppress(Exception):
        await admin.delete_topics(names)
    await admin.close()


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 "unknown CPU")
    ram = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({model}), {ram:.0f} GiB RAM, Python {sys.version.split()[0]}"


def table(results: list[Result]) -> str:
    rows = ["| N | instances / service | end to end | events/s | bare relay | ours / relay "
            "| demands | actions (events with ≥ 1) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        relay_cell = f"{r.baseline_rate:,.0f} ev/s" if r.baseline_s else "-"
        ratio = f"{100 * r.rate / r.baseline_rate:.1f} %" if r.baseline_s else "-"
        rows.append(f"| {r.n:,} | {r.instances} | {r.e2e_s:.1f} s | {r.rate:,.0f} | {relay_cell} "
                    f"| {ratio} | {r.demandes:,} | {r.actions:,} ({r.with_actions:,}) |")
    return "\n".join(rows)


def detail(r: Result) -> str:
    available = (os.cpu_count() or 1) * (r.whole_s or r.done_s)
    whole = (f" The whole platform (notification and reporting too: every consumer group of the "
             f"four services, and no due timer left in notification) caught up after "
             f"{r.whole_s:.1f} s: {r.n / r.whole_s:,.0f} life "
             "events/s." if r.whole_s else "")
    out = [f"N = {r.n:,}, {r.instances} instance(s) per service; published in {r.publish_s:.1f} s; "
           f"signalement and orientation committed every offset after {r.done_s:.1f} s.{whole} "
           f"Machine CPU busy during the run {r.machine_cpu_busy_s:.0f} s of {available:.0f} "
           "available (all processes).", "",
           "| stage | p50 | p99 | max |", "|---|---:|---:|---:|"]
    for stage, (p50, p99, mx) in r.latencies.items():
        out.append(f"| {stage} | {p50:.1f} s | {p99:.1f} s | {mx:.1f} s |")
    out += ["", "| process | CPU | peak RSS | RSS at 25 % / 50 % / 75 % / end of run |",
            "|---|---:|---:|---|"]
    for p in r.procs:
        s = p.rss_samples_mb or [0.0]
        marks = " / ".join(f"{s[min(len(s) - 1, int(len(s) * q))]:.0f}"
                           for q in (0.25, 0.5, 0.75, 1))
        out.append(f"| {p.name} | {p.cpu_s:.1f} s | {p.peak_rss_mb:.0f} MB | {marks} MB |")
    for kind, cpu in sorted(r.infra_cpu_s.items()):
        out.append(f"| {kind} (shared) | {cpu:.1f} s | - | - |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench e2e")
    parser.add_argument("n", type=int, nargs="?", default=20_000)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--whole", action="store_true",
                        help="also run notification and reporting, and wait until they caught up")
    parser.add_argument("--profile", type=int, default=0, metavar="SECONDS",
                        help="py-spy the first instance of each service for that long")
    parser.add_argument("--write", action="store_true",
                        help="also write the report into docs/performance.md (latest run)")
    parser.add_argument("--section", default="e2e",
                        help="the section of docs/performance.md to write (e2e, soak, ...)")
    args = parser.parse_args(argv)
    r = asyncio.run(run(args.n, args.instances, not args.no_baseline, args.profile, args.whole))
    text = report([r], " ".join(["python -m bench e2e", *argv]))
    print(text)
    if args.write:
        write_section(args.section, text)
    return 0


def report(results: list[Result], command: str) -> str:
    parts = [f"Machine: {machine()}. Broker and database on the same machine. Command: "
             f"`{command}`.", "", table(results)]
    for r in results:
        parts += ["", detail(r)]
        for name, text in r.profiles.items():
            parts += ["", f"py-spy, {name}:", "", "```", text, "```"]
    return "\n".join(parts)


DOC = ROOT / "docs" / "performance.md"


def write_section(name: str, text: str) -> None:
    """Replace the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    doc = DOC.read_text() if DOC.exists() else "# Performance\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(doc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

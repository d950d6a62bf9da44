"""``parcours``: the operations command line (installed with the project).

    parcours publish event.json            # a life event (or a list of them) to evenements-vie
    parcours pseudonyme NIR                # the pseudonym of a NIR, with the configured key
    parcours trail PSEUDONYME | --nir NIR  # a person's trail across topics, with explanations
    parcours rejects list | replay         # evenements-vie.rejets, replayed to evenements-vie
    parcours dlq list | replay             # parcours.dlq, replayed to each record's topic
    parcours topics status | ensure        # partitions, end offsets, consumer lag; create/check
    parcours clock show | advance 30d | reset   # the shared clock of the demo (FileOffsetClock)
    parcours config-doc                    # every setting, as a Markdown table

Settings come from the environment (``PARCOURS_*``, see ``parcours config-doc``): the broker
(``PARCOURS_KAFKA_BOOTSTRAP_SERVERS``), the topic prefix, the pseudonym key, the clock file.

Nothing here prints personal data: rejects and dead letters are listed by reason, position
and CloudEvent id, never by value; the trail reads only pseudonymous topics.

Replays are idempotent. A replay sends the original bytes, key and headers (the CloudEvent is
untouched, so downstream deduplication by source and id makes a repeated replay harmless),
and records how far it went in a consumer group of its own (``parcours-replay.<topic>``,
one per reason code with ``--code``): a second replay sends nothing new.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared import topics as t
from shared.settings import Settings

app = typer.Typer(help="Parcours operations: publish, trail, rejects and dead letters, "
                       "topics, clock, configuration.", no_args_is_help=True, add_completion=False,
                  rich_markup_mode=None)
rejects_app = typer.Typer(help="Inputs signalement refused (evenements-vie.rejets).",
                          no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters of the internal consumers (parcours.dlq).",
                      no_args_is_help=True)
topics_app = typer.Typer(help="Topics of deploy/topics.yaml and their consumers.",
                         no_args_is_help=True)
clock_app = typer.Typer(help="The shared clock of the demo and end-to-end tests.",
                        no_args_is_help=True)
app.add_typer(rejects_app, name="rejects")
app.add_typer(dlq_app, name="dlq")
app.add_typer(topics_app, name="topics")
app.add_typer(clock_app, name="clock")

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

H_REPLAY = "parcours-replay-of"
TRAIL_TOPICS = (t.DEMANDES, t.DECISIONS, t.ACTIONS, t.RESULTATS)
REPLAY_GROUP = "parcours-replay"


def settings() -> Settings:
    return Settings(service_name="parcours-cli")


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


# --------------------------------------------------------------------------- Kafka helpers


def _headers(record: Any) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in (record.headers or ())}


async def _partitions(consumer: Any, topic: str) -> list[Any]:
    from aiokafka.structs import TopicPartition

    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise fail(f"topic {topic} does not exist (parcours topics ensure creates it)")
    return [TopicPartition(topic, p) for p in sorted(parts)]


def _security() -> dict[str, Any]:
    """Kafka client security options from the settings (empty with PLAINTEXT)."""
    from shared.kafka import kafka_client_config

    return kafka_client_config(settings())


async def read_records(bootstrap: str, topic: str, *, partitions: Iterable[int] | None = None,
                       group: str | None = None, limit: int | None = None,
                       on_progress: Callable[[int, int], None] | None = None,
                       ) -> tuple[list[Any], dict[Any, int], Any]:
    """Records of ``topic`` from the group's committed offsets (or the beginning) up to the
    end offsets seen at the start. Returns (records, end offsets, consumer still open if a
    group is given, for the caller to commit then stop; else None)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                **_security())
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        if partitions is not None:
            wanted = set(partitions)
            tps = [tp for tp in tps if tp.partition in wanted]
        consumer.assign(tps)
        start: dict[Any, int] = {}
        begin = await consumer.beginning_offsets(tps)
        for tp in tps:
            committed = await consumer.committed(tp) if group else None
            start[tp] = max(committed, begin[tp]) if committed is not None else begin[tp]
            consumer.seek(tp, start[tp])
        end = await consumer.end_offsets(tps)
        total = sum(max(0, end[tp] - start[tp]) for tp in tps)
        records: list[Any] = []
        todo = [tp for tp in tps if start[tp] < end[tp]]
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, msgs in batch.items():
                records.extend(m for m in msgs if m.offset < end[tp])
            if on_progress:
                on_progress(len(records), total)
            todo = [tp for tp in todo if await consumer.position(tp) < end[tp]]
            if limit is not None and len(records) >= limit:
                break
        if group:
            return records, end, consumer
        await consumer.stop()
        return records, end, None
    except BaseException:
        await consumer.stop()
        raise


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


# --------------------------------------------------------------------------- publish


@app.command()
def publish(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="A CloudEvent as JSON, or a JSON list of them.")],
    key: Annotated[str | None, typer.Option(help="Record key (default: none).")] = None,
    force: Annotated[bool, typer.Option(help="Send even if it does not validate here (intake "
                                              "will reject it with a reason).")] = False,
) -> None:
    """Publish a life event from a JSON file to evenements-vie."""
    try:
        loaded = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise fail(f"{file} is not valid JSON: {exc}") from None
    events = loaded if isinstance(loaded, list) else [loaded]
    problems = [p for p in (check_event(e) for e in events) if p]
    if problems and not force:
        for p in problems:
            console.print(f"[red]invalid:[/red] {p}")
        raise fail(f"{len(problems)} of {len(events)} event(s) invalid; nothing sent "
                   "(--force sends anyway)")
    s = settings()
    sent = asyncio.run(_publish(s, events, key))
    console.print(f"published {sent} event(s) to {s.topic(t.EVENEMENTS_VIE)}")


def check_event(event: Any) -> str | None:
    """Why this CloudEvent would be refused by intake's schema checks, or None."""
    from pydantic import ValidationError

    from shared.cloudevents import CloudEvent
    from shared.contracts.evenements import model_for
    from shared.kafka import describe_error

    if not isinstance(event, dict):
        return "a life event must be a JSON object"
    model = model_for(str(event.get("type", "")))
    if model is None:
        return f"unknown type {str(event.get('type'))[:120]!r}"
    try:
        CloudEvent[model].model_validate(event)  # type: ignore[valid-type]
    except ValidationError as exc:
        return f"{event.get('id', '?')}: {describe_error(exc)}"
    return None


async def _publish(s: Settings, events: list[Any], key: str | None) -> int:
    from aiokafka import AIOKafkaProducer

    from shared.cloudevents import CONTENT_TYPE

    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, **_security(),
                                acks="all", enable_idempotence=True, client_id="parcours-cli")
    await producer.start()
    try:
        futures = []
        for e in events:
            headers = [("content-type", CONTENT_TYPE.encode())]
            if isinstance(e, dict) and isinstance(e.get("id"), str):
                headers.append(("ce_id", e["id"].encode()))
            futures.append(await producer.send(
                s.topic(t.EVENEMENTS_VIE), json.dumps(e, ensure_ascii=False).encode("utf-8"),
                key=key.encode() if key else None, headers=headers))
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- pseudonym, trail


def pseudonym_of(nir: str, s: Settings | None = None) -> str:
    from shared.nir import Pseudonymizer

    s = s or settings()
    return Pseudonymizer(s.pseudonym_key.get_secret_value().encode(),
                         s.pseudonym_key_id).pseudonym(nir)


@app.command()
def pseudonyme(nir: Annotated[str, typer.Argument(help="The NIR (15 characters).")]) -> None:
    """The pseudonym of a NIR, with the configured key (PARCOURS_PSEUDONYM_KEY)."""
    from shared.nir import InvalidNir

    try:
        print(pseudonym_of(nir))
    except InvalidNir as exc:
        raise fail(f"{exc} ({exc.code})") from None


@dataclass
class TrailEntry:
    time: datetime
    topic: str
    type: str
    summary: str
    explanation: list[str] = field(default_factory=list)


async def trail_of(s: Settings, pseudo: str) -> list[TrailEntry]:
    """Every record about ``pseudo`` on the pseudonymous topics, in time order. Only the
    partition the key maps to is read (Kafka's default partitioner, as the services use)."""
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    key = pseudo.encode()
    entries: list[TrailEntry] = []
    for name in TRAIL_TOPICS:
        spec = t.load_topics()[name]
        all_parts = list(range(spec.partitions))
        part = partitioner(key, all_parts, all_parts)
        records, _, _ = await read_records(s.kafka_bootstrap_servers, s.topic(name),
                                           partitions=[part])
        for r in records:
            if r.key != key:
                continue
            entries.append(_trail_entry(name, r))
    entries.sort(key=lambda e: e.time)
    return entries


def _trail_entry(topic: str, record: Any) -> TrailEntry:
    try:
        event = json.loads(record.value)
        data = event.get("data") or {}
        when = datetime.fromisoformat(str(event.get("time")).replace("Z", "+00:00"))
    except (ValueError, TypeError, AttributeError):
        when = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        return TrailEntry(when, topic, "?", "(not a readable CloudEvent)")
    typ = str(event.get("type", "?")).removeprefix("fr.assurance-maladie.")
    parts: list[str] = []
    for k in ("evenement", "origine", "nature", "date_effet", "parcours", "statut", "etape",
              "kind", "canaux", "due_le", "canal", "raison", "motif_cloture", "issue_appel",
              "dossier_id"):
        if data.get(k) not in (None, "", []):
            v = data[k]
            parts.append(f"{k}={','.join(v) if isinstance(v, list) else v}")
    if data.get("drapeaux"):
        parts.append("drapeaux=" + ",".join(f"{k}:{v}" for k, v in data["drapeaux"].items()))
    expl = [str(x) for x in data.get("explication") or []]
    return TrailEntry(when, topic, typ, " ".join(parts), expl)


@app.command()
def trail(
    pseudo: Annotated[str | None, typer.Argument(metavar="PSEUDONYME",
                                                 help="The person's pseudonym.")] = None,
    nir: Annotated[str | None, typer.Option(help="A NIR, turned into its pseudonym first.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """A person's trail across services (demandes, decisions, actions, resultats)."""
    from shared.nir import InvalidNir

    if (pseudo is None) == (nir is None):
        raise fail("give a pseudonym or --nir, not both")
    s = settings()
    if nir is not None:
        try:
            pseudo = pseudonym_of(nir, s)
        except InvalidNir as exc:
            raise fail(f"{exc} ({exc.code})") from None
    assert pseudo is not None
    entries = asyncio.run(trail_of(s, pseudo))
    if as_json:
        for e in entries:
            print(json.dumps({"time": e.time.isoformat(), "topic": e.topic, "type": e.type,
                              "summary": e.summary, "explication": e.explanation},
                             ensure_ascii=False))
        return
    if not entries:
        console.print(f"nothing about {pseudo} on {', '.join(TRAIL_TOPICS)}")
        raise typer.Exit(1)
    table = Table(title=f"trail of {pseudo}", show_lines=True)
    for col in ("time", "topic", "type", "what", "why"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(f"{e.time:%Y-%m-%d %H:%M}", e.topic, e.type, e.summary,
                      "\n".join(e.explanation))
    console.print(table)


# --------------------------------------------------------------------------- rejects, dlq


@dataclass(frozen=True)
class Parked:
    """A rejected or dead-lettered record, described without its value."""

    partition: int
    offset: int
    code: str
    message: str
    original_topic: str
    rejected_at: str
    rejected_by: str
    event_id: str
    event_type: str


def describe_parked(record: Any) -> Parked:
    from shared import kafka as k

    h = _headers(record)
    event_id, event_type = h.get("ce_id", ""), h.get("ce_type", "")
    if not event_id:
        try:
            raw = json.loads(record.value)
            event_id, event_type = str(raw.get("id", ""))[:80], str(raw.get("type", ""))[:120]
        except (ValueError, TypeError, AttributeError):
            pass
    return Parked(record.partition, record.offset, h.get(k.H_CODE, "?"), h.get(k.H_MESSAGE, ""),
                  h.get(k.H_TOPIC, "?"), h.get(k.H_AT, ""), h.get(k.H_BY, ""), event_id,
                  event_type.removeprefix("fr.assurance-maladie."))


def _list(topic_name: str, code: str | None, limit: int, as_json: bool) -> None:
    s = settings()
    records, _, _ = asyncio.run(read_records(s.kafka_bootstrap_servers, s.topic(topic_name)))
    parked = [describe_parked(r) for r in records]
    if code:
        parked = [p for p in parked if p.code == code]
    by_code: dict[str, int] = {}
    for p in parked:
        by_code[p.code] = by_code.get(p.code, 0) + 1
    if as_json:
        for p in parked[-limit:]:
            print(json.dumps(p.__dict__, ensure_ascii=False))
        return
    table = Table(title=f"{s.topic(topic_name)}: {len(parked)} record(s)"
                        f"{' with code ' + code if code else ''}, last {min(limit, len(parked))}")
    for col in ("p:offset", "rejected at", "by", "code", "reason", "original topic", "event"):
        table.add_column(col, overflow="fold")
    for p in parked[-limit:]:
        table.add_row(f"{p.partition}:{p.offset}", p.rejected_at[:19], p.rejected_by, p.code,
                      p.message[:160], p.original_topic, f"{p.event_type} {p.event_id}".strip())
    console.print(table)
    if by_code:
        console.print("by code: " + ", ".join(f"{c} {n}" for c, n in sorted(by_code.items())))


@dataclass
class ReplayReport:
    examined: int = 0
    replayed: int = 0
    skipped: int = 0
    to_topics: dict[str, int] = field(default_factory=dict)


def replay_group(s: Settings, topic_name: str, code: str | None) -> str:
    return f"{s.topic_prefix}{REPLAY_GROUP}.{topic_name}{'.' + code if code else ''}"


async def replay(s: Settings, topic_name: str, *, code: str | None = None,
                 dry_run: bool = False, default_target: str | None = None,
                 progress: Progress | None = None) -> ReplayReport:
    """Send the parked records not replayed before back to their original topic.

    Idempotent: what was replayed is recorded in the replay's own consumer group (committed
    only after the broker acknowledged the replayed records); the original value, key and
    headers go out untouched (plus ``parcours-replay-of``), so consumers deduplicate.
    """
    from aiokafka import AIOKafkaProducer

    from shared import kafka as k

    report = ReplayReport()
    task = progress.add_task(f"replaying {s.topic(topic_name)}", total=None) if progress else None

    def on_read(n: int, total: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, total=total, description=f"reading {s.topic(topic_name)}")

    group = None if dry_run else replay_group(s, topic_name, code)
    records, end, consumer = await read_records(s.kafka_bootstrap_servers, s.topic(topic_name),
                                                group=group, on_progress=on_read)
    if progress is not None and task is not None:
        progress.update(task, total=len(records), completed=0,
                        description=f"replaying {s.topic(topic_name)}")
    producer = None if dry_run else AIOKafkaProducer(
        bootstrap_servers=s.kafka_bootstrap_servers, acks="all", enable_idempotence=True,
        client_id="parcours-cli-replay", **_security())
    try:
        if producer is not None:
            await producer.start()
        futures = []
        for r in records:
            report.examined += 1
            h = _headers(r)
            if code and h.get(k.H_CODE) != code:
                report.skipped += 1
                continue
            target = h.get(k.H_TOPIC) or default_target
            if not target:
                report.skipped += 1
                continue
            report.replayed += 1
            report.to_topics[target] = report.to_topics.get(target, 0) + 1
            if producer is not None:
                headers = [(hk, hv) for hk, hv in (r.headers or ())
                           if hk not in k.REJECT_HEADERS and hk != H_REPLAY]
                headers.append((H_REPLAY, f"{r.topic}:{r.partition}:{r.offset}".encode()))
                futures.append(await producer.send(target, r.value, key=r.key, headers=headers))
            if progress is not None and task is not None:
                progress.advance(task)
        if futures:
            await asyncio.gather(*futures)
        if consumer is not None and end:
            # Everything up to the end seen at the start is done (sent and acknowledged).
            from aiokafka.structs import OffsetAndMetadata

            await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in end.items()})
    finally:
        if producer is not None:
            await producer.stop()
        if consumer is not None:
            await consumer.stop()
    return report


def _replay_cmd(topic_name: str, code: str | None, dry_run: bool, default_target: str | None
                ) -> None:
    s = settings()
    with _progress() as progress:
        report = asyncio.run(replay(s, topic_name, code=code, dry_run=dry_run,
                                    default_target=default_target, progress=progress))
    verb = "would replay" if dry_run else "replayed"
    console.print(f"{verb} {report.replayed} record(s) "
                  f"({report.examined} not replayed before, {report.skipped} skipped)"
                  + "".join(f"\n  → {topic}: {n}" for topic, n in report.to_topics.items()))


CodeOpt = Annotated[str | None, typer.Option(help="Only records with this reason code.")]
LimitOpt = Annotated[int, typer.Option(help="Show at most this many (the latest).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines.")]
DryOpt = Annotated[bool, typer.Option(help="Say what would be replayed; send nothing.")]


@rejects_app.command("list")
def rejects_list(code: CodeOpt = None, limit: LimitOpt = 50, as_json: JsonOpt = False) -> None:
    """List the rejects with their reason (never their content)."""
    _list(t.REJETS, code, limit, as_json)


@rejects_app.command("replay")
def rejects_replay(code: CodeOpt = None, dry_run: DryOpt = False) -> None:
    """Send the rejects not replayed before back to evenements-vie (after a fix)."""
    _replay_cmd(t.REJETS, code, dry_run, settings().topic(t.EVENEMENTS_VIE))


@dlq_app.command("list")
def dlq_list(code: CodeOpt = None, limit: LimitOpt = 50, as_json: JsonOpt = False) -> None:
    """List the dead letters with their reason and original topic."""
    _list(t.DLQ, code, limit, as_json)


@dlq_app.command("replay")
def dlq_replay(code: CodeOpt = None, dry_run: DryOpt = False) -> None:
    """Send the dead letters not replayed before back to their original topic."""
    _replay_cmd(t.DLQ, code, dry_run, None)


# --------------------------------------------------------------------------- topics


@dataclass
class GroupLag:
    group: str
    topic: str
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


async def topic_status(s: Settings) -> tuple[dict[str, dict[int, int]], list[GroupLag]]:
    """End offsets per partition of every declared topic, and every consumer group's lag on
    them (groups of this prefix only)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition

    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers, **_security())
    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, **_security())
    await admin.start()
    await consumer.start()
    try:
        names = [s.topic(n) for n in t.load_topics()]
        existing = set(await admin.list_topics())
        described = await admin.describe_topics([n for n in names if n in existing])
        tps = [TopicPartition(d["topic"], p["partition"]) for d in described
               for p in d["partitions"]]
        ends = await consumer.end_offsets(tps) if tps else {}
        begins = await consumer.beginning_offsets(tps) if tps else {}
        offsets: dict[str, dict[int, int]] = {n: {} for n in names if n in existing}
        for tp, off in ends.items():
            offsets[tp.topic][tp.partition] = off
        lags: list[GroupLag] = []
        groups = sorted(g[0] for g in await admin.list_consumer_groups())
        for g in groups:
            if s.topic_prefix and not g.startswith(s.topic_prefix):
                continue
            if not s.topic_prefix and re.match(r"^t[0-9a-f]{10}\.", g):
                continue  # a test's group
            committed = await admin.list_consumer_group_offsets(g)
            read = {tp.topic for tp in committed if tp.topic in offsets}
            for topic in sorted(read):
                # A partition the group never committed on counts from its beginning.
                parts = [tp for tp in ends if tp.topic == topic]
                done = sum(max(committed[tp].offset, begins[tp]) if tp in committed
                           else begins[tp] for tp in parts)
                lags.append(GroupLag(g, topic, done, sum(ends[tp] for tp in parts)))
        return offsets, lags
    finally:
        await consumer.stop()
        await admin.close()


@topics_app.command("status")
def topics_status(as_json: JsonOpt = False) -> None:
    """Partitions and end offsets of every declared topic; consumer groups and their lag."""
    s = settings()
    offsets, lags = asyncio.run(topic_status(s))
    if as_json:
        print(json.dumps({"topics": {n: {"partitions": len(p), "records": sum(p.values())}
                                     for n, p in offsets.items()},
                          "groups": [{**g.__dict__, "lag": g.lag} for g in lags]}))
        return
    table = Table(title="topics")
    for col in ("topic", "partitions", "end offsets (sum)"):
        table.add_column(col)
    for name in (s.topic(n) for n in t.load_topics()):
        if name in offsets:
            table.add_row(name, str(len(offsets[name])), str(sum(offsets[name].values())))
        else:
            table.add_row(name, "[red]missing[/red]", "")
    console.print(table)
    groups = Table(title="consumer groups")
    for col in ("group", "topic", "committed", "end", "lag"):
        groups.add_column(col)
    for g in lags:
        groups.add_row(g.group, g.topic, str(g.committed), str(g.end),
                       f"[yellow]{g.lag}[/yellow]" if g.lag else "0")
    console.print(groups)


@topics_app.command("ensure")
def topics_ensure() -> None:
    """Create the declared topics that are missing; report those that differ (exit 1)."""
    from shared.topics import ensure_topics

    s = settings()
    report = asyncio.run(ensure_topics(s.kafka_bootstrap_servers, s.topic_prefix,
                                       admin_config=_security()))
    for name, result in sorted(report.items()):
        console.print(f"{name:<40} {result}")
    if any(r not in ("ok", "created") for r in report.values()):
        raise typer.Exit(1)


# --------------------------------------------------------------------------- clock

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "j": 86400,
          "w": 7 * 86400, "sem": 7 * 86400, "mo": 30 * 86400, "mois": 30 * 86400,
          "y": 365 * 86400, "an": 365 * 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w``, ``9mo``, ``1y``, or sums like ``1mo15d``."""
    compact = text.strip().lower()
    if not re.fullmatch(r"(?:\s*-?\d+(?:\.\d+)?\s*[a-z]+)+\s*", compact):
        raise ValueError(f"not a duration: {text!r} (examples: 12h, 30d, 2w, 9mo, 1y)")
    parts = re.findall(r"(-?\d+(?:\.\d+)?)\s*([a-z]+)", compact)
    seconds = 0.0
    for number, unit in parts:
        if unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r} (s, m, h, d, w, mo, y)")
        seconds += float(number) * _UNITS[unit]
    return timedelta(seconds=seconds)


def clock_path(s: Settings | None = None) -> Path:
    s = s or settings()
    if s.clock_file:
        return s.clock_file
    from deploy.local.infra import infra_from_env

    return infra_from_env().clock_file


def _show_clock(path: Path) -> None:
    from shared.clock import FileOffsetClock, read_offset

    offset = read_offset(path)
    now = FileOffsetClock(path).now()
    console.print(f"clock file {path}\noffset     {timedelta(seconds=offset)} "
                  f"({offset:.0f} s)\nnow        {now:%Y-%m-%d %H:%M:%S %Z}")


@clock_app.command("show")
def clock_show() -> None:
    """The offset of the shared clock and the time the services see."""
    _show_clock(clock_path())


@clock_app.command("advance")
def clock_advance(duration: Annotated[str, typer.Argument(help="e.g. 12h, 30d, 2w, 9mo")]) -> None:
    """Move the shared clock forward (the services re-read the file)."""
    from shared.clock import read_offset, write_offset

    try:
        delta = parse_duration(duration)
    except ValueError as exc:
        raise fail(str(exc)) from None
    path = clock_path()
    write_offset(path, read_offset(path) + delta.total_seconds())
    _show_clock(path)


@clock_app.command("reset")
def clock_reset() -> None:
    """Back to system time (offset 0)."""
    from shared.clock import write_offset

    path = clock_path()
    write_offset(path, 0.0)
    _show_clock(path)


# --------------------------------------------------------------------------- settings


@app.command("config-doc")
def config_doc() -> None:
    """Every setting (environment variable, default, description) as a Markdown table."""
    from shared.settings import settings_table

    print(settings_table())


def main() -> None:  # pragma: no cover - the console script
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

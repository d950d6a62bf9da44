"""notification as real processes (uvicorn), killed with SIGKILL: timers are data, the instance
that owns a partition fires its timers, and nothing fires twice. The clock of the processes is
the system clock plus an offset in a file (FileOffsetClock) that the test moves forward."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.clock import write_offset
from tests.integration.notification.helpers import (
    action,
    at_least,
    coordonnees,
    known,
    planned_event,
    pseudo,
    results,
    send_actions,
    send_coordonnees,
)
from tests.integration.notification.peers import free_port
from tests.support import ROOT, eventually


class Instance:
    def __init__(self, name: str, settings: Any, clock_file: Path, folder: Path) -> None:
        self.name, self.port = name, free_port()
        self.log = folder / f"{name}.log"
        env = {**os.environ,
               "PARCOURS_SERVICE_NAME": "notification",
               "PARCOURS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
               "PARCOURS_MONGO_URI": settings.mongo_uri,
               "PARCOURS_MONGO_DATABASE": settings.database_name,
               "PARCOURS_TOPIC_PREFIX": settings.topic_prefix,
               "PARCOURS_CLOCK_FILE": str(clock_file),
               "PARCOURS_DATA_DIR": str(settings.data_dir),
               "PARCOURS_NOTIFICATION_SCHEDULER_INTERVAL_SECONDS": "0.3",
               "PARCOURS_LOG_JSON": "true",
               "PARCOURS_KAFKA_CLIENT_ID": f"notification-{name}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "services.notification.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"],
            env=env, cwd=ROOT, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except OSError:
            return 0, ""

    async def ready(self) -> None:
        async def check() -> bool:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            return (await asyncio.to_thread(self._get, "/health/ready"))[0] == 200
        await eventually(check, timeout=60, interval=0.5)

    async def owned(self) -> int:
        _, body = await asyncio.to_thread(self._get, "/metrics")
        for line in body.splitlines():
            if line.startswith("parcours_notification_timers_owned_partitions "):
                return int(float(line.split()[1]))
        return -1

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(raw))
        return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _setup(make_settings: Any, tmp_path: Path) -> tuple[Any, Path]:
    settings = make_settings("notification", data_dir=tmp_path / "data")
    clock_file = tmp_path / "clock.json"
    write_offset(clock_file, 0)
    return settings, clock_file


async def _stored(mongo: Any, settings: Any, n: int) -> None:
    coll = mongo[settings.database_name]["actions"]

    async def check() -> bool:
        return await coll.count_documents({}) >= n
    await eventually(check, timeout=60)


async def test_a_nine_month_letter_fires_once_after_the_service_was_killed_and_restarted(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Path
) -> None:
    settings, clock_file = _setup(make_settings, tmp_path)
    now = datetime.now(UTC)
    p = pseudo()
    letter = action(p, now + timedelta(days=275))
    await send_coordonnees(settings, coordonnees(p, now))
    await send_actions(settings, planned_event(letter, now))
    first = Instance("a", settings, clock_file, tmp_path)
    try:
        await first.ready()
        await _stored(mongo, settings, 1)
        await known(mongo, settings, 1)
        first.kill()  # SIGKILL: no shutdown, no leave-group
    finally:
        first.stop()
    write_offset(clock_file, timedelta(days=275, minutes=1).total_seconds())
    second = Instance("b", settings, clock_file, tmp_path)
    try:
        await second.ready()
        got = await at_least(settings, 1, timeout=90)
        await asyncio.sleep(2)
    finally:
        second.stop()
    got = await results(settings)
    assert [(g["data"]["action_id"], g["data"]["statut"]) for g in got] == [
        (letter.action_id, "envoye")]
    assert len(list((tmp_path / "data" / "letters").rglob(f"{letter.action_id}.pdf"))) == 1


async def test_two_instances_share_the_timers_and_killing_one_hands_its_timers_to_the_other(
    topics: str, make_settings: Any, mongo: Any, tmp_path: Path
) -> None:
    settings, clock_file = _setup(make_settings, tmp_path)
    now = datetime.now(UTC)
    people = [pseudo() for _ in range(12)]
    day1 = [action(p, now + timedelta(days=1)) for p in people]
    day2 = [action(p, now + timedelta(days=2), modele="seniors-p1-information") for p in people]
    await send_coordonnees(settings, *[coordonnees(p, now) for p in people])
    await send_actions(settings, *[planned_event(a, now) for a in day1 + day2])
    a = Instance("a", settings, clock_file, tmp_path)
    b = Instance("b", settings, clock_file, tmp_path)
    try:
        await asyncio.gather(a.ready(), b.ready())

        async def shared() -> bool:
            return sorted([await a.owned(), await b.owned()]) == [3, 3]
        await eventually(shared, timeout=60, interval=0.5)
        await _stored(mongo, settings, len(day1 + day2))
        await known(mongo, settings, len(people))

        write_offset(clock_file, timedelta(days=1, minutes=1).total_seconds())
        await at_least(settings, len(day1), timeout=90)
        a.kill()  # its partitions go to b after the session timeout

        async def b_owns_all() -> bool:
            return await b.owned() == 6
        await eventually(b_owns_all, timeout=60, interval=0.5)
        write_offset(clock_file, timedelta(days=2, minutes=1).total_seconds())
        await at_least(settings, len(day1 + day2), timeout=90)
        await asyncio.sleep(2)
    finally:
        a.stop()
        b.stop()
    got = await results(settings)
    assert {g["data"]["action_id"] for g in got} == {x.action_id for x in day1 + day2}
    # Killed between publishing an outcome and closing its action, an instance leaves a timer
    # that the new owner finishes: it publishes that outcome again, the same event (same id,
    # same content), which consumers deduplicate. What must never happen twice is the effect.
    by_action: dict[str, set[str]] = {}
    for g in got:
        by_action.setdefault(g["data"]["action_id"], set()).add(json.dumps(g, sort_keys=True))
    assert all(len(copies) == 1 for copies in by_action.values()), "one outcome per action"
    effects = Counter(line["action_id"] for inst in (a, b) for line in inst.lines()
                      if line.get("event") == "effet produit")
    assert set(effects) == set(by_action) and set(effects.values()) == {1}, \
        "each letter made once, by one of the two instances"
    assert {g["data"]["statut"] for g in got} == {"envoye"}
    pdfs = [f for f in (tmp_path / "data" / "letters").rglob("*.pdf") if "-falc" not in f.name]
    assert len(pdfs) == len(day1 + day2)

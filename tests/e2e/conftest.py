"""End-to-end: the four services run as separate processes (uvicorn), on the real broker and
database, with the test's own topics, databases, data folder and clock.

- ``system`` (per test): the topics of this test and a place for its processes; the test
  starts what it needs (``system.start(name)``, ``system.start_all()``).
- ``platform`` (per module): every service running, with a local SMTP server and a fake SMS
  provider, for the flow tests of a module (each flow uses its own people; the shared clock
  only moves forward, and each flow computes its dates from the services' "now").

The services' clock is the system clock plus an offset in ``<state>/clock.json``
(``FileOffsetClock``): ``system.set_now`` / ``system.advance`` move every service at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deploy.local.infra import ROOT, SERVICES, InfraError, Proc, free_port
from shared.clock import FileOffsetClock, read_offset, write_offset
from shared.settings import Settings
from shared.topics import ensure_topics
from tests.conftest import Endpoints, unique, wait_until_writable
from tests.integration.notification.peers import SmsProvider, SmtpServer
from tests.support import read_all

PSEUDONYM_KEY = "e2e-pseudonym-key-0123456789abcdef"
API_KEY_PEPPER = "e2e-api-key-pepper-0123456789abcdef"
# A Tuesday, 10:00 in Paris: business hours, not a public holiday, outside quiet hours.
BASE = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


@dataclass
class System:
    """The platform as separate processes, and what a test needs to talk to it."""

    infra: Endpoints
    prefix: str
    state: Path
    ports: dict[str, int]
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    smtp: SmtpServer | None = None
    sms: SmsProvider | None = None

    @property
    def clock_file(self) -> Path:
        return self.state / "clock.json"

    @property
    def data_dir(self) -> Path:
        return self.state / "data"

    @property
    def letters_dir(self) -> Path:
        return self.data_dir / "letters"

    @property
    def bootstrap(self) -> str:
        return self.infra.bootstrap_servers

    def url(self, service: str, instance: int = 0) -> str:
        key = service if instance == 0 else f"{service}-{instance}"
        return f"http://127.0.0.1:{self.ports[key]}"

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def database(self, service: str) -> str:
        return f"{self.prefix.rstrip('.')}_{service}"

    def settings(self, service: str = "e2e") -> Settings:
        """Settings as the services see them (pseudonym key, topics), for test-side helpers."""
        return Settings(service_name=service, kafka_bootstrap_servers=self.bootstrap,
                        mongo_uri=self.infra.mongo_uri, topic_prefix=self.prefix,
                        pseudonym_key=PSEUDONYM_KEY, api_key_pepper=API_KEY_PEPPER)  # type: ignore[arg-type]

    def pseudonym(self, nir: str) -> str:
        from shared.cli import pseudonym_of

        return pseudonym_of(nir, self.settings())

    def proc(self, service: str, instance: int = 0) -> Proc:
        return Proc(f"{service}-{instance}", self.state)

    def env(self, service: str, port: int, instance: int = 0) -> dict[str, str]:
        env = {
            "PARCOURS_SERVICE_NAME": service,
            "PARCOURS_KAFKA_BOOTSTRAP_SERVERS": self.infra.bootstrap_servers,
            "PARCOURS_KAFKA_CLIENT_ID": f"{service}-{instance}",
            "PARCOURS_MONGO_URI": self.infra.mongo_uri,
            "PARCOURS_MONGO_DATABASE": self.database(service),
            "PARCOURS_TOPIC_PREFIX": self.prefix,
            "PARCOURS_HTTP_PORT": str(port),
            "PARCOURS_CLOCK_FILE": str(self.clock_file),
            "PARCOURS_DATA_DIR": str(self.data_dir),
            "PARCOURS_PSEUDONYM_KEY": PSEUDONYM_KEY,
            "PARCOURS_API_KEY_PEPPER": API_KEY_PEPPER,
            "PARCOURS_LOG_JSON": "true",
            "PARCOURS_LOG_LEVEL": "INFO",
            "PARCOURS_NOTIFICATION_SCHEDULER_INTERVAL_SECONDS": "0.3",
            # an action that arrives before its person's contact data waits this long (the
            # two topics are read independently; after a restart one may lag the other)
            "PARCOURS_NOTIFICATION_RETRY_SECONDS": "3",
            "PARCOURS_TRANSIENT_RETRY_MAX_SECONDS": "300",
            "PYTHONUNBUFFERED": "1",
        }
        if self.smtp is not None:
            env["PARCOURS_NOTIFICATION_SMTP_PORT"] = str(self.smtp.port)
        if self.sms is not None:
            env["PARCOURS_NOTIFICATION_SMS_URL"] = self.sms.url
        return {**env, **self.extra_env.get(service, {})}

    def start(self, service: str, instance: int = 0, timeout: float = 90.0,
              wait: bool = True) -> None:
        key = service if instance == 0 else f"{service}-{instance}"
        port = self.ports.setdefault(key, free_port())
        proc = self.proc(service, instance)
        if proc.running():
            raise InfraError(f"{service}-{instance} already runs")
        proc.start([_python(), "-m", "uvicorn", f"services.{service}.app:create_app", "--factory",
                    "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                    "--timeout-graceful-shutdown", "20"],
                   env=self.env(service, port, instance), cwd=ROOT)
        if wait:
            self.wait_ready(service, instance, timeout)

    def start_all(self, services: tuple[str, ...] = tuple(SERVICES)) -> None:
        """Start the services concurrently (the machine is small), then wait for each."""
        for name in services:
            self.start(name, wait=False)
        for name in services:
            self.wait_ready(name, 0, 120.0)

    def wait_ready(self, service: str, instance: int = 0, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.url(service, instance)}/health/ready"
        while time.monotonic() < deadline:
            if not self.proc(service, instance).running():
                raise InfraError(f"{service} exited:\n{self.proc(service, instance).log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise InfraError(f"{service} not ready:\n{self.proc(service, instance).log_tail()}")

    def kill(self, service: str, instance: int = 0) -> None:
        """SIGKILL, as a crash would."""
        self.proc(service, instance).kill()

    def stop_all(self) -> None:
        for pidfile in sorted((self.state / "pids").glob("*.pid")):
            Proc(pidfile.stem, self.state).stop(timeout=25)

    # ---- the services' clock
    def now(self) -> datetime:
        return FileOffsetClock(self.clock_file).now()

    def set_now(self, when: datetime) -> None:
        write_offset(self.clock_file, (when - datetime.now(UTC)).total_seconds())

    def advance(self, delta: timedelta) -> None:
        """Move every service's clock forward."""
        write_offset(self.clock_file, read_offset(self.clock_file) + delta.total_seconds())

    # ---- what the services did
    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")
                         for p in (self.state / "logs").glob("*.log"))

    async def published(self, name: str, *, expect: int | None = None,
                        timeout: float = 20.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
        """Every CloudEvent of a topic, as dicts, with the record key as ``_key`` and the
        headers as ``_headers``."""
        records = await read_all(self.bootstrap, self.topic(name), expect=expect, timeout=timeout)
        out = []
        for r in records:
            try:
                body = json.loads(r.value)
            except ValueError:
                body = {"_raw": r.value}
            if not isinstance(body, dict):
                body = {"_raw": r.value}
            body["_key"] = (r.key or b"").decode(errors="replace")
            body["_headers"] = {k: v for k, v in (r.headers or [])}
            out.append(body)
        return out

    def letters(self) -> list[Path]:
        """Every letter PDF (the standard version; the FALC one goes in the same envelope)."""
        if not self.letters_dir.exists():
            return []
        return [p for p in self.letters_dir.rglob("*.pdf") if not p.name.endswith("-falc.pdf")]

    def manifests(self) -> list[dict[str, Any]]:
        if not self.letters_dir.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.letters_dir.glob("*/manifest.json"))]

    def add_partner(self, pid: str, kind: str = "ccas") -> str:
        """Provision a partner and its API key in signalement's database (the onboarding)."""
        from pymongo import MongoClient

        from services.signalement.partners import Partner, new_api_key, partner_document

        key_id, secret, key = new_api_key()
        doc = partner_document(Partner(id=pid, nom=f"Partenaire {pid}", type=kind), key_id,
                               secret, API_KEY_PEPPER.encode())
        with MongoClient(self.infra.mongo_uri, serverSelectionTimeoutMS=10_000) as client:
            client[self.database("signalement")]["partenaires"].replace_one(
                {"_id": key_id}, doc, upsert=True)
        return key


def _python() -> str:
    import sys

    return sys.executable


def new_system(infra: Endpoints, prefix: str, state: Path) -> System:
    sys_ = System(infra=infra, prefix=prefix, state=state,
                  ports={name: free_port() for name in SERVICES})
    sys_.state.mkdir(parents=True, exist_ok=True)
    sys_.set_now(BASE)
    return sys_


@pytest.fixture
def system(infra: Endpoints, topics: str, tmp_path: Path) -> Iterator[System]:
    """The platform's topics for this test and a place for its processes; tests start the
    services they need (``system.start(name)``). Every process is stopped at the end."""
    sys_ = new_system(infra, topics, tmp_path / "system")
    try:
        yield sys_
    finally:
        sys_.stop_all()


@pytest.fixture(scope="module")
async def platform(infra: Endpoints, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[System]:
    """Every service running, with an SMTP server and an SMS provider, for a module's flows."""
    prefix = unique("e") + "."
    report = await ensure_topics(infra.bootstrap_servers, prefix)
    assert all(v in ("created", "ok") for v in report.values()), report
    await wait_until_writable(infra.bootstrap_servers, list(report))
    with SmtpServer() as smtp, SmsProvider() as sms:
        sys_ = new_system(infra, prefix, tmp_path_factory.mktemp("platform"))
        sys_.smtp, sys_.sms = smtp, sms
        try:
            await asyncio.to_thread(sys_.start_all)
            yield sys_
        finally:
            await asyncio.to_thread(sys_.stop_all)


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def in_env(name: str) -> bool:
    return bool(os.environ.get(name))

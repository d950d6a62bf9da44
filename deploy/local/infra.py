"""The local infrastructure without Docker: a real Apache Kafka broker (KRaft) from the official
jars on Maven Central, and FerretDB through our embedded runner, storing into a PostgreSQL
server of its own (Debian's package; reached over a Unix socket, no TCP port) or, with
``PARCOURS_LOCAL_DB_BACKEND=sqlite``, into SQLite files (docs/adr/0012); plus the platform's
services that exist.

    python -m deploy.local.infra fetch    # download the jars, build the database runner
    python -m deploy.local.infra up       # start everything in the background, wait until ready
    python -m deploy.local.infra status   # what runs, and whether it is healthy
    python -m deploy.local.infra down     # stop everything it started
    python -m deploy.local.infra purge    # stop, and delete PostgreSQL data kept elsewhere

``make up|status|down`` call these. Tests use :class:`LocalInfra` directly, on free ports and
a temporary state folder. Everything lives under ``.local/`` (git-ignored): ``cache/`` for
the jars and the binary (kept between runs), ``run/`` for data, logs and pid files.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "local"
LOCAL = ROOT / ".local"
DEFAULT_CACHE = Path(os.environ.get("PARCOURS_LOCAL_CACHE", LOCAL / "cache"))
DEFAULT_STATE = LOCAL / "run"

# Services started by `make up` when their package exists, with their local HTTP port.
SERVICES: dict[str, int] = {
    "signalement": 8001,
    "orientation": 8002,
    "notification": 8003,
    "reporting": 8004,
}


class InfraError(RuntimeError):
    pass


def say(*parts: object) -> None:
    print("[infra]", *parts, flush=True)


def free_port() -> int:
    """A port free on 127.0.0.1 now, taken below the kernel's ephemeral range when there is room:
    a port the kernel hands out (bind to 0) is also what it gives the next outgoing connection,
    so between this choice and the server's bind a client (a Kafka or database connection of
    another test) could take it ("address already in use")."""
    low = _ephemeral_low()
    for _ in range(50):
        port = random.randint(10_000, low - 1) if low > 11_000 else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- fetch / build


def kafka_lib(cache: Path = DEFAULT_CACHE) -> Path:
    """The broker's jars, resolved from Maven Central by deploy/local/kafka/pom.xml (cached)."""
    pom = DEPLOY / "kafka" / "pom.xml"
    lib = cache / f"kafka-lib-{_digest(pom)}"
    if (lib / ".complete").exists():
        return lib
    if shutil.which("mvn") is None:
        raise InfraError("Maven (mvn) is needed to fetch the Kafka jars")
    say("fetching the Kafka broker jars from Maven Central (first run only)...")
    tmp = lib.with_name(lib.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [
        "mvn", "-B", "-q", "-f", str(pom),
        "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={tmp}",
    ]
    _run_with_retries(cmd, "maven")
    if not list(tmp.glob("kafka_2.13-*.jar")):
        raise InfraError(f"Maven ran but no kafka_2.13 jar is in {tmp}")
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)
    return lib


def ferretdb_binary(cache: Path = DEFAULT_CACHE) -> Path:
    """Our FerretDB runner, built from the Go module proxy (cached by source digest)."""
    src = DEPLOY / "ferretdb-runner"
    binary = (cache / "bin"
              / f"ferretdb-runner-{_digest(src / 'main.go', src / 'go.mod', src / 'go.sum')}")
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        raise InfraError("Go is needed to build the FerretDB runner")
    say("building the FerretDB runner from the Go module proxy (first run only, a few minutes)...")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    _run_with_retries(["go", "build", "-trimpath", "-o", str(tmp), "."], "go build", cwd=src)
    tmp.rename(binary)
    return binary


def postgres_bindir() -> Path:
    """The PostgreSQL server's programs (initdb, postgres, psql): ``PARCOURS_LOCAL_PG_BINDIR``,
    else the newest Debian ``/usr/lib/postgresql/<version>/bin``, else ``pg_config --bindir``."""
    named = os.environ.get("PARCOURS_LOCAL_PG_BINDIR")
    candidates = [Path(named)] if named else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    if not named and shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            candidates.append(Path(subprocess.run(["pg_config", "--bindir"], capture_output=True,  # noqa: S607
                                                  text=True, check=True).stdout.strip()))
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "postgres", "psql")):
            return bindir
    raise InfraError(
        "a PostgreSQL server is needed for the local database (Debian: apt-get install postgresql;"
        " `make` installs it), or set PARCOURS_LOCAL_DB_BACKEND=sqlite (slower, docs/adr/0012)")


def _run_with_retries(cmd: list[str], what: str, cwd: Path | None = None,
                      attempts: int = 3) -> None:
    for attempt in range(1, attempts + 1):
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603 - our own commands
        if proc.returncode == 0:
            return
        say(f"{what} failed (attempt {attempt}/{attempts}):", (proc.stdout + proc.stderr)[-2000:])
        time.sleep(3 * attempt)
    raise InfraError(f"{what} failed {attempts} times: {' '.join(cmd)}")


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    state: Path

    @property
    def pidfile(self) -> Path:
        return self.state / "pids" / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.state / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid if not _is_zombie(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              user: str | None = None) -> int:
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own commands
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
                user=user, group=user, extra_groups=[] if user else None,
            )
        self.pidfile.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout: float = 25.0, only_leader: bool = False,
             sig: signal.Signals = signal.SIGTERM) -> None:
        """``sig`` to the process group (or to its leader only, which then stops its children
        itself, as PostgreSQL's postmaster does), SIGKILL to the group after ``timeout``."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return
        with contextlib.suppress(ProcessLookupError):
            if only_leader:
                os.kill(pid, sig)
            else:
                os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            say(f"{self.name} did not stop within {timeout:.0f}s, killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would (fault tests)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return False


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


# --------------------------------------------------------------------------- the infrastructure


@dataclass
class LocalInfra:
    state: Path = DEFAULT_STATE
    cache: Path = DEFAULT_CACHE
    kafka_port: int = 9092
    controller_port: int = 9093
    mongo_port: int = 27017
    # Heap of the broker (PARCOURS_LOCAL_KAFKA_HEAP): a test session creates thousands of
    # partitions (each test has its own topics), which 512 MiB does not hold.
    kafka_heap: str = field(
        default_factory=lambda: os.environ.get("PARCOURS_LOCAL_KAFKA_HEAP", "1g"))
    service_ports: dict[str, int] = field(default_factory=lambda: dict(SERVICES))
    # SASL/SCRAM and ACLs (docs/security.md): off by default. With sasl=True the broker has a
    # SASL_PLAINTEXT listener (SCRAM-SHA-512) instead of PLAINTEXT, the StandardAuthorizer with
    # allow.everyone.if.no.acl.found=false, super user `admin`, and SCRAM credentials for
    # `sasl_users` (user -> password) created when the storage is formatted.
    sasl: bool = False
    sasl_users: dict[str, str] = field(default_factory=dict)
    admin_password: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Where FerretDB stores (PARCOURS_LOCAL_DB_BACKEND): "postgresql" (default, a PostgreSQL
    # server of this infrastructure's own) or "sqlite" (files; lookups by _id scan, ADR 0007).
    db_backend: str = field(
        default_factory=lambda: os.environ.get("PARCOURS_LOCAL_DB_BACKEND", "postgresql"))
    # False for a throw-away infrastructure (tests): down() also deletes the PostgreSQL data
    # when it lives outside the state folder (as root, see postgres_dir).
    keep_data: bool = True

    @classmethod
    def ephemeral(cls, state: Path, cache: Path = DEFAULT_CACHE) -> LocalInfra:
        """On free ports, for a test session."""
        return cls(state=state, cache=cache, kafka_port=free_port(), controller_port=free_port(),
                   mongo_port=free_port(), service_ports={n: free_port() for n in SERVICES},
                   kafka_heap=os.environ.get("PARCOURS_LOCAL_KAFKA_HEAP", "2g"), keep_data=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/"

    @property
    def clock_file(self) -> Path:
        return self.state / "clock.json"

    @property
    def kafka(self) -> Proc:
        return Proc("kafka", self.state)

    @property
    def ferretdb(self) -> Proc:
        return Proc("ferretdb", self.state)

    @property
    def postgres(self) -> Proc:
        return Proc("postgres", self.state)

    @property
    def postgres_dir(self) -> Path:
        """The PostgreSQL cluster (``data/``) and its Unix socket. PostgreSQL refuses to run as
        root: as root it runs as the ``postgres`` user (Debian's package creates it), which
        cannot reach into root's private folders (pytest's temporary ones), so its folder is
        then a private one of its own in the system's temporary folder, named after the state
        folder."""
        if os.geteuid() != 0:
            return self.state / "postgres"
        digest = hashlib.sha256(str(self.state.resolve()).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"parcours-postgres-{digest}"

    @property
    def postgres_url(self) -> str:
        # FerretDB's pool of PostgreSQL connections is 50 by default. With the four services
        # and the tests at full concurrency it filled up, and FerretDB hung: a request holding
        # its metadata lock (creating a collection or an index) waited for a connection that
        # requests waiting for that lock held (seen in a goroutine dump: every command, even a
        # new database's createIndexes, stuck for minutes). PostgreSQL here accepts 400.
        return f"postgres://parcours@/ferretdb?host={self.postgres_dir}&pool_max_conns=300"

    def service(self, name: str) -> Proc:
        return Proc(name, self.state)

    def fetch(self) -> None:
        kafka_lib(self.cache)
        ferretdb_binary(self.cache)
        if self.db_backend == "postgresql":
            postgres_bindir()

    # ---- Kafka
    def admin_client_config(self) -> dict[str, str]:
        """aiokafka options of an admin (super user) client of this broker."""
        if not self.sasl:
            return {}
        return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": "admin", "sasl_plain_password": self.admin_password}

    def _listener_config(self) -> list[str]:
        if not self.sasl:
            return [
                f"listeners=PLAINTEXT://127.0.0.1:{self.kafka_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ]
        pw = self.admin_password
        return [
            f"listeners=SASL_PLAINTEXT://127.0.0.1:{self.kafka_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{self.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=SASL_PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            # clients and the broker itself: SCRAM (credentials live in the cluster metadata)
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{pw}";',
            # the controller listener: PLAIN (SCRAM needs the metadata the controller serves)
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "listener.name.controller.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="admin" password="{pw}" user_admin="{pw}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin",
            "allow.everyone.if.no.acl.found=false",
        ]

    def _scram_format_args(self) -> list[str]:
        users = {"admin": self.admin_password, **self.sasl_users} if self.sasl else {}
        args: list[str] = []
        for user, password in users.items():
            args += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        return args

    def _kafka_config(self) -> Path:
        data = self.state / "kafka-data"
        props = self.state / "kafka" / "server.properties"
        props.parent.mkdir(parents=True, exist_ok=True)
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    *self._listener_config(),
                    f"log.dirs={data}",
                    "num.partitions=1",
                    # Topics come from deploy/topics.yaml only; a typo must not create one.
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.segment.bytes=67108864",
                    "",
                ]
            )
        )
        return props

    def _java(self, lib: Path) -> list[str]:
        return [
            "java", "-Xms256m", f"-Xmx{self.kafka_heap}", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Djava.io.tmpdir={self.state / 'kafka' / 'tmp'}",
            f"-Dlog4j2.configurationFile={DEPLOY / 'kafka' / 'log4j2.properties'}",
            "-cp", f"{lib}/*",
        ]

    def start_kafka(self, timeout: float = 120.0) -> None:
        if self.kafka.running():
            self._wait_kafka(timeout)
            return
        if port_open(self.kafka_port):
            raise InfraError(f"port {self.kafka_port} is taken by another process")
        lib = kafka_lib(self.cache)
        props = self._kafka_config()
        (self.state / "kafka" / "tmp").mkdir(parents=True, exist_ok=True)
        meta = self.state / "kafka-data" / "meta.properties"
        if not meta.exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(  # noqa: S603 - our own command
                # "=": an id may start with "-", which would read as an option
                [*self._java(lib), "kafka.tools.StorageTool", "format",
                 f"--cluster-id={cluster_id}", "-c", str(props), "-g", *self._scram_format_args()],
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise InfraError(f"formatting Kafka storage failed: {fmt.stdout}{fmt.stderr}")
        say(f"starting Kafka on {self.bootstrap_servers}")
        self.kafka.start([*self._java(lib), "kafka.Kafka", str(props)])
        self._wait_kafka(timeout)

    def _wait_kafka(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.kafka.running():
                raise InfraError(f"Kafka exited during start:\n{self.kafka.log_tail()}")
            if "Kafka Server started" in self.kafka.log_tail(10**7) and self._kafka_answers():
                return
            time.sleep(0.5)
        raise InfraError(f"Kafka not ready after {timeout:.0f}s:\n{self.kafka.log_tail()}")

    def _kafka_answers(self) -> bool:
        import asyncio

        from aiokafka.admin import AIOKafkaAdminClient

        async def probe() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                        request_timeout_ms=5000, **self.admin_client_config())
            await admin.start()
            try:
                await admin.list_topics()
            finally:
                await admin.close()

        try:
            asyncio.run(probe())
        except Exception:
            return False
        return True

    # ---- PostgreSQL (FerretDB's storage)
    def _postgres_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise InfraError("running as root, PostgreSQL needs the `postgres` user, which "
                             "Debian's postgresql package creates") from None
        return "postgres"

    def start_postgres(self, timeout: float = 60.0) -> None:
        """A PostgreSQL cluster of this infrastructure's own, listening on a Unix socket in its
        folder only (no TCP port), then the setup FerretDB needs (postgres-setup.sql)."""
        if not self.postgres.running():
            bindir, user, folder = postgres_bindir(), self._postgres_user(), self.postgres_dir
            if len(str(folder / ".s.PGSQL.5432")) > 100:
                raise InfraError(f"the PostgreSQL socket path under {folder} is too long for a "
                                 "Unix socket: use a shorter PARCOURS_LOCAL_STATE")
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if user:
                entry = pwd.getpwnam(user)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
            data = folder / "data"
            if not (data / "PG_VERSION").exists():
                say("creating the local PostgreSQL cluster (first start only)")
                init = subprocess.run(  # noqa: S603 - our own command
                    [str(bindir / "initdb"), "-D", str(data), "-U", "parcours", "-A", "trust",
                     "-E", "UTF8", "--locale=C", "--no-sync"],
                    capture_output=True, text=True, user=user, group=user,
                    extra_groups=[] if user else None, check=False)
                if init.returncode != 0:
                    raise InfraError(f"initdb failed:\n{init.stdout}{init.stderr}")
            say(f"starting PostgreSQL (socket in {folder})")
            self.postgres.start(
                [str(bindir / "postgres"), "-D", str(data), "-k", str(folder),
                 "-c", "listen_addresses=", "-c", "max_connections=400",
                 "-c", "shared_buffers=512MB",
                 "-c", "plan_cache_mode=force_custom_plan",
                 # Writes are inserts under random uuid keys: each touches index pages all over,
                 # and the first change of a page after a checkpoint writes the whole page to
                 # the WAL. Fewer checkpoints and compressed page images (docs/performance.md);
                 # the ~2 KB person documents are compressed with lz4 rather than pglz.
                 "-c", "max_wal_size=8GB", "-c", "checkpoint_timeout=30min",
                 "-c", "wal_compression=lz4", "-c", "default_toast_compression=lz4",
                 # ERROR lines are mostly the duplicate keys the services insert on purpose
                 # (ADR 0007); FerretDB logs the others. LOG, FATAL and PANIC are kept.
                 "-c", "log_min_messages=log"],
                user=user, cwd=folder)
        self._setup_postgres(timeout)

    def _psql(self, database: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own command
            [str(postgres_bindir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.postgres_dir), "-U", "parcours", "-d", database, *args],
            capture_output=True, text=True, check=False, timeout=30)

    def _setup_postgres(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._psql("postgres", "-Atc", "SELECT 1").returncode != 0:
            if not self.postgres.running():
                raise InfraError(f"PostgreSQL exited during start:\n{self.postgres.log_tail()}")
            if time.monotonic() > deadline:
                raise InfraError(f"PostgreSQL not ready after {timeout:.0f}s:\n"
                                 f"{self.postgres.log_tail()}")
            time.sleep(0.3)
        exists = self._psql("postgres", "-Atc",
                            "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'")
        if exists.stdout.strip() != "1":
            created = self._psql("postgres", "-c", "CREATE DATABASE ferretdb")
            if created.returncode != 0:
                raise InfraError(f"could not create the database: {created.stderr}")
        setup = self._psql("ferretdb", "-f", str(DEPLOY / "postgres-setup.sql"))
        if setup.returncode != 0:
            raise InfraError(f"postgres-setup.sql failed: {setup.stderr}")

    def purge(self) -> None:
        """Delete the PostgreSQL data kept outside the state folder (as root); the infrastructure
        must be down."""
        if self.postgres.running():
            raise InfraError("stop the infrastructure before purging its data")
        if not self.postgres_dir.is_relative_to(self.state):
            shutil.rmtree(self.postgres_dir, ignore_errors=True)

    # ---- FerretDB
    def start_ferretdb(self, timeout: float = 60.0) -> None:
        if self.db_backend not in ("postgresql", "sqlite"):
            raise InfraError(f"PARCOURS_LOCAL_DB_BACKEND is {self.db_backend!r}:"
                             " postgresql or sqlite")
        if self.db_backend == "postgresql":
            self.start_postgres(timeout)
        if self.ferretdb.running():
            self._wait_mongo(timeout)
            return
        if port_open(self.mongo_port):
            raise InfraError(f"port {self.mongo_port} is taken by another process")
        binary = ferretdb_binary(self.cache)
        storage = (["-postgresql-url", self.postgres_url] if self.db_backend == "postgresql"
                   else ["-data", str(self.state / "ferretdb-data")])
        say(f"starting FerretDB on {self.mongo_uri} ({self.db_backend})")
        self.ferretdb.start([str(binary), "-listen", f"127.0.0.1:{self.mongo_port}", *storage])
        self._wait_mongo(timeout)

    def _wait_mongo(self, timeout: float) -> None:
        from pymongo import MongoClient

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.ferretdb.running():
                raise InfraError(f"FerretDB exited during start:\n{self.ferretdb.log_tail()}")
            try:
                with MongoClient[dict[str, Any]](self.mongo_uri,
                                                 serverSelectionTimeoutMS=500) as client:
                    client.admin.command("ping")
                return
            except Exception:
                time.sleep(0.3)
        raise InfraError(f"FerretDB not ready after {timeout:.0f}s:\n{self.ferretdb.log_tail()}")

    # ---- topics
    def ensure_topics(self, prefix: str = "") -> dict[str, str]:
        import asyncio

        from shared.topics import ensure_topics

        return asyncio.run(ensure_topics(self.bootstrap_servers, prefix,
                                         admin_config=self.admin_client_config() or None))

    # ---- services
    def service_env(self, name: str) -> dict[str, str]:
        return {
            "PARCOURS_SERVICE_NAME": name,
            "PARCOURS_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "PARCOURS_MONGO_URI": self.mongo_uri,
            "PARCOURS_HTTP_PORT": str(self.service_ports[name]),
            "PARCOURS_CLOCK_FILE": str(self.clock_file),
            "PARCOURS_DATA_DIR": str(self.state / "data"),
            "PYTHONUNBUFFERED": "1",
        }

    def existing_services(self) -> list[str]:
        return [n for n in SERVICES if (ROOT / "services" / n / "app.py").exists()]

    def start_service(self, name: str, extra_env: dict[str, str] | None = None,
                      timeout: float = 60.0) -> None:
        proc = self.service(name)
        if not proc.running():
            say(f"starting service {name} on http://127.0.0.1:{self.service_ports[name]}")
            proc.start(
                [sys.executable, "-m", "uvicorn", f"services.{name}.app:create_app", "--factory",
                 "--host", "127.0.0.1", "--port", str(self.service_ports[name]),
                 "--no-access-log", "--timeout-graceful-shutdown", "30"],
                env={**self.service_env(name), **(extra_env or {})}, cwd=ROOT,
            )
        self.wait_service(name, timeout)

    def wait_service(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.service(name).running():
                raise InfraError(f"service {name} exited:\n{self.service(name).log_tail()}")
            if self.service_health(name) == "ready":
                return
            time.sleep(0.3)
        raise InfraError(f"service {name} not ready after {timeout:.0f}s:\n"
                         f"{self.service(name).log_tail()}")

    def service_health(self, name: str) -> str:
        url = f"http://127.0.0.1:{self.service_ports[name]}/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # loopback only
                return "ready" if resp.status == 200 else f"http {resp.status}"
        except urllib.error.HTTPError as exc:
            return f"not ready ({exc.code})"
        except OSError:
            return "not answering"

    # ---- whole
    def up(self, services: bool = True) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.fetch()
        self.start_kafka()
        self.start_ferretdb()
        for name, result in sorted(self.ensure_topics().items()):
            if result != "ok":
                say(f"topic {name}: {result}")
        if services:
            for name in self.existing_services():
                self.start_service(name)
        self._write_ports()

    def down(self) -> None:
        for name in reversed(list(SERVICES)):
            self.service(name).stop()
        self.ferretdb.stop()
        # SIGINT to the postmaster: PostgreSQL's "fast" shutdown (a clean checkpoint).
        self.postgres.stop(timeout=60, only_leader=True, sig=signal.SIGINT)
        self.kafka.stop()
        if not self.keep_data:
            self.purge()

    def status(self) -> dict[str, str]:
        report: dict[str, str] = {}
        report["kafka"] = (
            ("healthy" if self._kafka_answers() else "running, not answering")
            if self.kafka.running() else "stopped"
        )
        if self.ferretdb.running():
            try:
                self._wait_mongo(2)
                report["ferretdb"] = "healthy"
            except InfraError:
                report["ferretdb"] = "running, not answering"
        else:
            report["ferretdb"] = "stopped"
        if self.db_backend == "postgresql" or self.postgres.running():
            report["postgres"] = (
                ("healthy" if self._psql("postgres", "-Atc", "SELECT 1").returncode == 0
                 else "running, not answering") if self.postgres.running() else "stopped")
        for name in SERVICES:
            if self.service(name).running():
                health = self.service_health(name)
                report[name] = "healthy" if health == "ready" else f"running, {health}"
            elif name in self.existing_services():
                report[name] = "stopped"
        return report

    def _write_ports(self) -> None:
        (self.state / "endpoints.json").write_text(json.dumps({
            "kafka": self.bootstrap_servers, "mongo": self.mongo_uri,
            **{n: f"http://127.0.0.1:{p}" for n, p in self.service_ports.items()},
        }, indent=2))


def infra_from_env() -> LocalInfra:
    """The default local infrastructure, or another one named by environment variables
    (``PARCOURS_LOCAL_STATE``, ``PARCOURS_LOCAL_KAFKA_PORT``, ``..._CONTROLLER_PORT``,
    ``..._MONGO_PORT``, ``PARCOURS_LOCAL_SERVICE_PORTS`` as ``name=port,...``): a test runs a
    second, independent one beside a developer's ``make up``."""
    env = os.environ
    ports = dict(SERVICES)
    for item in filter(None, env.get("PARCOURS_LOCAL_SERVICE_PORTS", "").split(",")):
        name, _, port = item.partition("=")
        ports[name.strip()] = int(port)
    return LocalInfra(
        state=Path(env.get("PARCOURS_LOCAL_STATE", DEFAULT_STATE)),
        kafka_port=int(env.get("PARCOURS_LOCAL_KAFKA_PORT", 9092)),
        controller_port=int(env.get("PARCOURS_LOCAL_CONTROLLER_PORT", 9093)),
        mongo_port=int(env.get("PARCOURS_LOCAL_MONGO_PORT", 27017)),
        service_ports=ports,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.infra", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "up", "down", "status", "infra-up", "purge"])
    args = parser.parse_args(argv)
    infra = infra_from_env()
    try:
        if args.command == "fetch":
            infra.fetch()
        elif args.command == "up":
            infra.up()
            say("up:", ", ".join(f"{k} {v}" for k, v in infra.status().items()))
        elif args.command == "infra-up":
            infra.up(services=False)
        elif args.command == "down":
            infra.down()
            say("everything stopped")
        elif args.command == "purge":  # make clean: stopped, and no data left outside the state
            infra.down()
            infra.purge()
        else:
            report = infra.status()
            width = max(len(k) for k in report)
            for name, state in report.items():
                print(f"{name:<{width}}  {state}")
            return 0 if all(v in ("healthy", "stopped") for v in report.values()) else 1
    except InfraError as exc:
        say("error:", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

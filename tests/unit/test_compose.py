"""docker-compose.yml and the Dockerfile agree with the code.

No Docker engine is needed: the compose file is read as YAML (anchors and merge keys resolved,
``${...}`` left as written) and compared with what the code declares: the services and ports
of ``deploy/local/infra.py``, the settings of ``shared/settings.py``, the topic declaration
read by ``shared/topics.py``, the Kafka version of ``deploy/local/kafka/pom.xml``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from pydantic import SecretStr

import shared.topics
from deploy.local.infra import SERVICES, LocalInfra
from shared.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
KAFKA_POM = ROOT / "deploy" / "local" / "kafka" / "pom.xml"

KAFKA = "kafka"
MONGO = "mongo"
TOPICS_JOB = "topics"


# --------------------------------------------------------------------------- reading compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services run from our image: the topics job and the four services."""
    return {name: svc for name, svc in services(compose).items() if "build" in svc}


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


@dataclass(frozen=True)
class Published:
    host_ip: str
    host_port: int | None
    container_port: int


def published(service: dict[str, Any]) -> list[Published]:
    """The ``ports`` of a service, short ("ip:host:container") or long syntax."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            host = entry.get("published")
            out.append(Published(str(entry.get("host_ip", "")),
                                 int(host) if host is not None else None, int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].rsplit(":", 2)
        if len(parts) == 3:
            out.append(Published(parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            out.append(Published("", int(parts[0]), int(parts[1])))
        else:
            out.append(Published("", None, int(parts[0])))
    return out


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """{path in the container: volume or host path}, short or long syntax."""
    out = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            out[entry["target"]] = entry.get("source", "")
        else:
            source, _, rest = str(entry).partition(":")
            out[rest.partition(":")[0] or source] = source if rest else ""
    return out


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` → {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def hostnames(compose: dict[str, Any], name: str) -> set[str]:
    """The names other containers reach a service by."""
    svc = services(compose)[name]
    return {name, *([svc["hostname"]] if "hostname" in svc else [])}


def valid_variables() -> set[str]:
    return {f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields}


# --------------------------------------------------------------------------- services and ports


def test_every_local_service_runs_in_compose_on_its_local_port(compose):
    for name, port in SERVICES.items():
        assert name in services(compose), f"service {name} of deploy/local/infra.py missing"
        svc = services(compose)[name]
        assert env(svc)["PARCOURS_SERVICE_NAME"] == name
        assert env(svc)["PARCOURS_HTTP_PORT"] == str(port), name
        assert published(svc) == [Published("127.0.0.1", port, port)], name


def test_compose_runs_no_service_the_code_does_not_know(compose):
    assert set(app_services(compose)) == {*SERVICES, TOPICS_JOB}


def test_no_port_is_published_beyond_the_loopback_interface(compose):
    for name, svc in services(compose).items():
        assert svc.get("network_mode") != "host", name
        for port in published(svc):
            assert port.host_ip == "127.0.0.1", f"{name} publishes {port} on every interface"
            assert port.host_port is not None, f"{name}: {port} gets a random host port"


def test_host_ports_are_those_of_the_local_infrastructure(compose):
    local = LocalInfra()
    kafka_host_ports = [p.host_port for p in published(services(compose)[KAFKA])]
    assert kafka_host_ports == [local.kafka_port]
    assert [p.host_port for p in published(services(compose)[MONGO])] == [local.mongo_port]


# --------------------------------------------------------------------------- settings


def test_every_parcours_variable_is_a_setting(compose):
    valid = valid_variables()
    for name, svc in services(compose).items():
        unknown = {k for k in env(svc) if k.upper().startswith(ENV_PREFIX)} - valid
        assert not unknown, f"{name}: {sorted(unknown)} are not fields of shared.settings.Settings"


def test_every_interpolated_parcours_variable_is_a_setting():
    used = set(re.findall(r"\$\{(" + ENV_PREFIX + r"[A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    assert not used - valid_variables(), sorted(used - valid_variables())


def test_services_get_the_settings_they_cannot_run_without(compose):
    for name in SERVICES:
        variables = env(services(compose)[name])
        for required in ("PARCOURS_KAFKA_BOOTSTRAP_SERVERS", "PARCOURS_MONGO_URI",
                         "PARCOURS_PSEUDONYM_KEY", "PARCOURS_SERVICE_NAME", "PARCOURS_HTTP_PORT"):
            assert required in variables, f"{name} lacks {required}"


def secret_variables() -> set[str]:
    return {f"{ENV_PREFIX}{name.upper()}" for name, field in Settings.model_fields.items()
            if SecretStr in (get_args(field.annotation) or (field.annotation,))}


def test_secrets_must_come_from_the_environment(compose):
    secrets = secret_variables()
    assert f"{ENV_PREFIX}PSEUDONYM_KEY" in secrets
    for name in SERVICES:
        variables = env(services(compose)[name])
        for secret in secrets:
            value = variables.get(secret, "")
            assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", value), (
                f"{name}: {secret} must be required from the environment (${{{secret}:?...}}), "
                f"not left to its development default nor written here; got {value!r}"
            )
    baked = " ".join(args for kw, args in dockerfile_instructions() if kw in ("ENV", "ARG"))
    assert not {v for v in secrets if v in baked}, "a secret is baked into the image"


# --------------------------------------------------------------------------- Kafka


def kafka_env(compose: dict[str, Any]) -> dict[str, str]:
    return env(services(compose)[KAFKA])


def test_services_bootstrap_on_the_listener_kafka_advertises_to_containers(compose):
    broker = kafka_env(compose)
    bound = listeners(broker["KAFKA_LISTENERS"])
    advertised = listeners(broker["KAFKA_ADVERTISED_LISTENERS"])
    clients = {name: env(svc)["PARCOURS_KAFKA_BOOTSTRAP_SERVERS"]
               for name, svc in app_services(compose).items()}
    for name, svc in services(compose).items():
        if "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS" in env(svc):  # the Kafka UI
            clients[name] = env(svc)["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"]
    assert len(clients) == len(app_services(compose)) + 1, "the Kafka UI is missing"
    for name, bootstrap in clients.items():
        for server in bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            assert host in hostnames(compose, KAFKA), f"{name}: {server} is not the kafka service"
            matching = [lst for lst, address in advertised.items() if address == (host, int(port))]
            assert matching, f"{name}: Kafka advertises no listener at {server}"
            assert bound[matching[0]][1] == int(port), f"{name}: no listener bound on port {port}"


def test_the_host_listener_is_published_where_it_is_advertised(compose):
    broker = kafka_env(compose)
    bound = listeners(broker["KAFKA_LISTENERS"])
    advertised = listeners(broker["KAFKA_ADVERTISED_LISTENERS"])
    ports = published(services(compose)[KAFKA])
    assert ports, "Kafka is not reachable from the host"
    for port in ports:
        names = [name for name, (_, bound_port) in bound.items()
                 if bound_port == port.container_port]
        assert names, f"no listener on container port {port.container_port}"
        assert advertised.get(names[0]) == ("127.0.0.1", port.host_port)
    # A program on the host with the default settings reaches this broker.
    default = Settings.model_fields["kafka_bootstrap_servers"].default
    assert default in {f"127.0.0.1:{p.host_port}" for p in ports}


def test_kafka_runs_one_kraft_node_without_automatic_topics(compose):
    broker = kafka_env(compose)
    bound = listeners(broker["KAFKA_LISTENERS"])
    assert broker["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert broker["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    controller = broker["KAFKA_CONTROLLER_LISTENER_NAMES"]
    voter_id, _, voter = broker["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == broker["KAFKA_NODE_ID"]
    assert int(voter.rpartition(":")[2]) == bound[controller][1]
    assert broker["KAFKA_INTER_BROKER_LISTENER_NAME"] in bound
    protocols = dict(item.split(":") for item in
                     broker["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols) == set(bound)
    for port in published(services(compose)[KAFKA]):
        assert port.container_port != bound[controller][1], "the controller listener is published"
    probe = " ".join(services(compose)[KAFKA]["healthcheck"]["test"][1:])
    probe_port = int(re.search(r"--bootstrap-server \S*:(\d+)", probe).group(1))
    assert probe_port in {port for name, (_, port) in bound.items() if name != controller}


def test_kafka_image_is_the_major_version_of_the_local_broker(compose):
    pom = ET.parse(KAFKA_POM).getroot()
    ns = {"m": pom.tag.partition("}")[0].lstrip("{")} if pom.tag.startswith("{") else {}
    version = pom.find("m:properties/m:kafka.version" if ns else "properties/kafka.version", ns)
    assert version is not None and version.text
    image, _, tag = services(compose)[KAFKA]["image"].partition(":")
    assert image == "apache/kafka"
    assert tag.split(".")[0] == version.text.strip().split(".")[0], (
        f"compose runs Kafka {tag}, deploy/local runs {version.text}"
    )


def test_kafka_keeps_its_data_in_a_named_volume(compose):
    log_dirs = kafka_env(compose)["KAFKA_LOG_DIRS"]
    assert volume_mounts(services(compose)[KAFKA]).get(log_dirs) in compose["volumes"], (
        f"{log_dirs} is not on a named volume"
    )


# --------------------------------------------------------------------------- MongoDB


def test_services_use_the_mongo_replica_set(compose):
    mongo = services(compose)[MONGO]
    assert int(mongo["image"].partition(":")[2].split(".")[0]) >= 7
    command = mongo["command"]
    command = command.split() if isinstance(command, str) else command
    replica_set = command[command.index("--replSet") + 1]
    container_ports = {p.container_port for p in published(mongo)}
    initiate = mongo["healthcheck"]["test"][-1]
    assert re.search(r"rs\.initiate\(\s*\{\s*_id:\s*['\"]" + re.escape(replica_set), initiate)
    for name in SERVICES:
        uri = urlsplit(env(services(compose)[name])["PARCOURS_MONGO_URI"])
        assert uri.scheme == "mongodb"
        assert uri.hostname in hostnames(compose, MONGO), f"{name}: {uri.hostname} is not mongo"
        assert (uri.port or 27017) in container_ports
        assert parse_qs(uri.query).get("replicaSet") == [replica_set], name
        # The member the replica set advertises is the address the services connect to.
        assert re.search(rf"host:\s*['\"]{uri.hostname}:{uri.port or 27017}['\"]", initiate)


def test_mongo_keeps_its_data_in_a_named_volume(compose):
    assert volume_mounts(services(compose)[MONGO]).get("/data/db") in compose["volumes"]


# --------------------------------------------------------------------------- the topics job


def test_topics_job_creates_the_declared_topics_on_the_services_broker(compose, monkeypatch,
                                                                       capsys):
    job = services(compose)[TOPICS_JOB]
    program, flag, code = job["command"]
    assert (program, flag) == ("python", "-c")
    calls = []

    async def fake_ensure_topics(bootstrap_servers, prefix="", **kwargs):
        calls.append((bootstrap_servers, prefix, kwargs.get("replication_factor")))
        return {"evenements-vie": "created"}

    monkeypatch.setattr(shared.topics, "ensure_topics", fake_ensure_topics)
    for key, value in env(job).items():
        monkeypatch.setenv(key, value)
    exec(compile(code, "topics-job", "exec"), {})

    bootstraps = {env(services(compose)[name])["PARCOURS_KAFKA_BOOTSTRAP_SERVERS"]
                  for name in SERVICES}
    assert len(bootstraps) == 1
    brokers = sum(svc.get("image", "").startswith("apache/kafka:")
                  for svc in services(compose).values())
    assert calls == [(bootstraps.pop(), "", brokers)]
    assert "created" in capsys.readouterr().out
    # ...and the declaration it applies is the repository's, which the image carries.
    assert shared.topics.DECLARATION == ROOT / "deploy" / "topics.yaml"
    assert shared.topics.load_topics()


def test_services_use_the_topic_names_the_job_creates(compose):
    for name in SERVICES:
        assert env(services(compose)[name]).get("PARCOURS_TOPIC_PREFIX", "") == "", name


def test_services_start_after_kafka_mongo_and_the_topics(compose):
    for name in SERVICES:
        depends = services(compose)[name]["depends_on"]
        assert depends[KAFKA]["condition"] == "service_healthy", name
        assert depends[MONGO]["condition"] == "service_healthy", name
        assert depends[TOPICS_JOB]["condition"] == "service_completed_successfully", name
    job = services(compose)[TOPICS_JOB]
    assert job["depends_on"][KAFKA]["condition"] == "service_healthy"
    assert job["restart"] == "no"
    for name in (KAFKA, MONGO):
        assert services(compose)[name]["healthcheck"]["test"], f"{name} needs a healthcheck"


# --------------------------------------------------------------------------- image, healthchecks


def test_app_services_are_built_from_the_dockerfile(compose):
    images = set()
    for name, svc in app_services(compose).items():
        build = svc["build"]
        build = {"context": build} if isinstance(build, str) else build
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE, name
        images.add(svc.get("image"))
    assert len(images) == 1, f"one image for every service, got {images}"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in (raw.strip() for raw in text.splitlines())
            if line and not line.startswith("#") and " " in line]


def test_the_dockerfile_runs_the_named_service_as_a_non_root_user():
    instructions = dockerfile_instructions()

    def last(keyword: str) -> str:
        found = [args for kw, args in instructions if kw == keyword]
        assert found, f"no {keyword} in the Dockerfile"
        return found[-1]

    python = re.search(r"python:(\d+\.\d+)-slim", DOCKERFILE.read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert python and python.group(1) == pyproject["tool"]["mypy"]["python_version"]
    assert last("USER").split(":")[0] not in ("root", "0")
    # The command deploy/local/infra.py runs, for the service PARCOURS_SERVICE_NAME names.
    command = " ".join(json.loads(last("CMD")))
    assert re.search(r"uvicorn \S*services\.\$\{PARCOURS_SERVICE_NAME\b[^}]*\}\.app:create_app",
                     command), command
    assert "--factory" in command and "$PARCOURS_HTTP_PORT" in command
    assert "/health/ready" in last("HEALTHCHECK")
    used = set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]+", DOCKERFILE.read_text()))
    unknown = used - valid_variables()
    assert not unknown, f"{sorted(unknown)} are not fields of shared.settings.Settings"
    assert not [args for kw, args in instructions if kw == "RUN" and "[dev]" in args]
    # The directory of the topic declaration is copied into the image.
    declared_in = shared.topics.DECLARATION.relative_to(ROOT).parts[0]
    assert any(kw == "COPY" and args.split()[0] == declared_in for kw, args in instructions)


def test_services_write_their_files_to_a_volume_the_service_user_owns(compose):
    instructions = dockerfile_instructions()
    image_env = " ".join(args for kw, args in instructions if kw == "ENV")
    found = re.search(rf"\b{ENV_PREFIX}DATA_DIR=(\S+)", image_env)
    assert found, "the default data_dir is relative to /app, which the service user cannot write"
    image_dir = found.group(1)
    uid = [args for kw, args in instructions if kw == "USER"][-1].split(":")[0]
    owned = rf"(install -d[^&;]*-o {uid}\b[^&;]*|chown[^&;]*\b{uid}\b[^&;]*){re.escape(image_dir)}"
    assert any(kw == "RUN" and re.search(owned, args) for kw, args in instructions), (
        f"{image_dir} is not created for user {uid}"
    )
    for name in SERVICES:
        svc = services(compose)[name]
        data_dir = env(svc).get(f"{ENV_PREFIX}DATA_DIR", image_dir)
        assert volume_mounts(svc).get(data_dir) in compose["volumes"], (
            f"{name}: {data_dir} is not on a named volume"
        )


def test_the_build_context_leaves_out_local_state_and_secrets():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".local", "**/.env"} <= ignored
    declared_in = shared.topics.DECLARATION.relative_to(ROOT).parts[0]
    assert not {"shared", "services", declared_in, "pyproject.toml", "*"} & ignored


class _Readiness(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health/ready" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def readiness_server() -> Iterator[tuple[HTTPServer, type[_Readiness]]]:
    handler = type("Handler", (_Readiness,), {})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_healthchecks_pass_only_when_the_service_is_ready(compose, readiness_server):
    server, handler = readiness_server
    healthcheck = [args for kw, args in dockerfile_instructions() if kw == "HEALTHCHECK"][-1]
    probes = {"Dockerfile": ["CMD", *json.loads(healthcheck[healthcheck.index("CMD ") + 4:])]}
    probes.update({name: services(compose)[name]["healthcheck"]["test"] for name in SERVICES})
    for name, test in probes.items():
        assert test[:3] == ["CMD", "python", "-c"] and "/health/ready" in test[3], name
        # A proxy in the environment (corporate Docker set-ups inject one) must not be used.
        port_env = {**os.environ, "http_proxy": "http://127.0.0.1:9", "HTTP_PROXY":
                    "http://127.0.0.1:9", "PARCOURS_HTTP_PORT": str(server.server_address[1])}
        for status, healthy in ((200, True), (503, False)):
            handler.status = status
            probe = subprocess.run([sys.executable, "-c", test[3]], env=port_env,
                                   capture_output=True, timeout=30, check=False)
            assert (probe.returncode == 0) is healthy, f"{name}: HTTP {status}"

"""`make up`, `make status` and `make down`, run as a newcomer would, on their own ports."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from deploy.local.infra import SERVICES, LocalInfra, free_port, port_open
from tests.support import ROOT


def make(target: str, env: dict[str, str],
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", target], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_make_up_status_down_starts_healthy_and_leaves_nothing_behind(tmp_path: Path) -> None:
    ports = {"kafka": free_port(), "controller": free_port(), "mongo": free_port()}
    services = {name: free_port() for name in SERVICES}
    env = {
        "PARCOURS_LOCAL_STATE": str(tmp_path / "run"),
        "PARCOURS_LOCAL_KAFKA_PORT": str(ports["kafka"]),
        "PARCOURS_LOCAL_CONTROLLER_PORT": str(ports["controller"]),
        "PARCOURS_LOCAL_MONGO_PORT": str(ports["mongo"]),
        "PARCOURS_LOCAL_SERVICE_PORTS": ",".join(f"{n}={p}" for n, p in services.items()),
    }
    infra = LocalInfra(state=tmp_path / "run", kafka_port=ports["kafka"],
                       controller_port=ports["controller"], mongo_port=ports["mongo"],
                       service_ports=services, keep_data=False)
    try:
        up = make("up", env)
        assert up.returncode == 0, up.stdout + up.stderr
        again = make("up", env)
        assert again.returncode == 0, "make up is idempotent: " + again.stdout + again.stderr

        status = make("status", env)
        assert status.returncode == 0, status.stdout + status.stderr
        lines = dict(line.split(None, 1) for line in status.stdout.strip().splitlines())
        assert lines["kafka"].strip() == "healthy" and lines["ferretdb"].strip() == "healthy"
        assert lines["postgres"].strip() == "healthy", "FerretDB's storage (ADR 0012)"
        for name in infra.existing_services():
            assert lines[name].strip() == "healthy", status.stdout
        pids = [p.pid() for p in (infra.kafka, infra.ferretdb, infra.postgres)]
        assert all(pids)
        assert (tmp_path / "run" / "logs" / "kafka.log").exists(), "logs under the state folder"
    finally:
        down = make("down", env)
        infra.purge()  # `make down` keeps the data, as a developer expects; a test does not
    assert down.returncode == 0, down.stdout + down.stderr
    for pid in pids:
        assert not _alive(pid), f"process {pid} still running after make down"
    assert not port_open(ports["kafka"]) and not port_open(ports["mongo"])
    status = make("status", env)
    assert "kafka     stopped" in status.stdout or "stopped" in status.stdout.splitlines()[0]


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False

"""`make run`'s demo, run as a newcomer (CI) would, on its own ports and state folder: it
starts Kafka, the database and every service, feeds a small sample, moves the clock, reports
what happened, and stops everything."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.local.infra import SERVICES, LocalInfra, free_port, port_open
from tests.support import ROOT


def _env(state: Path, ports: dict[str, int], services: dict[str, int]) -> dict[str, str]:
    return {
        **os.environ,
        "PARCOURS_LOCAL_STATE": str(state),
        "PARCOURS_LOCAL_KAFKA_PORT": str(ports["kafka"]),
        "PARCOURS_LOCAL_CONTROLLER_PORT": str(ports["controller"]),
        "PARCOURS_LOCAL_MONGO_PORT": str(ports["mongo"]),
        "PARCOURS_LOCAL_SERVICE_PORTS": ",".join(f"{n}={p}" for n, p in services.items()),
    }


@pytest.mark.timeout(900)
def test_the_demo_feeds_a_sample_through_every_service_then_stops_everything(
    tmp_path: Path,
) -> None:
    ports = {"kafka": free_port(), "controller": free_port(), "mongo": free_port()}
    services = {name: free_port() for name in SERVICES}
    state = tmp_path / "run"
    infra = LocalInfra(state=state, kafka_port=ports["kafka"], controller_port=ports["controller"],
                       mongo_port=ports["mongo"], service_ports=services, keep_data=False)
    left_running: list[str] = []
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "deploy.local.demo", "--no-wait", "--size", "50", "--seed", "1",
             "--months", "1", "--step-days", "10"],
            cwd=ROOT, env=_env(state, ports, services), capture_output=True, text=True,
            timeout=840, check=False)
    finally:
        left_running = [p.name for p in (infra.kafka, infra.ferretdb, infra.postgres,
                                         *(infra.service(n) for n in SERVICES)) if p.running()]
        infra.down()  # whatever happened, leave nothing running
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = json.loads((state / "demo-summary.json").read_text())
    assert summary["failed_services"] == {}, summary["failed_services"]
    sample, fed, found = summary["sample"], summary["fed"], summary["found"]

    # Everything fed was taken: each valid event and referral is one demand, each invalid
    # record one reject; no referral refused by the API.
    referrals = sample.get("signalement", 0)
    invalid = sample.get("invalide", 0)
    assert referrals > 0 and invalid > 0, sample
    assert fed["referrals_accepted"] == referrals and fed["referrals_refused"] == {}
    assert fed["events"] == sum(sample.values()) - referrals - invalid
    assert fed["invalid"] == invalid
    topics = found["topics"]
    assert topics["evenements-vie"] == fed["events"] + invalid
    assert topics["parcours.demandes"] == fed["events"] + referrals
    assert topics["evenements-vie.rejets"] == invalid
    assert found["lag"] == 0, "every consumer caught up"
    assert summary["clock_offset_days"] >= 29, "the clock moved a month forward"

    existing = found["services"]
    assert existing == infra.existing_services()
    if "signalement" in existing:
        assert found["signalement"]["partner_referrals"] >= 1
    if "orientation" in existing:
        assert topics["parcours.decisions"] > 0 and topics["parcours.actions"] > 0
        assert found["orientation"]["with_a_case"] > 0, found["orientation"]
    if "notification" in existing:
        assert found["notification"].get("tasks", 0) >= 1, (
            "the referrals' calls reach the agents' queue (the clock lands in working hours)",
            found["notification"])
        assert topics["parcours.resultats"] > 0
        mails = list((state / "data" / "boite-mail").glob("*.eml"))
        assert mails, "e-mails reach the demo's SMTP server (none fails for want of one)"
    if "reporting" in existing:
        assert found["reporting"]["dashboard_http"] == 200
    for where in ("where to look", "stopping everything now",
                  "everything stopped"):
        assert where in out, out[-3000:]

    # Nothing left behind by the demo itself.
    assert left_running == [], f"still running after the demo: {left_running}"
    assert not any(port_open(p) for p in [*ports.values(), *services.values()])


def test_the_demo_stops_with_a_clear_message_when_a_port_is_taken(tmp_path: Path) -> None:
    ports = {"kafka": free_port(), "controller": free_port(), "mongo": free_port()}
    services = {name: free_port() for name in SERVICES}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["kafka"]))
        squatter.listen()
        proc = subprocess.run([sys.executable, "-m", "deploy.local.demo", "--no-wait"],
                              cwd=ROOT, env=_env(tmp_path / "run", ports, services),
                              capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert f"port {ports['kafka']} (Kafka)" in proc.stdout and "already in use" in proc.stdout
    assert not (tmp_path / "run" / "pids").exists(), "nothing was started"

"""deploy/k8s agrees with the code: services and ports of deploy/local/infra.py, health paths
of shared/http.py, the topic declaration deploy/topics.yaml, the settings of shared/settings.py.

No cluster is needed: the manifests are read as YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import shared.topics
from deploy.local.infra import SERVICES
from shared.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
TOPICS_MOUNT = "/app/deploy/topics.yaml"


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def test_every_file_of_the_folder_is_applied() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk


def test_one_deployment_and_service_per_service_on_its_port(
    manifests: list[dict[str, Any]],
) -> None:
    deployments, services = of_kind(manifests, "Deployment"), of_kind(manifests, "Service")
    assert set(deployments) == set(SERVICES) == set(services)
    for name, port in SERVICES.items():
        c = container(deployments[name])
        env = env_of(c)
        assert env["PARCOURS_SERVICE_NAME"] == name
        assert env["PARCOURS_HTTP_PORT"] == str(port)
        assert c["ports"] == [{"name": "http", "containerPort": port}]
        assert services[name]["spec"]["ports"][0]["port"] == port
        selector = deployments[name]["spec"]["selector"]["matchLabels"]
        assert services[name]["spec"]["selector"] == selector
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert deployments[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_replicas_resources_and_probes(manifests: list[dict[str, Any]]) -> None:
    paths = {r.path for r in __import__("shared.http", fromlist=["x"]).health_router({}).routes}
    assert {"/health/ready", "/health/live"} <= paths
    for name, d in of_kind(manifests, "Deployment").items():
        assert d["spec"]["replicas"] >= 2, f"{name}: one instance is no scale-out"
        c = container(d)
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
        assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name
        assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > 30, "longer than uvicorn's graceful shutdown, so offsets get committed"


def test_replicas_never_exceed_the_partitions_they_read(manifests: list[dict[str, Any]]) -> None:
    """Beyond the partition count, extra replicas of a consumer group sit idle."""
    specs = shared.topics.load_topics()
    reads = {"signalement": "evenements-vie", "orientation": "parcours.demandes",
             "notification": "parcours.actions", "reporting": "parcours.demandes"}
    for name, d in of_kind(manifests, "Deployment").items():
        assert d["spec"]["replicas"] <= specs[reads[name]].partitions, name


def test_topic_declaration_is_deploy_topics_yaml_and_mounted(
    manifests: list[dict[str, Any]],
) -> None:
    cm = of_kind(manifests, "ConfigMap")["parcours-topics"]
    assert cm["data"]["topics.yaml"] == shared.topics.DECLARATION.read_text()
    declared = yaml.safe_load(cm["data"]["topics.yaml"])["topics"]
    assert set(declared) == set(shared.topics.load_topics())
    job = of_kind(manifests, "Job")["parcours-topics"]
    pods = [job["spec"]["template"]["spec"],
            *(d["spec"]["template"]["spec"] for d in of_kind(manifests, "Deployment").values())]
    for pod in pods:
        volumes = {v["name"]: v for v in pod["volumes"]}
        (c,) = pod["containers"]
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == TOPICS_MOUNT)
        assert volumes[mount["name"]]["configMap"]["name"] == "parcours-topics"
        assert mount["subPath"] == "topics.yaml"
    command = " ".join(container({"spec": job["spec"]})["command"])
    assert "ensure_topics" in command and "replication_factor=3" in command


def test_settings_come_from_known_variables_and_mongo_is_a_replica_set(
    manifests: list[dict[str, Any]],
) -> None:
    known = {ENV_PREFIX + f.upper() for f in Settings.model_fields}
    config = of_kind(manifests, "ConfigMap")["parcours-config"]["data"]
    secret = of_kind(manifests, "Secret")["parcours-secrets"]["stringData"]
    assert set(config) <= known and set(secret) <= known
    secrets = {ENV_PREFIX + n.upper() for n, f in Settings.model_fields.items()
               if "SecretStr" in str(f.annotation)}
    assert secrets | {"PARCOURS_MONGO_URI"} <= set(secret), "every secret setting from the Secret"
    assert not secrets & set(config), "no secret in the ConfigMap"
    assert "replicaSet=" in secret["PARCOURS_MONGO_URI"]
    for name, d in of_kind(manifests, "Deployment").items():
        c = container(d)
        assert set(env_of(c)) <= known, name
        refs = {next(iter(r.values()))["name"] for r in c["envFrom"]}
        assert refs == {"parcours-config", "parcours-secrets"}, name

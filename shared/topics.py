"""The topic declaration (``deploy/topics.yaml``) and the code that applies it to a broker.

System map (producer → topic → consumers):

    upstream systems      → evenements-vie        → signalement
    signalement           → evenements-vie.rejets → reporting, operators (CLI replay)
    signalement           → parcours.demandes     → orientation, reporting
    signalement           → personnes.coordonnees → notification
    orientation           → parcours.actions      → notification, reporting
    orientation           → parcours.decisions    → signalement (referral status), reporting
    notification          → parcours.resultats    → orientation, signalement, reporting
    any internal consumer → parcours.dlq          → operators (CLI replay)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DECLARATION = Path(__file__).resolve().parents[1] / "deploy" / "topics.yaml"

EVENEMENTS_VIE = "evenements-vie"
REJETS = "evenements-vie.rejets"
DEMANDES = "parcours.demandes"
COORDONNEES = "personnes.coordonnees"
ACTIONS = "parcours.actions"
DECISIONS = "parcours.decisions"
RESULTATS = "parcours.resultats"
DLQ = "parcours.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    cleanup_policy: str
    retention_ms: int
    key: str
    description: str
    personal_data: bool
    replication_factor: int = 1

    def configs(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


@lru_cache(maxsize=4)
def load_topics(path: Path = DECLARATION) -> dict[str, TopicSpec]:
    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    defaults = raw.get("defaults", {})
    specs: dict[str, TopicSpec] = {}
    for name, spec in raw["topics"].items():
        if spec["cleanup_policy"] not in ("delete", "compact"):
            raise ValueError(f"topic {name}: cleanup_policy must be delete or compact")
        if int(spec["partitions"]) < 1:
            raise ValueError(f"topic {name}: partitions must be >= 1")
        specs[name] = TopicSpec(
            name=name,
            partitions=int(spec["partitions"]),
            cleanup_policy=spec["cleanup_policy"],
            retention_ms=int(spec["retention_ms"]),
            key=str(spec["key"]),
            description=str(spec["description"]),
            personal_data=bool(spec.get("personal_data", False)),
            replication_factor=int(
                spec.get("replication_factor", defaults.get("replication_factor", 1))
            ),
        )
    return specs


async def ensure_topics(
    bootstrap_servers: str, prefix: str = "", *, replication_factor: int | None = None,
    admin_config: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Create the declared topics that are missing; report those that differ.

    Returns ``{physical name: "created" | "ok" | "differs: ..."}``. Partitions are never
    reduced (Kafka cannot); a difference is reported for an operator to decide.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    specs = load_topics()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(admin_config or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs.values() if prefix + s.name not in existing]
        report: dict[str, str] = {}
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        prefix + s.name,
                        s.partitions,
                        replication_factor or s.replication_factor,
                        topic_configs=s.configs(),
                    )
                    for s in missing
                ]
            )
            for topic, code, *rest in response.topic_errors:
                if code == 0:
                    report[topic] = "created"
                elif code != TOPIC_ALREADY_EXISTS:
                    raise RuntimeError(f"creating topic {topic} failed: error {code} {rest}")
            await _wait_for_leaders(admin, [prefix + s.name for s in missing])
        described = await admin.describe_topics([prefix + s.name for s in specs.values()])
        by_name = {d["topic"]: d for d in described}
        for s in specs.values():
            if prefix + s.name in report:
                continue
            got = len(by_name.get(prefix + s.name, {}).get("partitions", []))
            report[prefix + s.name] = (
                "ok" if got == s.partitions
                else f"differs: {got} partitions, declared {s.partitions}"
            )
        return report
    finally:
        await admin.close()


TOPIC_ALREADY_EXISTS = 36


async def _wait_for_leaders(admin: Any, names: list[str], timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a polling loop's deadline
    """Topics are usable once every partition has a leader in the broker's metadata."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics(names)
        if all(d.get("error_code", 0) == 0 and d["partitions"]
               and all(p.get("leader", -1) >= 0 for p in d["partitions"]) for d in described):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"topics without leaders after {timeout}s: {names}")

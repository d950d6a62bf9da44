"""Kafka ACLs as data (``deploy/acls.yaml``), checked against ``deploy/topics.yaml``, turned into
ACL bindings and applied to a broker.

    python -m shared.acls show              # the bindings, one a line (with PARCOURS_TOPIC_PREFIX)
    python -m shared.acls apply             # create them (idempotent); admin credentials from
                                            # PARCOURS_KAFKA_* (a super user, never a service)

aiokafka 0.14's admin client has no ``create_acls``; its protocol module has the CreateAcls
request (v1, with pattern types), which :func:`apply_acls` sends through the admin client's
connection. Creating an ACL that exists is a no-op for Kafka, so applying twice is harmless.
ACLs of a principal removed from the file are not deleted here (``kafka-acls --remove``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import yaml

from shared.topics import DECLARATION, load_topics

ACLS = Path(__file__).resolve().parents[1] / "deploy" / "acls.yaml"


class ResourceType(IntEnum):
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10


class PatternType(IntEnum):
    LITERAL = 3
    PREFIXED = 4


ALLOW = 3  # AclPermissionType.ALLOW
ANY_HOST = "*"


class AclError(ValueError):
    """deploy/acls.yaml is inconsistent (with itself or with deploy/topics.yaml)."""


@dataclass(frozen=True)
class PrincipalAcls:
    name: str
    user: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    describe_groups: tuple[str, ...] = ()
    create_topics: bool = False

    @property
    def principal(self) -> str:
        return f"User:{self.user}"


@dataclass(frozen=True)
class AclBinding:
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    operation: Operation
    host: str = ANY_HOST

    def __str__(self) -> str:
        return (f"{self.principal} ALLOW {self.operation.name} on {self.resource_type.name} "
                f"{self.pattern_type.name} {self.resource_name!r}")


@dataclass(frozen=True)
class AclDeclaration:
    principals: dict[str, PrincipalAcls]
    restricted_reads: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def readers(self, topic: str) -> set[str]:
        return {p.name for p in self.principals.values() if topic in p.read}

    def writers(self, topic: str) -> set[str]:
        return {p.name for p in self.principals.values() if topic in p.write}


_KEYS = {"user", "read", "write", "groups", "describe_groups", "create_topics"}


def _names(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AclError(f"{where}: a list of names is expected")
    if len(set(value)) != len(value):
        raise AclError(f"{where}: a name is repeated")
    return tuple(value)


def load_acls(path: Path = ACLS, topics_path: Path = DECLARATION) -> AclDeclaration:
    """Read and check the ACL declaration: known topics only, one user per principal, group
    prefixes not empty, and the restricted topics readable only by their named readers."""
    raw = yaml.safe_load(Path(path).read_text())
    declared = load_topics(topics_path)
    if not isinstance(raw, dict) or not isinstance(raw.get("principals"), dict):
        raise AclError(f"{path}: a 'principals' mapping is expected")
    principals: dict[str, PrincipalAcls] = {}
    users: dict[str, str] = {}
    for name, spec in raw["principals"].items():
        if not isinstance(spec, dict):
            raise AclError(f"principal {name}: a mapping is expected")
        unknown = set(spec) - _KEYS
        if unknown:
            raise AclError(f"principal {name}: unknown keys {sorted(unknown)}")
        user = spec.get("user")
        if not isinstance(user, str) or not user or ":" in user:
            raise AclError(f"principal {name}: 'user' must be a plain user name")
        if user in users:
            raise AclError(f"principals {users[user]} and {name} share the user {user!r}")
        users[user] = name
        p = PrincipalAcls(
            name=name, user=user,
            read=_names(spec.get("read"), f"principal {name} read"),
            write=_names(spec.get("write"), f"principal {name} write"),
            groups=_names(spec.get("groups"), f"principal {name} groups"),
            describe_groups=_names(spec.get("describe_groups"),
                                   f"principal {name} describe_groups"),
            create_topics=bool(spec.get("create_topics", False)),
        )
        for topic in (*p.read, *p.write):
            if topic not in declared:
                raise AclError(f"principal {name}: topic {topic!r} is not in {topics_path.name}")
        if any(not g for g in p.groups):
            raise AclError(f"principal {name}: an empty group prefix would grant every group")
        if p.read and not p.groups:
            raise AclError(f"principal {name} reads topics but has no consumer group")
        principals[name] = p
    restricted = {
        topic: _names(readers, f"restricted_reads {topic}")
        for topic, readers in (raw.get("restricted_reads") or {}).items()
    }
    decl = AclDeclaration(principals, restricted)
    for topic, allowed in restricted.items():
        if topic not in declared:
            raise AclError(f"restricted_reads: topic {topic!r} is not in {topics_path.name}")
        extra = decl.readers(topic) - set(allowed)
        if extra:
            raise AclError(f"{topic} may be read by {sorted(allowed)} only, not {sorted(extra)}")
    return decl


def bindings(decl: AclDeclaration, prefix: str = "") -> list[AclBinding]:
    """The Kafka ACL bindings of the declaration, for the topics and groups of ``prefix``."""
    out: list[AclBinding] = []
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    lit, pre = PatternType.LITERAL, PatternType.PREFIXED
    for p in decl.principals.values():
        who = p.principal
        out += [AclBinding(topic, prefix + t, lit, who, Operation.READ) for t in p.read]
        out += [AclBinding(topic, prefix + t, lit, who, Operation.WRITE) for t in p.write]
        out += [AclBinding(group, prefix + g, pre, who, Operation.READ) for g in p.groups]
        for g in p.describe_groups:
            if prefix + g:
                out.append(AclBinding(group, prefix + g, pre, who, Operation.DESCRIBE))
            else:
                out.append(AclBinding(group, "*", lit, who, Operation.DESCRIBE))
        if p.create_topics:
            for t in load_topics():
                out.append(AclBinding(topic, prefix + t, lit, who, Operation.CREATE))
                out.append(AclBinding(topic, prefix + t, lit, who, Operation.DESCRIBE_CONFIGS))
    return out


async def apply_acls(bootstrap_servers: str, acl_bindings: list[AclBinding],
                     **client_config: Any) -> int:
    """Create the bindings on the cluster (as an admin principal); returns how many were sent.
    Raises on the first refusal, with Kafka's error code and message."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import for_code
    from aiokafka.protocol.admin import CreateAclsRequest

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers,
                                client_id="parcours-acls", **client_config)
    await admin.start()
    try:
        for b in acl_bindings:
            request = CreateAclsRequest(int(b.resource_type), b.resource_name,
                                        int(b.pattern_type), b.principal, b.host,
                                        int(b.operation), ALLOW)
            response = await admin._send_request(request)  # no public create_acls
            for code, message in response.creation_responses:
                if code != 0:
                    raise for_code(code)(f"creating ACL [{b}] failed: {message}")
        return len(acl_bindings)
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.acls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["show", "apply"])
    args = parser.parse_args(argv)
    from shared.kafka import kafka_client_config
    from shared.settings import Settings

    settings = Settings()  # type: ignore[call-arg]  # from the environment
    found = bindings(load_acls(), settings.topic_prefix)
    if args.command == "show":
        for b in found:
            print(b)
        return 0
    count = asyncio.run(apply_acls(settings.kafka_bootstrap_servers, found,
                                   **kafka_client_config(settings)))
    print(f"{count} ACL bindings applied to {settings.kafka_bootstrap_servers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

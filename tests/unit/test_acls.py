"""deploy/acls.yaml against deploy/topics.yaml and against the code: each service is granted
exactly the topics its subscribers read, the topics it names and does not read are written,
and no grant is left that the code never uses."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from shared import topics
from shared.acls import (
    AclError,
    Operation,
    PatternType,
    ResourceType,
    bindings,
    load_acls,
)

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("signalement", "orientation", "notification", "reporting")
CONSTANTS = {name: value for name, value in vars(topics).items()
             if name.isupper() and isinstance(value, str) and value in topics.load_topics()}


def _topic_refs(node: ast.AST) -> set[str]:
    """Declared topics named as ``topics.X`` / ``t.X`` under ``node``."""
    return {CONSTANTS[n.attr] for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id in ("topics", "t") and n.attr in CONSTANTS}


def subscriptions(service: str) -> list[tuple[set[str], str]]:
    """(topics, consumer group) of every ``@...subscriber(...)`` in the service's handlers."""
    module = importlib.import_module(f"services.{service}.handlers")
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[arg-type]
    found: list[tuple[set[str], str]] = []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == "subscriber"):
            continue
        subscribed = set().union(*(_topic_refs(a) for a in call.args))
        groups = [kw.value for kw in call.keywords if kw.arg is None
                  and isinstance(kw.value, ast.Call)
                  and getattr(kw.value.func, "id", None) == "subscriber_options"]
        assert subscribed and len(groups) == 1, f"{service}: unreadable subscriber"
        group_expr = groups[0].args[1]
        group = eval(compile(ast.Expression(group_expr), "<group>", "eval"), vars(module))
        found.append((subscribed, str(group)))
    assert found, f"{service} has no subscriber"
    return found


def referenced(service: str) -> set[str]:
    out: set[str] = set()
    for path in (ROOT / "services" / service).glob("*.py"):
        out |= _topic_refs(ast.parse(path.read_text()))
    return out


def test_the_declaration_loads_and_names_only_declared_topics() -> None:
    decl = load_acls()
    assert set(SERVICES) <= set(decl.principals)
    assert "operations" in decl.principals
    assert len({p.user for p in decl.principals.values()}) == len(decl.principals)


def test_contact_data_is_read_by_notification_only_and_life_events_by_signalement_only() -> None:
    decl = load_acls()
    assert decl.readers(topics.COORDONNEES) == {"notification"}
    assert decl.readers(topics.EVENEMENTS_VIE) == {"signalement"}
    assert decl.restricted_reads[topics.COORDONNEES] == ("notification",)


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_reads_exactly_what_its_subscribers_read(service: str) -> None:
    p = load_acls().principals[service]
    subscribed = set().union(*(t for t, _ in subscriptions(service)))
    assert set(p.read) == subscribed


@pytest.mark.parametrize("service", SERVICES)
def test_each_consumer_group_is_granted_and_each_group_grant_is_used(service: str) -> None:
    p = load_acls().principals[service]
    groups = {g for _, g in subscriptions(service)}
    for g in groups:
        assert any(g.startswith(prefix) for prefix in p.groups), f"{service}: group {g} not granted"
    for prefix in p.groups:
        assert any(g.startswith(prefix) for g in groups), f"{service}: group grant {prefix} unused"


@pytest.mark.parametrize("service", SERVICES)
def test_every_topic_the_code_names_is_granted_and_every_write_is_named(service: str) -> None:
    p = load_acls().principals[service]
    named = referenced(service)
    granted = set(p.read) | set(p.write)
    assert named <= granted, f"{service} names {named - granted} without a grant"
    assert set(p.write) <= named, f"{service} may write {set(p.write) - named} it never names"
    assert topics.DLQ in p.write, "every service dead-letters poison input"


def test_operations_matches_the_command_line() -> None:
    from shared import cli

    p = load_acls().principals["operations"]
    assert set(cli.TRAIL_TOPICS) <= set(p.read)
    assert {topics.REJETS, topics.DLQ} <= set(p.read)
    assert any(cli.REPLAY_GROUP.startswith(g) for g in p.groups)
    assert topics.EVENEMENTS_VIE in p.write
    assert topics.EVENEMENTS_VIE not in p.read and topics.COORDONNEES not in p.read


def test_bindings_carry_the_deployment_prefix() -> None:
    found = bindings(load_acls(), "t1.")
    reads = {(b.principal, b.resource_name) for b in found
             if b.resource_type is ResourceType.TOPIC and b.operation is Operation.READ}
    assert ("User:notification", "t1.personnes.coordonnees") in reads
    others = {n for who, n in reads if who != "User:notification"}
    assert "t1.personnes.coordonnees" not in others
    groups = [b for b in found if b.resource_type is ResourceType.GROUP]
    assert all(b.resource_name.startswith("t1.") for b in groups)
    assert all(b.pattern_type is PatternType.PREFIXED for b in groups)
    # without a prefix, "every group" is Kafka's literal wildcard, not an empty prefix
    unprefixed = bindings(load_acls())
    assert any(b.resource_name == "*" and b.pattern_type is PatternType.LITERAL
               and b.operation is Operation.DESCRIBE for b in unprefixed)
    assert all(b.resource_name for b in unprefixed)


BASE = """
principals:
  notification: {user: notification, read: [personnes.coordonnees], groups: [notification]}
  reporting: {user: reporting, read: [%s], groups: [reporting-]}
restricted_reads:
  personnes.coordonnees: [notification]
"""


def test_a_restricted_topic_granted_to_another_reader_is_refused(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text(BASE % "parcours.demandes")
    load_acls(ok)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE % "personnes.coordonnees")
    with pytest.raises(AclError, match="notification"):
        load_acls(bad)


@pytest.mark.parametrize("text, message", [
    ("principals:\n  a: {user: a, write: [nope]}\n", "not in topics.yaml"),
    ("principals:\n  a: {user: a, read: [parcours.demandes]}\n", "no consumer group"),
    ("principals:\n  a: {user: a, read: [parcours.demandes], groups: ['']}\n", "empty group"),
    ("principals:\n  a: {user: a}\n  b: {user: a}\n", "share the user"),
    ("principals:\n  a: {user: a, reed: [parcours.demandes]}\n", "unknown keys"),
    ("principals:\n  a: {user: 'User:a'}\n", "plain user name"),
])
def test_inconsistent_declarations_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "acls.yaml"
    path.write_text(text)
    with pytest.raises(AclError, match=message):
        load_acls(path)

"""Export the contracts: one JSON Schema per message type to ``docs/contracts/``, and an
AsyncAPI 3.0 document of every topic (``docs/asyncapi.yaml``).

    python -m shared.schemas docs/contracts     # (make contracts)

A test regenerates both and compares them with the committed files, so the published
contract never drifts from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from shared import topics as t
from shared.cloudevents import CloudEvent
from shared.contracts import internes as i
from shared.contracts.evenements import EVENT_MODELS, event_type

# message type -> (topic, data model)
MESSAGES: dict[str, tuple[str, type[BaseModel]]] = {
    **{event_type(name): (t.EVENEMENTS_VIE, model) for name, model in EVENT_MODELS.items()},
    i.DEMANDE: (t.DEMANDES, i.Demande),
    i.COORDONNEES: (t.COORDONNEES, i.Coordonnees),
    i.ACTION_PLANIFIEE: (t.ACTIONS, i.ActionPlanifiee),
    i.ACTION_ANNULEE: (t.ACTIONS, i.ActionAnnulee),
    i.DECISION: (t.DECISIONS, i.Decision),
    i.RESULTAT: (t.RESULTATS, i.Resultat),
}


def schema_of(type_: str) -> dict[str, Any]:
    _, model = MESSAGES[type_]
    schema = CloudEvent[model].model_json_schema(mode="validation")  # type: ignore[valid-type]
    schema["title"] = type_
    schema["properties"]["type"] = {"const": type_, "title": "Type", "type": "string"}
    return schema


def json_schemas() -> dict[str, dict[str, Any]]:
    return {f"{type_}.schema.json": schema_of(type_) for type_ in MESSAGES}


def asyncapi() -> dict[str, Any]:
    specs = t.load_topics()
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for type_, (topic, _) in MESSAGES.items():
        messages[type_] = {
            "name": type_,
            "contentType": "application/cloudevents+json",
            "payload": {"$ref": f"./contracts/{type_}.schema.json"},
        }
        channels.setdefault(topic, {"messages": {}})["messages"][type_] = {
            "$ref": f"#/components/messages/{type_}"
        }
    for name, spec in specs.items():
        channel = channels.setdefault(name, {"messages": {}})
        channel.update({
            "address": name,
            "description": spec.description,
            "bindings": {"kafka": {
                "topic": name, "partitions": spec.partitions,
                "topicConfiguration": {"cleanup.policy": [spec.cleanup_policy],
                                       "retention.ms": spec.retention_ms},
            }},
            "x-key": spec.key,
            "x-personal-data": spec.personal_data,
        })
        if not channel["messages"]:
            channel["description"] += " Records keep their original bytes; see docs/adr/0003."
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Parcours: topics of the platform", "version": "1.0.0",
                 "description": "Every value is one CloudEvent 1.0 in structured JSON mode."},
        "defaultContentType": "application/cloudevents+json",
        "channels": dict(sorted(channels.items())),
        "components": {"messages": dict(sorted(messages.items()))},
    }


def render(out: Path) -> dict[Path, str]:
    files = {out / name: json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
             for name, schema in json_schemas().items()}
    files[out.parent / "asyncapi.yaml"] = yaml.safe_dump(asyncapi(), sort_keys=False,
                                                        allow_unicode=True)
    return files


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/contracts")
    out.mkdir(parents=True, exist_ok=True)
    for path, text in render(out).items():
        path.write_text(text)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Deterministic identifiers (ARCHITECTURE.md rule 4).

Every effect's id is derived from what caused it, so that a redelivered message produces the
same ids and the next service deduplicates them.
"""

from __future__ import annotations

import uuid

# Fixed namespace of the platform; never change it (ids already stored depend on it).
NAMESPACE = uuid.UUID("6f1c2e0a-5b8e-4d4a-9c3e-2a7d0f1b9e42")


def derive_id(kind: str, *parts: object) -> str:
    """uuid5 of ``kind`` and the parts, e.g. ``derive_id("action", case_id, step_id)``."""
    if not parts:
        raise ValueError("derive_id needs at least one part besides the kind")
    name = "\x1f".join([kind, *(str(p) for p in parts)])
    return str(uuid.uuid5(NAMESPACE, name))

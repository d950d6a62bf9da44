"""Deterministic identifiers (ARCHITECTURE.md rule 4).

Every effect's id is derived from what caused it, so that a redelivered message produces the
same ids and the next service deduplicates them.
"""

from __future__ import annotations

import hashlib
import uuid

# Fixed namespace of the platform; never change it (ids already stored depend on it).
NAMESPACE = uuid.UUID("6f1c2e0a-5b8e-4d4a-9c3e-2a7d0f1b9e42")
_NS = NAMESPACE.bytes


def derive_id(kind: str, *parts: object) -> str:
    """uuid5 of ``kind`` and the parts, e.g. ``derive_id("action", case_id, step_id)``.

    The same value as ``str(uuid.uuid5(NAMESPACE, name))``, computed without building a
    ``uuid.UUID`` (several ids per message: 5 % of a service's CPU went there)."""
    if not parts:
        raise ValueError("derive_id needs at least one part besides the kind")
    name = "\x1f".join([kind, *(str(p) for p in parts)])
    h = hashlib.sha1(_NS + name.encode("utf-8"), usedforsecurity=False).hexdigest()
    # RFC 4122: version 5 in the 13th hex digit, variant 10xx in the 17th.
    return (f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-"
            f"{h[20:32]}")

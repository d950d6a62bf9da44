"""Partners and their API keys.

A key reads ``pk_<key id>_<secret>``. Only a peppered HMAC-SHA256 of the secret is stored,
under the key id, so a lookup is by ``_id`` and a stolen database gives no usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal

DetecteurType = Literal[
    "ccas", "mission-locale", "france-travail", "hopital-pass", "professionnel-de-sante",
    "accueil-cpam", "association", "caf", "carsat", "autre",
]


@dataclass(frozen=True)
class Partner:
    id: str
    nom: str
    type: str


def hash_secret(secret: str, pepper: bytes) -> str:
    return hmac.new(pepper, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """(key id, secret, full key to hand to the partner once)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, secret, f"pk_{key_id}_{secret}"


def split_key(api_key: str) -> tuple[str, str] | None:
    parts = api_key.split("_", 2)
    if len(parts) != 3 or parts[0] != "pk" or not parts[1] or not parts[2] or len(api_key) > 200:
        return None
    return parts[1], parts[2]


def partner_document(partner: Partner, key_id: str, secret: str, pepper: bytes) -> dict[str, Any]:
    return {"_id": key_id, "partenaire": partner.id, "nom": partner.nom, "type": partner.type,
            "secret_hash": hash_secret(secret, pepper), "actif": True}


def verify(doc: dict[str, Any] | None, secret: str, pepper: bytes) -> Partner | None:
    if doc is None or not doc.get("actif", True):
        # Same work whether the key id exists or not.
        hmac.compare_digest(hash_secret(secret, pepper), "0" * 64)
        return None
    if not hmac.compare_digest(hash_secret(secret, pepper), doc["secret_hash"]):
        return None
    return Partner(id=doc["partenaire"], nom=doc["nom"], type=doc["type"])

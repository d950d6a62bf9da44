"""The NIR (French social security number) and the pseudonym that replaces it downstream.

Validation is python-stdnum's ``stdnum.fr.nir`` (13 characters + 2-digit key,
``97 - number mod 97``, Corsica's 2A/2B read as 19/18). The pseudonym is a keyed
HMAC-SHA256 of the compact NIR (ARCHITECTURE.md rule 7): stable for a key, not reversible
without the key, never equal to the NIR.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from stdnum.exceptions import ValidationError as StdnumValidationError
from stdnum.fr import nir as stdnum_nir


class InvalidNir(ValueError):
    """The NIR is refused; ``code`` is a stable reason code, the message never quotes the NIR."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_REASONS = {
    "InvalidLength": ("nir.longueur", "the NIR must have 15 characters (13 + a 2-digit key)"),
    "InvalidFormat": ("nir.format", "the NIR has letters where digits belong"),
    "InvalidChecksum": ("nir.cle", "the NIR's key does not match its 13 first characters"),
    "InvalidComponent": ("nir.composant", "a component of the NIR is impossible"),
}


def validate_nir(value: str) -> str:
    """Return the compact NIR (no spaces) or raise :class:`InvalidNir`."""
    if not isinstance(value, str):
        raise InvalidNir("nir.format", "the NIR must be a string")
    try:
        return str(stdnum_nir.validate(value))
    except StdnumValidationError as exc:
        code, message = _REASONS.get(type(exc).__name__, ("nir.invalide", "the NIR is invalid"))
        raise InvalidNir(code, message) from None


def is_valid_nir(value: str) -> bool:
    try:
        validate_nir(value)
    except InvalidNir:
        return False
    return True


@dataclass(frozen=True)
class Pseudonymizer:
    """Turns NIRs into pseudonyms with a secret key. ``key_id`` names the key for rotation."""

    key: bytes
    key_id: str = "k1"

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise ValueError("the pseudonym key must have at least 16 bytes")

    def pseudonym(self, nir: str) -> str:
        compact = validate_nir(nir)
        digest = hmac.new(self.key, compact.encode("ascii"), hashlib.sha256).hexdigest()
        return f"{self.key_id}-{digest[:40]}"

    def __repr__(self) -> str:  # never print the key
        return f"Pseudonymizer(key_id={self.key_id!r})"

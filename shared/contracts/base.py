from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """Base of every ``data`` model: frozen, tolerant on read (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

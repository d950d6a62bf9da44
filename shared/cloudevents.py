"""CloudEvents 1.0, structured JSON mode (``application/cloudevents+json``).

Every message of the platform is one CloudEvent. Extensions ``correlationid`` (the life event
or referral at the origin of a chain) and ``causationid`` (the event that directly caused this
one) chain an outcome back to its cause. Strict on emit (:func:`new_event` builds a validated
envelope), tolerant on read (unknown attributes ignored).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from shared.contracts.base import refuse_nul, sans_nul

CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPES = ("application/cloudevents+json", "application/json")

D = TypeVar("D")


class CloudEvent(BaseModel, Generic[D]):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _sans_nul(cls, raw: Any, info: ValidationInfo) -> Any:
        """A NUL character anywhere in a message read is refused, with where it is (unless
        the caller checked already: :func:`decode_json`, :func:`new_event`)."""
        if isinstance(info.context, dict) and info.context.get("sans_nul") is True:
            return raw
        return refuse_nul(raw)

    specversion: Literal["1.0"] = Field("1.0", description="CloudEvents version.")
    id: str = Field(..., min_length=1, max_length=200, description="Unique per source.")
    source: str = Field(
        ..., min_length=1, max_length=500, description="URI-reference of the emitting system."
    )
    type: str = Field(..., min_length=1, max_length=200, description="Versioned event type.")
    time: datetime = Field(..., description="When the occurrence happened (RFC 3339).")
    subject: str | None = Field(None, max_length=200, description="What the event is about.")
    datacontenttype: str = Field("application/json", max_length=100)
    dataschema: str | None = Field(None, max_length=500)
    correlationid: str | None = Field(
        None, max_length=200, description="Id of the event at the origin of the chain."
    )
    causationid: str | None = Field(
        None, max_length=200, description="Id of the event that directly caused this one."
    )
    data: D

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


def new_event(
    *,
    type: str,
    source: str,
    id: str,
    data: BaseModel,
    subject: str | None = None,
    time: datetime | None = None,
    cause: CloudEvent[Any] | None = None,
    correlationid: str | None = None,
) -> CloudEvent[Any]:
    """Build an outgoing event; ``cause`` sets causationid and carries its correlationid on."""
    if cause is not None:
        correlationid = correlationid or cause.correlationid or cause.id
    # Built here from checked input: the NUL check of a message read is not repeated.
    return CloudEvent[type_of(data)].model_validate({  # type: ignore[misc,no-any-return]
        "id": id,
        "source": source,
        "type": type,
        "time": time or datetime.now(UTC),
        "subject": subject,
        "correlationid": correlationid or id,
        "causationid": cause.id if cause is not None else None,
        "data": data,
    }, context=VERIFIE)


def type_of(data: BaseModel) -> type[BaseModel]:
    return type(data)


def headers_for(event: CloudEvent[Any]) -> dict[str, str]:
    """Kafka headers carried with every record (content type; ids for tooling without parsing)."""
    headers = {"content-type": CONTENT_TYPE, "ce_type": event.type, "ce_id": event.id}
    if event.correlationid:
        headers["correlation_id"] = event.correlationid
    return headers


# The validation context that says "this input's texts were checked for NUL characters".
VERIFIE: dict[str, bool] = {"sans_nul": True}


def decode_json(value: bytes) -> Any:
    """A record's JSON, a NUL character refused with where it is (``ValueError``). In JSON text
    a NUL can only be written as the escape ``\\u0000``: one search of the bytes, and the walk
    only when it is there. Validate the result with ``context=VERIFIE``."""
    body = json.loads(value)
    if b"\\u0000" in value:
        sans_nul(body)
    return body

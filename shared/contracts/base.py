from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

NUL_MESSAGE = "the NUL character (U+0000) is not allowed in text"


def sans_nul(value: Any) -> Any:
    """``value`` unchanged, or ValueError if a text in it holds a NUL character.

    No field of the platform can hold one legitimately (identifiers, names, addresses, free
    text), C-based tools truncate at it, and PostgreSQL, under the local FerretDB, cannot store
    it (docs/adr/0012): it is refused at the door, with a reason, on every database."""
    path = nul_path(value)
    if path is not None:
        raise ValueError(f"{path}: {NUL_MESSAGE}" if path else NUL_MESSAGE)
    return value


def nul_path(value: Any, path: str = "") -> str | None:
    """Where the first NUL character of ``value`` is (``data.assure.nom``, ``""`` for
    ``value`` itself), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, BaseModel):
        value = value.__dict__
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key).replace("\x00", "\\x00")  # the path is shown, never a NUL
            here = f"{path}.{name}" if path else name
            if isinstance(key, str) and "\x00" in key:
                return here
            found = nul_path(item, here)
            if found is not None:
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for n, item in enumerate(value):
            found = nul_path(item, f"{path}.{n}" if path else str(n))
            if found is not None:
                return found
    return None


def refuse_nul(raw: Any) -> Any:
    """:func:`sans_nul` for a message as received (JSON decoded into dicts, lists and texts),
    at the cost of one ``repr`` when it holds no NUL (``repr`` shows one as ``\\x00``).
    Messages are checked once, at the envelope, not field by field: a validator on every
    field doubled the cost of every model built (docs/performance.md). A ``data`` that is
    already a model was built here (:func:`shared.cloudevents.new_event`) from checked input.
    """
    if not isinstance(raw, dict):
        return sans_nul(raw)
    checked = raw
    if isinstance(raw.get("data"), BaseModel):
        checked = {k: v for k, v in raw.items() if k != "data"}
    if "\\x00" in repr(checked):
        sans_nul(checked)
    return raw


class SansNul(BaseModel):
    """Refuses a NUL character in any text field, nested models included (see
    :func:`sans_nul`). For the HTTP request models; messages are checked at the envelope
    (:class:`shared.cloudevents.CloudEvent`)."""

    @field_validator("*", mode="after")
    @classmethod
    def _sans_nul(cls, value: Any) -> Any:
        if value.__class__ is str:
            if "\x00" in value:
                raise ValueError(NUL_MESSAGE)
            return value
        if value is None or isinstance(value, int | float):
            return value
        return sans_nul(value)


class Contract(BaseModel):
    """Base of every ``data`` model: frozen, tolerant on read (unknown fields ignored). A NUL
    character is refused where a message is read (:class:`shared.cloudevents.CloudEvent`) and
    by the HTTP request models (:class:`SansNul`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

"""structlog configuration shared by every service.

- JSON lines when stderr is not a TTY, a readable console otherwise.
- A correlation id (and any other context) bound per message with :func:`bind_message_context`.
- :func:`redact` removes personal data before anything is rendered: values under personal
  keys (NIR, names, address, phone, email, ...) and, in any string, what looks like a NIR,
  an email address or a French phone number.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"

# Keys whose values are personal data, wherever they appear (nested dicts included).
PERSONAL_KEYS = frozenset(
    {
        "nir", "nom", "prenom", "nom_usage", "date_naissance", "adresse", "ligne1", "ligne2",
        "code_postal", "commune", "telephone", "email", "proche", "assure", "personne",
        "coordonnees", "contact", "destinataire", "name", "first_name", "last_name",
        "address", "phone", "mail", "birth_date",
    }
)

# A NIR with or without spaces (1 or 2, then 12 more characters incl. 2A/2B, then the key).
_NIR_RE = re.compile(r"\b[12]\s?\d{2}\s?\d{2}\s?(?:\d{2}|2[AaBb])\s?\d{3}\s?\d{3}(?:\s?\d{2})?\b")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE_RE = re.compile(r"(?:\+33\s?|\b0)[1-9](?:[\s.-]?\d{2}){4}\b")


_KEYS_ALT = "|".join(sorted(PERSONAL_KEYS, key=len, reverse=True))
# "nom": "Dupont" / 'nom': 'Dupont' / nom=Dupont / "adresse": {...} inside free text.
_PAIR_RE = re.compile(
    rf"""(?i)(["']?\b(?:{_KEYS_ALT})\b["']?\s*[:=]\s*)"""
    r"""(\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,;}\s]+)"""
)


def scrub_text(text: str) -> str:
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and len(stripped) < 1_000_000:
        try:
            parsed = json.loads(stripped)
        except ValueError:
            pass
        else:
            return json.dumps(redact(parsed), ensure_ascii=False)
    # Every log line's values pass here: the two costly patterns run only when the character
    # they cannot match without is there (a pair needs ":" or "=", an address needs "@").
    if ":" in text or "=" in text:
        text = _PAIR_RE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _NIR_RE.sub(REDACTED, text)
    if "@" in text:
        text = _EMAIL_RE.sub(REDACTED, text)
    return _PHONE_RE.sub(REDACTED, text)


def redact(value: Any, _depth: int = 0) -> Any:
    if _depth > 8:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if str(k).lower() in PERSONAL_KEYS else redact(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, _depth + 1) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bytes):
        return scrub_text(value.decode("utf-8", "replace"))
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: runs last before rendering, on the whole event dict."""
    return redact(event_dict)  # type: ignore[no-any-return]


def configure_logging(level: str = "INFO", json_logs: bool | None = None) -> None:
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    before: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    # Added after the redaction, which has nothing to look for in them (it costs per value).
    after: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*before, redact_processor, *after, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (aiokafka, uvicorn, pymongo) go through
    # the same redaction and rendering.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*before, structlog.stdlib.ExtraAdder(), redact_processor, *after],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "pymongo"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str | None = None, **initial: Any) -> Any:
    return structlog.get_logger(name, **initial)


def bind_message_context(**values: Any) -> None:
    """Bind correlation/causation ids (and the like) for the message being handled."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear_message_context() -> None:
    structlog.contextvars.clear_contextvars()

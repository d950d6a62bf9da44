"""Secrets from the environment or from files, and the production guard (docs/security.md).

The pseudonym key and the API key pepper are given either as ``PARCOURS_<NAME>`` or,
preferably, as ``PARCOURS_<NAME>_FILE``: the path of a file holding it (a Kubernetes or Docker
secret mounted read-only). Both at once is an error, so that nobody wonders which one wins.
The Kafka SASL password, the SMTP password and the SMS token are files only. Trailing line
breaks of a file are dropped (``echo secret > file`` works).

In production (``PARCOURS_ENVIRONMENT=production``) a service refuses to start with a
development default secret, a short key, an unauthenticated Kafka connection or the demo
clock. Messages name the setting, never its value.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from shared.settings import Settings

ENV_PREFIX = "PARCOURS_"

# secret field -> the field naming a file that holds it
SECRET_FILES: dict[str, str] = {
    "pseudonym_key": "pseudonym_key_file",
    "api_key_pepper": "api_key_pepper_file",
}
# The Kafka SASL password is a file only (``PARCOURS_KAFKA_SASL_PASSWORD_FILE``), as the SMTP
# password and the SMS token of notification: Settings.kafka_sasl_password reads it.

# Smallest length of a secret key in production (HMAC-SHA256 keys: 32 bytes of entropy).
MIN_SECRET_LENGTH = 32


class ConfigurationError(RuntimeError):
    """Settings a service must not start with. Not a ``ValueError`` on purpose: pydantic would
    wrap it in a ``ValidationError`` that quotes the whole input, secrets included."""


class SecretFileError(ConfigurationError):
    """A secret file is missing, unreadable or empty (the message names the file, not a value)."""


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def read_secret_file(path: Path, what: str) -> SecretStr:
    """The secret held by ``path``, without its trailing line breaks."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SecretFileError(f"{env_name(what)}_FILE: cannot read {path} ({reason})") from None
    value = text.rstrip("\r\n")
    if not value.strip():
        raise SecretFileError(f"{env_name(what)}_FILE: {path} is empty")
    return SecretStr(value)


def apply_secret_files(settings: Settings) -> None:
    """Replace each secret by the content of its ``*_FILE`` when that is set."""
    for field, file_field in SECRET_FILES.items():
        path = getattr(settings, file_field)
        if path is None:
            continue
        if field in settings.model_fields_set and getattr(settings, field) is not None:
            raise SecretFileError(
                f"set {env_name(field)} or {env_name(file_field)}, not both"
            )
        setattr(settings, field, read_secret_file(path, field))


def _dev_default(field: str) -> str | None:
    from shared.settings import Settings

    default = Settings.model_fields[field].default
    return default.get_secret_value() if isinstance(default, SecretStr) else None


def kafka_problems(settings: Settings) -> list[str]:
    """Inconsistent Kafka security settings (checked in every environment)."""
    problems: list[str] = []
    if settings.kafka_security_protocol.startswith("SASL_"):
        if not settings.kafka_sasl_username:
            problems.append(f"{env_name('kafka_sasl_username')} is required with "
                            f"{settings.kafka_security_protocol}")
        if settings.kafka_sasl_password_file is None:
            problems.append(f"{env_name('kafka_sasl_password_file')} is required with "
                            f"{settings.kafka_security_protocol}")
        else:
            settings.kafka_sasl_password  # noqa: B018 - raises SecretFileError if unreadable
    if (settings.kafka_ssl_keyfile is None) != (settings.kafka_ssl_certfile is None):
        problems.append(f"{env_name('kafka_ssl_certfile')} and {env_name('kafka_ssl_keyfile')} "
                        "go together")
    return problems


def production_problems(settings: Settings) -> list[str]:
    """Why these settings must not run in production (empty outside production)."""
    problems = kafka_problems(settings)
    if settings.environment != "production":
        return problems
    for field in ("pseudonym_key", "api_key_pepper"):
        value = getattr(settings, field).get_secret_value()
        if value == _dev_default(field):
            problems.append(f"{env_name(field)} is the development default "
                            f"(set it, or {env_name(field)}_FILE)")
        elif len(value) < MIN_SECRET_LENGTH:
            problems.append(f"{env_name(field)} is shorter than {MIN_SECRET_LENGTH} characters")
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT" or (protocol == "SSL" and settings.kafka_ssl_certfile is None):
        problems.append("Kafka connections are not authenticated "
                        f"({env_name('kafka_security_protocol')}={protocol}); "
                        "use SASL_SSL with this service's own principal")
    if settings.clock_file is not None:
        problems.append(f"{env_name('clock_file')} moves time for the demo and tests only")
    return problems


def check_settings(settings: Settings) -> None:
    """Read the secret files, then refuse inconsistent or (in production) unsafe settings."""
    apply_secret_files(settings)
    problems = production_problems(settings)
    if problems:
        where = "in production" if settings.environment == "production" else "with these settings"
        raise ConfigurationError(f"refusing to start {where}: " + "; ".join(problems))

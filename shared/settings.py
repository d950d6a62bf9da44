"""Settings of every service, read from the environment (prefix ``PARCOURS_``) or a ``.env`` file.

Each field is documented; ``docs/configuration.md`` is generated from these descriptions
(``parcours config-doc``). Services read settings only in their ``app.py`` (composition root).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PARCOURS_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    service_name: str = Field(
        "parcours", description="Name of this service; used as Kafka client id and group id prefix."
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated."
    )
    kafka_client_id: str | None = Field(
        None, description="Kafka client id (default: the service name)."
    )
    topic_prefix: str = Field(
        "",
        description="Prefix added to every topic name of deploy/topics.yaml "
        "(tests use it to give each test its own topics).",
    )
    mongo_uri: str = Field(
        "mongodb://127.0.0.1:27017/",
        description="MongoDB connection string (FerretDB locally, a MongoDB 7+ replica set in production).",
    )
    mongo_database: str | None = Field(
        None, description="Database owned by this service (default: parcours_<service_name>)."
    )
    mongo_timeout_ms: int = Field(
        5000, description="Server selection timeout; kept short so that retries stay in control."
    )
    pseudonym_key: SecretStr = Field(
        SecretStr("dev-only-pseudonym-key-change-me"),
        description="Secret key of the HMAC-SHA256 that turns a NIR into a pseudonym. Set it in production.",
    )
    pseudonym_key_id: str = Field(
        "k1", description="Identifier of the pseudonym key, carried with pseudonyms for key rotation."
    )
    api_key_pepper: SecretStr = Field(
        SecretStr("dev-only-api-key-pepper-change-me"),
        description="Secret mixed into the stored hash of partners' API keys. Set it in production.",
    )
    http_max_body_bytes: int = Field(
        16 * 1024, description="Largest HTTP request body accepted (413 beyond)."
    )
    http_rate_per_minute: int = Field(
        120, description="Requests a partner may make per minute on one instance (429 beyond)."
    )
    intake_batch_size: int = Field(
        500, description="Largest batch of life events signalement takes from Kafka at once."
    )
    data_dir: Path = Field(
        Path(".local/run/data"),
        description="Folder for files a service produces (letters, print batches, artifacts).",
    )
    http_host: str = Field("127.0.0.1", description="Address the service's HTTP server binds.")
    http_port: int = Field(8000, description="Port of the service's HTTP server.")
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    log_json: bool | None = Field(
        None, description="Force JSON logs (true) or console logs (false); default: JSON unless on a TTY."
    )
    clock_file: Path | None = Field(
        None,
        description="If set, the service's clock is the system clock plus the offset written in this "
        "file (the demo and end-to-end tests move time forward with it). Unset in production.",
    )
    transient_retry_max_seconds: float = Field(
        60.0,
        description="Total backoff spent retrying a message whose database or broker is unavailable "
        "before the record is re-read from Kafka (never dropped, never dead-lettered).",
    )

    @property
    def database_name(self) -> str:
        return self.mongo_database or f"parcours_{self.service_name}"

    @property
    def client_id(self) -> str:
        return self.kafka_client_id or self.service_name

    def topic(self, name: str) -> str:
        """The physical name of a declared topic."""
        return f"{self.topic_prefix}{name}"


def settings_table() -> str:
    """Markdown table of every setting: environment variable, default, description."""
    rows = ["| variable | default | description |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = "(secret, dev default)"
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(rows)

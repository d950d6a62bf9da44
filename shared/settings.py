"""Settings of every service, read from the environment (prefix ``PARCOURS_``) or a ``.env`` file.

Each field is documented; ``docs/configuration.md`` is generated from these descriptions
(``parcours config-doc``). Services read settings only in their ``app.py`` (composition root).
"""

from __future__ import annotations

from datetime import time
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

    # ---- notification (services/notification)
    notification_scheduler_interval_seconds: float = Field(
        1.0, description="notification: how often the timer scheduler wakes up to fire due actions."
    )
    notification_scheduler_batch: int = Field(
        100, description="notification: largest number of due timers fired per partition and tick."
    )
    notification_contact_window_start: time = Field(
        time(9, 0), description="notification: first minute (Paris) at which SMS and calls are allowed."
    )
    notification_contact_window_end: time = Field(
        time(20, 0), description="notification: first minute (Paris) at which SMS and calls stop "
        "(never on Sundays and public holidays)."
    )
    notification_contact_cap: int = Field(
        4, description="notification: most non-mandatory contacts one person receives, all parcours "
        "together, within notification_contact_cap_days (beyond: skipped, reason plafond-contacts)."
    )
    notification_contact_cap_days: int = Field(
        30, description="notification: length of the window of the per-person contact cap."
    )
    notification_contacts_wait_hours: float = Field(
        24.0, description="notification: how long an action waits for the person's contact data "
        "(personnes.coordonnees) before it is skipped (reason coordonnees-inconnues)."
    )
    notification_retry_seconds: float = Field(
        300.0, description="notification: delay before a send that failed transiently is tried again."
    )
    notification_max_attempts: int = Field(
        5, description="notification: transient failures of one send before it is reported as echec."
    )
    notification_smtp_host: str = Field("127.0.0.1", description="notification: SMTP server host.")
    notification_smtp_port: int = Field(25, description="notification: SMTP server port.")
    notification_smtp_starttls: bool = Field(
        False, description="notification: use STARTTLS with the SMTP server."
    )
    notification_smtp_user: str | None = Field(None, description="notification: SMTP login (optional).")
    notification_smtp_password_file: Path | None = Field(
        None, description="notification: file holding the SMTP password (a mounted secret; optional)."
    )
    notification_email_from: str = Field(
        "Assurance Maladie <ne-pas-repondre@assurance-maladie.fr>",
        description="notification: From header of e-mails.",
    )
    notification_message_id_domain: str = Field(
        "parcours.assurance-maladie.fr",
        description="notification: domain of the deterministic Message-ID of e-mails.",
    )
    notification_sms_url: str = Field(
        "http://127.0.0.1:8090/v1/messages",
        description="notification: URL of the SMS provider's send endpoint (HTTP POST, JSON).",
    )
    notification_sms_token_file: Path | None = Field(
        None, description="notification: file holding the SMS provider's bearer token (a mounted "
        "secret); without it no Authorization header is sent (local fake provider)."
    )
    notification_sms_sender: str = Field("AMELI", description="notification: SMS sender name.")
    notification_http_timeout_seconds: float = Field(
        10.0, description="notification: timeout of calls to the SMS provider and SMTP server."
    )
    notification_sender_block: str = Field(
        "Caisse primaire d'assurance maladie\nService Parcours attentionnés\n"
        "CS 00000\n91000 ÉVRY-COURCOURONNES",
        description="notification: the CPAM's sender block printed on letters (lines separated by \\n).",
    )
    notification_signature: str = Field(
        "Le Directeur de la caisse primaire d'assurance maladie",
        description="notification: signature line of letters.",
    )
    notification_default_site: str = Field(
        "00", description="notification: agents' site of a phone task when the action has no "
        "departement."
    )
    notification_catalogue_file: Path | None = Field(
        None, description="notification: the parcours catalogue (read only, for the steps' texts "
        "used by the generic letter); default services/orientation/catalogue.yaml."
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

"""Settings of every service, read from the environment (prefix ``PARCOURS_``) or a ``.env`` file.

Each field is documented; ``parcours config-doc`` prints them all as a table (the README lists
the ones to know). Services read settings only in their ``app.py`` (composition root).
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PARCOURS_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore",
        hide_input_in_errors=True,  # a rejected value may be a secret: never echo it
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
        description="MongoDB connection string (FerretDB locally, a MongoDB 7+ replica set in "
        "production).",
    )
    mongo_database: str | None = Field(
        None, description="Database owned by this service (default: parcours_<service_name>)."
    )
    mongo_timeout_ms: int = Field(
        5000, description="Server selection timeout; kept short so that retries stay in control."
    )
    pseudonym_key: SecretStr = Field(
        SecretStr("dev-only-pseudonym-key-change-me"),
        description="Secret key of the HMAC-SHA256 that turns a NIR into a pseudonym. Set it in "
        "production.",
    )
    pseudonym_key_id: str = Field(
        "k1", description="Identifier of the pseudonym key, carried with pseudonyms for key "
        "rotation."
    )
    api_key_pepper: SecretStr = Field(
        SecretStr("dev-only-api-key-pepper-change-me"),
        description="Secret mixed into the stored hash of partners' API keys. Set it in "
        "production.",
    )
    http_max_body_bytes: int = Field(
        16 * 1024, description="Largest HTTP request body accepted (413 beyond)."
    )
    http_rate_per_minute: int = Field(
        120, description="Requests a partner may make per minute on one instance (429 beyond)."
    )
    gc_threshold: int = Field(
        50_000, ge=0, description="Allocations between two collections of Python's youngest "
        "garbage generation (Python's default: 700). A batch of a thousand events allocates "
        "millions of short-lived objects; at 700 the collector ran thousands of times per batch "
        "for a fifth of a service's CPU (docs/performance.md). 0 keeps Python's default."
    )
    intake_batch_size: int = Field(
        1000, ge=1, description="Largest batch of life events signalement takes from Kafka at once."
    )
    orientation_batch_size: int = Field(
        500, ge=1, description="Largest batch of demands and outcomes orientation takes from Kafka "
        "at once (offsets are committed once the whole batch is stored and published)."
    )
    orientation_concurrency: int = Field(
        32, ge=1, description="Persons orientation handles at the same time within a batch (one "
        "person's inputs are always handled one after the other, in order)."
    )
    data_dir: Path = Field(
        Path(".local/run/data"),
        description="Folder for files a service produces (letters, print batches, artifacts).",
    )
    http_host: str = Field("127.0.0.1", description="Address the service's HTTP server binds.")
    http_port: int = Field(8000, description="Port of the service's HTTP server.")
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    log_json: bool | None = Field(
        None, description="Force JSON logs (true) or console logs (false); default: JSON unless "
        "on a TTY."
    )
    clock_file: Path | None = Field(
        None,
        description="If set, the service's clock is the system clock plus the offset written in "
        "this file (the demo and end-to-end tests move time forward with it). Unset in production.",
    )
    transient_retry_max_seconds: float = Field(
        60.0,
        description="Total backoff spent retrying a message whose database or broker is "
        "unavailable before the record is re-read from Kafka (never dropped, never dead-lettered).",
    )

    # ---- notification (services/notification)
    notification_scheduler_interval_seconds: float = Field(
        1.0, description="notification: how often the timer scheduler wakes up to fire due actions."
    )
    notification_scheduler_batch: int = Field(
        500, description="notification: largest number of due timers fired per tick (all the "
        "partitions of the instance together, the oldest first)."
    )
    notification_fire_batch: int = Field(
        50, ge=1, description="notification: due actions fired together, each step of theirs "
        "in one database command or one publication (a person's actions all in the same "
        "batch, one after the other)."
    )
    notification_fire_concurrency: int = Field(
        2, ge=1, description="notification: how many batches of due actions are fired at once "
        "(one person's actions are always in one batch)."
    )
    notification_render_processes: int = Field(
        1, ge=0, description="notification: worker processes that render the letters' PDFs "
        "(beside the service's event loop, on another core); 0: in a thread of the service."
    )
    notification_contact_window_start: time = Field(
        time(9, 0), description="notification: first minute (Paris) at which SMS and calls are "
        "allowed."
    )
    notification_contact_window_end: time = Field(
        time(20, 0), description="notification: first minute (Paris) at which SMS and calls stop "
        "(never on Sundays and public holidays)."
    )
    notification_contact_cap: int = Field(
        4, description="notification: most non-mandatory contacts one person receives, all "
        "parcours together, within notification_contact_cap_days (beyond: skipped, reason "
        "plafond-contacts)."
    )
    notification_contact_cap_days: int = Field(
        30, description="notification: length of the window of the per-person contact cap."
    )
    notification_contacts_wait_hours: float = Field(
        24.0, description="notification: how long an action waits for the person's contact data "
        "(personnes.coordonnees) before it is skipped (reason coordonnees-inconnues)."
    )
    notification_retry_seconds: float = Field(
        300.0, description="notification: delay before a send that failed transiently is tried "
        "again."
    )
    notification_max_attempts: int = Field(
        5, description="notification: transient failures of one send before it is reported as "
        "echec."
    )
    notification_smtp_host: str = Field("127.0.0.1", description="notification: SMTP server host.")
    notification_smtp_port: int = Field(25, description="notification: SMTP server port.")
    notification_smtp_starttls: bool = Field(
        False, description="notification: use STARTTLS with the SMTP server."
    )
    notification_smtp_user: str | None = Field(
        None, description="notification: SMTP login (optional)."
    )
    notification_smtp_password_file: Path | None = Field(
        None, description="notification: file holding the SMTP password (a mounted secret; "
        "optional)."
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
        description="notification: the CPAM's sender block printed on letters (lines separated "
        "by \\n).",
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

    # ---- security (docs/security.md): Kafka client security, secrets from files, production guard
    environment: Literal["development", "test", "production"] = Field(
        "development",
        description="Deployment kind. In production the service refuses to start with a dev "
        "default secret, a short pseudonym key or an unauthenticated Kafka connection.",
    )
    pseudonym_key_file: Path | None = Field(
        None,
        description="File holding the pseudonym key (a mounted secret); replaces pseudonym_key.",
    )
    api_key_pepper_file: Path | None = Field(
        None,
        description="File holding the API key pepper (a mounted secret); replaces api_key_pepper.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol of every client (SASL_SSL in production)."
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="Kafka SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)."
    )
    kafka_sasl_username: str | None = Field(
        None, description="Kafka SASL user: this service's own principal (deploy/acls.yaml)."
    )
    kafka_sasl_password_file: Path | None = Field(
        None, description="File holding the Kafka SASL password (a mounted secret, read when a "
        "client connects: a rotated password is picked up at the next start)."
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle (PEM) that signed the brokers' certificates (SSL, SASL_SSL); "
        "default: the system's trust store."
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="Client certificate (PEM) for mutual TLS (optional)."
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="Private key (PEM) of kafka_ssl_certfile (optional)."
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="Check that the broker's certificate names its host (keep true)."
    )

    # ---- HTTP security, retention (docs/security.md "HTTP", "Retention", "Audit"; shared/auth.py)
    auth_issuer: str = Field(
        "parcours-dev", description="Expected `iss` of agents' bearer tokens (the OIDC issuer)."
    )
    auth_audience: str = Field("parcours", description="Expected `aud` of agents' bearer tokens.")
    auth_jwt_secret: SecretStr | None = Field(
        SecretStr("dev-only-jwt-secret-change-me-0123456789"),
        description="HS256 secret of bearer tokens (development, tests, demo); unset it to accept "
        "only asymmetric keys. Never the dev default in production.",
    )
    auth_jwt_secret_file: Path | None = Field(
        None, description="File holding the HS256 secret (a mounted secret); replaces "
        "auth_jwt_secret."
    )
    auth_public_key_files: list[Path] = Field(
        default_factory=list, description="PEM public keys (RS256/ES256) that may sign tokens, "
        "JSON list of paths."
    )
    auth_jwks_url: str | None = Field(
        None, description="JWKS URL of the OIDC issuer (keys chosen by `kid`, cached)."
    )
    auth_algorithms: list[str] = Field(
        ["HS256", "RS256", "ES256"], description="Accepted token signature algorithms."
    )
    http_metrics_public: bool = Field(
        True, description="Serve /metrics without a token (else any authenticated role)."
    )
    http_docs_public: bool = Field(
        True, description="Serve /docs and /openapi.json without a token (else /openapi.json "
        "needs any authenticated role and /docs is not served). Set false in production."
    )
    reporting_dashboard_public: bool = Field(
        False, description="reporting: serve the dashboard's data without a token (the page "
        "itself is always served; it sends the token the reader pastes into it)."
    )
    retention_days: int = Field(
        365, ge=0, description="Days personal data of a closed case is kept before it is purged."
    )
    retention_days_by_parcours: dict[str, int] = Field(
        default_factory=dict, description="Per-parcours retention in days (JSON object), "
        "overriding retention_days."
    )
    retention_interval_seconds: float = Field(
        3600.0, description="How often each service runs its purge job."
    )

    @model_validator(mode="after")
    def _secrets_and_production_guard(self) -> Settings:
        from shared.secrets import check_settings

        check_settings(self)
        return self

    @property
    def kafka_sasl_password(self) -> SecretStr | None:
        """The Kafka SASL password, read from kafka_sasl_password_file (None without it)."""
        from shared.secrets import read_secret_file

        path = self.kafka_sasl_password_file
        return None if path is None else read_secret_file(path, "kafka_sasl_password")

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
        shown = str(default).replace("\n", "\\n")  # a multi-line default stays on its row
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | `{shown}` | {field.description} |")
    return "\n".join(rows)

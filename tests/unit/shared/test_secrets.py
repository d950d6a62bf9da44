"""Secrets from the environment or files, never echoed; the production guard; Kafka client
security options derived from the settings."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from faststream.security import SASLPlaintext, SASLScram256, SASLScram512

from shared.kafka import broker_security, kafka_client_config, make_broker
from shared.secrets import ConfigurationError, SecretFileError
from shared.settings import Settings

KEY = "k" * 40
PEPPER = "p" * 40


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PARCOURS_PSEUDONYM_KEY", "PARCOURS_API_KEY_PEPPER", "PARCOURS_ENVIRONMENT",
                 "PARCOURS_PSEUDONYM_KEY_FILE", "PARCOURS_API_KEY_PEPPER_FILE",
                 "PARCOURS_KAFKA_SECURITY_PROTOCOL", "PARCOURS_KAFKA_SASL_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)


def secret_file(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")  # as `echo value > file` writes it
    return path


def test_a_secret_comes_from_its_file_without_the_trailing_line_break(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARCOURS_PSEUDONYM_KEY_FILE", str(secret_file(tmp_path, "key", KEY)))
    monkeypatch.setenv("PARCOURS_API_KEY_PEPPER_FILE", str(secret_file(tmp_path, "pep", PEPPER)))
    s = Settings()
    assert s.pseudonym_key.get_secret_value() == KEY
    assert s.api_key_pepper.get_secret_value() == PEPPER
    assert KEY not in repr(s) and KEY not in str(s.model_dump())


def test_a_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARCOURS_PSEUDONYM_KEY", KEY)
    assert Settings().pseudonym_key.get_secret_value() == KEY


def test_a_secret_and_its_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARCOURS_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("PARCOURS_PSEUDONYM_KEY_FILE", str(secret_file(tmp_path, "key", "x" * 40)))
    with pytest.raises(ConfigurationError, match="not both") as caught:
        Settings()
    assert KEY not in str(caught.value)


def test_a_missing_or_empty_secret_file_is_refused_naming_the_file_only(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="PARCOURS_PSEUDONYM_KEY_FILE: cannot read"):
        Settings(pseudonym_key_file=tmp_path / "absent")
    with pytest.raises(SecretFileError, match="is empty"):
        Settings(pseudonym_key_file=secret_file(tmp_path, "empty", ""))


def test_production_refuses_the_development_defaults() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(environment="production")
    message = str(caught.value)
    assert "PARCOURS_PSEUDONYM_KEY is the development default" in message
    assert "PARCOURS_API_KEY_PEPPER is the development default" in message
    assert "not authenticated" in message
    dev = Settings.model_fields["pseudonym_key"].default.get_secret_value()
    assert dev not in message


def test_production_refuses_short_keys_without_quoting_them(tmp_path: Path) -> None:
    short = "short-but-secret-value"
    with pytest.raises(ConfigurationError, match="shorter than 32") as caught:
        Settings(environment="production", pseudonym_key=short, api_key_pepper=PEPPER,
                 kafka_security_protocol="SASL_SSL", kafka_sasl_username="signalement",
                 kafka_sasl_password_file=secret_file(tmp_path, "kafka", "pw"))
    assert short not in str(caught.value)


def test_production_starts_with_real_secrets_and_an_authenticated_kafka(tmp_path: Path) -> None:
    s = Settings(environment="production", pseudonym_key_file=secret_file(tmp_path, "k", KEY),
                 api_key_pepper_file=secret_file(tmp_path, "p", PEPPER),
                 kafka_security_protocol="SASL_SSL", kafka_sasl_username="signalement",
                 kafka_sasl_password_file=secret_file(tmp_path, "kafka", "pw"))
    assert s.environment == "production"
    with pytest.raises(ConfigurationError, match="CLOCK_FILE"):
        Settings(**{**s.model_dump(include={"environment", "kafka_security_protocol",
                                            "kafka_sasl_username", "kafka_sasl_password_file"}),
                    "pseudonym_key": KEY, "api_key_pepper": PEPPER,
                    "clock_file": tmp_path / "clock.json"})


def test_validation_errors_never_echo_the_input() -> None:
    with pytest.raises(Exception) as caught:
        Settings(pseudonym_key=KEY, http_port="not-a-port")  # type: ignore[arg-type]
    assert "not-a-port" not in str(caught.value) and KEY not in str(caught.value)


def test_sasl_needs_a_user_and_a_password_file() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(kafka_security_protocol="SASL_PLAINTEXT")
    assert "PARCOURS_KAFKA_SASL_USERNAME" in str(caught.value)
    assert "PARCOURS_KAFKA_SASL_PASSWORD_FILE" in str(caught.value)


# --------------------------------------------------------------------------- Kafka clients


def test_plaintext_leaves_every_client_as_before() -> None:
    s = Settings()
    assert kafka_client_config(s) == {}
    assert broker_security(s) is None
    make_broker(s)  # unchanged default


@pytest.mark.parametrize("mechanism, kind", [("SCRAM-SHA-512", SASLScram512),
                                             ("SCRAM-SHA-256", SASLScram256),
                                             ("PLAIN", SASLPlaintext)])
def test_sasl_settings_reach_aiokafka_and_faststream(
    tmp_path: Path, mechanism: str, kind: type
) -> None:
    s = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism=mechanism,
                 kafka_sasl_username="notification",
                 kafka_sasl_password_file=secret_file(tmp_path, "pw", "s3cret"))
    assert kafka_client_config(s) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
        "sasl_plain_username": "notification", "sasl_plain_password": "s3cret",
    }
    security = broker_security(s)
    assert isinstance(security, kind) and not security.use_ssl
    assert security.username == "notification"


def test_sasl_ssl_uses_the_given_ca_and_checks_host_names(tmp_path: Path) -> None:
    import certifi

    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="reporting",
                 kafka_sasl_password_file=secret_file(tmp_path, "pw", "s3cret"),
                 kafka_ssl_cafile=Path(certifi.where()))
    config = kafka_client_config(s)
    assert config["security_protocol"] == "SASL_SSL"
    context = config["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    security = broker_security(s)
    assert isinstance(security, SASLScram512) and security.use_ssl


def test_ssl_without_sasl() -> None:
    s = Settings(kafka_security_protocol="SSL")
    assert kafka_client_config(s)["security_protocol"] == "SSL"
    security = broker_security(s)
    assert security is not None and security.use_ssl


def test_a_rotated_kafka_password_file_is_read_again(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "pw", "first")
    s = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="orientation",
                 kafka_sasl_password_file=path)
    path.write_text("second\n")
    assert kafka_client_config(s)["sasl_plain_password"] == "second"

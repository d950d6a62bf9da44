"""The operations CLI without a broker: durations, pseudonyms, the clock file, config-doc,
refusing an invalid event before sending anything."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli import app, check_event, parse_duration
from shared.clock import read_offset
from shared.contracts.evenements import example_event
from shared.nir import Pseudonymizer

runner = CliRunner()


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("12h", timedelta(hours=12)),
    ("30d", timedelta(days=30)), ("2w", timedelta(days=14)), ("9mo", timedelta(days=270)),
    ("1y", timedelta(days=365)), ("1mo15d", timedelta(days=45)), (" 3 j ", timedelta(days=3)),
])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "9", "abc", "3x", "12h garbage!"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_pseudonyme_uses_the_configured_key() -> None:
    key = "unit-test-pseudonym-key-0123456789"
    result = runner.invoke(app, ["pseudonyme", "184127645108946"],
                           env={"PARCOURS_PSEUDONYM_KEY": key, "PARCOURS_PSEUDONYM_KEY_ID": "k7"})
    assert result.exit_code == 0, result.output
    assert result.output.strip() == Pseudonymizer(key.encode(), "k7").pseudonym("184127645108946")


def test_pseudonyme_of_an_invalid_nir_says_why_without_quoting_it() -> None:
    result = runner.invoke(app, ["pseudonyme", "184127645108947"])
    assert result.exit_code == 1
    assert "nir.cle" in result.output and "184127645108947" not in result.output


def test_clock_advance_show_and_reset(tmp_path: Path) -> None:
    clock = tmp_path / "clock.json"
    env = {"PARCOURS_CLOCK_FILE": str(clock)}
    assert runner.invoke(app, ["clock", "advance", "9mo"], env=env).exit_code == 0
    assert read_offset(clock) == 270 * 86400
    assert runner.invoke(app, ["clock", "advance", "1d"], env=env).exit_code == 0
    assert read_offset(clock) == 271 * 86400
    shown = runner.invoke(app, ["clock", "show"], env=env)
    assert "271 days" in shown.output
    bad = runner.invoke(app, ["clock", "advance", "soon"], env=env)
    assert bad.exit_code == 1 and read_offset(clock) == 271 * 86400
    assert runner.invoke(app, ["clock", "reset"], env=env).exit_code == 0
    assert read_offset(clock) == 0


def test_config_doc_lists_every_setting() -> None:
    result = runner.invoke(app, ["config-doc"])
    assert result.exit_code == 0
    for var in ("PARCOURS_KAFKA_BOOTSTRAP_SERVERS", "PARCOURS_PSEUDONYM_KEY",
                "PARCOURS_CLOCK_FILE"):
        assert f"`{var}`" in result.output


def test_publish_refuses_an_invalid_event_before_sending(tmp_path: Path) -> None:
    event = example_event("retraite")
    del event["data"]["sans_complementaire"]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(event))
    # No broker at this address: a refusal must come before any connection.
    result = runner.invoke(app, ["publish", str(path)],
                           env={"PARCOURS_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.exit_code == 1
    assert "sans_complementaire" in result.output and "nothing sent" in result.output
    assert check_event(example_event("deces")) is None
    assert "unknown type" in (check_event({**example_event("deces"), "type": "x"}) or "")

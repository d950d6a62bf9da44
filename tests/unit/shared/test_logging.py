from __future__ import annotations

import json
import logging

import pytest

from shared.logging import bind_message_context, configure_logging, get_logger

NIR = "184127645108946"
PERSON = {
    "nir": NIR,
    "nom": "Dupontel",
    "prenom": "Albertine",
    "adresse": {"ligne1": "12 impasse des Glycines", "code_postal": "17300",
                "commune": "Rochefort"},
    "telephone": "06 12 34 56 78",
    "email": "albertine.dupontel@example.org",
}
SECRETS = [NIR, "Dupontel", "Albertine", "Glycines", "06 12 34 56 78", "albertine.dupontel"]


def test_logging_a_person_prints_none_of_their_personal_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", json_logs=True)
    bind_message_context(correlationid="corr-1")
    get_logger("test").info("demande reçue", data=PERSON,
                            note=f"NIR {NIR[:1]} {NIR[1:3]} {NIR[3:5]} "
                            f"{NIR[5:7]} {NIR[7:10]} {NIR[10:13]} {NIR[13:]} appelle le 0612345678")
    logging.getLogger("aiokafka.test").warning("payload %s", json.dumps(PERSON))
    err = capsys.readouterr().err
    for secret in SECRETS:
        assert secret not in err
    assert "0612345678" not in err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines[0]["correlationid"] == "corr-1"
    assert lines[0]["event"] == "demande reçue"


def test_non_personal_fields_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_logs=True)
    get_logger().info("compte", parcours="seniors", count=3, pseudonyme="k1-abcdef")
    line = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert (line["parcours"], line["count"], line["pseudonyme"]) == ("seniors", 3, "k1-abcdef")


def test_free_text_loses_addresses_and_named_fields_and_lines_keep_level_and_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", json_logs=True)
    get_logger("test").warning("échec", erreur="refus pour nom=Dupontel, écrire à "
                               "albertine.dupontel@example.org (prenom: 'Albertine')")
    line = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert "Dupontel" not in line["erreur"] and "Albertine" not in line["erreur"]
    assert "example.org" not in line["erreur"]
    assert line["level"] == "warning" and line["timestamp"].endswith("Z")

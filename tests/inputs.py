"""Generators of life-event records, valid and invalid, each with the reason code intake must
give (None for a valid one). Shared by the property tests and the integration tests."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from typing import Any

from shared.contracts.evenements import EVENT_MODELS, example_event

CT = ("content-type", b"application/cloudevents+json")
TODAY = date(2026, 11, 22)


def random_nir(rng: random.Random) -> str:
    sex = rng.choice("12")
    year = rng.randint(0, 99)
    month = rng.randint(1, 12)
    dept = rng.choice(["75", "91", "17", "19", "38", "2A", "2B", "99"])
    first13 = f"{sex}{year:02d}{month:02d}{dept}{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
    number = int(first13.replace("2A", "19").replace("2B", "18"))
    return f"{first13}{97 - number % 97:02d}"


def valid_event(rng: random.Random, name: str | None = None, **overrides: Any) -> dict[str, Any]:
    name = name or rng.choice(sorted(EVENT_MODELS))
    event = example_event(name)
    data = event["data"]
    born = date(rng.randint(1935, 2008), rng.randint(1, 12), rng.randint(1, 28))
    data["assure"] = {**data["assure"], "nir": random_nir(rng), "date_naissance": born.isoformat(),
                      "nom": rng.choice(["Martin", "Bernard", "Lefebvre", "Nguyen", "Moreau"])
                      + "ard",
                      "prenom": rng.choice(["Claude", "Dominique", "Camille", "Yanis"]) + "ine"}
    data["date_effet"] = (TODAY - timedelta(days=rng.randint(-300, 900))).isoformat()
    event["id"] = f"ev-{rng.getrandbits(64):016x}"
    event["source"] = rng.choice(["urn:fr:carsat:sud-est", "urn:fr:caf:91", "urn:fr:elsm:91"])
    event.update(overrides)
    return event


def _bytes(event: Any) -> bytes:
    return json.dumps(event).encode()


def invalid_record(rng: random.Random) -> tuple[bytes | None, list[tuple[str, bytes]], str]:
    kind = rng.randrange(13)
    event = valid_event(rng)
    if kind == 0:
        return b'{"specversion": "1.0", "id": ', [CT], "json.invalide"
    if kind == 1:
        return _bytes(event), [("content-type", b"application/xml")], "contenu.type-non-supporte"
    if kind == 2:
        event["type"] = "fr.assurance-maladie.evenement-vie.mariage.v1"
        return _bytes(event), [CT], "type.inconnu"
    if kind == 3:
        del event["data"]["date_effet"]
        return _bytes(event), [CT], "data.champ-manquant"
    if kind == 4:
        nir = event["data"]["assure"]["nir"]
        event["data"]["assure"]["nir"] = nir[:13] + f"{(int(nir[13:]) % 97) + 1:02d}"
        return _bytes(event), [CT], "nir.cle"
    if kind == 5:
        event["data"]["date_effet"] = "1826-01-01"
        return _bytes(event), [CT], "date.effet-hors-limites"
    if kind == 6:
        event["data"]["assure"]["date_naissance"] = (TODAY + timedelta(days=40)).isoformat()
        return _bytes(event), [CT], "date.naissance-future"
    if kind == 7:
        return b"\xff\xfe" + _bytes(event), [CT], "encodage.invalide"
    if kind == 8:
        event["data"]["assure"]["nom"] = "x" * 70_000
        return _bytes(event), [CT], "taille.depassee"
    if kind == 9:
        del event["source"]
        return _bytes(event), [CT], "enveloppe.champ-manquant"
    if kind == 10:
        return b"[1, 2, 3]", [CT], "enveloppe.invalide"
    if kind == 11:
        event["specversion"] = "0.3"
        return _bytes(event), [CT], "enveloppe.specversion"
    event["data"]["assure"]["nir"] = "1841276A5108946"
    return _bytes(event), [CT], "nir.format"


def mixed_records(rng: random.Random, n: int, invalid_share: float = 0.4
                  ) -> list[tuple[bytes | None, list[tuple[str, bytes]], str | None]]:
    out: list[tuple[bytes | None, list[tuple[str, bytes]], str | None]] = []
    for _ in range(n):
        if rng.random() < invalid_share:
            out.append(invalid_record(rng))
        else:
            out.append((_bytes(valid_event(rng)), [CT], None))
    return out

"""The synthetic département of the demo: valid NIRs, valid events and referrals, the seeds'
proportions, invalid records refused with the expected reason."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from deploy.local.generator import (
    AGES,
    COMMUNES,
    EVENT_MIX,
    INVALID_SHARE,
    SANS_COMPLEMENTAIRE,
    SEPARATION_FEMME,
    VIOLENCES_INTRAFAMILIALES,
    Departement,
    counts,
)
from services.signalement.api import FicheSignalement
from services.signalement.intake import Rejected, accept, age_at
from shared.nir import validate_nir

TODAY = date(2026, 11, 22)
SIZE = 6000


@pytest.fixture(scope="module")
def sample():  # type: ignore[no-untyped-def]
    return Departement("17", seed=5).sample(SIZE, TODAY)


def _headers() -> dict[str, bytes]:
    return {"content-type": b"application/cloudevents+json"}


def test_every_nir_is_valid_unique_and_consistent_with_the_person(sample) -> None:  # type: ignore[no-untyped-def]
    people = [i.personne for i in sample if i.personne is not None]
    nirs = [p.nir for p in people]
    assert len(set(nirs)) == len(nirs)
    for p in people:
        assert validate_nir(p.nir) == p.nir
        assert p.nir[0] == p.sexe
        assert p.nir[1:3] == f"{p.date_naissance.year % 100:02d}"
        assert p.nir[3:5] == f"{p.date_naissance.month:02d}"


def test_events_pass_intake_and_referrals_the_partner_api(sample) -> None:  # type: ignore[no-untyped-def]
    for item in sample:
        if item.kind == "evenement":
            accepted = accept(item.value(), _headers(), TODAY)
            assert accepted.name == item.name
            low, high = AGES[item.name]
            age = age_at(accepted.data.assure.date_naissance, accepted.data.date_effet)
            assert low <= age <= high, (item.name, age)
        elif item.kind == "signalement":
            FicheSignalement.model_validate(item.payload)


def test_invalid_records_are_refused_with_the_expected_reason(sample) -> None:  # type: ignore[no-untyped-def]
    invalid = [i for i in sample if i.kind == "invalide"]
    assert invalid
    for item in invalid:
        with pytest.raises(Rejected) as exc:
            accept(item.value(), _headers(), TODAY)
        assert exc.value.reason.code == item.name


def test_addresses_are_in_the_departement(sample) -> None:  # type: ignore[no-untyped-def]
    postal = {c[1] for c in COMMUNES["17"]}
    for item in sample:
        if item.personne is not None:
            assert item.personne.adresse["code_postal"] in postal


def test_proportions_follow_the_declared_mix(sample) -> None:  # type: ignore[no-untyped-def]
    got = counts(sample)
    assert abs(got["invalide"] / SIZE - INVALID_SHARE) < 0.01
    valid = SIZE - got["invalide"]
    for kind, share in EVENT_MIX.items():
        assert abs(got.get(kind, 0) / valid - share) < 0.02, (kind, got.get(kind), share)

    retraites = [i for i in sample if i.kind == "evenement" and i.name == "retraite"]
    sans = sum(i.payload["data"]["sans_complementaire"] for i in retraites) / len(retraites)
    assert abs(sans - SANS_COMPLEMENTAIRE) < 0.04

    separations = [i for i in sample if i.kind == "evenement" and i.name == "separation"]
    violences = sum(i.payload["data"]["violences_intrafamiliales"] for i in separations)
    assert abs(violences / len(separations) - VIOLENCES_INTRAFAMILIALES) < 0.06
    femmes = sum(i.personne.sexe == "2" for i in separations) / len(separations)
    assert abs(femmes - SEPARATION_FEMME) < 0.06

    assert all(i.personne.sexe == "2" for i in sample if i.name == "declaration-grossesse")
    # ASE: date_effet is exactly the 17th birthday.
    for i in sample:
        if i.name == "ase-17-ans":
            born = date.fromisoformat(i.payload["data"]["assure"]["date_naissance"])
            effet = date.fromisoformat(i.payload["data"]["date_effet"])
            assert age_at(born, effet) == 17 and (born.month, born.day) == (effet.month, effet.day)
    partners = Counter(i.partenaire for i in sample if i.kind == "signalement")
    assert len(partners) >= 3


def test_the_same_seed_gives_the_same_sample_and_another_seed_another() -> None:
    a = Departement("91", seed=3).sample(200, TODAY)
    b = Departement("91", seed=3).sample(200, TODAY)
    c = Departement("91", seed=4).sample(200, TODAY)
    assert [i.value() if i.kind != "signalement" else i.payload for i in a] == \
        [i.value() if i.kind != "signalement" else i.payload for i in b]
    assert [i.id for i in a] == [i.id for i in b]
    assert [i.payload for i in a] != [i.payload for i in c]


def test_unknown_departement_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown département"):
        Departement("99")

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.fr import nir as stdnum_nir

from shared.nir import InvalidNir, Pseudonymizer, is_valid_nir, validate_nir


def with_key(first13: str) -> str:
    """The official key: 97 - (number mod 97), Corsica 2A/2B read as 19/18."""
    number = int(first13.replace("2A", "19").replace("2B", "18"))
    return f"{first13}{97 - number % 97:02d}"


@pytest.mark.parametrize("first13", [
    "1841276451089",   # born in Seine-Maritime
    "2920591123456",   # a woman born in Essonne
    "1750899123456",   # born abroad: département 99
    "184122A451089",   # Corsica, 2A
    "284122B451089",   # Corsica, 2B
])
def test_valid_nirs_are_accepted(first13: str) -> None:
    assert validate_nir(with_key(first13)) == with_key(first13)


def test_spaces_are_allowed_and_removed() -> None:
    nir = with_key("1841276451089")
    spaced = f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"
    assert validate_nir(spaced) == nir


@pytest.mark.parametrize(("value", "code"), [
    ("184127645108947", "nir.cle"),          # wrong key
    ("1841276451089", "nir.longueur"),       # no key
    ("18412764510894612", "nir.longueur"),   # too long
    ("18412764510A946", "nir.format"),       # a letter where digits belong
    ("184122C45108946", "nir.format"),       # 2C is no département
])
def test_invalid_nirs_are_refused_with_a_reason_code(value: str, code: str) -> None:
    with pytest.raises(InvalidNir) as exc:
        validate_nir(value)
    assert exc.value.code == code
    assert value not in str(exc.value), "the message never quotes the NIR"


def test_corsica_key_uses_19_and_18() -> None:
    nir_2a = with_key("184122A451089")
    assert nir_2a[-2:] == f"{97 - 1841219451089 % 97:02d}"
    assert not is_valid_nir("184122A451089" + f"{97 - 1841220451089 % 97:02d}") or \
        f"{97 - 1841220451089 % 97:02d}" == nir_2a[-2:]


KEY = b"a-secret-key-of-32-bytes-exactly"


@given(st.from_regex(r"[12][0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[1-8][0-9]|9[0-5])[0-9]{6}",
                     fullmatch=True))
def test_the_pseudonym_is_stable_keyed_and_never_the_nir(first13: str) -> None:
    nir = with_key(first13)
    assert stdnum_nir.is_valid(nir)
    p = Pseudonymizer(KEY, "k1")
    pseudo = p.pseudonym(nir)
    assert pseudo == p.pseudonym(nir) == Pseudonymizer(KEY, "k1").pseudonym(nir)
    assert nir not in pseudo and first13 not in pseudo
    assert pseudo != Pseudonymizer(b"another-secret-key-of-32-bytes!!", "k1").pseudonym(nir)
    assert pseudo.startswith("k1-")


def test_the_pseudonymizer_refuses_short_keys_and_never_shows_its_key() -> None:
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")
    assert "secret" not in repr(Pseudonymizer(KEY))


def test_a_pseudonym_of_an_invalid_nir_is_refused() -> None:
    with pytest.raises(InvalidNir):
        Pseudonymizer(KEY).pseudonym("184127645108947")

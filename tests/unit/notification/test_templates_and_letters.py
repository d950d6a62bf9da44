"""Templates render for every step of the catalogue; letters are deterministic PDFs."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
import yaml
from pypdf import PdfReader

from services.notification import letters
from services.notification.templates import CATALOGUE, TemplateError, Templates, letter_values

WHEN = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _modeles() -> set[str]:
    cat = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    out = set()
    for p in cat["parcours"]:
        for step in p["plan"]:
            out.add(step["modele"])
            if step.get("repli"):
                out.add(step["repli"]["modele"])
    return out


def test_every_modele_of_the_catalogue_renders_without_a_missing_value() -> None:
    t = Templates.load()
    for modele in sorted(_modeles()):
        r = t.render(modele, letter_values("Josiane", "Lefèvre", defunt="Jean Lefèvre"))
        assert r.letter.paragraphs and r.falc.paragraphs and r.sms and "${" not in r.sms
        assert r.falc != r.letter


def test_the_generic_template_carries_the_steps_text() -> None:
    r = Templates.load().render("ald-suivi", letter_values("A", "B"))
    assert r.template == "generic" and "Axe 2" in r.letter.paragraphs[0]


def test_values_are_escaped_for_the_pdf_but_not_for_email_and_sms() -> None:
    r = Templates.load().render("perte-proche-contact-famille",
                                letter_values("Ann", "Smith & <Co>", defunt="Bob Smith & <Co>"))
    assert "Smith &amp; &lt;Co&gt;" in r.letter.paragraphs[0]
    assert "Bob Smith & <Co>" in r.email.plain()


def test_an_incomplete_template_is_refused_at_start() -> None:
    with pytest.raises(TemplateError):
        Templates({"generic": {"letter": {}}}, {})


def _letter(t: Templates) -> letters.Letter:
    r = t.render("seniors-m9-complementaire", letter_values("Josiane", "Lefèvre"))
    return letters.Letter(
        action_id="a1", sender=("CPAM de l'Essonne", "91000 ÉVRY"),
        recipient=letters.address_lines("Lefèvre", "Josiane", {"ligne1": "12 rue des Lilas",
                                                               "code_postal": "91000",
                                                               "commune": "Évry"}),
        when=WHEN, text=r.letter, falc=r.falc, signature="Le directeur", reference="A1")


def test_a_letter_is_a_deterministic_pdf_with_the_address_date_and_text() -> None:
    letter = _letter(Templates.load())
    pdf, pages = letters.render_standard(letter)
    assert pdf == letters.render_standard(letter)[0] and pages >= 1
    text = " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
    assert "Josiane Lefèvre 12 rue des Lilas 91000 ÉVRY" in text
    assert "Le 2 mars 2026" in text and "Objet :" in text
    falc, _ = letters.render_falc(letter)
    assert falc != pdf


def test_the_manifest_lists_each_letter_once_without_personal_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stored = letters.write_letter(tmp_path, _letter(Templates.load()))
    doc = {"_id": "a1", "fichiers": list(stored.files), "sha256": list(stored.sha256),
           "pages": list(stored.pages), "parcours": "p", "modele": "m"}
    writer = letters.ManifestWriter(tmp_path, stored.day)
    writer.add(doc)
    path = writer.close()
    manifest = json.loads(path.read_text())
    assert manifest["courriers"] == 1
    assert manifest["lettres"][0]["fichiers"] == ["a1.pdf", "a1-falc.pdf"]
    assert "Lefèvre" not in path.read_text()
    assert letters.french_date(datetime(2026, 5, 1).date()) == "1er mai 2026"


def test_letters_are_rendered_with_reportlabs_c_accelerators() -> None:
    # rl_accel (a dependency): the text widths, number formatting and escaping of every PDF in
    # C, a fifth of a letter's CPU (docs/performance.md); without it reportlab falls back to
    # Python silently.
    from reportlab.lib import rl_accel

    for name in ("fp_str", "instanceStringWidthT1", "escapePDF", "sameFrag"):
        assert getattr(rl_accel, name) is rl_accel._c_funcs.get(name), name

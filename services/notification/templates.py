"""Texts of letters, e-mails and SMS: one YAML template per ``modele`` of the catalogue, in
``templates/``; ``generic.yaml`` for the others, filled with the step's text from the catalogue
(``services/orientation/catalogue.yaml``, read only) so that every letter step renders.

A template holds ``letter.standard`` and ``letter.falc`` (easy-read, *facile à lire et à
comprendre*), each a subject, paragraphs (``<b>`` allowed) and an optional closing; ``email``
(subject, paragraphs); ``sms`` (one line). ``${name}`` placeholders are filled from the
template's ``defaults``, then from the values of the recipient (``salutation``, ``defunt``...).
Pure: files are read once, at start.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
CATALOGUE = HERE.parent / "orientation" / "catalogue.yaml"
GENERIC = "generic"
DEFAULT_CLOSING = ("Nous vous prions d'agréer, Madame, Monsieur, l'expression de nos "
                   "salutations distinguées.")
FALC_CLOSING = "À bientôt."
_TAG = re.compile(r"</?b>")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Text:
    subject: str
    paragraphs: tuple[str, ...]
    closing: str | None = None

    def plain(self) -> str:
        return "\n\n".join(_TAG.sub("", p) for p in self.paragraphs)


@dataclass(frozen=True)
class Rendered:
    modele: str
    template: str
    letter: Text
    falc: Text
    email: Text
    sms: str


class Templates:
    def __init__(self, raw: dict[str, dict[str, Any]], step_texts: dict[str, str]) -> None:
        if GENERIC not in raw:
            raise TemplateError("the generic template is missing")
        for name, t in raw.items():
            _check(name, t)
        self._raw = raw
        self._texts = step_texts

    @classmethod
    def load(cls, folder: Path = TEMPLATES, catalogue: Path | None = CATALOGUE) -> Templates:
        raw = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))
               for p in sorted(folder.glob("*.yaml"))}
        texts = step_texts(catalogue) if catalogue is not None and catalogue.exists() else {}
        return cls(raw, texts)

    def names(self) -> list[str]:
        return sorted(self._raw)

    def has(self, modele: str) -> bool:
        return modele in self._raw

    def render(self, modele: str, values: dict[str, str]) -> Rendered:
        name = modele if modele in self._raw else GENERIC
        t = self._raw[name]
        variables = {k: str(v) for k, v in (t.get("defaults") or {}).items()}
        if name == GENERIC and modele in self._texts:
            variables["message"] = self._texts[modele]
        variables.update(values)
        safe = {k: html.escape(v, quote=False) for k, v in variables.items()}
        letter = t["letter"]
        return Rendered(
            modele=modele,
            template=name,
            letter=_text(letter["standard"], safe, DEFAULT_CLOSING),
            falc=_text(letter["falc"], safe, FALC_CLOSING),
            email=_text(t["email"], variables, None, markup=False),
            sms=_fill(t["sms"], variables),
        )


def _check(name: str, t: Any) -> None:
    try:
        for variant in ("standard", "falc"):
            v = t["letter"][variant]
            assert isinstance(v["subject"], str) and v["paragraphs"]
        assert isinstance(t["email"]["subject"], str) and t["email"]["paragraphs"]
        assert isinstance(t["sms"], str)
    except (KeyError, TypeError, AssertionError) as exc:
        raise TemplateError(f"template {name}: incomplete ({exc!r})") from None


def _fill(text: str, values: dict[str, str]) -> str:
    out = Template(text).safe_substitute(values)
    if "${" in out:
        missing = re.findall(r"\$\{(\w+)\}", out)
        raise TemplateError(f"no value for {', '.join(missing)}")
    return out


def _text(t: dict[str, Any], values: dict[str, str], closing: str | None, *,
          markup: bool = True) -> Text:
    paragraphs = tuple(_fill(p, values) for p in t["paragraphs"])
    if not markup:
        paragraphs = tuple(_TAG.sub("", p) for p in paragraphs)
    return Text(subject=_TAG.sub("", _fill(t["subject"], values)), paragraphs=paragraphs,
                closing=_fill(t["closing"], values) if t.get("closing") else closing)


def step_texts(catalogue: Path) -> dict[str, str]:
    """``modele`` → the step's text, from the catalogue (steps and their fall-backs)."""
    raw = yaml.safe_load(catalogue.read_text(encoding="utf-8")) or {}
    texts: dict[str, str] = {}
    for parcours in raw.get("parcours", []):
        for step in parcours.get("plan", []):
            if step.get("modele") and step.get("texte"):
                texts.setdefault(step["modele"], step["texte"])
            repli = step.get("repli") or {}
            if repli.get("modele") and repli.get("texte"):
                texts.setdefault(repli["modele"], repli["texte"])
    return texts


def letter_values(prenom: str, nom: str, *, defunt: str | None = None) -> dict[str, str]:
    values = {"salutation": f"Bonjour {prenom}", "prenom": prenom, "nom": nom}
    if defunt:
        values["defunt"] = defunt
    return values

"""Pure intake rules: from a raw Kafka record to an accepted life event or a reasoned reject,
and from an accepted event to what goes downstream (a pseudonymous demand, contact data).

No I/O here. Reason codes are stable (documented in docs/rejets.md); messages are readable
and never quote the input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from shared.cloudevents import JSON_CONTENT_TYPES, VERIFIE, CloudEvent
from shared.contracts import internes as i
from shared.contracts.base import NUL_MESSAGE, nul_path
from shared.contracts.evenements import (
    Adresse,
    Deces,
    EvenementVie,
    event_name,
    model_for,
)
from shared.ids import derive_id
from shared.kafka import Reason

MAX_EVENT_BYTES = 64 * 1024
MAX_PAST_YEARS = 5
MAX_FUTURE_YEARS = 2
MAX_AGE = 125

# Reason codes of everything intake refuses (docs/rejets.md lists them with examples).
REASONS: dict[str, str] = {
    "taille.depassee": "the record is larger than the accepted maximum",
    "valeur.absente": "the record has no value",
    "encodage.invalide": "the value is not UTF-8 text",
    "contenu.type-non-supporte": "the content type is not application/cloudevents+json "
                                 "or application/json",
    "json.invalide": "the value is not valid JSON",
    "enveloppe.invalide": "the CloudEvents envelope is invalid",
    "enveloppe.champ-manquant": "a required CloudEvents attribute is missing",
    "enveloppe.specversion": "only CloudEvents specversion 1.0 is accepted",
    "type.inconnu": "the event type is not one of the platform's life events",
    "data.content-type": "data must be JSON (datacontenttype application/json)",
    "data.champ-manquant": "a required field of data is missing",
    "data.invalide": "a field of data is invalid",
    "nir.cle": "the NIR's key does not match its 13 first characters",
    "nir.longueur": "the NIR must have 15 characters (13 + a 2-digit key)",
    "nir.format": "the NIR has letters where digits belong",
    "nir.composant": "a component of the NIR is impossible",
    "nir.invalide": "the NIR is invalid",
    "date.effet-hors-limites": f"date_effet is more than {MAX_PAST_YEARS} years in the past or "
                               f"{MAX_FUTURE_YEARS} years in the future",
    "date.naissance-future": "the birth date is in the future",
    "date.naissance-improbable": f"the birth date gives an age above {MAX_AGE}",
    "correction.reference-absente": "a correction or retraction must name evenement_reference",
    "correction.reference-inconnue": "the event to correct or retract is unknown",
    "erreur.interne": "an unexpected error; the record can be replayed once fixed",
}


class Rejected(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        assert code in REASONS, code
        self.reason = Reason(code, f"{REASONS[code]}{': ' + detail if detail else ''}")
        super().__init__(self.reason.message)


@dataclass(frozen=True)
class Accepted:
    event: CloudEvent[Any]
    name: str

    @property
    def data(self) -> EvenementVie:
        return self.event.data  # type: ignore[no-any-return]


def accept(value: bytes | None, headers: dict[str, bytes], today: date) -> Accepted:
    """Validate one record of ``evenements-vie``; raise :class:`Rejected` with a stable code."""
    if value is None or value == b"":
        raise Rejected("valeur.absente")
    if len(value) > MAX_EVENT_BYTES:
        raise Rejected("taille.depassee", f"{len(value)} bytes, at most {MAX_EVENT_BYTES}")
    content_type = headers.get("content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    if content_type and content_type not in JSON_CONTENT_TYPES:
        raise Rejected("contenu.type-non-supporte", content_type[:80])
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("encodage.invalide") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise Rejected("json.invalide", f"line {getattr(exc, 'lineno', '?')}") from None
    if not isinstance(raw, dict):
        raise Rejected("enveloppe.invalide", "the value must be a JSON object")
    # In JSON text a NUL can only be written as the escape \\u0000: a search, then the walk.
    if "\\u0000" in text and (where := nul_path(raw)) is not None:
        code = "data.invalide" if where.startswith("data.") else "enveloppe.invalide"
        raise Rejected(code, f"{where}: {NUL_MESSAGE}")
    envelope = _check_envelope(raw)
    name = event_name(envelope["type"])
    model = model_for(envelope["type"])
    if name is None or model is None:
        raise Rejected("type.inconnu", str(envelope["type"])[:120])
    dct = raw.get("datacontenttype")
    if dct is not None and str(dct).split(";")[0].strip().lower() not in JSON_CONTENT_TYPES:
        raise Rejected("data.content-type")
    try:
        event = CloudEvent[model].model_validate(raw, context=VERIFIE)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise _from_validation(exc) from None
    _check_dates(event.data, today)
    data: Any = event.data
    if data.nature != "initial" and not data.evenement_reference:
        raise Rejected("correction.reference-absente")
    return Accepted(event, name)


_ENVELOPE_REQUIRED = ("specversion", "id", "source", "type", "time", "data")


def _check_envelope(raw: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in _ENVELOPE_REQUIRED if raw.get(k) in (None, "")]
    if missing:
        raise Rejected("enveloppe.champ-manquant", ", ".join(missing))
    if raw["specversion"] != "1.0":
        raise Rejected("enveloppe.specversion")
    if not all(isinstance(raw[k], str) for k in ("id", "source", "type")):
        raise Rejected("enveloppe.invalide", "id, source and type must be strings")
    return raw


def _from_validation(exc: ValidationError) -> Rejected:
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"].startswith("nir."):
        code = first["type"] if first["type"] in REASONS else "nir.invalide"
        return Rejected(code, loc)
    if first["loc"][:1] != ("data",):
        return Rejected("enveloppe.invalide", f"{loc}: {first['msg']}")
    if first["type"] == "missing":
        return Rejected("data.champ-manquant", loc)
    return Rejected("data.invalide", f"{loc}: {first['msg']}")


def _check_dates(data: EvenementVie, today: date) -> None:
    low = date(today.year - MAX_PAST_YEARS, today.month, min(today.day, 28))
    high = date(today.year + MAX_FUTURE_YEARS, today.month, min(today.day, 28))
    if not low <= data.date_effet <= high:
        raise Rejected("date.effet-hors-limites")
    born = data.assure.date_naissance
    if born > today:
        raise Rejected("date.naissance-future")
    if age_at(born, today) > MAX_AGE:
        raise Rejected("date.naissance-improbable")


def age_at(born: date, when: date) -> int:
    return when.year - born.year - ((when.month, when.day) < (born.month, born.day))


def departement(code_postal: str) -> str:
    """The département of a French postal code (Corsica 200-201 → 2A, 202-206 → 2B)."""
    if code_postal.startswith("20"):
        return "2A" if code_postal[:3] in ("200", "201") else "2B"
    if code_postal.startswith("97") or code_postal.startswith("98"):
        return code_postal[:3]
    return code_postal[:2]


def territoire(adresse: Adresse | None) -> i.Territoire:
    if adresse is None:
        return i.Territoire()
    return i.Territoire(departement=departement(adresse.code_postal), commune=adresse.commune)


_FLAG_FIELDS = ("sans_complementaire", "violences_intrafamiliales", "enfants_a_charge", "categorie",
                "beneficiaire_c2s")
_DATE_FIELDS = ("date_fin_prise_en_charge", "date_prevue_accouchement")


def demand_id(pseudonyme: str, name: str, date_effet: date) -> str:
    """The same life event (person, type, date) reported twice is one demand."""
    return derive_id("demande", pseudonyme, name, date_effet.isoformat())


@dataclass(frozen=True)
class Downstream:
    """What an accepted event sends downstream."""

    demande: i.Demande
    coordonnees: i.Coordonnees
    extra_flags: dict[str, bool] = field(default_factory=dict)


def to_downstream(
    accepted: Accepted, pseudonyme: str, now: datetime, *, reference_demande: str | None = None,
    securite: i.Securite | None = None,
) -> Downstream:
    """The pseudonymous demand and the contact data of an accepted life event."""
    data, ev = accepted.data, accepted.event
    dumped = data.model_dump()
    flags: dict[str, bool | int | str] = {k: dumped[k] for k in _FLAG_FIELDS
                                          if dumped.get(k) is not None}
    proche = data.proche if isinstance(data, Deces) else None
    if isinstance(data, Deces):
        flags["proche_connu"] = proche is not None
    dates = {k: dumped[k] for k in _DATE_FIELDS if dumped.get(k) is not None}
    dates["date_naissance"] = data.assure.date_naissance
    if data.nature == "initial":
        did = demand_id(pseudonyme, accepted.name, data.date_effet)
    else:
        did = derive_id("demande", data.nature, ev.source, ev.id)
    demande = i.Demande(
        demande_id=did,
        pseudonyme=pseudonyme,
        origine="evenement-vie",
        evenement=accepted.name,
        nature=data.nature,
        demande_reference=reference_demande,
        date_effet=data.date_effet,
        recu_le=now,
        age=age_at(data.assure.date_naissance, data.date_effet),
        naissance=data.assure.date_naissance.strftime("%Y-%m"),
        territoire=territoire(data.assure.adresse),
        drapeaux=flags,
        dates=dates,
        sources=[i.SourceRef(source=ev.source, id=ev.id)],
        detecteur=i.Detecteur(type="systeme-amont", identifiant=ev.source[:120]),
    )
    coordonnees = coordonnees_of(data, pseudonyme, now, securite=securite)
    return Downstream(demande, coordonnees)


def coordonnees_of(
    data: EvenementVie, pseudonyme: str, now: datetime, *, securite: i.Securite | None = None,
) -> i.Coordonnees:
    a = data.assure
    proche = getattr(data, "proche", None)
    violence = bool(getattr(data, "violences_intrafamiliales", False))
    sec = securite or i.Securite()
    if violence and not sec.violences_intrafamiliales:
        sec = i.Securite(violences_intrafamiliales=True, canaux_designes=sec.canaux_designes,
                         adresse_sure=sec.adresse_sure, telephone_sur=sec.telephone_sur)
    return i.Coordonnees(
        pseudonyme=pseudonyme,
        nom=a.nom,
        prenom=a.prenom,
        adresse=a.adresse,
        telephone=a.telephone,
        email=a.email,
        proche=i.ProcheContact(**proche.model_dump()) if proche is not None else None,
        securite=sec,
        decede=isinstance(data, Deces) and data.nature != "annulation",
        maj_le=now,
    )

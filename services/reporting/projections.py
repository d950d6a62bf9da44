"""From an event to the fact reporting keeps: pure functions, no I/O.

Reporting keeps one *fact* per thing that happened, keyed by the id the producer gave it
(``demande_id``, ``decision_id``, ``action_id``, ``resultat_id``; a reject by the coordinates
of the record it rejected). A redelivered event gives the same fact, written by ``_id``: it
changes nothing. Each collection has a single writer: the consumer of its topic.

Only pseudonymous, non-identifying fields are kept: no free text (explanations, referral
details), no birth month, no age, no flags. A reject's value is never read (it holds the
personal data signalement refused); only its headers are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.cloudevents import CloudEvent
from shared.contracts import internes as i
from shared.ids import derive_id
from shared.kafka import H_AT, H_BY, H_CODE, H_OFFSET, H_PARTITION, H_TOPIC

NON_RENSEIGNE = "(non renseigné)"


def detecteur_label(d: i.Detecteur | None) -> str | None:
    return f"{d.type}:{d.identifiant}" if d is not None else None


def _territoire(t: i.Territoire) -> dict[str, Any]:
    return {"departement": t.departement, "commune": t.commune}


def demande_fact(event: CloudEvent[i.Demande]) -> dict[str, Any]:
    d = event.data
    situation = (d.signalement or {}).get("situation")
    return {
        "_id": d.demande_id,
        "evenement_id": event.id,
        "pseudonyme": d.pseudonyme,
        "origine": d.origine,
        "evenement": d.evenement,
        "nature": d.nature,
        "demande_reference": d.demande_reference,
        "date_effet": d.date_effet.isoformat(),
        "recu_le": _utc(d.recu_le),
        **_territoire(d.territoire),
        "detecteur": detecteur_label(d.detecteur),
        "situation": situation if isinstance(situation, str) else None,
    }


def decision_fact(event: CloudEvent[i.Decision]) -> dict[str, Any]:
    d = event.data
    return {
        "_id": d.decision_id,
        "evenement_id": event.id,
        "le": _utc(event.time),
        "pseudonyme": d.pseudonyme,
        "demande_id": d.demande_id,
        "dossier_id": d.dossier_id,
        "parcours": d.parcours,
        "statut": d.statut,
        "motif_cloture": d.motif_cloture,
        **_territoire(d.territoire),
        "detecteur": detecteur_label(d.detecteur),
    }


def action_planned_fields(event: CloudEvent[i.ActionPlanifiee]) -> dict[str, Any]:
    """The fields an ``action-planifiee`` sets on the action's fact (``_id`` = action_id)."""
    a = event.data
    return {
        "pseudonyme": a.pseudonyme,
        "dossier_id": a.dossier_id,
        "parcours": a.parcours,
        "etape": a.etape,
        "kind": a.kind,
        "canal": a.canaux[0] if a.canaux else None,
        "canaux": list(a.canaux),
        "due_le": _utc(a.due_le),
        "echeance": _utc(a.echeance) if a.echeance else None,
        "modele": a.modele,
        "destinataire": a.destinataire,
        "obligatoire": a.obligatoire,
        **_territoire(a.territoire),
        "detecteur": detecteur_label(a.detecteur),
        "planifiee_le": _utc(event.time),
        "planifiee_par": event.id,
    }


def action_cancelled_fields(event: CloudEvent[i.ActionAnnulee]) -> dict[str, Any]:
    """The fields an ``action-annulee`` sets (separate fields: arrival order does not matter)."""
    a = event.data
    return {
        "pseudonyme": a.pseudonyme,
        "dossier_id": a.dossier_id,
        "annulee_le": _utc(event.time),
        "raison_annulation": a.raison,
        "annulee_par": event.id,
    }


def resultat_fact(event: CloudEvent[i.Resultat]) -> dict[str, Any]:
    r = event.data
    return {
        "_id": r.resultat_id,
        "evenement_id": event.id,
        "pseudonyme": r.pseudonyme,
        "action_id": r.action_id,
        "dossier_id": r.dossier_id,
        "parcours": r.parcours,
        "statut": r.statut,
        "raison": r.raison,
        "canal": r.canal,
        "issue_appel": r.issue_appel,
        "survenu_le": _utc(r.survenu_le),
    }


def rejet_fact(
    headers: dict[str, bytes], topic: str, partition: int, offset: int, timestamp_ms: int | None
) -> dict[str, Any]:
    """A reject, from its headers only. Keyed by the coordinates of the *original* record, so
    that the same input rejected twice (a redelivery in signalement) counts once."""

    def h(name: str) -> str | None:
        v = headers.get(name)
        return v.decode("utf-8", "replace") if v is not None else None

    origin = (h(H_TOPIC), h(H_PARTITION), h(H_OFFSET))
    key = origin if all(origin) else (topic, str(partition), str(offset))
    return {
        "_id": derive_id("rejet", *key),
        "code": h(H_CODE) or "inconnu",
        "rejete_le": _parse_time(h(H_AT)) or _from_ms(timestamp_ms),
        "rejete_par": h(H_BY),
        "topic_origine": origin[0],
        "ce_type": h("ce_type"),
    }


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _from_ms(ms: int | None) -> datetime:
    return datetime.fromtimestamp((ms or 0) / 1000, UTC)

"""Contract events as orientation, signalement and notification publish them (for reporting's
tests, which publish them themselves on the real broker)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel

from shared.cloudevents import CloudEvent, headers_for, new_event
from shared.contracts import internes as i
from shared.ids import derive_id

T91 = i.Territoire(departement="91", commune="Évry-Courcouronnes")


def _event(type_: str, source: str, id_: str, data: BaseModel, when: datetime) -> CloudEvent[Any]:
    return new_event(type=type_, source=source, id=id_, data=data, time=when)


def demande(
    pseudo: str,
    evenement: str,
    recu_le: datetime,
    *,
    date_effet: date | None = None,
    origine: str = "evenement-vie",
    detecteur: i.Detecteur | None = None,
    territoire: i.Territoire = T91,
    situation: str | None = None,
) -> CloudEvent[Any]:
    did = derive_id("demande", pseudo, evenement, recu_le.isoformat())
    data = i.Demande(
        demande_id=did,
        pseudonyme=pseudo,
        origine=origine,
        evenement=evenement,  # type: ignore[arg-type]
        date_effet=date_effet or recu_le.date(),
        recu_le=recu_le,
        age=62,
        naissance="1964-03",
        territoire=territoire,
        detecteur=detecteur,
        signalement={"situation": situation} if situation else None,
    )
    return _event(i.DEMANDE, "/signalement", did, data, recu_le)


def decision(
    pseudo: str,
    demande_id: str,
    dossier_id: str,
    parcours: str,
    statut: str,
    when: datetime,
    *,
    motif: str | None = None,
    detecteur: i.Detecteur | None = None,
    territoire: i.Territoire = T91,
) -> CloudEvent[Any]:
    did = derive_id("decision", dossier_id, statut, when.isoformat())
    data = i.Decision(
        decision_id=did,
        pseudonyme=pseudo,
        demande_id=demande_id,
        dossier_id=dossier_id,
        parcours=parcours,
        statut=statut,  # type: ignore[arg-type]
        motif_cloture=motif,
        catalogue_version="test",
        explication=["test"],
        territoire=territoire,
        detecteur=detecteur,
    )
    return _event(i.DECISION, "/orientation", did, data, when)


def action(
    pseudo: str,
    dossier_id: str,
    parcours: str,
    etape: str,
    kind: str,
    canal: str,
    due_le: datetime,
    *,
    modele: str,
    echeance: datetime | None = None,
    detecteur: i.Detecteur | None = None,
    territoire: i.Territoire = T91,
    planifiee_le: datetime | None = None,
) -> CloudEvent[Any]:
    aid = derive_id("action", dossier_id, etape, due_le.isoformat())
    data = i.ActionPlanifiee(
        action_id=aid,
        pseudonyme=pseudo,
        dossier_id=dossier_id,
        parcours=parcours,
        etape=etape,
        kind=kind,
        canaux=[canal],  # type: ignore[arg-type,list-item]
        due_le=due_le,
        echeance=echeance,
        modele=modele,
        territoire=territoire,
        detecteur=detecteur,
    )
    return _event(i.ACTION_PLANIFIEE, "/orientation", aid, data, planifiee_le or due_le)


def annulation(
    pseudo: str, planned: CloudEvent[Any], raison: str, when: datetime
) -> CloudEvent[Any]:
    a = planned.data
    data = i.ActionAnnulee(
        action_id=a.action_id, pseudonyme=pseudo, dossier_id=a.dossier_id, raison=raison
    )
    return _event(
        i.ACTION_ANNULEE, "/orientation", derive_id("annulation", a.action_id), data, when
    )


def resultat(
    pseudo: str,
    statut: str,
    when: datetime,
    *,
    planned: CloudEvent[Any] | None = None,
    dossier_id: str | None = None,
    parcours: str | None = None,
    issue: str | None = None,
    raison: str | None = None,
    canal: str | None = None,
) -> CloudEvent[Any]:
    a = planned.data if planned is not None else None
    rid = derive_id("resultat", pseudo, statut, when.isoformat(), issue or "")
    data = i.Resultat(
        resultat_id=rid,
        pseudonyme=pseudo,
        action_id=a.action_id if a else None,
        dossier_id=dossier_id or (a.dossier_id if a else None),
        parcours=parcours or (a.parcours if a else None),
        statut=statut,  # type: ignore[arg-type]
        raison=raison,
        canal=canal or (a.canaux[0] if a else None),
        issue_appel=issue,
        survenu_le=when,
    )
    return _event(i.RESULTAT, "/notification", rid, data, when)


def record(event: CloudEvent[Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) as the services publish it: keyed by the person's pseudonym."""
    return (
        event.data.pseudonyme.encode(),
        event.to_bytes(),
        [(k, v.encode()) for k, v in headers_for(event).items()],
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)

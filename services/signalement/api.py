"""The partners' portal API: send a referral ("fiche de signalement"), follow its status.

Each partner authenticates with its own API key (``X-API-Key``) and sees only its own
referrals: someone else's reference answers 404, as an unknown one does.
"""


import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.signalement import partners
from services.signalement.partners import Partner
from services.signalement.service import (
    HANDOVER_HOURS,
    Deps,
    IdempotencyConflict,
    submit_referral,
)
from shared.audit import AuditLog
from shared.contracts.base import SansNul
from shared.contracts.evenements import Adresse, Email, Nir, Nom, Telephone

Situation = Literal["renoncement-aux-soins", "difficulte-acces-aux-droits", "rupture-de-droits",
                    "besoin-complementaire-sante", "autre"]
Soin = Literal["dentaire", "optique", "audition", "generaliste", "specialiste", "kinesitherapie",
               "soins-infirmiers", "sante-mentale", "gynecologie", "autre"]
Motif = Literal["reste-a-charge", "avance-de-frais", "complexite-administrative",
                "delais-de-rendez-vous", "eloignement", "refus-de-soins", "peur-des-soins",
                "isolement", "barriere-de-la-langue", "autre"]


class Personne(SansNul):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    nir: Nir
    nom: Nom
    prenom: Nom
    date_naissance: date
    adresse: Adresse | None = None
    telephone: Telephone | None = None
    email: Email | None = None

    @field_validator("date_naissance")
    @classmethod
    def not_in_future(cls, v: date) -> date:
        if v > date.today():
            raise ValueError("the birth date is in the future")
        if v.year < 1880:
            raise ValueError("the birth date is implausible")
        return v


class FicheSignalement(SansNul):
    """A partner's referral of a person who renounces care or cannot reach their rights."""

    model_config = ConfigDict(extra="forbid")

    personne: Personne
    situation: Situation
    soins_renonces: list[Soin] = Field(default_factory=list, max_length=10)
    motifs: list[Motif] = Field(default_factory=list, max_length=10)
    consentement_contact: bool = Field(
        ..., description="The person agreed to be contacted by the Assurance Maladie."
    )


class AccuseReception(BaseModel):
    reference: str
    statut: str = "recu"
    recu_le: datetime
    engagement: str
    echeance: datetime = Field(..., description="Hand-over deadline: 48 business hours.")


class Etape(BaseModel):
    statut: str
    le: datetime
    detail: str | None = None


class SignalementVue(BaseModel):
    reference: str
    statut: str
    situation: str
    recu_le: datetime
    echeance: datetime
    historique: list[Etape]


class Page(BaseModel):
    total: int
    page: int
    taille: int
    elements: list[SignalementVue]


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="The partner's API key (pk_<id>_<secret>).")


class RateLimiter:
    """Requests per partner per minute, on this instance (a sliding one-minute window)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, list[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        hits = [t for t in self._hits.get(key, []) if now - t < 60.0]
        allowed = len(hits) < self.per_minute
        if allowed:
            hits.append(now)
        self._hits[key] = hits
        return allowed


def _engagement(echeance: datetime) -> str:
    return (
        f"Votre signalement est reçu. La Mission accompagnement santé s'engage à le prendre "
        f"en charge sous {HANDOVER_HOURS} heures ouvrées, au plus tard le "
        f"{echeance.astimezone(__import__('zoneinfo').ZoneInfo('Europe/Paris')):%d/%m/%Y à %H:%M}."
    )


def _view(doc: dict[str, Any]) -> SignalementVue:
    return SignalementVue(
        reference=doc["_id"], statut=doc["statut"], situation=doc["situation"],
        recu_le=doc["recu_le"], echeance=doc["echeance"],
        historique=[Etape(statut=h["statut"], le=h["le"], detail=h.get("detail"))
                    for h in doc.get("historique", [])],
    )


def router(get_deps: Callable[[], Deps], get_audit: Callable[[], AuditLog]) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["signalements"])
    limiter: list[RateLimiter] = []

    async def partner(request: Request,
                      api_key: Annotated[str | None, Security(api_key_header)]) -> Partner:
        deps = get_deps()
        unauthorized = HTTPException(401, {"erreur": "non-authentifie",
                                           "message": "a valid X-API-Key header is required"},
                                     headers={"WWW-Authenticate": "ApiKey"})
        if not api_key or (parts := partners.split_key(api_key)) is None:
            raise unauthorized
        key_id, secret = parts
        found = partners.verify(await deps.store.partner(key_id), secret,
                                deps.settings.api_key_pepper.get_secret_value().encode())
        if found is None:
            raise unauthorized
        if not limiter:
            limiter.append(RateLimiter(deps.settings.http_rate_per_minute))
        if not limiter[0].allow(found.id):
            raise HTTPException(429, {"erreur": "trop-de-requetes",
                                      "message": f"at most {limiter[0].per_minute} requests a "
                                                 "minute; retry later"},
                                headers={"Retry-After": "60"})
        return found

    partner.__auth_doc__ = "partner (X-API-Key)"  # type: ignore[attr-defined]

    @api.post("/signalements", status_code=202, response_model=AccuseReception,
              summary="Signal a person (fiche de signalement)",
              responses={401: {}, 409: {}, 413: {}, 422: {}, 429: {}})
    async def create(
        fiche: FicheSignalement,
        who: Annotated[Partner, Depends(partner)],
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                                      min_length=1)] = None,
    ) -> AccuseReception:
        try:
            ack = await submit_referral(fiche, who, idempotency_key, get_deps())
        except IdempotencyConflict:
            raise HTTPException(409, {"erreur": "cle-idempotence-reutilisee",
                                      "message": "this Idempotency-Key was used with another "
                                                 "body"}) from None
        return AccuseReception(reference=ack.reference, recu_le=ack.recu_le,
                               echeance=ack.echeance, engagement=_engagement(ack.echeance))

    @api.get("/signalements/{reference}", response_model=SignalementVue,
             summary="A referral of yours and its status history", responses={401: {}, 404: {}})
    async def one(reference: str, who: Annotated[Partner, Depends(partner)]) -> SignalementVue:
        doc = await get_deps().store.referral(reference[:100])
        ours = doc is not None and doc.get("partenaire") == who.id
        await get_audit().record(f"partenaire:{who.id}", "lire-signalement", "signalement",
                                 reference[:100], resultat="ok" if ours else "introuvable")
        if doc is None or not ours:
            raise HTTPException(404, {"erreur": "introuvable",
                                      "message": "no referral of yours has this reference"})
        return _view(doc)

    @api.get("/signalements", response_model=Page, summary="Your referrals, newest first",
             responses={401: {}})
    async def many(who: Annotated[Partner, Depends(partner)],
                   page: Annotated[int, Query(ge=1, le=10_000)] = 1,
                   taille: Annotated[int, Query(ge=1, le=100)] = 20) -> Page:
        total, docs = await get_deps().store.referrals_of(who.id, (page - 1) * taille, taille)
        await get_audit().record(f"partenaire:{who.id}", "lister-signalements", "partenaire",
                                 who.id)
        return Page(total=total, page=page, taille=taille, elements=[_view(d) for d in docs])

    return api


class BodyLimit:
    """ASGI middleware: bodies above ``max_bytes`` get 413 before they are read whole."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Any, receive: Any, send: Any) -> None:
        response = JSONResponse({"erreur": "trop-volumineux",
                                 "message": f"the body exceeds {self.max_bytes} bytes"},
                                status_code=413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass

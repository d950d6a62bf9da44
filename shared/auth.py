"""Bearer tokens (JWT) of agents, supervisors and reporting readers; who may call what.

A token is verified against the configured keys: an HS256 secret (development, tests, the
demo), PEM public keys (RS256/ES256) or the JWKS of an OIDC issuer (keys picked by ``kid``).
Claims: ``sub`` (the person's account), ``roles`` (:data:`ROLES`), ``site`` (the
département whose tasks and cases the agent works), ``aud``, ``iss``, ``exp``.

Routes declare who may call them with ``Depends(require("agent", "superviseur"))``; the
dependency answers 401 (no token, bad token: with ``WWW-Authenticate: Bearer``) or 403 (valid
token, wrong role). Scoping to a site (404 where existence must not leak) is the route's job.

Token expiry is checked against real time (the issuer's clock), never the business clock that
tests and the demo move forward.

``python -m shared.auth doc`` prints the table of every endpoint and who may call it, walked
from the apps' routes (docs/security.md holds it; a test regenerates and compares).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.settings import Settings

AGENT, SUPERVISEUR, LECTEUR = "agent", "superviseur", "lecteur-indicateurs"
ROLES = (AGENT, SUPERVISEUR, LECTEUR)
DEV_SECRET = "dev-only-jwt-secret-change-me-0123456789"  # noqa: S105 - the documented dev default
SITE_PATTERN = r"^([0-9]{2,3}|2A|2B)$"

bearer = HTTPBearer(auto_error=False, scheme_name="jeton",
                    description="JWT of an agent, supervisor or reporting reader.")


class AuthError(Exception):
    """The token is missing, malformed, expired, or signed by an unknown key."""


@dataclass(frozen=True)
class Principal:
    """Who calls: verified claims of the token."""

    sub: str
    roles: frozenset[str]
    site: str | None = None

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


class Verifier:
    """Checks tokens against the configured keys (see module doc)."""

    def __init__(self, settings: Settings) -> None:
        self.issuer, self.audience = settings.auth_issuer, settings.auth_audience
        self.algorithms = list(settings.auth_algorithms)
        self.secret = hs_secret(settings)
        self.public_keys = [p.read_bytes() for p in settings.auth_public_key_files]
        self.jwks = (jwt.PyJWKClient(settings.auth_jwks_url, cache_keys=True, lifespan=600)
                     if settings.auth_jwks_url else None)
        if settings.environment == "production" and self.secret == DEV_SECRET:
            raise ValueError("auth_jwt_secret is the development default: set it, or unset it "
                             "and configure auth_public_key_files or auth_jwks_url")

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed token") from exc
        alg = header.get("alg")
        if alg not in self.algorithms or alg == "none":
            raise AuthError("algorithm not accepted")
        if alg.startswith("HS"):
            keys: list[Any] = [self.secret] if self.secret else []
        elif self.jwks is not None and header.get("kid"):
            try:
                signing = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            except jwt.PyJWTError as exc:
                raise AuthError("unknown signing key") from exc
            keys = [signing.key]
        else:
            keys = list(self.public_keys)
        for key in keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                    leeway=30, options={"require": ["exp", "sub", "aud", "iss"]})
            except jwt.InvalidSignatureError:
                continue
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise AuthError(type(exc).__name__) from exc
            return _principal(claims)
        raise AuthError("no key verifies this token")


def _principal(claims: dict[str, Any]) -> Principal:
    roles = claims.get("roles") or []
    if isinstance(roles, str):
        roles = roles.split()
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthError("roles claim is not a list of strings")
    site = claims.get("site")
    if site is not None and not isinstance(site, str):
        raise AuthError("site claim is not a string")
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > 200:
        raise AuthError("sub claim invalid")
    return Principal(sub=sub, roles=frozenset(roles) & set(ROLES), site=site)


def hs_secret(settings: Settings) -> str | None:
    if settings.auth_jwt_secret_file is not None:
        from shared.secrets import read_secret_file

        return read_secret_file(settings.auth_jwt_secret_file, "auth_jwt_secret").get_secret_value()
    return settings.auth_jwt_secret.get_secret_value() if settings.auth_jwt_secret else None


def mint(settings: Settings, sub: str, roles: Iterable[str], site: str | None = None, *,
         ttl_seconds: int = 3600, key: Any = None, algorithm: str = "HS256",
         headers: dict[str, Any] | None = None, **extra: Any) -> str:
    """A token for development, tests and the demo (signed with the HS256 secret by default)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "roles": list(roles), "iss": settings.auth_issuer,
                              "aud": settings.auth_audience, "iat": now, "exp": now + ttl_seconds}
    if site is not None:
        claims["site"] = site
    claims.update(extra)
    signing_key: Any = key if key is not None else hs_secret(settings)
    return jwt.encode(claims, signing_key,
                      algorithm=algorithm, headers=headers)


class Require:
    """FastAPI dependency: a valid bearer token with one of ``roles`` (any role if empty)."""

    def __init__(self, *roles: str) -> None:
        unknown = set(roles) - set(ROLES)
        assert not unknown, f"unknown roles {unknown}"
        self.roles = frozenset(roles or ROLES)

    def __repr__(self) -> str:
        return f"require({', '.join(sorted(self.roles))})"

    async def __call__(
        self, request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
    ) -> Principal:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise HTTPException(401, {"erreur": "non-authentifie",
                                      "message": "a bearer token is required"},
                                headers={"WWW-Authenticate": 'Bearer realm="parcours"'})
        verifier: Verifier = request.app.state.verifier
        try:
            principal = await verifier.verify(creds.credentials)
        except AuthError:
            raise HTTPException(401, {"erreur": "jeton-invalide",
                                      "message": "the bearer token is invalid or expired"},
                                headers={"WWW-Authenticate": 'Bearer realm="parcours", '
                                         'error="invalid_token"'}) from None
        if not principal.has(*self.roles):
            raise HTTPException(403, {"erreur": "interdit",
                                      "message": "your role does not allow this"})
        request.state.principal = principal
        return principal


def require(*roles: str) -> Require:
    return Require(*roles)


def docs_kwargs(settings: Settings) -> dict[str, Any]:
    """FastAPI constructor arguments: without public docs, no /docs, /redoc, /openapi.json."""
    if settings.http_docs_public:
        return {}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


def docs_dependencies(settings: Settings) -> list[Any]:
    """Any role for the API documents (AsyncAPI) unless the docs are public."""
    from fastapi import Depends

    return [] if settings.http_docs_public else [Depends(require())]


def metrics_dependencies(settings: Settings) -> list[Any]:
    from fastapi import Depends

    return [] if settings.http_metrics_public else [Depends(require())]


def install(app: FastAPI, settings: Settings) -> None:
    """The verifier on ``app.state``; /openapi.json behind any role when docs are not public."""
    app.state.verifier = Verifier(settings)
    app.state.auth_settings = settings
    if settings.http_docs_public:
        return
    from fastapi import Depends

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require())])
    async def openapi() -> JSONResponse:
        return JSONResponse(get_openapi(title=app.title, version=app.version,
                                        description=app.description, routes=app.routes))


# ---- the table of every endpoint and who may call it

PUBLIC = "public"


def _callers(dependant: Any) -> Iterator[str]:
    call = dependant.call
    if isinstance(call, Require):
        yield ", ".join(r for r in ROLES if r in call.roles)
    elif call is not None and getattr(call, "__auth_doc__", None):
        yield call.__auth_doc__
    for sub in dependant.dependencies:
        yield from _callers(sub)


def _api_routes(app: FastAPI) -> Iterator[tuple[str, set[str], Any]]:
    """(path, methods, dependant or None) of every route, with included routers flattened."""
    try:  # FastAPI >= 0.160 includes routers lazily
        from fastapi import routing
        from fastapi.openapi.utils import _get_api_route_for_openapi

        for rc in routing.iter_route_contexts(app.routes):
            api = _get_api_route_for_openapi(rc)
            if api is not None:
                yield api.path, set(api.methods or ()), api.dependant
            else:
                route = rc.route
                yield getattr(route, "path", ""), set(getattr(route, "methods", None) or ()), None
    except ImportError:  # pragma: no cover - older FastAPI
        for route in app.routes:
            dep = route.dependant if isinstance(route, APIRoute) else None
            yield getattr(route, "path", ""), set(getattr(route, "methods", None) or ()), dep


# the AsyncAPI document of the topics and its schemas (shared/http.py asyncapi_router)
ASYNCAPI_PATHS = ("/asyncapi.yaml", "/asyncapi.json", "/contracts/{name}")


def route_rows(service: str, app: FastAPI) -> list[dict[str, Any]]:
    """One row per (method, path): who may call it, and the roles (empty: no role check)."""
    rows = []
    for path, methods, dependant in _api_routes(app):
        if dependant is not None:
            callers = list(dict.fromkeys(_callers(dependant)))
            roles = next((c for c in _role_sets(dependant)), frozenset())
        elif path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            callers, roles = [], frozenset()
        else:
            continue
        if path.startswith("/docs") or path == "/redoc":
            who = "public if http_docs_public, else not served"
        elif path in ("/openapi.json", *ASYNCAPI_PATHS):
            who = "public if http_docs_public, else any role"
        elif path == "/metrics":
            who = "public if http_metrics_public, else any role"
        else:
            who = " + ".join(callers) or PUBLIC
        for m in sorted(methods - {"HEAD", "OPTIONS"}):
            rows.append({"service": service, "method": m, "path": path, "who": who,
                         "roles": sorted(roles)})
    return rows


def _role_sets(dependant: Any) -> Iterator[frozenset[str]]:
    if isinstance(dependant.call, Require):
        yield dependant.call.roles
    for sub in dependant.dependencies:
        yield from _role_sets(sub)


def service_apps(settings: Settings | None = None) -> dict[str, FastAPI]:
    """Every service's app, built (not started) with ``settings``."""
    from services.notification.app import create_app as notification
    from services.orientation.app import create_app as orientation
    from services.reporting.app import create_app as reporting
    from services.signalement.app import create_app as signalement

    s = settings or Settings()
    return {name: factory(s.model_copy(update={"service_name": name}))  # type: ignore[operator]
            for name, factory in (("signalement", signalement), ("orientation", orientation),
                                  ("notification", notification), ("reporting", reporting))}


def endpoint_rows(settings: Settings | None = None) -> list[dict[str, Any]]:
    return [row for name, app in service_apps(settings).items() for row in route_rows(name, app)]


def endpoint_table(settings: Settings | None = None) -> str:
    lines = ["| service | method | path | who may call it |", "|---|---|---|---|"]
    for r in endpoint_rows(settings):
        lines.append(f"| {r['service']} | {r['method']} | `{r['path']}` | {r['who']} |")
    return "\n".join(lines)


BEGIN = "<!-- endpoints:begin (python -m shared.auth doc --write) -->"
END = "<!-- endpoints:end -->"


def write_table(path: str = "docs/security.md") -> bool:
    """Replace the table between the markers of ``path``; True if it changed."""
    from pathlib import Path

    p = Path(path)
    text = p.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n" + endpoint_table() + "\n" + text[end:]
    if new != text:
        p.write_text(new, encoding="utf-8")
    return new != text


def main(args: list[str]) -> None:
    if args[:1] == ["doc"]:
        if "--write" in args:
            print("changed" if write_table() else "unchanged")
        else:
            print(endpoint_table())
    elif args[:1] == ["token"]:
        # python -m shared.auth token <sub> <role[,role]> [site]
        print(mint(Settings(), args[1], args[2].split(","), args[3] if len(args) > 3 else None,
                   ttl_seconds=12 * 3600))
    else:
        print("usage: python -m shared.auth doc [--write] | token <sub> <roles> [site]")


if __name__ == "__main__":  # pragma: no cover - a CLI
    from shared import auth as _module  # the services import shared.auth, not __main__

    _module.main(sys.argv[1:])

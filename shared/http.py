"""HTTP helpers every service mounts: liveness, readiness, Prometheus metrics, error bodies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.mongo import storage_unavailable

ReadinessCheck = Callable[[], Awaitable[bool]]


def health_router(checks: Mapping[str, ReadinessCheck], timeout: float = 3.0) -> APIRouter:
    """``/health/live`` (the process answers) and ``/health/ready`` (each dependency answers)."""
    router = APIRouter(tags=["santé"])

    @router.get("/health/live", summary="The process is alive")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready", summary="Broker and database reachable", response_model=None)
    async def ready() -> JSONResponse:
        async def run(check: ReadinessCheck) -> bool:
            try:
                return await asyncio.wait_for(check(), timeout)
            except Exception:
                return False

        names = list(checks)
        results = await asyncio.gather(*(run(checks[n]) for n in names))
        body = {"status": "ok" if all(results) else "unavailable",
                "checks": {n: ("ok" if r else "ko") for n, r in zip(names, results, strict=True)}}
        return JSONResponse(body, status_code=200 if all(results) else 503)

    return router


def metrics_router(registry: CollectorRegistry,
                   refresh: Callable[[], Awaitable[None]] | None = None,
                   refresh_timeout: float = 5.0) -> APIRouter:
    """``/metrics``; ``refresh`` (optional) updates gauges read from the database just before."""
    router = APIRouter(tags=["santé"])

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        if refresh is not None:
            # a failure leaves the gauges as they were: the other series are still worth it
            with contextlib.suppress(Exception):
                await asyncio.wait_for(refresh(), refresh_timeout)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


class RefuseNulInUrl:
    """ASGI middleware: a path or query holding a NUL character (``%00``) is answered 400 with
    the reason, before any route: no identifier holds one, and the database cannot look one up
    (docs/adr/0012). Bodies are checked by their models (``shared.contracts.base.SansNul``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")
            or b"\x00" in scope.get("query_string", b"")
        ):
            response = JSONResponse(
                {"erreur": "requete-incorrecte",
                 "message": "the NUL character (%00) is not allowed in a URL"}, status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Every HTTP error says what was wrong, as
    ``{"erreur": code, "message": ..., "details": ...}``.

    Validation errors never echo the submitted values (they may be personal data).
    """

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"champ": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", ""),
             "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"erreur": "requete-invalide", "message": "the request is invalid", "details": details},
            status_code=422,
        )

    @app.exception_handler(PyMongoError)
    async def on_database(_: Request, exc: PyMongoError) -> JSONResponse:
        if storage_unavailable(exc):
            return JSONResponse({"erreur": "indisponible",
                                 "message": "the database is unavailable right now: retry later"},
                                status_code=503, headers={"Retry-After": "5"})
        return JSONResponse({"erreur": "erreur-interne",
                             "message": f"database error ({type(exc).__name__})"}, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail
        body = (detail if isinstance(detail, dict)
                else {"erreur": _code(exc.status_code), "message": str(detail)})
        return JSONResponse(body, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


def _code(status: int) -> str:
    return {400: "requete-incorrecte", 401: "non-authentifie", 403: "interdit", 404: "introuvable",
            405: "methode-non-permise", 409: "conflit", 413: "trop-volumineux",
            422: "requete-invalide", 429: "trop-de-requetes"}.get(status, f"http-{status}")


def asyncapi_router() -> APIRouter:
    """``GET /asyncapi.yaml`` (and ``/asyncapi.json``): the AsyncAPI document of every topic of
    the platform, the same as ``docs/asyncapi.yaml`` (both come from :mod:`shared.schemas`,
    built here from the code, so a service serves it without the docs folder); the JSON
    Schemas it refers to (``./contracts/<name>``) at ``GET /contracts/<name>``."""
    import functools
    import json

    router = APIRouter(tags=["santé"])

    @functools.cache
    def document() -> dict[str, Any]:
        from shared.schemas import asyncapi

        return asyncapi()

    @functools.cache
    def as_yaml() -> str:
        import yaml

        return str(yaml.safe_dump(document(), sort_keys=False, allow_unicode=True))

    @router.get("/asyncapi.yaml", summary="AsyncAPI document of every topic",
                response_class=Response)
    async def asyncapi_yaml() -> Response:
        return Response(as_yaml(), media_type="application/yaml; charset=utf-8")

    @router.get("/asyncapi.json", summary="AsyncAPI document of every topic (JSON)",
                response_class=Response)
    async def asyncapi_json() -> Response:
        return Response(json.dumps(document(), ensure_ascii=False),
                        media_type="application/json")

    @router.get("/contracts/{name}", summary="JSON Schema of a message (the document's $ref)",
                response_class=Response)
    async def contract(name: str) -> Response:
        from fastapi import HTTPException

        from shared.schemas import json_schemas

        schemas = json_schemas()
        if name not in schemas:
            raise HTTPException(404, f"no contract named {name}")
        return Response(json.dumps(schemas[name], ensure_ascii=False, indent=2),
                         media_type="application/schema+json")

    return router

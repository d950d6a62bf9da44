"""Bearer tokens and who may call what: the table in docs/security.md is generated from the
routes, and every row's other roles are refused (no infrastructure: the role check runs before
any database access)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared import auth
from shared.settings import Settings
from tests.support import auth_headers, token

ROOT = Path(__file__).resolve().parents[2]
APPS = auth.service_apps()
ROWS = [r for r in auth.endpoint_rows() if r["roles"]]
PUBLIC_ROWS = [r for r in auth.endpoint_rows() if r["who"] == auth.PUBLIC]


def _client(service: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=APPS[service]),
                             base_url="http://test")


def _path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_the_table_in_docs_security_md_is_the_one_the_code_generates() -> None:
    text = (ROOT / "docs/security.md").read_text(encoding="utf-8")
    start, end = text.index(auth.BEGIN) + len(auth.BEGIN), text.index(auth.END)
    assert text[start:end].strip() == auth.endpoint_table().strip(), (
        "run: python -m shared.auth doc --write")


def test_every_api_endpoint_is_protected_or_deliberately_public() -> None:
    public = {(r["service"], r["path"]) for r in PUBLIC_ROWS}
    assert public == {(s, p) for s in APPS for p in ("/health/live", "/health/ready")} | {
        ("reporting", "/"), ("reporting", "/tableau-de-bord")}
    partner = [r for r in auth.endpoint_rows() if r["who"].startswith("partner")]
    assert {r["path"] for r in partner} == {"/v1/signalements", "/v1/signalements/{reference}"}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['service']} {r['method']} {r['path']}")
async def test_other_roles_and_missing_or_bad_tokens_are_refused(row: dict[str, Any]) -> None:
    others = [r for r in auth.ROLES if r not in row["roles"]]
    async with _client(row["service"]) as http:
        async def call(headers: dict[str, str]) -> httpx.Response:
            return await http.request(row["method"], _path(row["path"]), headers=headers,
                                      json={} if row["method"] == "POST" else None)

        none = await call({})
        assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
        for bad in ("not-a-jwt", token(row["roles"][0], ttl_seconds=-120),
                    token(row["roles"][0], aud="someone-else"),
                    token(row["roles"][0], iss="https://evil.example"),
                    jwt.encode({"sub": "x", "roles": row["roles"], "aud": "parcours",
                                "iss": "parcours-dev", "exp": int(time.time()) + 60},
                               "another-secret-of-32-bytes-at-least!", algorithm="HS256")):
            got = await call({"Authorization": f"Bearer {bad}"})
            assert got.status_code == 401, (bad, got.text)
            assert 'error="invalid_token"' in got.headers["www-authenticate"]
        for role in others:
            got = await call(auth_headers(role, "91"))
            assert got.status_code == 403, (role, got.status_code, got.text)
            assert got.json()["erreur"] == "interdit"


def _ttl(seconds: int) -> dict[str, Any]:
    return {"ttl_seconds": seconds}


async def test_an_unsigned_token_is_refused() -> None:
    claims = {"sub": "x", "roles": ["superviseur"], "aud": "parcours", "iss": "parcours-dev",
              "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(auth.AuthError):
        await auth.Verifier(Settings()).verify(unsigned)


async def test_asymmetric_keys_from_files_and_roles_claim(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "idp.pem").write_bytes(pem)
    s = Settings(auth_jwt_secret=None, auth_public_key_files=[tmp_path / "idp.pem"])
    signed = auth.mint(s, "agent.x", ["agent", "inconnu"], "91", key=key, algorithm="ES256")
    who = await auth.Verifier(s).verify(signed)
    assert who == auth.Principal("agent.x", frozenset({"agent"}), "91")
    hs = auth.mint(Settings(), "agent.x", ["agent"], "91")
    with pytest.raises(auth.AuthError):  # no HS secret configured: HS256 tokens are refused
        await auth.Verifier(s).verify(hs)


def test_the_dev_secret_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="auth_jwt_secret"):
        auth.Verifier(Settings().model_copy(update={"environment": "production"}))


async def test_docs_and_metrics_can_be_closed() -> None:
    from services.orientation.app import create_app

    app = create_app(Settings(service_name="orientation", http_docs_public=False,
                              http_metrics_public=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:
        assert (await http.get("/openapi.json")).status_code == 401
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/health/live")).status_code == 200
        opened = await http.get("/openapi.json", headers=auth_headers("lecteur-indicateurs"))
        assert opened.status_code == 200 and "/v1/catalogue" in opened.json()["paths"]
        assert (await http.get("/metrics", headers=auth_headers("agent"))).status_code == 200

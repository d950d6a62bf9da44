"""What counts as "the database is unavailable right now" (retry, never dead-letter)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure

from shared.http import install_error_handlers
from shared.kafka import is_transient
from shared.mongo import storage_unavailable

# What FerretDB answered while its PostgreSQL was down or restarting (seen in the e2e test).
DOWN = [
    "[collection.go:109 postgresql.(*collection).Query] failed to connect to `user=parcours "
    "database=ferretdb`: /tmp/x/.s.PGSQL.5432: dial error: dial unix /tmp/x/.s.PGSQL.5432: "
    "connect: connection refused",
    "[query_iterator.go:92 postgresql.(*queryIterator).Next] write failed: write unix "
    "@->/tmp/x/.s.PGSQL.5432: write: broken pipe",
    "failed to connect to `user=parcours database=ferretdb`: server error: FATAL: the database "
    "system is not yet accepting connections (SQLSTATE 57P03)",
]


@pytest.mark.parametrize("message", DOWN)
def test_ferretdb_without_its_storage_is_an_outage(message: str) -> None:
    exc = OperationFailure(message, code=1)
    assert storage_unavailable(exc) and is_transient(exc)


@pytest.mark.parametrize("exc", [
    DuplicateKeyError("E11000 duplicate key", code=11000),
    OperationFailure("ERROR: unsupported Unicode escape sequence (SQLSTATE 22P05)", code=1),
    OperationFailure("connection refused", code=2),  # BadValue: not an outage, whatever it says
    ValueError("connection refused"),
])
def test_other_errors_are_not(exc: Exception) -> None:
    assert not storage_unavailable(exc) and not is_transient(exc)


def test_network_errors_stay_outages() -> None:
    assert is_transient(AutoReconnect("gone"))


def _client(exc: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/x")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_an_api_call_during_an_outage_is_answered_503_and_says_so() -> None:
    response = _client(OperationFailure(DOWN[0], code=1)).get("/x")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["erreur"] == "indisponible"


def test_another_database_error_is_a_500_that_names_its_kind_only() -> None:
    response = _client(OperationFailure("secret detail", code=2)).get("/x")
    assert response.status_code == 500
    assert response.json() == {"erreur": "erreur-interne",
                               "message": "database error (OperationFailure)"}


def test_an_insert_many_refused_for_want_of_storage_is_an_outage() -> None:
    from pymongo.errors import BulkWriteError

    down = BulkWriteError({"writeErrors": [{"index": 0, "code": 1, "errmsg": DOWN[0]}]})
    dup = BulkWriteError({"writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000"}]})
    assert is_transient(down) and not is_transient(dup)

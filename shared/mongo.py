"""The MongoDB client factory (PyMongo's asyncio API) and helpers within the FerretDB subset.

Subset (ARCHITECTURE.md): reads/writes by ``_id`` on hot paths, unique indexes, no
transactions, no change streams, no TTL indexes, ``find_one_and_update`` without projection.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

# Errors that mean "the database is unavailable right now": retry, never dead-letter.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

# FerretDB answers a command it could not run because its storage (PostgreSQL) is unreachable
# or restarting with an ordinary error (InternalError, code 1) whose message says so: the
# database is unavailable, as surely as if the connection had dropped (ADR 0012).
_STORAGE_UNAVAILABLE = (
    "failed to connect to", "connection refused", "broken pipe", "connection reset",
    "unexpected eof", "conn closed", "closed pool", "no such file or directory",
    "sqlstate 57p0", "sqlstate 08", "sqlstate 53", "sqlstate 40001", "sqlstate 40p01",
)


def storage_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unavailable right now (retry, never dead-letter)."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if isinstance(exc, BulkWriteError):  # the same message, per document of an insert_many
        return any(_says_unavailable(str(e.get("errmsg", "")))
                   for e in (exc.details or {}).get("writeErrors", []) if e.get("code") == 1)
    if isinstance(exc, OperationFailure) and exc.code in (1, None):
        return _says_unavailable(str(exc))
    return False


DUPLICATE_KEY = 11000

# The most update or replace statements sent in one command. FerretDB 1.24 keeps each statement's
# PostgreSQL connection until the whole command ends (a `defer` in its loop over statements):
# a command of as many statements as its pool has connections (300 here) waits for ever for
# one more, and every client of the database with it (measured: 290 pass, 310 hang; deletes
# and inserts are not affected). Statements in flight across all clients must stay below the
# pool: small commands keep them there. On MongoDB this costs a round trip per 25 statements
# of a bulk that is rare on the hot paths (a redelivery, a known person's new data).
WRITE_STATEMENTS_PER_COMMAND = 25


async def insert_all(collection: Any, docs: list[dict[str, Any]]) -> set[int]:
    """Insert every document (one unordered ``insert_many``); return the indexes in ``docs``
    of those whose ``_id`` was already there (or earlier in ``docs``)."""
    if not docs:
        return set()
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = (exc.details or {}).get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return {e["index"] for e in errors}
    return set()


async def insert_new(collection: Any, docs: list[dict[str, Any]]) -> set[str]:
    """:func:`insert_all`, answered as the ``_id`` of the documents already there: the
    platform's "seen before?" test, an insert rather than a read that may miss (ADR 0007)."""
    return {docs[k]["_id"] for k in await insert_all(collection, docs)}


async def bulk_write_chunked(collection: Any, ops: list[Any], *, ordered: bool) -> int:
    """``collection.bulk_write(ops)`` in commands of at most
    :data:`WRITE_STATEMENTS_PER_COMMAND` statements, one after the other (so in order when
    ``ordered``); returns the documents modified or upserted. Not atomic, as one bulk is not."""
    changed = 0
    for start in range(0, len(ops), WRITE_STATEMENTS_PER_COMMAND):
        result = await collection.bulk_write(
            ops[start:start + WRITE_STATEMENTS_PER_COMMAND], ordered=ordered)
        changed += result.modified_count + result.upserted_count
    return changed


def _says_unavailable(message: str) -> bool:
    message = message.lower()
    return any(sign in message for sign in _STORAGE_UNAVAILABLE)


def make_mongo_client(
    uri: str, timeout_ms: int = 5000, app_name: str = "parcours", **options: Any
) -> AsyncMongoClient[Any]:
    """The platform's client; ``options``: more of pymongo's (tests: ``event_listeners``)."""
    return AsyncMongoClient(
        uri,
        appname=app_name,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 4, 20000),
        **options,
    )


async def ping(client: AsyncMongoClient[Any]) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True

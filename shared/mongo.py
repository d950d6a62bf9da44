"""The MongoDB client factory (PyMongo's asyncio API) and helpers within the FerretDB subset.

Subset (ARCHITECTURE.md): reads/writes by ``_id`` on hot paths, unique indexes, no
transactions, no change streams, no TTL indexes, ``find_one_and_update`` without projection.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
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


def make_mongo_client(uri: str, timeout_ms: int = 5000, app_name: str = "parcours") -> AsyncMongoClient[Any]:
    return AsyncMongoClient(
        uri,
        appname=app_name,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 4, 20000),
    )


async def ping(client: AsyncMongoClient[Any]) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True

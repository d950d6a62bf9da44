"""A service's app served by uvicorn on a free port, in a thread with its own event loop (its
lifespan starts its Kafka broker and database client on that loop), so that synchronous
property tests (schemathesis, hypothesis) can call it over real HTTP; ``run`` executes a
coroutine on the server's loop (seeding data through the app's own store)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import uvicorn

from deploy.local.infra import free_port
from shared.settings import Settings
from shared.topics import ensure_topics

T = TypeVar("T")

EXAMPLES = int(os.environ.get("PARCOURS_HOSTILE_EXAMPLES", "0") or 0)


def examples(default: int) -> int:
    """Examples per operation: bounded in ``make test``, ``PARCOURS_HOSTILE_EXAMPLES`` in
    ``make hostile``."""
    return EXAMPLES or default


class Served:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on",
                                log_level="warning", loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, daemon=True, name="hostile-uvicorn")

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 90
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.loop.close()


def settings_for(infra: Any, service: str, **overrides: Any) -> tuple[Settings, str]:
    """Settings of a service on its own topics (created here) and database, as
    tests/conftest.py ``make_settings`` builds them; returns them with the prefix."""
    prefix = f"h{uuid.uuid4().hex[:10]}."
    values: dict[str, Any] = {
        "service_name": service, "kafka_bootstrap_servers": infra.bootstrap_servers,
        "mongo_uri": infra.mongo_uri, "topic_prefix": prefix,
        "mongo_database": f"{prefix.rstrip('.')}_{service}", "log_json": True,
        "pseudonym_key": "test-pseudonym-key-0123456789", "http_rate_per_minute": 1_000_000,
    }
    values.update(overrides)
    report = asyncio.run(ensure_topics(infra.bootstrap_servers, prefix))
    assert all(v in ("created", "ok") for v in report.values()), report
    return Settings(**values), prefix


@contextmanager
def serving(app: Any) -> Iterator[Served]:
    with Served(app) as served:
        yield served

"""Every HTTP API fuzzed from its own OpenAPI document (schemathesis), on the real broker and
database: each service runs in uvicorn with its lifespan; callers are authenticated with
several identities (valid roles of this site, another site, a role that is refused, a forged
credential). Whatever the input: never a 5xx, and every response that the document declares
conforms to its schema. Bounded examples here; ``make hostile`` runs many more
(``PARCOURS_HOSTILE_EXAMPLES``)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from shared.clock import ManualClock
from tests.conftest import delete_topics
from tests.integration.hostile.serve import Served, examples, settings_for
from tests.integration.signalement.test_partner_api import FRIDAY_EVENING, add_partner
from tests.support import auth_headers

CHECKS = [not_a_server_error, response_schema_conformance]
HYPOTHESIS = settings(max_examples=examples(15), deadline=None, derandomize=False,
                      suppress_health_check=list(HealthCheck))


class Api:
    def __init__(self, served: Served, identities: list[dict[str, str]]) -> None:
        self.served = served
        self._who = itertools.cycle(identities)

    def headers(self) -> dict[str, str]:
        return next(self._who)


def _serve(infra: Any, service: str, build: Any,
           identities: Any) -> Iterator[Api]:
    s, prefix = settings_for(infra, service)
    app = build(s)
    try:
        with Served(app) as served:
            yield Api(served, identities(served, app))
    finally:
        asyncio.run(delete_topics(infra.bootstrap_servers, prefix))


def _agents() -> list[dict[str, str]]:
    return [auth_headers("agent", "91"), auth_headers("superviseur", "91"),
            auth_headers("agent", "17"), auth_headers("lecteur-indicateurs", None),
            auth_headers(["agent", "superviseur"], "2A"), {"Authorization": "Bearer x.y.z"}]


@pytest.fixture(scope="module")
def signalement_api(infra: Any) -> Iterator[Api]:
    from services.signalement.app import create_app

    def identities(served: Served, app: Any) -> list[dict[str, str]]:
        key = served.run(add_partner(app, "ccas-hostile"))
        other = served.run(add_partner(app, "pass-hostile", "hopital-pass"))
        return [{"X-API-Key": key}, {"X-API-Key": key}, {"X-API-Key": other},
                {"X-API-Key": key[:-3] + "abc"}, {"X-API-Key": "pk_unknown_secret"}]

    yield from _serve(infra, "signalement",
                      lambda s: create_app(s, clock=ManualClock(FRIDAY_EVENING)), identities)


@pytest.fixture(scope="module")
def orientation_api(infra: Any) -> Iterator[Api]:
    from services.orientation.app import create_app

    yield from _serve(infra, "orientation",
                      lambda s: create_app(s, clock=ManualClock(FRIDAY_EVENING)),
                      lambda served, app: _agents())


@pytest.fixture(scope="module")
def notification_api(infra: Any) -> Iterator[Api]:
    from services.notification.app import create_app

    yield from _serve(infra, "notification",
                      lambda s: create_app(s, clock=ManualClock(FRIDAY_EVENING)),
                      lambda served, app: _agents())


@pytest.fixture(scope="module")
def reporting_api(infra: Any) -> Iterator[Api]:
    from services.reporting.app import create_app

    yield from _serve(infra, "reporting",
                      lambda s: create_app(s, clock=ManualClock(FRIDAY_EVENING)),
                      lambda served, app: [auth_headers("lecteur-indicateurs", None),
                                           auth_headers("superviseur", "91"),
                                           auth_headers("agent", "91")])


def _check(api: Api, case: Any) -> None:
    # call_and_validate raises on a failed check; the status is asserted here as well, so that
    # the promise (never a 5xx) reads in the test itself.
    response = case.call_and_validate(base_url=api.served.url, headers=api.headers(),
                                      checks=CHECKS, timeout=60)
    assert response.status_code < 500, (case.method, case.path, response.status_code)


def _document(module: str) -> Any:
    """The service's OpenAPI document, as its app serves it (building the app does no I/O)."""
    import importlib

    from shared.settings import Settings

    app = importlib.import_module(f"services.{module}.app").create_app(Settings())
    return schemathesis.openapi.from_dict(app.openapi())


signalement = _document("signalement")
orientation = _document("orientation")
notification = _document("notification")
reporting = _document("reporting")


@signalement.parametrize()
@HYPOTHESIS
def test_signalement_api_never_fails_on_any_input(case: Any, signalement_api: Api) -> None:
    _check(signalement_api, case)


@orientation.parametrize()
@HYPOTHESIS
def test_orientation_api_never_fails_on_any_input(case: Any, orientation_api: Api) -> None:
    _check(orientation_api, case)


@notification.parametrize()
@HYPOTHESIS
def test_notification_api_never_fails_on_any_input(case: Any, notification_api: Api) -> None:
    _check(notification_api, case)


@reporting.parametrize()
@HYPOTHESIS
def test_reporting_api_never_fails_on_any_input(case: Any, reporting_api: Api) -> None:
    _check(reporting_api, case)

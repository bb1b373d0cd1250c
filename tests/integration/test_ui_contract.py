"""API contract of the UI server (issue 15): schemathesis generates requests for every operation
of the OpenAPI document the server itself serves (real uvicorn over HTTPS on loopback, the
real audit agent behind it over mTLS), sends them signed in as the owner the route is for (an
edge owner for edge routes, a container owner otherwise) with that session's CSRF token, and
checks that no response is a server error and that every response conforms to the schema the
document declares for its status code. The examples are bounded (`EXAMPLES` per operation) so
the whole run stays within seconds.

Two operations are not fuzzed: ``GET /api/v1/events`` (a server-sent-event stream that does not
end; test_ui_api.py reads it) and ``DELETE /api/v1/session`` (it would sign the owner out under
the other operations; test_ui_security.py covers sign-out).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from agents.ui.access import ACCESS, EDGE
from tests.integration.ui_env import EDGE_JP, PASSWORD, POLICY, UiEnv, report_state

EXAMPLES = 12
NOT_FUZZED = {("GET", "/api/v1/events"), ("DELETE", "/api/v1/session")}
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def env(lab_pki, agent_config, run_agent_server, tmp_path) -> Iterator[UiEnv]:
    made = UiEnv(lab_pki, agent_config, run_agent_server, tmp_path)
    yield made
    made.close()


def signed_in(base: str, ca: str, username: str, kind: str) -> tuple[requests.Session, str]:
    """A session of a new owner (sign-up and sign-in through the API) and its CSRF token."""
    s = requests.Session()
    s.verify = ca
    s.trust_env = False  # REQUESTS_CA_BUNDLE would replace the lab CA
    anon = s.get(f"{base}/api/v1/csrf", timeout=10).json()["csrf_token"]
    r = s.post(f"{base}/api/v1/accounts", json={"username": username, "password": PASSWORD,
                                                "kind": kind},
               headers={"X-CSRF-Token": anon}, timeout=10)
    assert r.status_code == 201, r.text
    r = s.post(f"{base}/api/v1/session", json={"username": username, "password": PASSWORD},
               headers={"X-CSRF-Token": anon}, timeout=10)
    assert r.status_code == 200, r.text
    return s, str(r.json()["csrf_token"])


def fuzz(op: Any, session: requests.Session, csrf: str) -> set[int]:
    """Send `EXAMPLES` generated requests of one operation in ``session`` with its CSRF token,
    each checked (`CHECKS`); the status codes they got."""
    statuses: set[int] = set()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def run(case: schemathesis.Case) -> None:
        # verify: schemathesis passes its own (True, the system store) otherwise
        response = case.call_and_validate(session=session, checks=CHECKS,
                                          headers={"X-CSRF-Token": csrf}, timeout=10,
                                          verify=session.verify)
        statuses.add(response.status_code)

    run()
    assert statuses, f"no request sent for {op.method.upper()} {op.path}"
    return statuses


def test_every_operation_conforms_to_the_served_document(env: UiEnv) -> None:
    ca = str(env.pki.ca.cert_path)
    with env.serve() as base:
        schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json", verify=ca,
                                               timeout=10)
        edge, edge_csrf = signed_in(base, ca, "erin", "edge")
        container, container_csrf = signed_in(base, ca, "carl", "container")
        # something to find: an edge shared with the container owner, a container on it
        r = edge.post(f"{base}/api/v1/edges", json={"name": "Edge-jp", "region": "r1",
                                                    "attributes": EDGE_JP},
                      headers={"X-CSRF-Token": edge_csrf}, timeout=10)
        assert r.status_code == 201, r.text
        report_state(env, "Edge-jp")
        assert container.post(f"{base}/api/v1/share-keys/redeem",
                              json={"share_key": r.json()["share_key"]},
                              headers={"X-CSRF-Token": container_csrf},
                              timeout=10).status_code == 200
        assert container.post(f"{base}/api/v1/containers",
                              json={"name": "App1", "location": "Edge-jp",
                                    "requirements": POLICY},
                              headers={"X-CSRF-Token": container_csrf},
                              timeout=10).status_code == 201

        operations = [result.ok() for result in schema.get_all_operations()]
        routes = {(op.method.upper(), op.path) for op in operations}
        # the document lists exactly the API routes of the access table
        assert routes == {k for k in ACCESS if k[1].startswith("/api/v1/")} - {
            ("GET", "/api/v1/openapi.json")}
        sent: set[tuple[str, str]] = set()
        statuses: set[int] = set()
        for op in operations:
            route = (op.method.upper(), op.path)
            if route in NOT_FUZZED:
                continue
            level = ACCESS[route]
            session, csrf = ((edge, edge_csrf) if level == EDGE
                             else (container, container_csrf))

            statuses |= fuzz(op, session, csrf)
            sent.add(route)
        # every fuzzed route was exercised, and some requests got through to the handlers
        assert set(sent) == routes - NOT_FUZZED
        assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
        # the owners are still signed in (no generated request signed them out)
        assert container.get(f"{base}/api/v1/me", timeout=10).status_code == 200

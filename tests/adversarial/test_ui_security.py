"""Security of the UI server over the real audit agent: no cross-owner reads or writes, CSRF
refused, no session fixation, brute-force lockout, cookie flags, one access rule per route."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.routing import Mount

from agents.ui.access import ACCESS, CONTAINER, EDGE, PUBLIC, SIGNED_IN
from agents.ui.web import SESSION_COOKIE
from tests.integration.ui_env import EDGE_JP, PASSWORD, POLICY, UiEnv, sign_up_and_in


@pytest.fixture
def env(lab_pki, agent_config, run_agent_server, tmp_path) -> Iterator[UiEnv]:
    made = UiEnv(lab_pki, agent_config, run_agent_server, tmp_path, max_failed_logins=3,
                 lockout_s=60)
    yield made
    made.close()


def _audit_rows(env: UiEnv) -> tuple[list, list]:
    store = env.audit_service.store.store
    return (store.query("SELECT * FROM edges ORDER BY name"),
            store.query("SELECT * FROM containers ORDER BY name"))


def test_no_cross_owner_reads_or_writes(env):
    e1, e2, c1, c2 = env.client(), env.client(), env.client(), env.client()
    t_e1 = sign_up_and_in(e1, "edgy1", "edge")
    t_e2 = sign_up_and_in(e2, "edgy2", "edge")
    t_c1 = sign_up_and_in(c1, "alice", "container")
    t_c2 = sign_up_and_in(c2, "bob", "container")
    key = e1.post("/api/v1/edges", json={"name": "E1", "attributes": EDGE_JP},
                  headers={"X-CSRF-Token": t_e1}).json()["share_key"]
    e2.post("/api/v1/edges", json={"name": "E2", "attributes": EDGE_JP},
            headers={"X-CSRF-Token": t_e2})
    c1.post("/api/v1/share-keys/redeem", json={"share_key": key}, headers={"X-CSRF-Token": t_c1})
    c1.post("/api/v1/containers", json={"name": "AliceApp", "location": "E1",
                                        "requirements": POLICY}, headers={"X-CSRF-Token": t_c1})
    mid = c1.post("/api/v1/migrations", json={"container": "AliceApp", "edge": "E2"},
                  headers={"X-CSRF-Token": t_c1}).json()["id"]
    deadline = time.monotonic() + 10
    while c1.get(f"/api/v1/migrations/{mid}").json()["state"] == "auditing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert c1.get(f"/api/v1/migrations/{mid}").json()["message"].startswith("DENY: access")
    before = _audit_rows(env)
    log_before = env.audit_service.log.length

    attempts = {
        "bob reads alice's container": c2.get("/api/v1/containers/AliceApp"),
        "bob audits alice's container": c2.post("/api/v1/containers/AliceApp/decisions",
                                                json={"edge": "E1"},
                                                headers={"X-CSRF-Token": t_c2}),
        "bob migrates alice's container": c2.post("/api/v1/migrations",
                                                  json={"container": "AliceApp", "edge": "E1"},
                                                  headers={"X-CSRF-Token": t_c2}),
        "bob reads alice's migration": c2.get(f"/api/v1/migrations/{mid}"),
        "bob overwrites alice's container": c2.post(
            "/api/v1/containers", json={"name": "AliceApp", "requirements": {}},
            headers={"X-CSRF-Token": t_c2}),
        "edgy2 rotates edgy1's share key": e2.post("/api/v1/edges/E1/share-key",
                                                   headers={"X-CSRF-Token": t_e2}),
        "edgy2 registers over edgy1's edge": e2.post(
            "/api/v1/edges", json={"name": "E1", "attributes": EDGE_JP},
            headers={"X-CSRF-Token": t_e2}),
        "an edge owner registers a container": e1.post(
            "/api/v1/containers", json={"name": "X", "requirements": {}},
            headers={"X-CSRF-Token": t_e1}),
        "a container owner registers an edge": c1.post(
            "/api/v1/edges", json={"name": "E9", "attributes": EDGE_JP},
            headers={"X-CSRF-Token": t_c1}),
    }
    codes = {what: r.status_code for what, r in attempts.items()}
    assert all(code in (403, 404, 409) for code in codes.values()), codes
    # reads: bob sees none of alice's things, edgy2 none of edgy1's
    assert c2.get("/api/v1/containers").json() == []
    assert c2.get("/api/v1/edges").json() == []
    assert c2.get("/api/v1/migrations").json() == []
    assert [e["name"] for e in e2.get("/api/v1/edges").json()] == ["E2"]
    bob_log = c2.get("/api/v1/audit-log").json()["entries"]
    assert all(e["entry"]["owner"] == "ui:bob" for e in bob_log)
    assert all("AliceApp" not in str(e["entry"]) or e["kind"] == "request_refused"
               for e in bob_log)
    # writes: the audit agent's registry is unchanged (refused requests may be logged)
    assert _audit_rows(env) == before
    assert all(e.entry["kind"] == "request_refused"
               for e in env.audit_service.log.entries(start=log_before + 1))
    assert e1.get("/api/v1/edges").json()[0]["share_key"] == key


def test_csrf_is_required_on_every_state_change(env):
    c = env.client()
    token = sign_up_and_in(c, "carol", "container")
    other = env.client()
    other_token = sign_up_and_in(other, "dave", "container")
    body = {"name": "App", "requirements": {}}
    assert c.post("/api/v1/containers", json=body).status_code == 403
    assert c.post("/api/v1/containers", json=body,
                  headers={"X-CSRF-Token": other_token}).status_code == 403
    assert c.post("/api/v1/containers", json=body,
                  headers={"X-CSRF-Token": token[:-1] + "x"}).status_code == 403
    assert c.get("/api/v1/containers").json() == []  # nothing was registered
    # forms: a page POST without the hidden field is refused too
    assert c.post("/containers", data={"name": "App"}).status_code == 403
    assert c.post("/logout", data={}).status_code == 403
    assert c.get("/api/v1/me").status_code == 200  # still signed in
    # before sign-in: login and sign-up need the anon token bound to the anon cookie
    fresh = env.client()
    assert fresh.post("/api/v1/session", json={"username": "carol", "password": PASSWORD}
                      ).status_code == 403
    anon = fresh.get("/api/v1/csrf").json()["csrf_token"]
    stranger = env.client()
    stranger.get("/api/v1/csrf")
    assert stranger.post("/api/v1/session", json={"username": "carol", "password": PASSWORD},
                         headers={"X-CSRF-Token": anon}).status_code == 403
    assert fresh.post("/api/v1/session", json={"username": "carol", "password": PASSWORD},
                      headers={"X-CSRF-Token": anon}).status_code == 200
    assert c.post("/api/v1/containers", json=body,
                  headers={"X-CSRF-Token": token}).status_code == 201


def test_session_fixation_and_cookie_flags(env):
    victim = env.client()
    sign_up_and_in(victim, "vera", "container")
    planted = victim.cookies.get(SESSION_COOKIE)
    assert planted
    # the attacker knows a session id the victim's browser holds (planted or an old one);
    # signing in again must give a new id and close the old one
    anon = victim.get("/api/v1/csrf").json()["csrf_token"]
    r = victim.post("/api/v1/session", json={"username": "vera", "password": PASSWORD},
                    headers={"X-CSRF-Token": anon})
    assert r.status_code == 200
    fresh = victim.cookies.get(SESSION_COOKIE)
    assert fresh and fresh != planted
    attacker = env.client()
    attacker.cookies.set(SESSION_COOKIE, planted)
    assert attacker.get("/api/v1/me").status_code == 401
    # a made-up id in the cookie is never adopted either
    made_up = env.client()
    made_up.cookies.set(SESSION_COOKIE, "attacker-chosen-session-id")
    anon = made_up.get("/api/v1/csrf").json()["csrf_token"]
    r = made_up.post("/api/v1/session", json={"username": "vera", "password": PASSWORD},
                     headers={"X-CSRF-Token": anon})
    assert r.json()["username"] == "vera"
    issued = r.cookies.get(SESSION_COOKIE)
    assert issued and issued != "attacker-chosen-session-id"
    cookie = r.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert cookie.startswith("__host-efui_session=") and "path=/" in cookie
    # sign-out ends the session for good
    token = r.json()["csrf_token"]
    signed_in = env.client()
    signed_in.cookies.set(SESSION_COOKIE, issued)
    assert signed_in.get("/api/v1/me").json()["username"] == "vera"
    assert signed_in.delete("/api/v1/session", headers={"X-CSRF-Token": token}).status_code == 204
    replay = env.client()
    replay.cookies.set(SESSION_COOKIE, issued)
    assert replay.get("/api/v1/me").status_code == 401
    # the database stores no usable session id
    rows = env.store.query("SELECT digest FROM sessions")
    assert rows and all(row["digest"] not in (fresh, issued) for row in rows)


def test_brute_force_lockout(env):
    c = env.client()
    sign_up_and_in(c, "lena", "container")
    attacker = env.client()
    anon = attacker.get("/api/v1/csrf").json()["csrf_token"]

    def attempt(password: str) -> int:
        return attacker.post("/api/v1/session", json={"username": "lena", "password": password},
                             headers={"X-CSRF-Token": anon}).status_code

    assert [attempt(f"guess-{i}") for i in range(3)] == [401, 401, 401]
    assert attempt(PASSWORD) == 429  # locked: even the right password is refused
    later = env.state.accounts.clock
    env.state.accounts.clock = lambda: later() + 61
    assert attempt(PASSWORD) == 200
    # passwords are stored as scrypt hashes, never in the clear
    stored = env.store.query_one("SELECT password FROM accounts WHERE username = 'lena'")
    assert stored["password"].startswith("scrypt$16384$8$1$") and PASSWORD not in stored[
        "password"]


def _served(env: UiEnv) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves: its own routes, the routers it includes
    (FastAPI keeps them behind an included-router wrapper) and the static mount."""
    from agents.ui import api, pages

    served = set()
    for route in [*env.app.routes, *api.router.routes, *pages.router.routes]:
        if isinstance(route, Mount):
            served.add(("GET", route.path))
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and route.path not in ("/docs", "/redoc",
                                                       "/docs/oauth2-redirect"):
                served.add((method, route.path))
    return served


def test_every_route_has_an_access_rule_and_it_is_enforced(env):
    served = _served(env)
    assert served == set(ACCESS), (served ^ set(ACCESS))
    # the OpenAPI document (FastAPI's own view of the API routes) agrees
    doc = env.client().get("/api/v1/openapi.json").json()
    api_routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert api_routes and api_routes <= set(ACCESS)
    assert api_routes == {k for k in ACCESS if k[1].startswith("/api/v1/")} - {
        ("GET", "/api/v1/openapi.json")}
    # docs pages that would load scripts from elsewhere are not served
    assert env.client().get("/docs").status_code == 404

    anon, edge, cont = env.client(), env.client(), env.client()
    anon.get("/api/v1/csrf")
    tokens = {"edge": sign_up_and_in(edge, "eddie", "edge"),
              "container": sign_up_and_in(cont, "connie", "container")}
    allowed_for = {PUBLIC: {"anon", "edge", "container"}, SIGNED_IN: {"edge", "container"},
                   EDGE: {"edge"}, CONTAINER: {"container"}}
    refused = 0
    for (method, path), level in sorted(ACCESS.items()):
        if level == PUBLIC or path == "/api/v1/events":
            continue
        url = path.replace("{name}", "x").replace("{mid}", "1")
        for who, client in (("anon", anon), ("edge", edge), ("container", cont)):
            if who in allowed_for[level]:
                continue
            headers = {"X-CSRF-Token": tokens.get(who, "")}
            r = client.request(method, url, headers=headers, json={}, follow_redirects=False)
            if who == "anon" and method == "GET" and not path.startswith("/api/"):
                assert (r.status_code, r.headers["location"]) == (303, "/login"), path
            else:
                assert r.status_code == (401 if who == "anon" else 403), (method, path, who)
            refused += 1
    assert refused >= 40

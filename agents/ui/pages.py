"""The web UI: server-rendered pages (templates/) with plain HTML forms that post back here
(post/redirect/get); the status page refreshes itself from the server-sent events of
/api/v1/events (static/live.js). Access per route: `agents.ui.access`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from agents.audit.convert import (
    CONTAINER_ELEMENTS,
    EDGE_ELEMENT_DESCRIPTIONS,
    EDGE_ELEMENTS,
    ELEMENT_SPECS,
)
from agents.ui.accounts import AccountError, Kind
from agents.ui.api import open_session
from agents.ui.portal import PortalError
from agents.ui.web import (
    SESSION_COOKIE,
    render,
    require_session,
    session_of,
    set_cookie,
    state_of,
    utc,
)

router = APIRouter(include_in_schema=False)

_DONE = {"edge": "Edge registered.", "key": "New share key issued.",
         "redeemed": "Share key redeemed: the edge is now available to you.",
         "container": "Container registered.", "signup": "Account created: sign in.",
         "migration": "Migration started."}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _done(request: Request) -> str:
    return _DONE.get(request.query_params.get("done", ""), "")


@router.get("/")
def home(request: Request) -> Response:
    """Where a visitor starts: their main page when signed in, else the sign-in page."""
    session = session_of(request)
    if session is None:
        return _see_other("/login")
    return _see_other("/edges" if session.kind is Kind.EDGE else "/containers")


@router.get("/signup")
def signup_page(request: Request) -> Response:
    """The sign-up form."""
    return render(request, "signup.html")


@router.post("/signup")
async def signup(request: Request) -> Response:
    """Create an account, then go to the sign-in page."""
    form = await _form(request)
    try:
        state_of(request).accounts.sign_up(form.get("username", "")[:64],
                                           form.get("password", "")[:256], form.get("kind", ""))
    except AccountError as err:
        return render(request, "signup.html", 400, error=str(err), form=form)
    return _see_other("/login?done=signup")


@router.get("/login")
def login_page(request: Request) -> Response:
    """The sign-in form."""
    return render(request, "login.html", message=_done(request))


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in: a new session id in a new cookie, then the owner's main page."""
    form = await _form(request)
    try:
        session = open_session(request, form.get("username", ""), form.get("password", ""))
    except HTTPException as err:
        return render(request, "login.html", err.status_code, error=str(err.detail))
    response = _see_other("/edges" if session.kind is Kind.EDGE else "/containers")
    set_cookie(response, SESSION_COOKIE, session.sid,
               max_age=int(state_of(request).accounts.session_ttl_s))
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """Sign out."""
    state_of(request).accounts.sign_out(require_session(request).sid)
    response = _see_other("/login")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")
    return response


def _edges_page(request: Request, status: int = 200, error: str = "",
                form: dict[str, str] | None = None) -> Response:
    owner = require_session(request).username
    try:
        edges = state_of(request).portal.edges(owner)
    except PortalError as err:
        edges, error = [], error or str(err)
    return render(request, "edges.html", status, edges=edges, error=error, form=form or {},
                  elements=[(e, EDGE_ELEMENT_DESCRIPTIONS[e]) for e in EDGE_ELEMENTS],
                  message=_done(request))


@router.get("/edges")
def edges_page(request: Request) -> Response:
    """An edge owner's edges, their share keys and the registration form."""
    return _edges_page(request)


@router.post("/edges")
async def register_edge(request: Request) -> Response:
    """Register an edge from the form."""
    form = await _form(request)
    attrs = {e: form.get(e, "") for e in EDGE_ELEMENTS}
    try:
        state_of(request).portal.register_edge(
            require_session(request).username, form.get("name", ""), attrs,
            region=form.get("region", ""), address=form.get("address", ""))
    except PortalError as err:
        return _edges_page(request, err.status, str(err), form)
    return _see_other("/edges?done=edge")


@router.post("/edges/{name}/share-key")
def rotate(name: str, request: Request) -> Response:
    """A new share key for one of the owner's edges."""
    try:
        state_of(request).portal.rotate_share_key(require_session(request).username, name[:64])
    except PortalError as err:
        return _edges_page(request, err.status, str(err))
    return _see_other("/edges?done=key")


def _containers_page(request: Request, status: int = 200, error: str = "",
                     form: dict[str, str] | None = None) -> Response:
    owner = require_session(request).username
    portal = state_of(request).portal
    try:
        containers, edges = portal.containers(owner), portal.edges(owner)
    except PortalError as err:
        containers, edges, error = [], [], error or str(err)
    return render(request, "containers.html", status, containers=containers, edges=edges,
                  error=error, form=form or {}, message=_done(request),
                  elements=[(e, ELEMENT_SPECS[e]) for e in CONTAINER_ELEMENTS])


@router.get("/containers")
def containers_page(request: Request) -> Response:
    """A container owner's containers, usable edges, and the share-key / policy forms."""
    return _containers_page(request)


@router.post("/containers")
async def register_container(request: Request) -> Response:
    """Register a container policy from the form."""
    form = await _form(request)
    reqs = {e: form.get(e, "") for e in CONTAINER_ELEMENTS}
    try:
        state_of(request).portal.register_container(
            require_session(request).username, form.get("name", ""), reqs,
            location=form.get("location", ""))
    except PortalError as err:
        return _containers_page(request, err.status, str(err), form)
    return _see_other("/containers?done=container")


@router.post("/share-keys/redeem")
async def redeem(request: Request) -> Response:
    """Redeem a share key from the form."""
    form = await _form(request)
    try:
        state_of(request).portal.redeem_share_key(require_session(request).username,
                                                  form.get("share_key", ""))
    except PortalError as err:
        return _containers_page(request, err.status, str(err))
    return _see_other("/containers?done=redeemed")


@router.get("/decide")
def decide_page(request: Request) -> Response:
    """The form asking for a decision table."""
    owner = require_session(request).username
    names = state_of(request).portal.container_names(owner)
    return render(request, "decide.html", containers=names, decision=None, form={})


@router.post("/decide")
async def decide(request: Request) -> Response:
    """The per-element decision table of a container against an edge."""
    form = await _form(request)
    owner = require_session(request).username
    portal = state_of(request).portal
    names = portal.container_names(owner)
    try:
        decision = portal.decide(owner, form.get("container", ""), form.get("edge", ""))
    except PortalError as err:
        return render(request, "decide.html", err.status, containers=names, decision=None,
                      form=form, error=str(err))
    return render(request, "decide.html", containers=names, decision=decision, form=form)


@router.post("/migrations")
async def start_migration(request: Request) -> Response:
    """Start a migration to a named edge, a region or any edge (the form's ``kind``; the
    field of another kind is ignored), then watch it on the status page."""
    form = await _form(request)
    st = state_of(request)
    kind = form.get("kind", "edge")[:16]
    try:
        st.migrations.start(require_session(request).username, form.get("container", ""),
                            form.get("edge", "")[:256] if kind == "edge" else "", kind=kind,
                            region=form.get("region", "")[:256] if kind == "region" else "")
    except PortalError as err:
        return _containers_page(request, err.status, str(err))
    return _see_other("/status?done=migration")


def _status_context(request: Request) -> dict[str, Any]:
    session = require_session(request)
    st = state_of(request)
    error = ""
    try:
        edges = st.portal.edges(session.username)
        containers = (st.portal.containers(session.username)
                      if session.kind is Kind.CONTAINER else [])
    except PortalError as err:
        edges, containers, error = [], [], str(err)
    return {"edges": edges, "containers": containers, "error": error,
            "migrations": st.migrations.of(session.username)}


@router.get("/status")
def status_page(request: Request) -> Response:
    """Edges, containers and migrations; refreshed live by static/live.js."""
    return render(request, "status.html", message=_done(request), **_status_context(request))


@router.get("/status/live")
def status_fragment(request: Request) -> Response:
    """The live part of the status page (what live.js swaps in on every event)."""
    return render(request, "status_live.html", **_status_context(request))


def log_summary(entry: dict[str, Any]) -> str:
    """One line for an audit-log entry: a decision as its verdict and failing elements, other
    entries as their fields."""
    if entry.get("kind") == "decision" and isinstance(entry.get("decision"), dict):
        d = entry["decision"]
        failing = sorted({str(c.get("element")) for t in d.get("tries", [])
                          for c in t.get("checks", [])
                          if c.get("constrained") and not c.get("held")})
        verdict = f"PERMIT to {d.get('chosen')}" if d.get("permit") else \
            "DENY" + (f" (failing: {', '.join(failing)})" if failing else "")
        return f"{d.get('container')} to {d.get('mode')} {d.get('target')}: {verdict}"
    skip = ("kind", "owner", "caller", "requirements", "attributes")
    return "; ".join(f"{k}={v}" for k, v in entry.items() if k not in skip)[:300]


@router.get("/audit-log")
def audit_log_page(request: Request) -> Response:
    """The owner's audit-log entries and the verification of the whole chain."""
    owner = require_session(request).username
    raw = request.query_params.get("start", "1")
    start = int(raw) if raw.isdigit() and len(raw) < 18 else 1
    try:
        page = state_of(request).portal.audit_log(owner, start, 50)
    except PortalError as err:
        return render(request, "audit_log.html", err.status, page=None, error=str(err))
    rows = [{"seq": e["seq"], "time": utc(float(e["ts"])), "kind": e["kind"],
             "caller": e["entry"].get("caller", ""), "summary": log_summary(e["entry"]),
             "mac": e["mac"]} for e in page.entries]
    return render(request, "audit_log.html", page=page, rows=rows)

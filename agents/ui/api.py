"""The REST API, /api/v1: the same operations as the pages, as JSON.

Clients first GET /api/v1/csrf (sets the anon cookie), sign up (POST /accounts) and sign in
(POST /session, which sets the session cookie and returns the session's CSRF token); every
later POST/DELETE carries that token in ``X-CSRF-Token``. Access per route: `agents.ui.access`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from agents.ui.accounts import AccountError, LockedOut
from agents.ui.web import (
    SESSION_COOKIE,
    csrf_token,
    remember_anon,
    require_session,
    set_cookie,
    state_of,
)

router = APIRouter(prefix="/api/v1", tags=["v1"])

_Name = Field(min_length=1, max_length=64)
_Text = Field(default="", max_length=256)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignUp(_Strict):
    """A new account."""

    username: str = Field(min_length=3, max_length=32)
    password: str = Field(min_length=10, max_length=128)
    kind: str = Field(pattern="^(edge|container)$")


class SignIn(_Strict):
    """Credentials."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)


class EdgeIn(_Strict):
    """An edge and its Table 2 attributes (element name -> text, as the CLI takes them)."""

    name: str = _Name
    region: str = _Text
    address: str = _Text
    attributes: dict[str, str] = Field(default_factory=dict, max_length=32)


class ContainerIn(_Strict):
    """A container and its Table 1 requirements (absent: unconstrained)."""

    name: str = _Name
    location: str = _Text
    requirements: dict[str, str] = Field(default_factory=dict, max_length=32)


class ShareKeyIn(_Strict):
    """A share key to redeem."""

    share_key: str = Field(min_length=1, max_length=128)


class DecisionIn(_Strict):
    """The edge to audit the container against."""

    edge: str = _Name


class MigrationIn(_Strict):
    """A migration to a named edge (``kind`` edge, the default), to the first edge the audit
    permits in a region (``kind`` region, with ``region``), or to any edge (``kind`` any)."""

    container: str = _Name
    kind: str = Field(default="edge", max_length=16, description="edge, region or any")
    edge: str = Field(default="", max_length=64, description="kind edge: the edge")
    region: str = Field(default="", max_length=64, description="kind region: the region")


@router.get("/csrf")
def get_csrf(request: Request) -> JSONResponse:
    """The CSRF token to send in ``X-CSRF-Token`` (before sign-in: bound to the anon cookie)."""
    return remember_anon(request, JSONResponse({"csrf_token": csrf_token(request)}))  # type: ignore[return-value]


@router.post("/accounts", status_code=201)
def sign_up(body: SignUp, request: Request) -> dict[str, str]:
    """Create an edge-owner or container-owner account."""
    try:
        state_of(request).accounts.sign_up(body.username, body.password, body.kind)
    except AccountError as err:
        raise HTTPException(400, str(err)) from None
    return {"username": body.username, "kind": body.kind}


def open_session(request: Request, username: str, password: str) -> Any:
    """Sign in (IP limit, account lockout); the new session, whose id replaces any other."""
    st = state_of(request)
    client = request.client.host if request.client else "?"
    if st.limiter.blocked(client):
        raise HTTPException(429, "too many failed sign-ins from this address; wait a while")
    try:
        return st.accounts.sign_in(username, password,
                                   previous_sid=request.cookies.get(SESSION_COOKIE, ""))
    except LockedOut as err:
        raise HTTPException(429, str(err)) from None
    except AccountError as err:
        st.limiter.failed(client)
        raise HTTPException(401, str(err)) from None


@router.post("/session")
def sign_in(body: SignIn, request: Request) -> JSONResponse:
    """Sign in; sets the session cookie and returns the session's CSRF token."""
    session = open_session(request, body.username, body.password)
    response = JSONResponse({"username": session.username, "kind": session.kind.value,
                             "csrf_token": session.csrf})
    set_cookie(response, SESSION_COOKIE, session.sid,
               max_age=int(state_of(request).accounts.session_ttl_s))
    return response


@router.delete("/session", status_code=204)
def sign_out(request: Request) -> JSONResponse:
    """Sign out (the session id stops working)."""
    state_of(request).accounts.sign_out(require_session(request).sid)
    response = JSONResponse(None, status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")
    return response


@router.get("/me")
def me(request: Request) -> dict[str, str]:
    """Who is signed in."""
    s = require_session(request)
    return {"username": s.username, "kind": s.kind.value}


@router.get("/edges")
def list_edges(request: Request) -> list[dict[str, Any]]:
    """Edges the owner may use (owned ones with their share key)."""
    return [asdict(e) for e in state_of(request).portal.edges(require_session(request).username)]


@router.post("/edges", status_code=201)
def register_edge(body: EdgeIn, request: Request) -> dict[str, str]:
    """Register an edge; returns its share key."""
    key = state_of(request).portal.register_edge(
        require_session(request).username, body.name, body.attributes, region=body.region,
        address=body.address)
    return {"edge": body.name, "share_key": key}


@router.post("/edges/{name}/share-key")
def rotate_share_key(name: str, request: Request) -> dict[str, str]:
    """A new share key for an owned edge."""
    key = state_of(request).portal.rotate_share_key(require_session(request).username, name[:64])
    return {"edge": name, "share_key": key}


@router.post("/share-keys/redeem")
def redeem(body: ShareKeyIn, request: Request) -> dict[str, str]:
    """Redeem a share key; the edge becomes usable by the owner."""
    edge = state_of(request).portal.redeem_share_key(require_session(request).username,
                                                    body.share_key)
    return {"edge": edge}


@router.get("/containers")
def list_containers(request: Request) -> list[dict[str, Any]]:
    """The owner's containers with their policies and locations."""
    portal = state_of(request).portal
    return [asdict(c) for c in portal.containers(require_session(request).username)]


@router.post("/containers", status_code=201)
def register_container(body: ContainerIn, request: Request) -> dict[str, Any]:
    """Register a container with its policy (validated with the CLI's messages)."""
    view = state_of(request).portal.register_container(
        require_session(request).username, body.name, body.requirements, location=body.location)
    return asdict(view)


@router.get("/containers/{name}")
def get_container(name: str, request: Request) -> dict[str, Any]:
    """One of the owner's containers."""
    return asdict(state_of(request).portal.container(require_session(request).username, name))


@router.post("/containers/{name}/decisions")
def decide(name: str, body: DecisionIn, request: Request) -> dict[str, Any]:
    """The per-element audit of the container against one edge (recorded in the audit log)."""
    view = state_of(request).portal.decide(require_session(request).username, name, body.edge)
    return {**asdict(view), "failing": list(view.failing)}


@router.post("/migrations", status_code=202)
def start_migration(body: MigrationIn, request: Request) -> dict[str, object]:
    """Start migrating a container to a named edge (audited first), or to a region or any
    edge (the SMF asks the audit for the order of tries; each is in the answer's ``tries``);
    progress in /events."""
    st = state_of(request)
    return st.migrations.start(require_session(request).username, body.container, body.edge,
                               kind=body.kind, region=body.region).as_dict()


@router.get("/migrations")
def list_migrations(request: Request) -> list[dict[str, object]]:
    """The owner's migrations, newest first."""
    st = state_of(request)
    return [m.as_dict() for m in st.migrations.of(require_session(request).username)]


@router.get("/migrations/{mid}")
def get_migration(mid: int, request: Request) -> dict[str, object]:
    """One of the owner's migrations."""
    return state_of(request).migrations.get(require_session(request).username, mid).as_dict()


@router.get("/audit-log")
def audit_log(request: Request, start: int = Query(1, ge=0, le=2**62),
              limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
    """A page of the owner's audit-log entries and the verification of the whole chain."""
    return asdict(state_of(request).portal.audit_log(require_session(request).username, start,
                                                     limit))


@router.get("/events")
async def events(request: Request) -> StreamingResponse:
    """Server-sent events: a ``status`` event with the owner's migrations at once and after
    every change (checked every 0.25 s), a comment every 15 s to keep the stream open."""
    st = state_of(request)
    session = require_session(request)
    owner = session.username

    async def stream() -> AsyncIterator[str]:
        seen, idle = -1, 0.0
        while not await request.is_disconnected():
            version = st.changes.version(owner)
            if version != seen:
                seen, idle = version, 0.0
                data = {"version": version,
                        "migrations": [m.as_dict() for m in st.migrations.of(owner)]}
                yield f"event: status\ndata: {json.dumps(data)}\n\n"
            elif idle >= 15:
                if st.accounts.session(session.sid) is None:
                    return  # signed out meanwhile
                idle = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(0.25)
            idle += 0.25

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

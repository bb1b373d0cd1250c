"""The UI server's web layer: one FastAPI app with the REST API (`agents.ui.api`, under
/api/v1) and the server-rendered pages (`agents.ui.pages`), both over `Portal` and `Accounts`.

Every request passes `guard`: the route's access level from `agents.ui.access` (no entry:
refused), the session from the ``__Host-efui_session`` cookie (Secure, HttpOnly,
SameSite=Strict), and for every state-changing method a CSRF token (header ``X-CSRF-Token`` or
form field ``csrf_token``) equal to the session's, or before sign-in to the HMAC of the
``__Host-efui_anon`` cookie. Bodies over `MAX_BODY` bytes are refused; responses carry a strict
Content-Security-Policy (no inline script: the only script is static/live.js).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from agents.ui.access import CONTAINER, EDGE, PUBLIC, rule_of
from agents.ui.accounts import Accounts, Kind, Session, csrf_matches
from agents.ui.migrations import Changes, Migrations
from agents.ui.portal import Portal, PortalError

SESSION_COOKIE = "__Host-efui_session"
ANON_COOKIE = "__Host-efui_anon"
MAX_BODY = 64 * 1024
_HERE = Path(__file__).parent
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000",
}


class IpLimiter:
    """At most ``limit`` failed sign-ins per client address in ``window`` seconds (bounded)."""

    def __init__(self, limit: int = 30, window: float = 300.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_clients, self.clock = limit, window, max_clients, clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        """True while ``client`` is over its limit."""
        with self._lock:
            hits = self._seen.get(client)
            now = self.clock()
            while hits and hits[0] < now - self.window:
                hits.popleft()
            return hits is not None and len(hits) >= self.limit

    def failed(self, client: str) -> None:
        """Count one failed sign-in of ``client``."""
        with self._lock:
            if client not in self._seen and len(self._seen) >= self.max_clients:
                self._seen.pop(next(iter(self._seen)))
            self._seen.setdefault(client, deque(maxlen=self.limit)).append(self.clock())


@dataclass
class UiState:
    """Everything the routes use."""

    accounts: Accounts
    portal: Portal
    migrations: Migrations
    changes: Changes
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    limiter: IpLimiter = field(default_factory=IpLimiter)
    #: Measured render times of pages (path template -> seconds), last 200 per page.
    render_times: dict[str, deque[float]] = field(default_factory=dict)

    def anon_csrf(self, anon: str) -> str:
        """The CSRF token of a browser that is not signed in (from its anon cookie)."""
        return hmac.new(self.secret, b"efui-anon\0" + anon.encode(), hashlib.sha256).hexdigest()


def utc(ts: float) -> str:
    """Unix time as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def state_of(request: Request) -> UiState:
    """The app's UiState."""
    st: UiState = request.app.state.ui
    return st


def session_of(request: Request) -> Session | None:
    """The request's live session, if any (set by `guard`)."""
    found: Session | None = getattr(request.state, "session", None)
    return found


def require_session(request: Request) -> Session:
    """The request's session (the guard already refused anonymous callers where needed)."""
    found = session_of(request)
    if found is None:
        raise HTTPException(401, "sign in first")
    return found


async def guard(request: Request) -> None:
    """Access level, session and CSRF check of every request (see the module doc)."""
    st = state_of(request)
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    level = rule_of(request.method, path) if path else None
    if level is None:
        raise HTTPException(403, "no access rule for this route")
    session = st.accounts.session(request.cookies.get(SESSION_COOKIE, ""))
    request.state.session = session
    if level != PUBLIC:
        if session is None:
            raise HTTPException(401, "sign in first")
        if level == EDGE and session.kind is not Kind.EDGE:
            raise HTTPException(403, "only edge owners may do this")
        if level == CONTAINER and session.kind is not Kind.CONTAINER:
            raise HTTPException(403, "only container owners may do this")
    if request.method in _UNSAFE:
        given = request.headers.get("x-csrf-token")
        if given is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
        if session is not None:
            expected = session.csrf
        else:
            anon = request.cookies.get(ANON_COOKIE, "")
            expected = st.anon_csrf(anon) if anon else ""
        if not expected or not csrf_matches(expected, given):
            raise HTTPException(403, "CSRF token missing or wrong; reload the page")


def csrf_token(request: Request) -> str:
    """The token forms and API clients must send back (`remember_anon` sets the anon cookie
    of a browser that had none)."""
    session = session_of(request)
    if session is not None:
        return session.csrf
    anon = request.cookies.get(ANON_COOKIE) or getattr(request.state, "new_anon", "")
    if not anon:
        anon = secrets.token_urlsafe(24)
        request.state.new_anon = anon
    return state_of(request).anon_csrf(anon)


def remember_anon(request: Request, response: Response) -> Response:
    """Set the anon cookie `csrf_token` created for this request, if it did."""
    anon = getattr(request.state, "new_anon", "")
    if anon:
        set_cookie(response, ANON_COOKIE, anon, max_age=3600)
    return response


def set_cookie(response: Response, name: str, value: str, *, max_age: int) -> None:
    """A Secure, HttpOnly, SameSite=Strict cookie on path /."""
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True,
                        samesite="strict")


def portal_errors(request: Request, exc: PortalError) -> JSONResponse:
    """A refused portal call as JSON ``{"detail": ...}`` with its HTTP status."""
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


async def http_errors(request: Request, exc: HTTPException) -> Response:
    """JSON ``{"detail": ...}`` for the API; a page visit without a session goes to sign-in,
    other refusals of pages show the message as plain text."""
    if not request.url.path.startswith("/api/"):
        if exc.status_code == 401 and request.method == "GET":
            return RedirectResponse("/login", status_code=303)
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code,
                                 headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(state: UiState) -> FastAPI:
    """The UI server's ASGI app over ``state``."""
    from agents.ui import api, pages

    app = FastAPI(title="edgeferry UI server", version="1",
                  description="Seed 002's data-audit cloud: edges, containers, decisions, "
                              "migrations and the audit log, per signed-in owner.",
                  openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None,
                  dependencies=[Depends(guard)])
    app.state.ui = state
    app.state.templates = Jinja2Templates(directory=str(_HERE / "templates"))
    app.state.templates.env.filters["utc"] = utc
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    app.add_exception_handler(PortalError, portal_errors)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_errors)  # type: ignore[arg-type]

    @app.middleware("http")
    async def limits_and_headers(request: Request,
                                 call_next: Callable[[Request], Awaitable[Response]]
                                 ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"},
                                status_code=413)
        if request.url.path.startswith("/static/") and request.method not in ("GET", "HEAD"):
            return JSONResponse({"detail": "no access rule for this route"}, status_code=403)
        t0 = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - t0
        route = request.scope.get("route")
        if route is not None and response.headers.get("content-type", "").startswith(
                "text/html"):
            times = state.render_times.setdefault(getattr(route, "path", "?"), deque(maxlen=200))
            times.append(elapsed)
        for k, v in _HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    return app


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """A page from ``templates/`` with the session and CSRF token in its context."""
    templates: Jinja2Templates = request.app.state.templates
    token = csrf_token(request)
    response = templates.TemplateResponse(
        request, template, {"session": session_of(request), "csrf": token, "error": "",
                            **context}, status_code=status)
    return remember_anon(request, response)

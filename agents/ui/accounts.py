"""Owner accounts of the UI server: sign-up, sign-in with lockout, sessions and CSRF tokens.

No web framework here: `agents.ui.web` maps HTTP to these calls. Passwords are hashed with
scrypt (hashlib; N=2**14, r=8, p=1, 16-byte salt); session ids are 256-bit random values of
which only the SHA-256 digest is stored, so a copy of the database opens no session. Every
session carries its own CSRF token; a sign-in always creates a new session id (the id a browser
held before is never promoted), and N failed sign-ins in a row lock the account for a while.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from agents.common.store import Store

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")
MIN_PASSWORD, MAX_PASSWORD = 10, 128
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
#: Most sessions one account may hold (the oldest are dropped beyond it).
MAX_SESSIONS_PER_USER = 8
MAX_ACCOUNTS = 10_000

_SCHEMA = [
    """
    CREATE TABLE accounts (username TEXT PRIMARY KEY, kind TEXT NOT NULL,
                           password TEXT NOT NULL, created REAL NOT NULL);
    CREATE TABLE sessions (digest TEXT PRIMARY KEY, username TEXT NOT NULL, csrf TEXT NOT NULL,
                           created REAL NOT NULL, seen REAL NOT NULL);
    CREATE INDEX sessions_user ON sessions (username);
    CREATE TABLE failures (username TEXT PRIMARY KEY, count INTEGER NOT NULL,
                           locked_until REAL NOT NULL, last REAL NOT NULL);
    """,
]


class Kind(Enum):
    """What an account owns: edges (and their share keys) or containers (and their policies)."""

    EDGE = "edge"
    CONTAINER = "container"


class AccountError(Exception):
    """A sign-up or sign-in refused; ``str(err)`` is one line for the user."""


class LockedOut(AccountError):
    """Too many failed sign-ins: the account is locked for ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed sign-ins; try again in {int(retry_after) + 1} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Session:
    """A signed-in browser or API client: ``sid`` is what the cookie holds (never stored)."""

    sid: str
    username: str
    kind: Kind
    csrf: str


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The scrypt hash of ``password`` as ``scrypt$N$r$p$salt$hash`` (hex)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, want = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n),
                             r=int(r), p=int(p), maxmem=64 * 1024 * 1024, dklen=32)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), want)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii", "replace")).hexdigest()


def check_username(username: str) -> str:
    """The user name, or AccountError saying what a valid one looks like."""
    if not USERNAME_RE.match(username):
        raise AccountError("user name: 3-32 of lower-case letters, digits and . _ - "
                           "(starting with a letter or digit)")
    return username


def check_password(password: str) -> str:
    """The password, or AccountError when it is too short or too long."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"password: {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    return password


_DUMMY_HASH = hash_password("not-a-password", salt=b"\0" * 16)


class Accounts:
    """Accounts, sessions and failed sign-ins in the UI server's SQLite database."""

    def __init__(self, store: Store, *, session_ttl_s: float = 8 * 3600,
                 max_failures: int = 5, lockout_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.session_ttl_s = session_ttl_s
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.clock = clock
        store.migrate("ui-accounts", _SCHEMA)

    # -- accounts -------------------------------------------------------------------------------
    def sign_up(self, username: str, password: str, kind: str) -> None:
        """Create an account of ``kind`` ("edge" or "container")."""
        check_username(username)
        check_password(password)
        try:
            owned = Kind(kind)
        except ValueError:
            raise AccountError("kind: edge or container") from None
        if self.store.query_one("SELECT 1 FROM accounts WHERE username = ?", (username,)):
            raise AccountError(f"user name {username!r} is taken")
        count = self.store.query_one("SELECT COUNT(*) AS n FROM accounts")
        if count is not None and int(count["n"]) >= MAX_ACCOUNTS:
            raise AccountError("this UI server has reached its account limit")
        self.store.execute("INSERT INTO accounts VALUES (?, ?, ?, ?)",
                           (username, owned.value, hash_password(password), self.clock()))

    def sign_in(self, username: str, password: str, *, previous_sid: str = "") -> Session:
        """Check the password and open a new session (``previous_sid``, if any, is closed).

        Raises LockedOut while the account is locked and AccountError for a wrong name or
        password (the same message for both; a hash is computed either way)."""
        now = self.clock()
        name = username[:64]
        fail = self.store.query_one("SELECT count, locked_until FROM failures WHERE username = ?",
                                    (name,))
        if fail is not None and float(fail["locked_until"]) > now:
            raise LockedOut(float(fail["locked_until"]) - now)
        row = self.store.query_one("SELECT kind, password FROM accounts WHERE username = ?",
                                   (name,))
        ok = verify_password(password[:MAX_PASSWORD], row["password"] if row else _DUMMY_HASH)
        if row is None or not ok:
            self._failed(name, now, int(fail["count"]) if fail is not None else 0)
            raise AccountError("wrong user name or password")
        self.store.execute("DELETE FROM failures WHERE username = ?", (name,))
        if previous_sid:
            self.sign_out(previous_sid)
        return self._open(name, Kind(row["kind"]), now)

    def _failed(self, name: str, now: float, count: int) -> None:
        count += 1
        locked = now + self.lockout_s if count >= self.max_failures else 0.0
        with self.store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)",
                       (name, 0 if locked else count, locked, now))
            # bounded: forget the oldest unlocked failure records beyond 10000
            db.execute("DELETE FROM failures WHERE username IN (SELECT username FROM failures "
                       "WHERE locked_until < ? ORDER BY last DESC LIMIT -1 OFFSET 10000)", (now,))

    def _open(self, name: str, kind: Kind, now: float) -> Session:
        sid = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        with self.store.transaction() as db:
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                       (_digest(sid), name, csrf, now, now))
            db.execute("DELETE FROM sessions WHERE username = ? AND digest NOT IN (SELECT digest "
                       "FROM sessions WHERE username = ? ORDER BY created DESC LIMIT ?)",
                       (name, name, MAX_SESSIONS_PER_USER))
            db.execute("DELETE FROM sessions WHERE seen < ?", (now - self.session_ttl_s,))
        return Session(sid, name, kind, csrf)

    # -- sessions -------------------------------------------------------------------------------
    def session(self, sid: str) -> Session | None:
        """The live session of cookie value ``sid``, or None (unknown, expired or bad)."""
        if not sid or len(sid) > 128:
            return None
        row = self.store.query_one(
            "SELECT s.username, s.csrf, s.seen, a.kind FROM sessions s JOIN accounts a "
            "ON a.username = s.username WHERE s.digest = ?", (_digest(sid),))
        now = self.clock()
        if row is None or float(row["seen"]) < now - self.session_ttl_s:
            return None
        if now - float(row["seen"]) > 60:
            self.store.execute("UPDATE sessions SET seen = ? WHERE digest = ?",
                               (now, _digest(sid)))
        return Session(sid, str(row["username"]), Kind(row["kind"]), str(row["csrf"]))

    def sign_out(self, sid: str) -> None:
        """Close the session of ``sid`` (nothing happens for an unknown one)."""
        self.store.execute("DELETE FROM sessions WHERE digest = ?", (_digest(sid),))


def csrf_matches(expected: str, given: str | None) -> bool:
    """True when the request's CSRF token equals the session's (constant time)."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())

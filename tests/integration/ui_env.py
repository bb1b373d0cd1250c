"""A UI server over the real audit agent (gRPC + mTLS on loopback) for the UI tests.

`UiEnv` starts the audit agent with an owner-token key, connects a `GrpcBackend` to it with a
lab-CA certificate of role ui (``ui.localhost``), and builds the UI's app on a fresh SQLite
database. `client()` gives a TestClient on https://testserver; `serve()` runs the app in real
uvicorn over HTTPS on 127.0.0.1 (for the browser and the server-sent-events tests).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi.testclient import TestClient

from agents.audit.agent import setup_audit
from agents.audit.client import AuditClient
from agents.common.config import AgentConfig
from agents.common.server import AgentServer
from agents.common.store import Store
from agents.ui.agent import UiSettings, build_state
from agents.ui.backend import GrpcBackend
from agents.ui.web import UiState, create_app

PASSWORD = "correct horse battery"


class UiEnv:
    """The audit agent, the UI's state and app (see the module doc)."""

    def __init__(self, lab_pki: Any, agent_config: Callable[..., AgentConfig],
                 run_agent_server: Callable[..., AgentServer], tmp_path: Path,
                 **settings: Any) -> None:
        self.key = secrets.token_bytes(32)
        key_path = tmp_path / "owner-token.key"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, self.key)
        os.close(fd)
        config = agent_config(name="audit", **{"settings.owner_token_key": str(key_path)})
        holder: dict[str, Any] = {}
        self.audit_server = run_agent_server(
            config, lambda s: holder.update(service=setup_audit(s, config)))
        self.audit_service = holder["service"]
        self.pki = lab_pki
        self.cert = lab_pki.issue("ui.localhost")
        self.audit = AuditClient(lab_pki.channel(self.audit_server.port, self.cert))
        self.settings = UiSettings(audit_address=f"127.0.0.1:{self.audit_server.port}",
                                   owner_token_key=key_path, **settings)
        self.store = Store.open(tmp_path / "ui" / "ui.sqlite3")
        self.state: UiState = build_state(self.store, GrpcBackend(self.audit, self.key),
                                          self.settings)
        self.app = create_app(self.state)

    def close(self) -> None:
        self.audit.close()
        self.store.close()

    def client(self) -> TestClient:
        """A TestClient on https://testserver (Secure cookies are sent back)."""
        return TestClient(self.app, base_url="https://testserver")

    def serve(self) -> AbstractContextManager[str]:
        """Run the app in uvicorn over HTTPS on 127.0.0.1; yields its base URL."""
        return serve_https(self.app, self.cert)


@contextmanager
def serve_https(app: Any, cert: Any) -> Iterator[str]:
    """Run ``app`` in uvicorn over HTTPS (``cert``: an issued lab-CA certificate) on
    127.0.0.1; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(
        app, ssl_certfile=str(cert.cert_path), ssl_keyfile=str(cert.key_path),
        log_level="warning", access_log=False, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"https://localhost:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def sign_up_and_in(client: TestClient, username: str, kind: str,
                   password: str = PASSWORD) -> str:
    """Create an account through the API and sign in; the session's CSRF token."""
    anon = client.get("/api/v1/csrf").json()["csrf_token"]
    r = client.post("/api/v1/accounts", json={"username": username, "password": password,
                                              "kind": kind}, headers={"X-CSRF-Token": anon})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/session", json={"username": username, "password": password},
                    headers={"X-CSRF-Token": anon})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


#: Edge attributes of the tests: Edge-jp permits the tests' policy, Edge-kr violates cDAl.
EDGE_JP = {"eDAl": "jp", "eDAo": "caA", "eHRh": "hA", "eHRt": "docker", "eHRc": "2.4",
           "eHRm": "8", "eHRgpu": "yes", "eHRac": "camera", "eHRaf": "tensorflow"}
EDGE_KR = {**EDGE_JP, "eDAl": "kr"}
#: A policy naming every Table 1 element.
POLICY = {"cDAl": "jp,us,fr", "cDAo": "-caB", "cHRh": "*", "cHRt": "docker", "cHRcu": "90",
          "cHRmu": "90", "cHRc": "1.6", "cHRm": "4", "cHRgpu": "yes", "cHRac": "camera",
          "cHRaf": "tensorflow"}


def report_state(env: UiEnv, edge: str, cpu: float = 20.0, memory: float = 30.0) -> None:
    """What the monitor would record for ``edge`` (reported as the controller)."""
    with AuditClient(env.pki.channel(env.audit_server.port)) as controller:
        controller.report_edge_state(edge, cpu, memory)

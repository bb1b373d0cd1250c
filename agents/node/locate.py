"""Where does a service's workload answer? A service request (SSP step 9) that every edge host's
chosen-server role understands, and the client-side resolver built on it.

The SMF's Request Service names the *server* (the edge host's agent); the workload (e.g. the
NMS) listens on a port that host published for it. An application that holds a session asks::

    details  = b"locate nms"
    result   = b'{"host": "10.10.0.12", "port": 32771}'      # or {"error": "..."}

The answer travels under the SSP session key (step 10), so it is as authentic as the session.
`ssp_resolver` wraps SSP stages 2-5 plus one locate request into the `Resolver` the NMS client
calls after every broken connection: after a migration the SMF returns the new location first,
so the client follows the service without any other configuration.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Protocol

from agents.node.ssp_server import Handler, digest_handler

LOCATE = b"locate "

#: workload name -> (host, port) while it runs on this host, else None
Lookup = Callable[[str], tuple[str, int] | None]


def locate_request(workload: str) -> bytes:
    """The SSP request details that ask where `workload` answers."""
    return LOCATE + workload.encode()


def locate_handler(lookup: Lookup, fallback: Handler = digest_handler) -> Handler:
    """SSP service handler: answer ``locate <workload>``; anything else goes to `fallback`."""

    def handle(details: bytes) -> bytes:
        if not details.startswith(LOCATE):
            return fallback(details)
        name = details[len(LOCATE):].decode(errors="replace")
        try:
            found = lookup(name)
        except Exception as err:  # an unknown name or an engine error: tell the client
            return json.dumps({"error": f"{name}: {err}"}).encode()
        if found is None:
            return json.dumps({"error": f"{name} is not running here"}).encode()
        return json.dumps({"host": found[0], "port": found[1]}).encode()

    return handle


def parse_locate(result: bytes) -> tuple[str, int]:
    """(host, port) from a locate answer; ConnectionError (retryable) when there is none."""
    try:
        doc = json.loads(result)
    except ValueError:
        raise ConnectionError(f"not a locate answer: {result[:80]!r}") from None
    if "error" in doc:
        raise ConnectionError(f"server cannot locate the workload: {doc['error']}")
    return str(doc["host"]), int(doc["port"])


class Session(Protocol):
    """An opened SSP session (steps 7-8 done) with the chosen server."""

    def request(self, details: bytes) -> bytes:
        """One service request (step 9); the server's result (step 10)."""
        ...

    def close(self) -> None:
        """End the session."""
        ...


def ssp_resolver(open_session: Callable[[], Session], workload: str
                 ) -> Callable[[], tuple[str, int]]:
    """A `Resolver` for the NMS client. ``open_session()`` returns an opened SSP session (e.g.
    `agents.smf.client.ApplicationSession` after ``open(name, version)``: SMF steps 3-6, then
    7-8 with the server the SMF chose). Every failure is raised as ConnectionError, which the
    NMS client treats as "retry later".
    """

    def resolve() -> tuple[str, int]:
        try:
            session = open_session()
        except Exception as err:  # SMF or chosen server unreachable, refusals
            raise ConnectionError(f"no SSP session for {workload}: {err}") from None
        try:
            result = session.request(locate_request(workload))
        except Exception as err:
            raise ConnectionError(f"locate {workload} failed: {err}") from None
        finally:
            with contextlib.suppress(Exception):  # ending a session on a dead server
                session.close()
        return parse_locate(result)

    return resolve

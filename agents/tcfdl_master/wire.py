"""What TCFDL messages carry on NATS besides the frame: headers and the per-hop trace.

The master's protocol, shared with the instances (workers) and offloading clients the way
another agent's client.py is. Headers are routing hints and measurements only, never trusted
for security (every security decision rests on the authenticated frame):

* ``Tcfdl-Scheme``: the transmission scheme (agents.security.tcfdl.schemes);
* ``Tcfdl-Function``: the function (also in the subject and, authenticated, in the frame);
* ``Tcfdl-Results``: where the master stores a queued task's result (JetStream path);
* ``Tcfdl-Error``: set (with an empty body) on a refusal: who refused and why;
* ``Tcfdl-Trace``: ``hop.phase=ns`` entries separated by ';', appended at every hop;
* ``Tcfdl-Probe-Reply``: on a bare request to an instance's probe subject, how many bytes to
  answer with (zeros; never more than the request carried, so a probe cannot amplify).
"""

from __future__ import annotations

from collections.abc import Mapping

SCHEME = "Tcfdl-Scheme"
FUNCTION = "Tcfdl-Function"
RESULTS = "Tcfdl-Results"
ERROR = "Tcfdl-Error"
TRACE = "Tcfdl-Trace"
TASK_ID = "Tcfdl-Task"
#: set by a master on a queued task (acknowledged path): a copy of it that reaches the instance
#: again (JetStream redelivery, or the client library re-sending a request buffered across a
#: reconnect) is answered from the instance's kept answers instead of being refused as a replay;
#: the function never runs twice and the answer is ciphertext under the client's reply key
QUEUED = "Tcfdl-Queued"
PROBE_REPLY = "Tcfdl-Probe-Reply"
MAX_TRACE = 2048
MAX_ERROR = 512

#: phases a trace names (the paper's per-hop breakdown)
PHASES = ("encrypt", "publish", "route", "reencrypt", "deliver", "decrypt", "process")


def add_trace(trace: str, hop: str, phase: str, ns: int) -> str:
    """`trace` with one more ``hop.phase=ns`` entry (bounded: entries past MAX_TRACE are
    dropped, so a hostile header cannot grow without limit)."""
    entry = f"{hop}.{phase}={int(ns)}"
    out = f"{trace};{entry}" if trace else entry
    return out if len(out) <= MAX_TRACE else trace


def parse_trace(trace: str) -> list[tuple[str, str, int]]:
    """(hop, phase, ns) of each well-formed entry of a trace header."""
    out: list[tuple[str, str, int]] = []
    for entry in trace[:MAX_TRACE].split(";"):
        name, _, value = entry.partition("=")
        hop, _, phase = name.rpartition(".")
        if hop and phase and value.isdigit():
            out.append((hop, phase, int(value)))
    return out


def probe_reply_size(headers: Mapping[str, str] | None, request_size: int) -> int:
    """Bytes a probe answers a request of `request_size` bytes with: the header's count,
    bounded by the request's size (0 for a missing or malformed header)."""
    value = header(headers, PROBE_REPLY)
    if not value.isdigit() or len(value) > 12:
        return 0
    return min(int(value), request_size)


def error_headers(who: str, message: str, trace: str = "") -> dict[str, str]:
    """Headers of a refusal by `who`."""
    text = f"{who}: {message}".replace("\r", " ").replace("\n", " ")[:MAX_ERROR]
    return {ERROR: text, TRACE: trace}


def header(headers: Mapping[str, str] | None, name: str) -> str:
    """One header's value ('' when absent)."""
    return (headers or {}).get(name, "")

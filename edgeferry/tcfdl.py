"""Seed 003 (TCFDL) on the lab: what a trial records from one offloaded task (domain: no I/O).

The offloading client (`agents.tcfdl_client`) returns, per task, the ns of each hop's phases as
``hop.phase`` (``client.encrypt``, ``master-a.route``, ``master-a.proxy_rpc`` with
``master-a.reencrypt`` inside it, ``master-a.publish``, the next master's, ``worker.decrypt``,
``worker.process``, ``worker.encrypt``, ``client.decrypt``) and ``deliver`` (the rest of the
round trip: NATS and the wire). `trial_phases` turns them into the trial's phases, masters
named by their position on the path (``m1`` the client's cluster's, ``m2`` the next), so that
the phases add up to the task's total; `crypto_metrics` sums the cryptography (encrypt,
re-encrypt, decrypt) per task and `framework_s` the time inside the masters. `bound_s` is
the physical bound of a task: its bytes over every link it crosses at that link's measured
bandwidth (`edgeferry.bounds.transfer_s`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edgeferry.bounds import transfer_s

#: the trial phases, in path order (a case records those on its path)
PHASES = ("client-encrypt", "m1-route", "m1-proxy", "m1-publish", "m2-route", "m2-proxy",
          "m2-publish", "worker-decrypt", "worker-process", "worker-encrypt", "client-decrypt",
          "deliver")
#: the paper's cases: function served, and how many masters the task crosses (Fig. 5)
CASES = {"case1": "c1", "case2": "c2", "case3": "c3"}
_HOP_PHASES = {"route": "route", "proxy_rpc": "proxy", "publish": "publish"}


class PhaseError(ValueError):
    """A task's phases do not have the shape the client writes."""


def masters_on_path(phases: Mapping[str, int]) -> list[str]:
    """The masters' hop names in the order the task met them (the trace's order)."""
    out: list[str] = []
    for key in phases:
        hop = key.rpartition(".")[0]
        if hop.startswith("master-") and hop not in out:
            out.append(hop)
    return out


def trial_phases(phases: Mapping[str, int]) -> list[tuple[str, float]]:
    """(phase, seconds) of one task in `PHASES` order; re-encryption stays out (it is inside
    its master's ``proxy`` phase), so the values add up to the task's total. PhaseError when
    a phase is unknown, negative or a path has more than two masters."""
    masters = masters_on_path(phases)
    if len(masters) > 2:
        raise PhaseError(f"a path of {len(masters)} masters ({', '.join(masters)}); the "
                         "paper's cases cross at most two")
    position = {m: f"m{i + 1}" for i, m in enumerate(masters)}
    out: dict[str, float] = {}
    for key, ns in phases.items():
        if not isinstance(ns, int) or ns < 0:
            raise PhaseError(f"phase {key!r}: {ns!r} is not a duration in ns")
        hop, _, phase = key.rpartition(".")
        if key == "deliver":
            name = "deliver"
        elif hop in ("client", "worker") and phase in ("encrypt", "decrypt", "process"):
            name = f"{hop}-{phase}"
        elif hop in position and phase == "reencrypt":
            continue
        elif hop in position and phase in _HOP_PHASES:
            name = f"{position[hop]}-{_HOP_PHASES[phase]}"
        else:
            raise PhaseError(f"unknown phase {key!r}")
        if name not in PHASES:
            raise PhaseError(f"unknown phase {key!r}")
        out[name] = out.get(name, 0.0) + ns / 1e9
    return [(name, out[name]) for name in PHASES if name in out]


def crypto_metrics(phases: Mapping[str, int]) -> dict[str, float]:
    """Per task, in seconds (the reports' base unit): ``crypto_s`` (every encryption,
    re-encryption and decryption on the path), ``reencrypt_s`` (the masters' proxies only),
    ``m1_reencrypt_s`` / ``m2_reencrypt_s`` (each master's proxy)."""
    position = {m: f"m{i + 1}" for i, m in enumerate(masters_on_path(phases))}
    out = {"crypto_s": 0.0, "reencrypt_s": 0.0}
    for key, ns in phases.items():
        hop, _, phase = key.rpartition(".")
        if phase == "reencrypt" and hop in position:
            out["reencrypt_s"] += ns / 1e9
            out[f"{position[hop]}_reencrypt_s"] = ns / 1e9
            out["crypto_s"] += ns / 1e9
        elif hop in ("client", "worker") and phase in ("encrypt", "decrypt"):
            out["crypto_s"] += ns / 1e9
    return out


def framework_s(phases: Mapping[str, int]) -> float:
    """Seconds the task spent inside the masters (route, proxy call with its re-encryption,
    publish): TCFDL's own processing on the path, beside the paper's Fig. 6 overhead."""
    masters = set(masters_on_path(phases))
    return sum(ns for key, ns in phases.items()
               if key.rpartition(".")[0] in masters
               and key.rpartition(".")[2] in _HOP_PHASES) / 1e9


def overhead_s(total_ns: int, bare_ns: int, phases: Mapping[str, int]) -> float:
    """TCFDL's own cost on a task's path: its round trip (`total_ns`, on the client) minus a
    bare NATS request/reply of the same bytes to the same instance (`bare_ns`) minus the
    function's own time (``worker.process``). Negative when the bare round trip happened to be
    slower (noise): kept, so medians are not biased upwards."""
    return (total_ns - bare_ns - phases.get("worker.process", 0)) / 1e9


def bound_s(task_bytes: int, result_bytes: int, links_bps: Sequence[float]) -> float:
    """The physical bound of one task: the task's bytes out and the result's back over each
    link of the path, at that link's measured bandwidth (bit/s)."""
    if not links_bps:
        raise ValueError("a task crosses at least one link")
    return sum(transfer_s(task_bytes, bps) + transfer_s(result_bytes, bps) for bps in links_bps)

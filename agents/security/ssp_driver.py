"""SSP in process: all five stages between the four roles of agents.security.ssp, as bytes,
timed per stage and step (unit tests and benchmarks; no transport)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agents.security.envelope import Envelope
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.ssp import ServerInfo, SspApplication, SspCms, SspServer, SspSmf


def _err(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code, message)


# --- in-process driver ----------------------------------------------------------------------


@dataclass
class SspRun:
    """One in-process SSP session: `stage_ns[s]` monotonic wall time per stage (1-5) and
    `step_ns[k]` time the receiver of step k spent handling it."""

    session_id: bytes
    stage_ns: dict[int, int]
    step_ns: dict[int, int]
    message_bytes: dict[int, int]
    results: list[bytes]
    total_ns: int


def run_ssp_in_process(
    cms: SspCms,
    smf: SspSmf,
    servers: dict[str, SspServer],
    app: SspApplication,
    *,
    service: tuple[str, str],
    server_infos: tuple[ServerInfo, ...],
    requests: list[bytes],
    ip_client: str = "10.0.0.2",
) -> SspRun:
    """Run stages 1-5 (registration, lookup, session, `requests`, end), as bytes, timed."""
    sizes: dict[int, int] = {}
    step_ns: dict[int, int] = {}
    stage_ns: dict[int, int] = {}

    def deliver(
        to: SspCms | SspSmf | SspServer | SspApplication, env: Envelope | None
    ) -> Envelope | None:
        if env is None:
            raise _err(ErrorCode.WRONG_STEP, "protocol stopped early")
        wire = env.to_bytes()
        sizes[env.header.step] = len(wire)
        t0 = time.perf_counter_ns()
        out = to.handle(wire)
        step_ns[env.header.step] = time.perf_counter_ns() - t0
        return out

    start = t = time.perf_counter_ns()
    deliver(cms, deliver(smf, cms.register_service(service[0], service[1], server_infos)))
    reg = cms.state.registered
    assert reg is not None
    for info in reg.servers:  # the CMS passes SERV ID and SERV CAP to the servers
        servers[info.public.name].provision(reg.serv_id, reg.serv_cap)
    stage_ns[1], t = time.perf_counter_ns() - t, time.perf_counter_ns()
    m4 = deliver(smf, app.request_service(service[0], service[1], ip_client))
    assert m4 is not None
    chosen = servers[m4.header.receiver]
    m5 = deliver(chosen, m4)
    m7 = deliver(app, deliver(smf, m5))
    stage_ns[2], t = time.perf_counter_ns() - t, time.perf_counter_ns()
    deliver(app, deliver(chosen, m7))
    stage_ns[3], t = time.perf_counter_ns() - t, time.perf_counter_ns()
    results = []
    for details in requests:
        deliver(app, deliver(chosen, app.request(details)))
        assert app.state.last_result is not None
        results.append(app.state.last_result)
    stage_ns[4], t = time.perf_counter_ns() - t, time.perf_counter_ns()
    deliver(chosen, app.end())
    stage_ns[5] = time.perf_counter_ns() - t
    assert app.state.session_id is not None
    return SspRun(
        session_id=app.state.session_id,
        stage_ns=stage_ns,
        step_ns=dict(sorted(step_ns.items())),
        message_bytes=dict(sorted(sizes.items())),
        results=results,
        total_ns=time.perf_counter_ns() - start,
    )

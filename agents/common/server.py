"""AgentServer: one gRPC server per agent with mTLS, health, reflection and graceful stop.

    server = AgentServer(config)
    server.add(foo_pb2_grpc.add_FooServiceServicer_to_server, FooServicer(...),
               "edgeferry.foo.v1.FooService", policy=FOO_POLICY)
    server.add(bar_pb2_grpc.add_BarServiceServicer_to_server, BarServicer(...),
               "edgeferry.bar.v1.BarService", policy=BAR_POLICY,
               interceptors=(CountingInterceptor(),))
    server.start()                  # binds, marks every service SERVING
    server.install_signal_handlers()
    server.wait()                   # returns after stop() (e.g. on SIGTERM)

Authorization: ``add(..., policy=...)`` registers the service's policy table with the server's
one `AuthorizationInterceptor` (outermost, agents.common.authz): callers are checked by their
certificate's role before any other interceptor or the servicer runs; ``tls.crl`` adds a
revocation check for every call.

Interceptors: those given to the constructor run around every call of the server (health and
reflection included); those given to ``add(..., interceptors=...)`` run around the calls of that
one service only, inside the server-wide ones, first one outermost. Either kind sees grpc's
registered method handlers like any call (the service is registered with the real server).

Abuse bounds (agents/common/admission.py, configured by ``max_workers`` and ``limits``): the
admission interceptor runs outermost; it caps running and queued calls, gives every call a
deadline and refuses oversized requests before decoding; health is exempt and always finds one
of the reserved threads.

Transport rules:
* With ``config.tls`` the server requires a client certificate issued by the configured CA
  (``require_client_auth=True``); plaintext clients and foreign certificates fail the handshake.
* Without TLS the server starts only if ``config.insecure_plaintext`` is true **and** it listens
  on a loopback address; anything else raises AgentStartError at ``start()``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agents.common.admission import LARGE_REQUESTS, AdmissionInterceptor, CallLimits
from agents.common.authz import AuthorizationInterceptor, Policy, Revocations
from agents.common.config import AgentConfig, is_loopback_host
from agents.common.errors import AgentStartError
from agents.common.logging import get_logger
from agents.common.tls import TLSMaterial, server_credentials

AddServicerFn = Callable[[Any, grpc.Server], None]

#: How often a waiting main thread wakes to run signal handlers (see `AgentServer.wait`).
_WAKE_S = 0.25

if TYPE_CHECKING:  # grpc's classes are generic only in their type stubs
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _Continuation = Callable[[grpc.HandlerCallDetails], _Handler | None]

#: Reasonable defaults for agents on constrained edge links. The receive limit is replaced by
#: the largest per-method request limit of the agent's `CallLimits`.
DEFAULT_SERVER_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
)


def call_limits(config: AgentConfig) -> CallLimits:
    """The abuse bounds of an agent's server, from ``max_workers`` and ``limits``."""
    lim = config.limits
    return CallLimits(
        max_concurrent=config.max_workers,
        max_queued=lim.max_queued_rpcs,
        reserved=lim.reserved_workers,
        default_deadline_s=lim.call_deadline_s,
        long_deadline_s=lim.long_call_deadline_s,
        default_max_request_bytes=lim.max_request_bytes,
        method_max_request_bytes={**LARGE_REQUESTS, **lim.method_max_request_bytes},
    )


def _with_receive_limit(
    options: tuple[tuple[str, Any], ...], limit: int
) -> tuple[tuple[str, Any], ...]:
    kept = tuple(o for o in options if o[0] != "grpc.max_receive_message_length")
    return (("grpc.max_receive_message_length", limit), *kept)


def split_method(method: str | bytes) -> tuple[str, str]:
    """``/edgeferry.ledger.v1.LedgerService/GetBlocks`` ->
    ``("edgeferry.ledger.v1.LedgerService", "GetBlocks")`` (a call's full method name)."""
    text = method.decode() if isinstance(method, bytes) else method
    return text.lstrip("/").split("/", 1)[0], text.rsplit("/", 1)[-1]


def service_of(method: str | bytes) -> str:
    """``/edgeferry.ledger.v1.LedgerService/GetBlocks`` -> ``edgeferry.ledger.v1.LedgerService``."""
    return split_method(method)[0]


class _ServiceInterceptors(grpc.ServerInterceptor):
    """The server-wide interceptor behind ``AgentServer.add(..., interceptors=...)``: the
    interceptors registered for a call's service run around it (the first one outermost);
    a call of any other service goes straight on."""

    def __init__(self) -> None:
        self.by_service: dict[str, tuple[grpc.ServerInterceptor, ...]] = {}

    def intercept_service(
        self,
        continuation: _Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        chain = self.by_service.get(service_of(handler_call_details.method), ())
        for interceptor in reversed(chain):
            continuation = _wrapped(interceptor, continuation)
        return continuation(handler_call_details)


def _wrapped(interceptor: grpc.ServerInterceptor, continuation: _Continuation) -> _Continuation:
    """`continuation` with `interceptor` around it."""
    return lambda details: interceptor.intercept_service(continuation, details)


def format_address(host: str, port: int) -> str:
    """``host:port`` with brackets around IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class AgentServer:
    """A gRPC server for one agent. Not restartable: build a new one after ``stop()``."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        interceptors: tuple[grpc.ServerInterceptor, ...] = (),
        options: tuple[tuple[str, Any], ...] = DEFAULT_SERVER_OPTIONS,
    ) -> None:
        self.config = config
        self.log = get_logger(f"{config.name}.server")
        self.limits = call_limits(config)
        self.admission = AdmissionInterceptor(self.limits)
        self._pool = futures.ThreadPoolExecutor(
            max_workers=self.limits.pool_size, thread_name_prefix=f"{config.name}-rpc"
        )
        self._per_service = _ServiceInterceptors()
        tls = config.tls
        revocations = None
        if tls is not None and tls.crl is not None:
            revocations = Revocations(tls.crl, tls.ca_cert)
        self.authz = AuthorizationInterceptor(tls=tls is not None, revocations=revocations)
        self._server = grpc.server(
            self._pool,
            # admission outermost (a refused or oversized call costs nothing further), then
            # authorization (per-RPC policy), before any other interceptor
            interceptors=[self.admission, self.authz, *interceptors, self._per_service],
            options=_with_receive_limit(options, self.limits.largest_request),
            # backstop against an unbounded executor queue (grpc refuses beyond it itself)
            maximum_concurrent_rpcs=self.limits.pool_size * 4,
        )
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self._services: list[str] = []
        self._on_stop: list[Callable[[], None]] = []
        self._port: int | None = None
        self._started = False
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    # -- registration -------------------------------------------------------------------------
    def add(
        self,
        add_fn: AddServicerFn,
        servicer: Any,
        service_name: str,
        *,
        interceptors: Sequence[grpc.ServerInterceptor] = (),
        policy: Policy | None = None,
    ) -> AgentServer:
        """Register a servicer (``add_XServicer_to_server``) under its full service name;
        ``interceptors`` run around the calls of this service only (see the module doc);
        ``policy`` says who may call each of its methods (agents.common.authz): methods
        without an entry, and every method of a service added without a policy, are refused
        on a TLS server."""
        if policy is not None and policy.service != service_name:
            raise ValueError(f"policy of {policy.service} given for service {service_name}")
        if self._started:
            raise RuntimeError("add() must be called before start()")
        if service_name in self._services:
            raise ValueError(f"service {service_name} is already registered")
        add_fn(servicer, self._server)
        self.authz.register(service_name, policy)
        if interceptors:
            self._per_service.by_service[service_name] = tuple(interceptors)
        self._services.append(service_name)
        return self

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the server has stopped (close stores, flush files...)."""
        self._on_stop.append(callback)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(self._services)

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``listen_port: 0``)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def address(self) -> str:
        return format_address(self.config.listen_host, self.port)

    def _credentials(self) -> grpc.ServerCredentials | None:
        cfg = self.config
        if cfg.tls is not None:
            return server_credentials(TLSMaterial.from_config(cfg.tls))
        if not cfg.insecure_plaintext:
            raise AgentStartError(
                f"agent {cfg.name}: no TLS material configured; set tls.ca_cert, tls.cert and "
                "tls.key (plaintext needs insecure_plaintext: true and a loopback listen_host)"
            )
        if not is_loopback_host(cfg.listen_host):
            raise AgentStartError(
                f"agent {cfg.name}: refusing to serve plaintext on non-loopback address "
                f"{cfg.listen_host}; configure tls"
            )
        return None

    def start(self) -> int:
        """Bind, enable reflection, start serving and mark all services SERVING; return port."""
        if self._started:
            raise RuntimeError("the server was already started")
        creds = self._credentials()
        reflection.enable_server_reflection(
            (*self._services, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        bind = format_address(self.config.listen_host, self.config.listen_port)
        try:
            if creds is None:
                port = self._server.add_insecure_port(bind)
            else:
                port = self._server.add_secure_port(bind, creds)
        except RuntimeError as err:
            name = self.config.name
            raise AgentStartError(f"agent {name}: cannot listen on {bind}: {err}") from None
        if port == 0:
            raise AgentStartError(f"agent {self.config.name}: cannot listen on {bind}")
        self._port = port
        self._started = True
        self._server.start()
        for name in ("", *self._services):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.log.info(
            "agent_started",
            address=self.address,
            tls=creds is not None,
            services=list(self._services),
        )
        return port

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped; return False if ``timeout`` expired first.

        Waits in short steps: the kernel may deliver SIGTERM to one of gRPC's threads, and
        Python runs the handler only when the main thread next wakes, so a main thread blocked
        for good would never stop (systemd would wait out its stop timeout, then kill).
        """
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            step = _WAKE_S if end is None else min(_WAKE_S, end - time.monotonic())
            if step <= 0:
                return self._stopped.is_set()
            if self._stopped.wait(step):
                return True

    def stop(self, grace: float | None = None) -> None:
        """Mark NOT_SERVING, let in-flight RPCs finish for ``grace`` seconds, then stop."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = self.config.grace_seconds if grace is None else grace
            self.log.info("agent_stopping", grace_seconds=grace)
            self.health.enter_graceful_shutdown()
            self._server.stop(grace).wait()
            self._pool.shutdown(wait=False, cancel_futures=True)
            for callback in reversed(self._on_stop):
                try:
                    callback()
                except Exception:
                    self.log.exception("on_stop_callback_failed", callback=repr(callback))
            self.log.info("agent_stopped")
            self._stopped.set()

    def install_signal_handlers(self) -> None:
        """Stop gracefully on SIGTERM and SIGINT (call from the main thread)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            self.log.info("signal_received", signal=signal.Signals(signum).name)
            threading.Thread(target=self.stop, name="agent-stop", daemon=True).start()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def __enter__(self) -> AgentServer:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(0)

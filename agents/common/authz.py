"""Authorization: who may call which RPC, decided once per call from the client certificate.

Principals come from the verified certificate's CN (read as `peer_identity` reads it):

* ``<role>.<host>`` for agents and hosts, role one of `AGENT_ROLES` (``node.edge1``,
  ``ledger-peer.edge2``, ``host.edge1`` for a host certificate);
* ``controller`` for the controller's client certificate;
* anything else is role ``unknown`` (allowed nothing but health and reflection).

A host certificate is ``host.<hostname>``, so a host named ``controller`` is ``host.controller``,
never the admin identity.

Each agent declares one `Policy` per service (its own ``policy.py``): method -> `Rule` (roles
allowed, and for per-object methods a check of the decoded request). A method with no entry
is refused (deny by default). `AuthorizationInterceptor` enforces every registered policy;
`agents.common.server.AgentServer` holds one and registers a service's policy with
``add(..., policy=...)``. With ``tls.crl`` set it also refuses (UNAUTHENTICATED) a client
certificate whose serial the CRL lists, reloading the file when its mtime changes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from cryptography import x509

from agents.common.errors import AgentStartError, NoPeerIdentity
from agents.common.logging import get_logger

if TYPE_CHECKING:  # grpc's classes are generic only in their type stubs
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _Continuation = Callable[[grpc.HandlerCallDetails], _Handler | None]

#: Roles an agent or host certificate may carry as ``<role>.<host>``.
AGENT_ROLES = frozenset(
    {"smf", "ras", "audit", "ledger-validator", "ledger-peer", "node", "bare", "host",
     "blockcache", "blockcache-origin", "composer", "ui",
     "tcfdl-manager", "tcfdl-master", "tcfdl-proxy", "tcfdl-worker", "tcfdl-client"}
)
CONTROLLER = "controller"
#: The UI server's role (``ui.<host>``): calls owner-scoped methods for its signed-in owners.
UI = "ui"
UNKNOWN = "unknown"
#: Every role a rule may name.
ALL_ROLES = AGENT_ROLES | {CONTROLLER}
#: Services any lab-CA certificate may call (the server's own health and reflection).
OPEN_SERVICES = frozenset(
    {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
     "grpc.reflection.v1.ServerReflection"}
)
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,252}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Principal:
    """The caller as its certificate names it: CN, role and host ("" for the controller)."""

    cn: str
    role: str
    host: str


def principal_from_cn(cn: str) -> Principal:
    """Parse a certificate CN: ``controller``, ``<role>.<host>`` or else role ``unknown``."""
    if cn == CONTROLLER:
        return Principal(cn, CONTROLLER, "")
    role, dot, host = cn.partition(".")
    if dot and role in AGENT_ROLES and _HOST_RE.match(host):
        return Principal(cn, role, host)
    return Principal(cn, UNKNOWN, "")


def principal_of(context: grpc.ServicerContext) -> Principal:
    """The caller of a server call; raises NoPeerIdentity without a verified certificate."""
    from agents.common.client import peer_identity  # client imports config only; no cycle

    return principal_from_cn(peer_identity(context))


ObjectCheck = Callable[[Principal, Any], bool]


@dataclass(frozen=True)
class Rule:
    """Roles allowed to call a method, and optionally which objects (a check of the request)."""

    roles: frozenset[str]
    check: ObjectCheck | None = None
    #: What the check admits, for the refusal message (e.g. "the caller's own node ids").
    objects: str = ""


def allow(*roles: str, check: ObjectCheck | None = None, objects: str = "") -> Rule:
    """A rule for `roles` (names from `ALL_ROLES`), with an optional per-object check."""
    unknown = set(roles) - ALL_ROLES
    if unknown:
        raise ValueError(f"unknown roles in a policy rule: {sorted(unknown)}")
    return Rule(frozenset(roles), check, objects)


@dataclass(frozen=True)
class Policy:
    """One service's table: method name -> Rule; a method with no entry is refused."""

    service: str
    rules: Mapping[str, Rule] = field(default_factory=dict)

    def rule(self, method: str) -> Rule | None:
        """The rule of `method` (its short name), None when the table has no entry."""
        return self.rules.get(method)

    def allowed_roles(self, method: str) -> frozenset[str]:
        """Roles the table admits for `method` (empty: nobody)."""
        found = self.rules.get(method)
        return found.roles if found is not None else frozenset()


class Revocations:
    """Serials listed by a CRL file signed by the lab CA; reloaded when the file's mtime
    changes (a file that turns unreadable or invalid keeps the last good list)."""

    def __init__(self, crl: Path, ca_cert: Path) -> None:
        self.path = crl
        self._ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._serials: frozenset[int] = frozenset()
        self.log = get_logger("authz.crl")
        try:
            self._load()
        except (OSError, ValueError) as err:
            raise AgentStartError(f"certificate revocation list {crl}: {err}") from None

    def _load(self) -> None:
        mtime = self.path.stat().st_mtime
        data = self.path.read_bytes()
        crl = (x509.load_pem_x509_crl(data) if b"-----BEGIN" in data
               else x509.load_der_x509_crl(data))
        public = self._ca.public_key()
        if not crl.is_signature_valid(public):  # type: ignore[arg-type]
            raise ValueError("the CRL is not signed by the lab CA")
        self._serials = frozenset(entry.serial_number for entry in crl)
        self._mtime = mtime

    def revoked(self, serial: int) -> bool:
        """True when `serial` is listed (after reloading a changed file)."""
        with self._lock:
            try:
                if self.path.stat().st_mtime != self._mtime:
                    self._load()
            except (OSError, ValueError) as err:
                self.log.error("crl_reload_failed", path=str(self.path), error=str(err))
            return serial in self._serials


def _serial_of(context: grpc.ServicerContext) -> int | None:
    from agents.common.client import peer_certificate

    cert = peer_certificate(context)
    return None if cert is None else cert.serial_number


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


class AuthorizationInterceptor(grpc.ServerInterceptor):
    """Enforces the registered policies (and the CRL) on every call of a TLS server.

    A call of a service with a policy runs only when its method's rule admits the caller's
    role and, for a per-object rule, the decoded request; a service registered without a
    policy is refused whole (deny by default). Health and reflection, which the server
    registers itself, are open to any lab-CA certificate.
    """

    def __init__(self, *, tls: bool = True, revocations: Revocations | None = None) -> None:
        self.tls = tls
        self.revocations = revocations
        self.policies: dict[str, Policy] = {}
        self.unguarded: set[str] = set()
        self.log = get_logger("authz")

    def register(self, service: str, policy: Policy | None) -> None:
        """Enforce `policy` for `service`; None refuses every call of it."""
        if policy is None:
            self.unguarded.add(service)
        else:
            self.policies[service] = policy

    def intercept_service(
        self,
        continuation: _Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = continuation(handler_call_details)
        if handler is None or not self.tls:  # plaintext: loopback test mode, no identities
            return handler
        method = handler_call_details.method
        text = method.decode() if isinstance(method, bytes) else method
        service, name = text.lstrip("/").split("/", 1)[0], text.rsplit("/", 1)[-1]
        policy = self.policies.get(service)
        if service in self.unguarded:
            policy = Policy(service)  # registered without a table: nothing is allowed
        if policy is None and self.revocations is None:  # health and reflection
            return handler
        rule = None if policy is None else policy.rule(name)

        def authorize(request: Any, context: grpc.ServicerContext) -> None:
            self._authorize(context, service, name, policy, rule, request)

        return _guarded(handler, authorize)

    def _authorize(self, context: grpc.ServicerContext, service: str, name: str,
                   policy: Policy | None, rule: Rule | None, request: Any) -> None:
        try:
            who = principal_of(context)
        except NoPeerIdentity as err:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, str(err))
        if self.revocations is not None:
            serial = _serial_of(context)
            if serial is None or self.revocations.revoked(serial):
                self.log.warning("revoked_certificate", caller=who.cn, method=f"{service}/{name}")
                _abort(context, grpc.StatusCode.UNAUTHENTICATED,
                       f"certificate of {who.cn!r} is revoked")
        if policy is None:  # health and reflection
            return
        short = f"{service.rsplit('.', 1)[-1]}/{name}"
        if rule is None or who.role not in rule.roles:
            self._deny(context, who, short, "its role may not call this method")
        if rule is not None and rule.check is not None and not rule.check(who, request):
            self._deny(context, who, short, f"it may touch only {rule.objects or 'its own'}"
                       " objects")

    def _deny(self, context: grpc.ServicerContext, who: Principal, method: str,
              why: str) -> NoReturn:
        self.log.warning("permission_denied", caller=who.cn, role=who.role, method=method)
        _abort(context, grpc.StatusCode.PERMISSION_DENIED,
               f"caller {who.cn!r} (role {who.role}) may not call {method}: {why}")


def _guarded(handler: _Handler, authorize: Callable[[Any, grpc.ServicerContext], None]
             ) -> _Handler:
    """`handler` with `authorize(request, context)` run on the decoded request first (streamed
    requests: on None, before the first message is read)."""
    if handler.unary_unary is not None:
        uu = handler.unary_unary

        def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
            authorize(request, context)
            return uu(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream is not None:
        us = handler.unary_stream

        def unary_stream(request: Any, context: grpc.ServicerContext) -> Any:
            authorize(request, context)
            yield from us(request, context)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer)
    if handler.stream_unary is not None:
        su = handler.stream_unary

        def stream_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            authorize(None, context)
            return su(requests, context)

        return grpc.stream_unary_rpc_method_handler(
            stream_unary, handler.request_deserializer, handler.response_serializer)
    ss = handler.stream_stream
    assert ss is not None

    def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        authorize(None, context)
        yield from ss(requests, context)

    return grpc.stream_stream_rpc_method_handler(
        stream_stream, handler.request_deserializer, handler.response_serializer)

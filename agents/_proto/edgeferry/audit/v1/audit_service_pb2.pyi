from agents._proto.edgeferry.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TargetMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TARGET_MODE_UNSPECIFIED: _ClassVar[TargetMode]
    TARGET_MODE_EDGE: _ClassVar[TargetMode]
    TARGET_MODE_REGION: _ClassVar[TargetMode]
    TARGET_MODE_ANY: _ClassVar[TargetMode]
TARGET_MODE_UNSPECIFIED: TargetMode
TARGET_MODE_EDGE: TargetMode
TARGET_MODE_REGION: TargetMode
TARGET_MODE_ANY: TargetMode

class EdgeSpec(_message.Message):
    __slots__ = ("name", "region", "address", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    region: str
    address: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., region: _Optional[str] = ..., address: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ContainerPolicySpec(_message.Message):
    __slots__ = ("name", "location", "requirements")
    class RequirementsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    location: str
    requirements: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., location: _Optional[str] = ..., requirements: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EdgeState(_message.Message):
    __slots__ = ("cpu_percent", "memory_percent", "alive", "measured_at_ms")
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    MEASURED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    cpu_percent: float
    memory_percent: float
    alive: bool
    measured_at_ms: int
    def __init__(self, cpu_percent: _Optional[float] = ..., memory_percent: _Optional[float] = ..., alive: _Optional[bool] = ..., measured_at_ms: _Optional[int] = ...) -> None: ...

class RegisterEdgeRequest(_message.Message):
    __slots__ = ("owner_token", "edge")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    edge: EdgeSpec
    def __init__(self, owner_token: _Optional[bytes] = ..., edge: _Optional[_Union[EdgeSpec, _Mapping]] = ...) -> None: ...

class RegisterEdgeResponse(_message.Message):
    __slots__ = ("share_key", "edge")
    SHARE_KEY_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    share_key: str
    edge: EdgeSpec
    def __init__(self, share_key: _Optional[str] = ..., edge: _Optional[_Union[EdgeSpec, _Mapping]] = ...) -> None: ...

class UpdateEdgeRequest(_message.Message):
    __slots__ = ("owner_token", "edge")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    edge: EdgeSpec
    def __init__(self, owner_token: _Optional[bytes] = ..., edge: _Optional[_Union[EdgeSpec, _Mapping]] = ...) -> None: ...

class UpdateEdgeResponse(_message.Message):
    __slots__ = ("edge",)
    EDGE_FIELD_NUMBER: _ClassVar[int]
    edge: EdgeSpec
    def __init__(self, edge: _Optional[_Union[EdgeSpec, _Mapping]] = ...) -> None: ...

class DeleteEdgeRequest(_message.Message):
    __slots__ = ("owner_token", "name")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    name: str
    def __init__(self, owner_token: _Optional[bytes] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteEdgeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateShareKeyRequest(_message.Message):
    __slots__ = ("owner_token", "name")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    name: str
    def __init__(self, owner_token: _Optional[bytes] = ..., name: _Optional[str] = ...) -> None: ...

class RotateShareKeyResponse(_message.Message):
    __slots__ = ("share_key",)
    SHARE_KEY_FIELD_NUMBER: _ClassVar[int]
    share_key: str
    def __init__(self, share_key: _Optional[str] = ...) -> None: ...

class RedeemShareKeyRequest(_message.Message):
    __slots__ = ("owner_token", "share_key")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SHARE_KEY_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    share_key: str
    def __init__(self, owner_token: _Optional[bytes] = ..., share_key: _Optional[str] = ...) -> None: ...

class RedeemShareKeyResponse(_message.Message):
    __slots__ = ("edge",)
    EDGE_FIELD_NUMBER: _ClassVar[int]
    edge: str
    def __init__(self, edge: _Optional[str] = ...) -> None: ...

class ListEdgesRequest(_message.Message):
    __slots__ = ("owner_token",)
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    def __init__(self, owner_token: _Optional[bytes] = ...) -> None: ...

class EdgeListing(_message.Message):
    __slots__ = ("edge", "owned", "state")
    EDGE_FIELD_NUMBER: _ClassVar[int]
    OWNED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    edge: EdgeSpec
    owned: bool
    state: EdgeState
    def __init__(self, edge: _Optional[_Union[EdgeSpec, _Mapping]] = ..., owned: _Optional[bool] = ..., state: _Optional[_Union[EdgeState, _Mapping]] = ...) -> None: ...

class ListEdgesResponse(_message.Message):
    __slots__ = ("edges",)
    EDGES_FIELD_NUMBER: _ClassVar[int]
    edges: _containers.RepeatedCompositeFieldContainer[EdgeListing]
    def __init__(self, edges: _Optional[_Iterable[_Union[EdgeListing, _Mapping]]] = ...) -> None: ...

class RegisterContainerPolicyRequest(_message.Message):
    __slots__ = ("owner_token", "container")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    container: ContainerPolicySpec
    def __init__(self, owner_token: _Optional[bytes] = ..., container: _Optional[_Union[ContainerPolicySpec, _Mapping]] = ...) -> None: ...

class RegisterContainerPolicyResponse(_message.Message):
    __slots__ = ("container",)
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    container: ContainerPolicySpec
    def __init__(self, container: _Optional[_Union[ContainerPolicySpec, _Mapping]] = ...) -> None: ...

class UpdateContainerPolicyRequest(_message.Message):
    __slots__ = ("owner_token", "container")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    container: ContainerPolicySpec
    def __init__(self, owner_token: _Optional[bytes] = ..., container: _Optional[_Union[ContainerPolicySpec, _Mapping]] = ...) -> None: ...

class UpdateContainerPolicyResponse(_message.Message):
    __slots__ = ("container",)
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    container: ContainerPolicySpec
    def __init__(self, container: _Optional[_Union[ContainerPolicySpec, _Mapping]] = ...) -> None: ...

class DeleteContainerPolicyRequest(_message.Message):
    __slots__ = ("owner_token", "name")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    name: str
    def __init__(self, owner_token: _Optional[bytes] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteContainerPolicyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetContainerPolicyRequest(_message.Message):
    __slots__ = ("owner_token", "name")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    name: str
    def __init__(self, owner_token: _Optional[bytes] = ..., name: _Optional[str] = ...) -> None: ...

class GetContainerPolicyResponse(_message.Message):
    __slots__ = ("container",)
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    container: ContainerPolicySpec
    def __init__(self, container: _Optional[_Union[ContainerPolicySpec, _Mapping]] = ...) -> None: ...

class SetContainerLocationRequest(_message.Message):
    __slots__ = ("owner_token", "name", "edge")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    name: str
    edge: str
    def __init__(self, owner_token: _Optional[bytes] = ..., name: _Optional[str] = ..., edge: _Optional[str] = ...) -> None: ...

class SetContainerLocationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportEdgeStateRequest(_message.Message):
    __slots__ = ("edge", "state")
    EDGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    edge: str
    state: EdgeState
    def __init__(self, edge: _Optional[str] = ..., state: _Optional[_Union[EdgeState, _Mapping]] = ...) -> None: ...

class ReportEdgeStateResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("owner_token", "container", "mode", "target", "seed", "request_id")
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    owner_token: bytes
    container: str
    mode: TargetMode
    target: str
    seed: int
    request_id: str
    def __init__(self, owner_token: _Optional[bytes] = ..., container: _Optional[str] = ..., mode: _Optional[_Union[TargetMode, str]] = ..., target: _Optional[str] = ..., seed: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class ElementCheck(_message.Message):
    __slots__ = ("element", "edge_element", "required", "actual", "constrained", "held", "note")
    ELEMENT_FIELD_NUMBER: _ClassVar[int]
    EDGE_ELEMENT_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINED_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    element: str
    edge_element: str
    required: str
    actual: str
    constrained: bool
    held: bool
    note: str
    def __init__(self, element: _Optional[str] = ..., edge_element: _Optional[str] = ..., required: _Optional[str] = ..., actual: _Optional[str] = ..., constrained: _Optional[bool] = ..., held: _Optional[bool] = ..., note: _Optional[str] = ...) -> None: ...

class EdgeDecision(_message.Message):
    __slots__ = ("edge", "permit", "checks")
    EDGE_FIELD_NUMBER: _ClassVar[int]
    PERMIT_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    edge: str
    permit: bool
    checks: _containers.RepeatedCompositeFieldContainer[ElementCheck]
    def __init__(self, edge: _Optional[str] = ..., permit: _Optional[bool] = ..., checks: _Optional[_Iterable[_Union[ElementCheck, _Mapping]]] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("permit", "chosen_edge", "tries", "reasons", "seed", "candidates", "request_id", "log_seq", "timing")
    PERMIT_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_EDGE_FIELD_NUMBER: _ClassVar[int]
    TRIES_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LOG_SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    permit: bool
    chosen_edge: str
    tries: _containers.RepeatedCompositeFieldContainer[EdgeDecision]
    reasons: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    candidates: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    log_seq: int
    timing: _common_pb2.PhaseTiming
    def __init__(self, permit: _Optional[bool] = ..., chosen_edge: _Optional[str] = ..., tries: _Optional[_Iterable[_Union[EdgeDecision, _Mapping]]] = ..., reasons: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., candidates: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., log_seq: _Optional[int] = ..., timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ...) -> None: ...

class VerifyAuditLogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyAuditLogResponse(_message.Message):
    __slots__ = ("ok", "entries", "problem")
    OK_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    entries: int
    problem: str
    def __init__(self, ok: _Optional[bool] = ..., entries: _Optional[int] = ..., problem: _Optional[str] = ...) -> None: ...

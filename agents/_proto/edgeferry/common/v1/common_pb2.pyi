from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PhaseOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PHASE_OUTCOME_UNSPECIFIED: _ClassVar[PhaseOutcome]
    PHASE_OUTCOME_OK: _ClassVar[PhaseOutcome]
    PHASE_OUTCOME_FAILED: _ClassVar[PhaseOutcome]
    PHASE_OUTCOME_SKIPPED: _ClassVar[PhaseOutcome]
    PHASE_OUTCOME_REJECTED: _ClassVar[PhaseOutcome]

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_REPLAY: _ClassVar[ErrorCode]
    ERROR_CODE_BAD_SIGNATURE: _ClassVar[ErrorCode]
    ERROR_CODE_BAD_TAG: _ClassVar[ErrorCode]
    ERROR_CODE_EXPIRED: _ClassVar[ErrorCode]
    ERROR_CODE_REVOKED: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN_PRINCIPAL: _ClassVar[ErrorCode]
    ERROR_CODE_STALE_NONCE: _ClassVar[ErrorCode]
    ERROR_CODE_PERMISSION_DENIED: _ClassVar[ErrorCode]
    ERROR_CODE_MALFORMED: _ClassVar[ErrorCode]
    ERROR_CODE_INSUFFICIENT_RESOURCES: _ClassVar[ErrorCode]
    ERROR_CODE_POLICY_DENIED: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_ALREADY_EXISTS: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]
PHASE_OUTCOME_UNSPECIFIED: PhaseOutcome
PHASE_OUTCOME_OK: PhaseOutcome
PHASE_OUTCOME_FAILED: PhaseOutcome
PHASE_OUTCOME_SKIPPED: PhaseOutcome
PHASE_OUTCOME_REJECTED: PhaseOutcome
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_REPLAY: ErrorCode
ERROR_CODE_BAD_SIGNATURE: ErrorCode
ERROR_CODE_BAD_TAG: ErrorCode
ERROR_CODE_EXPIRED: ErrorCode
ERROR_CODE_REVOKED: ErrorCode
ERROR_CODE_UNKNOWN_PRINCIPAL: ErrorCode
ERROR_CODE_STALE_NONCE: ErrorCode
ERROR_CODE_PERMISSION_DENIED: ErrorCode
ERROR_CODE_MALFORMED: ErrorCode
ERROR_CODE_INSUFFICIENT_RESOURCES: ErrorCode
ERROR_CODE_POLICY_DENIED: ErrorCode
ERROR_CODE_NOT_FOUND: ErrorCode
ERROR_CODE_ALREADY_EXISTS: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode

class Resources(_message.Message):
    __slots__ = ("cpu_millicores", "memory_bytes", "storage_bytes", "network_bps", "gpu")
    CPU_MILLICORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_BPS_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    cpu_millicores: int
    memory_bytes: int
    storage_bytes: int
    network_bps: int
    gpu: int
    def __init__(self, cpu_millicores: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., storage_bytes: _Optional[int] = ..., network_bps: _Optional[int] = ..., gpu: _Optional[int] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("host", "port")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class PhaseTiming(_message.Message):
    __slots__ = ("phase", "wall_seconds", "bytes_moved", "outcome", "detail")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_MOVED_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    phase: str
    wall_seconds: float
    bytes_moved: int
    outcome: PhaseOutcome
    detail: str
    def __init__(self, phase: _Optional[str] = ..., wall_seconds: _Optional[float] = ..., bytes_moved: _Optional[int] = ..., outcome: _Optional[_Union[PhaseOutcome, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ...) -> None: ...

class AuthEnvelope(_message.Message):
    __slots__ = ("signer", "nonce", "timestamp_ms", "signature", "algorithm")
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    signer: str
    nonce: bytes
    timestamp_ms: int
    signature: bytes
    algorithm: str
    def __init__(self, signer: _Optional[str] = ..., nonce: _Optional[bytes] = ..., timestamp_ms: _Optional[int] = ..., signature: _Optional[bytes] = ..., algorithm: _Optional[str] = ...) -> None: ...

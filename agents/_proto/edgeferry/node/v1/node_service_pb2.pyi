from agents._proto.edgeferry.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProbeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROBE_KIND_UNSPECIFIED: _ClassVar[ProbeKind]
    PROBE_KIND_TCP_CONNECT: _ClassVar[ProbeKind]
    PROBE_KIND_HTTP_GET: _ClassVar[ProbeKind]
PROBE_KIND_UNSPECIFIED: ProbeKind
PROBE_KIND_TCP_CONNECT: ProbeKind
PROBE_KIND_HTTP_GET: ProbeKind

class MigrationRef(_message.Message):
    __slots__ = ("migration_id", "epoch")
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    migration_id: str
    epoch: int
    def __init__(self, migration_id: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class PortBinding(_message.Message):
    __slots__ = ("container_port", "host_port", "host_ip")
    CONTAINER_PORT_FIELD_NUMBER: _ClassVar[int]
    HOST_PORT_FIELD_NUMBER: _ClassVar[int]
    HOST_IP_FIELD_NUMBER: _ClassVar[int]
    container_port: int
    host_port: int
    host_ip: str
    def __init__(self, container_port: _Optional[int] = ..., host_port: _Optional[int] = ..., host_ip: _Optional[str] = ...) -> None: ...

class SecretFile(_message.Message):
    __slots__ = ("container_path", "content", "uid")
    CONTAINER_PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    container_path: str
    content: bytes
    uid: int
    def __init__(self, container_path: _Optional[str] = ..., content: _Optional[bytes] = ..., uid: _Optional[int] = ...) -> None: ...

class WorkloadSpec(_message.Message):
    __slots__ = ("name", "image", "ports", "env", "reserved", "secrets", "command")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    name: str
    image: str
    ports: _containers.RepeatedCompositeFieldContainer[PortBinding]
    env: _containers.ScalarMap[str, str]
    reserved: _common_pb2.Resources
    secrets: _containers.RepeatedCompositeFieldContainer[SecretFile]
    command: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., image: _Optional[str] = ..., ports: _Optional[_Iterable[_Union[PortBinding, _Mapping]]] = ..., env: _Optional[_Mapping[str, str]] = ..., reserved: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., secrets: _Optional[_Iterable[_Union[SecretFile, _Mapping]]] = ..., command: _Optional[_Iterable[str]] = ...) -> None: ...

class GetResourcesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetResourcesResponse(_message.Message):
    __slots__ = ("hostname", "max", "allocated", "free", "measured_used", "gpu", "architecture", "docker_version", "advertise")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    MEASURED_USED_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    DOCKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    ADVERTISE_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    max: _common_pb2.Resources
    allocated: _common_pb2.Resources
    free: _common_pb2.Resources
    measured_used: _common_pb2.Resources
    gpu: str
    architecture: str
    docker_version: str
    advertise: bool
    def __init__(self, hostname: _Optional[str] = ..., max: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., allocated: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., free: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., measured_used: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., gpu: _Optional[str] = ..., architecture: _Optional[str] = ..., docker_version: _Optional[str] = ..., advertise: _Optional[bool] = ...) -> None: ...

class RunWorkloadRequest(_message.Message):
    __slots__ = ("ref", "spec")
    REF_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ref: MigrationRef
    spec: WorkloadSpec
    def __init__(self, ref: _Optional[_Union[MigrationRef, _Mapping]] = ..., spec: _Optional[_Union[WorkloadSpec, _Mapping]] = ...) -> None: ...

class RunWorkloadResponse(_message.Message):
    __slots__ = ("timing", "container_id", "ports", "image_id")
    TIMING_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    timing: _common_pb2.PhaseTiming
    container_id: str
    ports: _containers.RepeatedCompositeFieldContainer[PortBinding]
    image_id: str
    def __init__(self, timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ..., container_id: _Optional[str] = ..., ports: _Optional[_Iterable[_Union[PortBinding, _Mapping]]] = ..., image_id: _Optional[str] = ...) -> None: ...

class RemoveWorkloadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveWorkloadResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    def __init__(self, removed: _Optional[bool] = ...) -> None: ...

class StopContainerRequest(_message.Message):
    __slots__ = ("ref", "name", "timeout_seconds")
    REF_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ref: MigrationRef
    name: str
    timeout_seconds: int
    def __init__(self, ref: _Optional[_Union[MigrationRef, _Mapping]] = ..., name: _Optional[str] = ..., timeout_seconds: _Optional[int] = ...) -> None: ...

class StopContainerResponse(_message.Message):
    __slots__ = ("timing", "exit_code")
    TIMING_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    timing: _common_pb2.PhaseTiming
    exit_code: int
    def __init__(self, timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ..., exit_code: _Optional[int] = ...) -> None: ...

class StartContainerRequest(_message.Message):
    __slots__ = ("ref", "name")
    REF_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ref: MigrationRef
    name: str
    def __init__(self, ref: _Optional[_Union[MigrationRef, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class StartContainerResponse(_message.Message):
    __slots__ = ("timing", "started")
    TIMING_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    timing: _common_pb2.PhaseTiming
    started: bool
    def __init__(self, timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ..., started: _Optional[bool] = ...) -> None: ...

class CommitContainerRequest(_message.Message):
    __slots__ = ("ref", "name", "repository", "tag")
    REF_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    ref: MigrationRef
    name: str
    repository: str
    tag: str
    def __init__(self, ref: _Optional[_Union[MigrationRef, _Mapping]] = ..., name: _Optional[str] = ..., repository: _Optional[str] = ..., tag: _Optional[str] = ...) -> None: ...

class CommitContainerResponse(_message.Message):
    __slots__ = ("timing", "image_ref", "image_id", "diff_bytes")
    TIMING_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DIFF_BYTES_FIELD_NUMBER: _ClassVar[int]
    timing: _common_pb2.PhaseTiming
    image_ref: str
    image_id: str
    diff_bytes: int
    def __init__(self, timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ..., image_ref: _Optional[str] = ..., image_id: _Optional[str] = ..., diff_bytes: _Optional[int] = ...) -> None: ...

class LayerTransfer(_message.Message):
    __slots__ = ("digest", "size", "transferred")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TRANSFERRED_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size: int
    transferred: bool
    def __init__(self, digest: _Optional[str] = ..., size: _Optional[int] = ..., transferred: _Optional[bool] = ...) -> None: ...

class PushImageRequest(_message.Message):
    __slots__ = ("ref", "image_ref")
    REF_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    ref: MigrationRef
    image_ref: str
    def __init__(self, ref: _Optional[_Union[MigrationRef, _Mapping]] = ..., image_ref: _Optional[str] = ...) -> None: ...

class PushImageResponse(_message.Message):
    __slots__ = ("timing", "digest", "layers", "compressed_total", "interface_tx_bytes", "interface")
    TIMING_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    timing: _common_pb2.PhaseTiming
    digest: str
    layers: _containers.RepeatedCompositeFieldContainer[LayerTransfer]
    compressed_total: int
    interface_tx_bytes: int
    interface: str
    def __init__(self, timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ..., digest: _Optional[str] = ..., layers: _Optional[_Iterable[_Union[LayerTransfer, _Mapping]]] = ..., compressed_total: _Optional[int] = ..., interface_tx_bytes: _Optional[int] = ..., interface: _Optional[str] = ...) -> None: ...

class PullImageRequest(_message.Message):
    __slots__ = ("ref", "image_ref", "expected_digest", "rasp_session_id")
    REF_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    RASP_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ref: MigrationRef
    image_ref: str
    expected_digest: str
    rasp_session_id: bytes
    def __init__(self, ref: _Optional[_Union[MigrationRef, _Mapping]] = ..., image_ref: _Optional[str] = ..., expected_digest: _Optional[str] = ..., rasp_session_id: _Optional[bytes] = ...) -> None: ...

class PullImageResponse(_message.Message):
    __slots__ = ("timing", "digest", "verified", "layers", "pinned_ref", "interface_rx_bytes", "interface")
    TIMING_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    PINNED_REF_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_RX_BYTES_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    timing: _common_pb2.PhaseTiming
    digest: str
    verified: bool
    layers: _containers.RepeatedCompositeFieldContainer[LayerTransfer]
    pinned_ref: str
    interface_rx_bytes: int
    interface: str
    def __init__(self, timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ..., digest: _Optional[str] = ..., verified: _Optional[bool] = ..., layers: _Optional[_Iterable[_Union[LayerTransfer, _Mapping]]] = ..., pinned_ref: _Optional[str] = ..., interface_rx_bytes: _Optional[int] = ..., interface: _Optional[str] = ...) -> None: ...

class PrePullImageRequest(_message.Message):
    __slots__ = ("image_ref",)
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    image_ref: str
    def __init__(self, image_ref: _Optional[str] = ...) -> None: ...

class PrePullImageResponse(_message.Message):
    __slots__ = ("timing", "layers")
    TIMING_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    timing: _common_pb2.PhaseTiming
    layers: _containers.RepeatedCompositeFieldContainer[LayerTransfer]
    def __init__(self, timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ..., layers: _Optional[_Iterable[_Union[LayerTransfer, _Mapping]]] = ...) -> None: ...

class ProbeFirstResponseRequest(_message.Message):
    __slots__ = ("ref", "endpoint", "kind", "http_path", "timeout_seconds")
    REF_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HTTP_PATH_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ref: MigrationRef
    endpoint: _common_pb2.Endpoint
    kind: ProbeKind
    http_path: str
    timeout_seconds: float
    def __init__(self, ref: _Optional[_Union[MigrationRef, _Mapping]] = ..., endpoint: _Optional[_Union[_common_pb2.Endpoint, _Mapping]] = ..., kind: _Optional[_Union[ProbeKind, str]] = ..., http_path: _Optional[str] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class ProbeFirstResponseResponse(_message.Message):
    __slots__ = ("timing", "attempts", "body_excerpt")
    TIMING_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BODY_EXCERPT_FIELD_NUMBER: _ClassVar[int]
    timing: _common_pb2.PhaseTiming
    attempts: int
    body_excerpt: bytes
    def __init__(self, timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ..., attempts: _Optional[int] = ..., body_excerpt: _Optional[bytes] = ...) -> None: ...

class GetMigrationRequest(_message.Message):
    __slots__ = ("migration_id",)
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    migration_id: str
    def __init__(self, migration_id: _Optional[str] = ...) -> None: ...

class PhaseRecord(_message.Message):
    __slots__ = ("epoch", "timing")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    timing: _common_pb2.PhaseTiming
    def __init__(self, epoch: _Optional[int] = ..., timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ...) -> None: ...

class GetMigrationResponse(_message.Message):
    __slots__ = ("max_epoch", "phases")
    MAX_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    max_epoch: int
    phases: _containers.RepeatedCompositeFieldContainer[PhaseRecord]
    def __init__(self, max_epoch: _Optional[int] = ..., phases: _Optional[_Iterable[_Union[PhaseRecord, _Mapping]]] = ...) -> None: ...

class SubmitRequestRequest(_message.Message):
    __slots__ = ("request_id", "service", "required", "path", "hops_left")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HOPS_LEFT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    service: str
    required: _common_pb2.Resources
    path: str
    hops_left: int
    def __init__(self, request_id: _Optional[str] = ..., service: _Optional[str] = ..., required: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., path: _Optional[str] = ..., hops_left: _Optional[int] = ...) -> None: ...

class SubmitRequestResponse(_message.Message):
    __slots__ = ("served_by", "forwarded", "body", "timing", "path")
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    FORWARDED_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    served_by: str
    forwarded: bool
    body: bytes
    timing: _common_pb2.PhaseTiming
    path: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, served_by: _Optional[str] = ..., forwarded: _Optional[bool] = ..., body: _Optional[bytes] = ..., timing: _Optional[_Union[_common_pb2.PhaseTiming, _Mapping]] = ..., path: _Optional[_Iterable[str]] = ...) -> None: ...

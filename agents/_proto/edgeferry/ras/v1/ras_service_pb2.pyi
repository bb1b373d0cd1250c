from agents._proto.edgeferry.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublicIdentity(_message.Message):
    __slots__ = ("name", "encoded")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    name: str
    encoded: bytes
    def __init__(self, name: _Optional[str] = ..., encoded: _Optional[bytes] = ...) -> None: ...

class RegisterCloudRequest(_message.Message):
    __slots__ = ("identity", "maximum", "allocated")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    identity: PublicIdentity
    maximum: _common_pb2.Resources
    allocated: _common_pb2.Resources
    def __init__(self, identity: _Optional[_Union[PublicIdentity, _Mapping]] = ..., maximum: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., allocated: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ...) -> None: ...

class RegisterCloudResponse(_message.Message):
    __slots__ = ("free",)
    FREE_FIELD_NUMBER: _ClassVar[int]
    free: _common_pb2.Resources
    def __init__(self, free: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ...) -> None: ...

class RegisterServerRequest(_message.Message):
    __slots__ = ("identity",)
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    identity: PublicIdentity
    def __init__(self, identity: _Optional[_Union[PublicIdentity, _Mapping]] = ...) -> None: ...

class RegisterServerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRegistryIdentityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRegistryIdentityResponse(_message.Message):
    __slots__ = ("identity",)
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    identity: PublicIdentity
    def __init__(self, identity: _Optional[_Union[PublicIdentity, _Mapping]] = ...) -> None: ...

class CloudRow(_message.Message):
    __slots__ = ("name", "maximum", "allocated", "free", "fingerprint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    maximum: _common_pb2.Resources
    allocated: _common_pb2.Resources
    free: _common_pb2.Resources
    fingerprint: bytes
    def __init__(self, name: _Optional[str] = ..., maximum: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., allocated: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., free: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., fingerprint: _Optional[bytes] = ...) -> None: ...

class AllocationRow(_message.Message):
    __slots__ = ("server", "cloud", "allocated")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    CLOUD_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    server: str
    cloud: str
    allocated: _common_pb2.Resources
    def __init__(self, server: _Optional[str] = ..., cloud: _Optional[str] = ..., allocated: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ...) -> None: ...

class LocationRow(_message.Message):
    __slots__ = ("service", "cloud")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CLOUD_FIELD_NUMBER: _ClassVar[int]
    service: str
    cloud: str
    def __init__(self, service: _Optional[str] = ..., cloud: _Optional[str] = ...) -> None: ...

class GetTableRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTableResponse(_message.Message):
    __slots__ = ("clouds", "servers", "allocations", "locations", "service_allocations")
    CLOUDS_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    clouds: _containers.RepeatedCompositeFieldContainer[CloudRow]
    servers: _containers.RepeatedScalarFieldContainer[str]
    allocations: _containers.RepeatedCompositeFieldContainer[AllocationRow]
    locations: _containers.RepeatedCompositeFieldContainer[LocationRow]
    service_allocations: _containers.RepeatedCompositeFieldContainer[ServiceAllocationRow]
    def __init__(self, clouds: _Optional[_Iterable[_Union[CloudRow, _Mapping]]] = ..., servers: _Optional[_Iterable[str]] = ..., allocations: _Optional[_Iterable[_Union[AllocationRow, _Mapping]]] = ..., locations: _Optional[_Iterable[_Union[LocationRow, _Mapping]]] = ..., service_allocations: _Optional[_Iterable[_Union[ServiceAllocationRow, _Mapping]]] = ...) -> None: ...

class ServiceAllocationRow(_message.Message):
    __slots__ = ("service", "server", "cloud", "allocated", "session_id")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    CLOUD_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    service: str
    server: str
    cloud: str
    allocated: _common_pb2.Resources
    session_id: bytes
    def __init__(self, service: _Optional[str] = ..., server: _Optional[str] = ..., cloud: _Optional[str] = ..., allocated: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., session_id: _Optional[bytes] = ...) -> None: ...

class RegistryDeliverRequest(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    def __init__(self, message: _Optional[bytes] = ...) -> None: ...

class RegistryDeliverResponse(_message.Message):
    __slots__ = ("reply", "handle_seconds")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    HANDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    reply: bytes
    handle_seconds: float
    def __init__(self, reply: _Optional[bytes] = ..., handle_seconds: _Optional[float] = ...) -> None: ...

class TransferDescriptor(_message.Message):
    __slots__ = ("service", "image_ref", "image_digest", "size_bytes")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    service: str
    image_ref: str
    image_digest: str
    size_bytes: int
    def __init__(self, service: _Optional[str] = ..., image_ref: _Optional[str] = ..., image_digest: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class GetIdentityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetIdentityResponse(_message.Message):
    __slots__ = ("identity", "free")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    identity: PublicIdentity
    free: _common_pb2.Resources
    def __init__(self, identity: _Optional[_Union[PublicIdentity, _Mapping]] = ..., free: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ...) -> None: ...

class PrepareSourceRequest(_message.Message):
    __slots__ = ("migration_id", "destination", "requirement", "transfer")
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENT_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    migration_id: str
    destination: PublicIdentity
    requirement: _common_pb2.Resources
    transfer: TransferDescriptor
    def __init__(self, migration_id: _Optional[str] = ..., destination: _Optional[_Union[PublicIdentity, _Mapping]] = ..., requirement: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., transfer: _Optional[_Union[TransferDescriptor, _Mapping]] = ...) -> None: ...

class PrepareSourceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AdvertiseRequest(_message.Message):
    __slots__ = ("migration_id", "server")
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    migration_id: str
    server: PublicIdentity
    def __init__(self, migration_id: _Optional[str] = ..., server: _Optional[_Union[PublicIdentity, _Mapping]] = ...) -> None: ...

class AdvertiseResponse(_message.Message):
    __slots__ = ("message", "session_id")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    session_id: bytes
    def __init__(self, message: _Optional[bytes] = ..., session_id: _Optional[bytes] = ...) -> None: ...

class EndpointDeliverRequest(_message.Message):
    __slots__ = ("message", "migration_id")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    migration_id: str
    def __init__(self, message: _Optional[bytes] = ..., migration_id: _Optional[str] = ...) -> None: ...

class EndpointDeliverResponse(_message.Message):
    __slots__ = ("reply", "handle_seconds", "done")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    HANDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    reply: bytes
    handle_seconds: float
    done: bool
    def __init__(self, reply: _Optional[bytes] = ..., handle_seconds: _Optional[float] = ..., done: _Optional[bool] = ...) -> None: ...

class ReportLocationRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    def __init__(self, session_id: _Optional[bytes] = ...) -> None: ...

class ReportLocationResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    def __init__(self, message: _Optional[bytes] = ...) -> None: ...

class SessionInfoRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    def __init__(self, session_id: _Optional[bytes] = ...) -> None: ...

class SessionInfoResponse(_message.Message):
    __slots__ = ("role", "expect", "transfer", "peer")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EXPECT_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    role: str
    expect: int
    transfer: TransferDescriptor
    peer: str
    def __init__(self, role: _Optional[str] = ..., expect: _Optional[int] = ..., transfer: _Optional[_Union[TransferDescriptor, _Mapping]] = ..., peer: _Optional[str] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: bytes
    def __init__(self, order: _Optional[bytes] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("released", "service", "free")
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    released: bool
    service: str
    free: _common_pb2.Resources
    def __init__(self, released: _Optional[bool] = ..., service: _Optional[str] = ..., free: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ...) -> None: ...

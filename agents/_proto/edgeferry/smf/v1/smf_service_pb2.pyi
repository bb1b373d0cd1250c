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

class RegisterCmsRequest(_message.Message):
    __slots__ = ("identity",)
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    identity: PublicIdentity
    def __init__(self, identity: _Optional[_Union[PublicIdentity, _Mapping]] = ...) -> None: ...

class RegisterCmsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSmfIdentityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSmfIdentityResponse(_message.Message):
    __slots__ = ("identity",)
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    identity: PublicIdentity
    def __init__(self, identity: _Optional[_Union[PublicIdentity, _Mapping]] = ...) -> None: ...

class RegisterServiceRequest(_message.Message):
    __slots__ = ("message", "description", "local_id", "port", "transport", "requirement", "image_ref")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    description: str
    local_id: str
    port: int
    transport: str
    requirement: _common_pb2.Resources
    image_ref: str
    def __init__(self, message: _Optional[bytes] = ..., description: _Optional[str] = ..., local_id: _Optional[str] = ..., port: _Optional[int] = ..., transport: _Optional[str] = ..., requirement: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., image_ref: _Optional[str] = ...) -> None: ...

class RegisterServiceResponse(_message.Message):
    __slots__ = ("reply", "global_id")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_ID_FIELD_NUMBER: _ClassVar[int]
    reply: bytes
    global_id: str
    def __init__(self, reply: _Optional[bytes] = ..., global_id: _Optional[str] = ...) -> None: ...

class RegisterUserRequest(_message.Message):
    __slots__ = ("first_name", "surname", "role", "rank", "specialisation")
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    SURNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SPECIALISATION_FIELD_NUMBER: _ClassVar[int]
    first_name: str
    surname: str
    role: str
    rank: int
    specialisation: str
    def __init__(self, first_name: _Optional[str] = ..., surname: _Optional[str] = ..., role: _Optional[str] = ..., rank: _Optional[int] = ..., specialisation: _Optional[str] = ...) -> None: ...

class RegisterUserResponse(_message.Message):
    __slots__ = ("global_id", "capability")
    GLOBAL_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    global_id: str
    capability: bytes
    def __init__(self, global_id: _Optional[str] = ..., capability: _Optional[bytes] = ...) -> None: ...

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("name", "owner_first_name", "owner_surname", "local_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_SURNAME_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner_first_name: str
    owner_surname: str
    local_id: str
    def __init__(self, name: _Optional[str] = ..., owner_first_name: _Optional[str] = ..., owner_surname: _Optional[str] = ..., local_id: _Optional[str] = ...) -> None: ...

class RegisterDeviceResponse(_message.Message):
    __slots__ = ("global_id", "local_id", "capability")
    GLOBAL_ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    global_id: str
    local_id: str
    capability: bytes
    def __init__(self, global_id: _Optional[str] = ..., local_id: _Optional[str] = ..., capability: _Optional[bytes] = ...) -> None: ...

class AddServerRequest(_message.Message):
    __slots__ = ("service_id", "server_global_id", "identity", "ipv4", "port", "max_load")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_GLOBAL_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    IPV4_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    MAX_LOAD_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    server_global_id: str
    identity: PublicIdentity
    ipv4: str
    port: int
    max_load: int
    def __init__(self, service_id: _Optional[str] = ..., server_global_id: _Optional[str] = ..., identity: _Optional[_Union[PublicIdentity, _Mapping]] = ..., ipv4: _Optional[str] = ..., port: _Optional[int] = ..., max_load: _Optional[int] = ...) -> None: ...

class AddServerResponse(_message.Message):
    __slots__ = ("service_id", "service_capability")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    service_capability: bytes
    def __init__(self, service_id: _Optional[str] = ..., service_capability: _Optional[bytes] = ...) -> None: ...

class RequestServiceRequest(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    def __init__(self, message: _Optional[bytes] = ...) -> None: ...

class RequestServiceResponse(_message.Message):
    __slots__ = ("reply", "server_address", "timings")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    SERVER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    reply: bytes
    server_address: str
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.PhaseTiming]
    def __init__(self, reply: _Optional[bytes] = ..., server_address: _Optional[str] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.PhaseTiming, _Mapping]]] = ...) -> None: ...

class MigrateServiceRequest(_message.Message):
    __slots__ = ("service_id", "user_id", "device_id", "user_capability", "device_capability", "destination", "request_id")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    user_id: str
    device_id: str
    user_capability: bytes
    device_capability: bytes
    destination: str
    request_id: str
    def __init__(self, service_id: _Optional[str] = ..., user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., user_capability: _Optional[bytes] = ..., device_capability: _Optional[bytes] = ..., destination: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class MigrateServiceResponse(_message.Message):
    __slots__ = ("migrated", "location", "epoch", "rasp_session_id", "phases", "error")
    MIGRATED_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    RASP_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    migrated: bool
    location: str
    epoch: int
    rasp_session_id: bytes
    phases: _containers.RepeatedCompositeFieldContainer[_common_pb2.PhaseTiming]
    error: _common_pb2.Error
    def __init__(self, migrated: _Optional[bool] = ..., location: _Optional[str] = ..., epoch: _Optional[int] = ..., rasp_session_id: _Optional[bytes] = ..., phases: _Optional[_Iterable[_Union[_common_pb2.PhaseTiming, _Mapping]]] = ..., error: _Optional[_Union[_common_pb2.Error, _Mapping]] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("name", "global_id", "ipv4", "port", "max_load", "fingerprint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_ID_FIELD_NUMBER: _ClassVar[int]
    IPV4_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    MAX_LOAD_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    global_id: str
    ipv4: str
    port: int
    max_load: int
    fingerprint: bytes
    def __init__(self, name: _Optional[str] = ..., global_id: _Optional[str] = ..., ipv4: _Optional[str] = ..., port: _Optional[int] = ..., max_load: _Optional[int] = ..., fingerprint: _Optional[bytes] = ...) -> None: ...

class ServiceInfo(_message.Message):
    __slots__ = ("global_id", "local_id", "name", "version", "description", "port", "transport", "requirement", "image_ref", "servers", "location", "epoch", "capability_text")
    GLOBAL_ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_TEXT_FIELD_NUMBER: _ClassVar[int]
    global_id: str
    local_id: str
    name: str
    version: str
    description: str
    port: int
    transport: str
    requirement: _common_pb2.Resources
    image_ref: str
    servers: _containers.RepeatedCompositeFieldContainer[ServerInfo]
    location: str
    epoch: int
    capability_text: str
    def __init__(self, global_id: _Optional[str] = ..., local_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., port: _Optional[int] = ..., transport: _Optional[str] = ..., requirement: _Optional[_Union[_common_pb2.Resources, _Mapping]] = ..., image_ref: _Optional[str] = ..., servers: _Optional[_Iterable[_Union[ServerInfo, _Mapping]]] = ..., location: _Optional[str] = ..., epoch: _Optional[int] = ..., capability_text: _Optional[str] = ...) -> None: ...

class UserInfo(_message.Message):
    __slots__ = ("global_id", "first_name", "surname", "role", "rank", "specialisation", "capability_text")
    GLOBAL_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    SURNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SPECIALISATION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_TEXT_FIELD_NUMBER: _ClassVar[int]
    global_id: str
    first_name: str
    surname: str
    role: str
    rank: int
    specialisation: str
    capability_text: str
    def __init__(self, global_id: _Optional[str] = ..., first_name: _Optional[str] = ..., surname: _Optional[str] = ..., role: _Optional[str] = ..., rank: _Optional[int] = ..., specialisation: _Optional[str] = ..., capability_text: _Optional[str] = ...) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("global_id", "local_id", "name", "owner_first_name", "owner_surname", "capability_text")
    GLOBAL_ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_SURNAME_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_TEXT_FIELD_NUMBER: _ClassVar[int]
    global_id: str
    local_id: str
    name: str
    owner_first_name: str
    owner_surname: str
    capability_text: str
    def __init__(self, global_id: _Optional[str] = ..., local_id: _Optional[str] = ..., name: _Optional[str] = ..., owner_first_name: _Optional[str] = ..., owner_surname: _Optional[str] = ..., capability_text: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceInfo]
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceInfo, _Mapping]]] = ...) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserInfo]
    def __init__(self, users: _Optional[_Iterable[_Union[UserInfo, _Mapping]]] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceInfo]
    def __init__(self, devices: _Optional[_Iterable[_Union[DeviceInfo, _Mapping]]] = ...) -> None: ...

class GetServiceRequest(_message.Message):
    __slots__ = ("service_id",)
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    def __init__(self, service_id: _Optional[str] = ...) -> None: ...

class ProvisionRequest(_message.Message):
    __slots__ = ("service_id", "service_capability")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    service_capability: bytes
    def __init__(self, service_id: _Optional[str] = ..., service_capability: _Optional[bytes] = ...) -> None: ...

class ProvisionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerIdentityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerIdentityResponse(_message.Message):
    __slots__ = ("identity",)
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    identity: PublicIdentity
    def __init__(self, identity: _Optional[_Union[PublicIdentity, _Mapping]] = ...) -> None: ...

class ServerDeliverRequest(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    def __init__(self, message: _Optional[bytes] = ...) -> None: ...

class ServerDeliverResponse(_message.Message):
    __slots__ = ("reply", "handle_seconds")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    HANDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    reply: bytes
    handle_seconds: float
    def __init__(self, reply: _Optional[bytes] = ..., handle_seconds: _Optional[float] = ...) -> None: ...

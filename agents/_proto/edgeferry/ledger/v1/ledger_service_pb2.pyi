from agents._proto.edgeferry.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_ROLE_UNSPECIFIED: _ClassVar[NodeRole]
    NODE_ROLE_PEER: _ClassVar[NodeRole]
    NODE_ROLE_SUBMITTER: _ClassVar[NodeRole]

class DeliverStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVER_STATUS_UNSPECIFIED: _ClassVar[DeliverStatus]
    DELIVER_STATUS_OK: _ClassVar[DeliverStatus]
    DELIVER_STATUS_GAP: _ClassVar[DeliverStatus]
NODE_ROLE_UNSPECIFIED: NodeRole
NODE_ROLE_PEER: NodeRole
NODE_ROLE_SUBMITTER: NodeRole
DELIVER_STATUS_UNSPECIFIED: DeliverStatus
DELIVER_STATUS_OK: DeliverStatus
DELIVER_STATUS_GAP: DeliverStatus

class ContainerMetadata(_message.Message):
    __slots__ = ("source_ip", "container_id", "total_size", "gpu_usage", "cpu_usage", "type")
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    GPU_USAGE_FIELD_NUMBER: _ClassVar[int]
    CPU_USAGE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    source_ip: str
    container_id: str
    total_size: int
    gpu_usage: int
    cpu_usage: int
    type: str
    def __init__(self, source_ip: _Optional[str] = ..., container_id: _Optional[str] = ..., total_size: _Optional[int] = ..., gpu_usage: _Optional[int] = ..., cpu_usage: _Optional[int] = ..., type: _Optional[str] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("metadata", "submitter_id", "submitter_key", "nonce", "timestamp_ms", "signature")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SUBMITTER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBMITTER_KEY_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    metadata: ContainerMetadata
    submitter_id: str
    submitter_key: bytes
    nonce: bytes
    timestamp_ms: int
    signature: bytes
    def __init__(self, metadata: _Optional[_Union[ContainerMetadata, _Mapping]] = ..., submitter_id: _Optional[str] = ..., submitter_key: _Optional[bytes] = ..., nonce: _Optional[bytes] = ..., timestamp_ms: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("height", "prev_hash", "merkle_root", "timestamp_ms", "nonce", "validator_id", "transactions", "block_hash", "signature")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    MERKLE_ROOT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    VALIDATOR_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    height: int
    prev_hash: bytes
    merkle_root: bytes
    timestamp_ms: int
    nonce: bytes
    validator_id: str
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    block_hash: bytes
    signature: bytes
    def __init__(self, height: _Optional[int] = ..., prev_hash: _Optional[bytes] = ..., merkle_root: _Optional[bytes] = ..., timestamp_ms: _Optional[int] = ..., nonce: _Optional[bytes] = ..., validator_id: _Optional[str] = ..., transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., block_hash: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Confirmation(_message.Message):
    __slots__ = ("peer_id", "chain_id", "height", "block_hash", "seq", "signature")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    chain_id: bytes
    height: int
    block_hash: bytes
    seq: int
    signature: bytes
    def __init__(self, peer_id: _Optional[str] = ..., chain_id: _Optional[bytes] = ..., height: _Optional[int] = ..., block_hash: _Optional[bytes] = ..., seq: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Registration(_message.Message):
    __slots__ = ("node_id", "public_key", "role", "address", "seq", "signature")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    public_key: bytes
    role: NodeRole
    address: str
    seq: int
    signature: bytes
    def __init__(self, node_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., role: _Optional[_Union[NodeRole, str]] = ..., address: _Optional[str] = ..., seq: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class RegisterNodeRequest(_message.Message):
    __slots__ = ("registrations",)
    REGISTRATIONS_FIELD_NUMBER: _ClassVar[int]
    registrations: _containers.RepeatedCompositeFieldContainer[Registration]
    def __init__(self, registrations: _Optional[_Iterable[_Union[Registration, _Mapping]]] = ...) -> None: ...

class RegisterNodeResponse(_message.Message):
    __slots__ = ("chain_id", "head_height", "total_nodes")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEAD_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_NODES_FIELD_NUMBER: _ClassVar[int]
    chain_id: bytes
    head_height: int
    total_nodes: int
    def __init__(self, chain_id: _Optional[bytes] = ..., head_height: _Optional[int] = ..., total_nodes: _Optional[int] = ...) -> None: ...

class SubmitTransactionRequest(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ...) -> None: ...

class SubmitTransactionResponse(_message.Message):
    __slots__ = ("tx_id",)
    TX_ID_FIELD_NUMBER: _ClassVar[int]
    tx_id: str
    def __init__(self, tx_id: _Optional[str] = ...) -> None: ...

class GetConfirmationsRequest(_message.Message):
    __slots__ = ("tx_id", "at_least", "max_wait_ms")
    TX_ID_FIELD_NUMBER: _ClassVar[int]
    AT_LEAST_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    tx_id: str
    at_least: int
    max_wait_ms: int
    def __init__(self, tx_id: _Optional[str] = ..., at_least: _Optional[int] = ..., max_wait_ms: _Optional[int] = ...) -> None: ...

class GetConfirmationsResponse(_message.Message):
    __slots__ = ("confirmations", "total_nodes", "height")
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_NODES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    confirmations: int
    total_nodes: int
    height: int
    def __init__(self, confirmations: _Optional[int] = ..., total_nodes: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class GetBlocksRequest(_message.Message):
    __slots__ = ("from_height", "max_blocks")
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    from_height: int
    max_blocks: int
    def __init__(self, from_height: _Optional[int] = ..., max_blocks: _Optional[int] = ...) -> None: ...

class GetBlocksResponse(_message.Message):
    __slots__ = ("blocks", "head_height")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    HEAD_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedCompositeFieldContainer[Block]
    head_height: int
    def __init__(self, blocks: _Optional[_Iterable[_Union[Block, _Mapping]]] = ..., head_height: _Optional[int] = ...) -> None: ...

class SubmitConfirmationsRequest(_message.Message):
    __slots__ = ("confirmations",)
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    confirmations: _containers.RepeatedCompositeFieldContainer[Confirmation]
    def __init__(self, confirmations: _Optional[_Iterable[_Union[Confirmation, _Mapping]]] = ...) -> None: ...

class SubmitConfirmationsResponse(_message.Message):
    __slots__ = ("accepted", "errors")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    errors: _containers.RepeatedCompositeFieldContainer[_common_pb2.Error]
    def __init__(self, accepted: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[_common_pb2.Error, _Mapping]]] = ...) -> None: ...

class GetMetadataRequest(_message.Message):
    __slots__ = ("container_id", "peer_id")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    peer_id: str
    def __init__(self, container_id: _Optional[str] = ..., peer_id: _Optional[str] = ...) -> None: ...

class GetMetadataResponse(_message.Message):
    __slots__ = ("transaction", "height")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    height: int
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., height: _Optional[int] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("peer_id",)
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    def __init__(self, peer_id: _Optional[str] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("chain_id", "head_height", "total_nodes", "stored_bytes")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEAD_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_NODES_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    chain_id: bytes
    head_height: int
    total_nodes: int
    stored_bytes: int
    def __init__(self, chain_id: _Optional[bytes] = ..., head_height: _Optional[int] = ..., total_nodes: _Optional[int] = ..., stored_bytes: _Optional[int] = ...) -> None: ...

class DeliverBlocksRequest(_message.Message):
    __slots__ = ("peer_id", "blocks")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    blocks: _containers.RepeatedCompositeFieldContainer[Block]
    def __init__(self, peer_id: _Optional[str] = ..., blocks: _Optional[_Iterable[_Union[Block, _Mapping]]] = ...) -> None: ...

class DeliverBlocksResponse(_message.Message):
    __slots__ = ("status", "head_height", "confirmation")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEAD_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_FIELD_NUMBER: _ClassVar[int]
    status: DeliverStatus
    head_height: int
    confirmation: Confirmation
    def __init__(self, status: _Optional[_Union[DeliverStatus, str]] = ..., head_height: _Optional[int] = ..., confirmation: _Optional[_Union[Confirmation, _Mapping]] = ...) -> None: ...

class PutMetadataRequest(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ...) -> None: ...

class PutMetadataResponse(_message.Message):
    __slots__ = ("tx_id",)
    TX_ID_FIELD_NUMBER: _ClassVar[int]
    tx_id: str
    def __init__(self, tx_id: _Optional[str] = ...) -> None: ...

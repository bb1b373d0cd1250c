"""What fuxfs needs from the NMS (`BlockDevice`) and `NmsDevice`, which provides it over an
`NmsClient`."""

from __future__ import annotations

import logging
from typing import Protocol

from ..client import NmsClient, NmsError
from ..protocol import Op, StatInfo, Status, read_u64
from .layout import superblock_token

log = logging.getLogger("nms.fuxfs")


class BlockDevice(Protocol):
    """What fuxfs needs from the NMS (`NmsDevice` adapts `NmsClient`; tests use a fake)."""

    @property
    def block_size(self) -> int: ...

    def root_block(self, volume: str) -> int: ...

    def allocate(self) -> int: ...

    def write(self, block_id: int, data: bytes) -> None: ...

    def read(self, block_id: int) -> bytes: ...

    def free(self, block_id: int) -> None: ...

    def stat(self) -> StatInfo: ...


class NmsDevice:
    """`BlockDevice` over an `NmsClient` (which reconnects through its resolver)."""

    def __init__(self, client: NmsClient) -> None:
        self.client = client

    @property
    def block_size(self) -> int:
        return self.client.block_size

    def root_block(self, volume: str) -> int:
        # NmsClient.allocate() draws a random token; the superblock needs a fixed one. ALLOC is
        # idempotent per token, so the call is as safe to retry as allocate().
        resp, _ = self.client._call(Op.ALLOC, superblock_token(volume))
        return read_u64(self.client._check(resp))

    def allocate(self) -> int:
        return self.client.allocate()

    def write(self, block_id: int, data: bytes) -> None:
        self.client.write(block_id, data)

    def read(self, block_id: int) -> bytes:
        return self.client.read(block_id)

    def free(self, block_id: int) -> None:
        try:
            self.client.free(block_id)
        except NmsError as err:
            if err.status is not Status.NOT_FOUND:
                raise
            log.warning("block %x was already free", block_id)

    def stat(self) -> StatInfo:
        return self.client.stat()


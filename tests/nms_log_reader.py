"""An independent reader of the NMS's on-disk block log, written from the format in the
docstring of agents/workloads/nms/segments.py (it imports nothing of the NMS).

Tests use it to check what the server stored without trusting the server's own index:
`live_blocks` returns, per block id, the data of its newest record, each checked against its
SHA-256 (a mismatch is reported as `CORRUPT`, never returned as data).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

HEADER = struct.Struct("<4sBBHQQ16sI32sI")  # ... digest, then CRC-32 of the bytes before it
DATA, FREE, ZERO = 1, 2, 3
CORRUPT = b"<corrupt>"


def records(data_dir: Path) -> list[tuple[int, int, int, bytes]]:
    """(kind, block id, sequence, data or CORRUPT) of every whole record, segments in name
    order; stops a segment at the first header that does not check out (a torn tail)."""
    out = []
    for seg in sorted((data_dir / "segments").glob("*.seg")):
        blob = seg.read_bytes()
        pos = 0
        while pos + HEADER.size <= len(blob):
            magic, kind, version, _, bid, seq, _token, length, digest, crc = \
                HEADER.unpack_from(blob, pos)
            if (magic != b"NMSR" or version != 1
                    or crc != zlib.crc32(blob[pos:pos + HEADER.size - 4])
                    or pos + HEADER.size + length > len(blob)):
                break
            data = blob[pos + HEADER.size:pos + HEADER.size + length]
            ok = hashlib.sha256(data).digest() == digest
            out.append((kind, bid, seq, data if ok else CORRUPT))
            pos += HEADER.size + length
    return out


def live_blocks(data_dir: Path, block_size: int) -> dict[int, bytes]:
    """Block id -> current content (zero-filled blocks expanded; CORRUPT for a bad digest)."""
    newest: dict[int, tuple[int, int, bytes]] = {}
    for kind, bid, seq, data in records(data_dir):
        if bid not in newest or seq > newest[bid][0]:
            newest[bid] = (seq, kind, data)
    return {bid: (bytes(block_size) if kind == ZERO else data)
            for bid, (_, kind, data) in newest.items() if kind != FREE}

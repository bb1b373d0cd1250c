"""The services an edge offers: real transformations over bytes (issue 14, seed 004 section 5).

Each is a pure function of its input, so a test can compute a composition's result on its own:

* ``transcode``: the input recompressed with zlib at level 9 (``zlib.compress(data, 9)``);
* ``subtitle-merge``: the input with a subtitle block appended (`SUBTITLE_BLOCK`);
* ``filter``: every byte XOR 0x5A (a byte-wise transform, its own inverse);
* ``audio-enhance``: the input with its bytes reversed.

The modeled service time (the paper's cost model, section 8.1: a normally distributed cost per
node and service) is added by the agent, not here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping

#: What ``subtitle-merge`` appends.
SUBTITLE_BLOCK = b"\n--- subtitles (en) ---\n00:00:01,000 --> 00:00:04,000\nedgeferry\n"
_XOR = bytes(b ^ 0x5A for b in range(256))


def transcode(data: bytes) -> bytes:
    """zlib level-9 compression of the input."""
    return zlib.compress(data, 9)


def subtitle_merge(data: bytes) -> bytes:
    """The input followed by the subtitle block."""
    return data + SUBTITLE_BLOCK


def byte_filter(data: bytes) -> bytes:
    """Every byte XOR 0x5A."""
    return data.translate(_XOR)


def audio_enhance(data: bytes) -> bytes:
    """The input's bytes in reverse order."""
    return data[::-1]


TRANSFORMS: Mapping[str, Callable[[bytes], bytes]] = {
    "transcode": transcode,
    "subtitle-merge": subtitle_merge,
    "filter": byte_filter,
    "audio-enhance": audio_enhance,
}


class UnknownService(LookupError):
    """The edge does not offer (or nobody implements) the service asked for."""


def apply(service: str, data: bytes) -> bytes:
    """Run `service` over `data`; raises UnknownService for a name with no transformation."""
    try:
        fn = TRANSFORMS[service]
    except KeyError:
        raise UnknownService(f"no transformation named {service!r} (known: "
                             f"{', '.join(sorted(TRANSFORMS))})") from None
    return fn(data)

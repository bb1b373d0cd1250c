"""Secret files (shared keys, sealed tokens): hex text, or raw bytes taken exactly as stored.

A random key or a MAC tag is raw bytes, and about one in 40 ends (or starts) with a byte that
`bytes.strip()` treats as whitespace; trimming it would cut the secret and make one side of a
deployment disagree with the other. So only hex text is trimmed (a trailing newline from an
editor or `echo`); anything else is used byte for byte.
"""

from __future__ import annotations


def decode_secret(data: bytes) -> bytes:
    """The secret in a file's contents: hex text (surrounding whitespace ignored) -> its bytes,
    anything else -> the bytes exactly as given."""
    text = data.strip()
    if text:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    return data

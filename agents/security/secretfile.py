"""Secret files (shared keys, sealed tokens): hex text, or raw bytes taken exactly as stored.

A random key or a MAC tag is raw bytes, and about one in 40 ends (or starts) with a byte that
`bytes.strip()` treats as whitespace; trimming it would cut the secret and make one side of a
deployment disagree with the other. So only hex text is trimmed (a trailing newline from an
editor or `echo`); anything else is used byte for byte.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path


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


class WatchedSecret:
    """A secret file read again whenever it changes (inode, size or mtime), so a renewed
    short-lived token (the deploy reseals the SMF's owner token before it expires) replaces the
    old one without restarting the agent. The first read must succeed (OSError otherwise);
    later, a file that is briefly missing or unreadable keeps the last value read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value = b""
        self._load()

    def _load(self) -> None:
        st = self.path.stat()
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp != self._stamp:
            self._value = decode_secret(self.path.read_bytes())
            self._stamp = stamp

    def value(self) -> bytes:
        """The secret as the file holds it now (or the last value read, see the class doc)."""
        with self._lock:
            with contextlib.suppress(OSError):
                self._load()
            return self._value

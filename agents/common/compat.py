"""What the agents take from Python 3.11's standard library, also on Python 3.10 (JetPack 6
ships 3.10): ``StrEnum``. Standard library only, so domain modules may import it."""

from __future__ import annotations

import enum
import sys
from typing import Any


class StrEnum310(str, enum.Enum):
    """Python 3.11's `enum.StrEnum` for 3.10: members are strings, ``str()`` and ``format()``
    give the value, and `enum.auto` gives the lower-cased member name."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return str(self.value).__format__(spec)

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list[Any]) -> str:
        return name.lower()


if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - exercised on 3.10 hosts; its behaviour is tested on any version
    StrEnum = StrEnum310

__all__ = ["StrEnum", "StrEnum310"]

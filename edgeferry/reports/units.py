"""Units of reference figures and metrics: kind and factor to the base unit (s, bit/s, B, 1)."""

from __future__ import annotations

UNIT_KINDS: dict[str, tuple[str, float]] = {
    "s": ("time", 1.0),
    "ms": ("time", 1e-3),
    "us": ("time", 1e-6),
    "bit/s": ("rate", 1.0),
    "kbit/s": ("rate", 1e3),
    "Mbit/s": ("rate", 1e6),
    "Gbit/s": ("rate", 1e9),
    "B": ("size", 1.0),
    "kB": ("size", 1e3),
    "MB": ("size", 1e6),
    "GB": ("size", 1e9),
    "cost": ("ratio", 1.0),
    "ratio": ("ratio", 1.0),
    "count": ("count", 1.0),
}


def to_base(value: float, unit: str) -> float:
    return value * UNIT_KINDS[unit][1]


def from_base(value: float, unit: str) -> float:
    return value / UNIT_KINDS[unit][1]


def kind(unit: str) -> str:
    return UNIT_KINDS[unit][0]


def best_time_unit(seconds: float) -> str:
    """A readable unit for a typical duration (the median of a column)."""
    if seconds >= 1.0:
        return "s"
    if seconds >= 1e-3:
        return "ms"
    return "us"

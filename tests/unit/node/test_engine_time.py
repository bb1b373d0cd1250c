"""`engine_time`: the engine's RFC 3339 timestamps (nanoseconds, "Z") as epoch seconds."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from agents.node.engine import engine_time


def test_nanosecond_timestamps_keep_their_fraction() -> None:
    want = datetime(2026, 11, 28, 12, 1, 2, tzinfo=timezone.utc).timestamp()
    assert engine_time("2026-11-28T12:01:02.123456789Z") == pytest.approx(want + 0.123456789)
    assert engine_time("2026-11-28T12:01:02.5Z") == pytest.approx(want + 0.5)
    assert engine_time("2026-11-28T12:01:02Z") == want


@pytest.mark.parametrize("text", ["", "0001-01-01T00:00:00Z", "yesterday", "2026-13-01T00:00:00Z"])
def test_the_zero_time_and_garbage_are_unknown(text: str) -> None:
    assert engine_time(text) is None

from __future__ import annotations

import pytest

from agents.security.crypto import Identity


class FakeClock:
    """Injectable wall clock (seconds)."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="session")
def ids() -> dict[str, Identity]:
    """Identities are reused across tests (key generation is the slow part)."""
    names = ["sa", "cb", "registry", "mallory", "cms", "smf", "server1", "appl"]
    return {n: Identity.generate(n) for n in names}

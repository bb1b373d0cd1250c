"""What `lab up` built and measured (`LabState`, persisted as JSON), and what it changed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeferry.lab.config import LabSpec
from edgeferry.workspace import lab_state_dir


@dataclass
class LabState:
    """What `lab up` built and measured; persisted as JSON beside the lab's SSH key."""

    name: str
    spec: dict[str, Any]
    fingerprint: str
    image: str
    network: str
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    bandwidth: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    inventory: str = ""
    private_key: str = ""
    known_hosts: str = ""
    created: float = 0.0

    @classmethod
    def path_for(cls, lab: str) -> Path:
        """Where the state of lab ``lab`` is kept."""
        return lab_state_dir(lab) / "state.json"

    @classmethod
    def load(cls, lab: str) -> LabState | None:
        """The saved state of lab ``lab``, None when it is not up."""
        path = cls.path_for(lab)
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        """Write the state atomically (a directory of mode 0700)."""
        path = self.path_for(self.name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True))
        tmp.replace(path)

    def hosts_by_role(self, role: str) -> list[str]:
        """The names of the hosts with ``role`` (EnOSlib style)."""
        return [n for n, h in self.hosts.items() if h["role"] == role]


@dataclass
class UpResult:
    state: LabState
    changes: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def spec_of_running_lab(name: str) -> LabSpec | None:
    """The spec a lab was brought up with (from its state), or None when it is not up."""
    state = LabState.load(name)
    if state is None:
        return None
    return LabSpec.model_validate(state.spec)

"""Where edgeferry keeps generated files: the workspace is $EDGEFERRY_HOME or the current directory.

Generated state (lab keys, CA material, run artifacts) lives under `<workspace>/.edgeferry/`,
which is git-ignored; inventories under `<workspace>/inventory/`; reports under
`<workspace>/reports/`.
"""

from __future__ import annotations

import os
from pathlib import Path


def workspace() -> Path:
    return Path(os.environ.get("EDGEFERRY_HOME") or Path.cwd()).resolve()


def state_root() -> Path:
    return workspace() / ".edgeferry"


def lab_state_dir(lab: str) -> Path:
    return state_root() / "labs" / lab


def inventory_dir(name: str) -> Path:
    return workspace() / "inventory" / name

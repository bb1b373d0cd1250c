"""The bridge-side end of a lab host's link on this machine (where its downloads are shaped)."""

from __future__ import annotations

import os
from pathlib import Path

from edgeferry.errors import OperationFailed


def local_veth(iflink: str, sys_class_net: Path = Path("/sys/class/net")) -> str:
    """The bridge-side interface on this machine whose ifindex is the container's iflink."""
    for dev in sorted(os.listdir(sys_class_net)):
        try:
            if (sys_class_net / dev / "ifindex").read_text().strip() == iflink.strip():
                return dev
        except OSError:
            continue
    raise OperationFailed(f"no local interface has ifindex {iflink.strip()}")

"""``python -m agents.tcfdl_worker --config /etc/edgeferry/tcfdl_worker.yaml``: TCFDL function
instances of one worker (or master) host."""

from __future__ import annotations

import sys

from agents.tcfdl_worker.agent import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m agents.workloads.nms.fuxfs``: mount a fuxfs volume (see `cli`)."""

import sys

from .cli import main

sys.exit(main())

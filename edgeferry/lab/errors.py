"""The lab's own refusals, on the controller's base errors (`edgeferry.errors`).

The lab raises these and knows nothing of who called it: the experiments layer, which uses the
lab, turns them into its runner's errors where it calls the lab (`edgeferry.experiments.links`).
"""

from __future__ import annotations

from edgeferry.errors import ConfigError


class NotAnEdge(ConfigError):
    """A link operation names a host that is not an edge host of the lab (only edges' links
    are shaped)."""

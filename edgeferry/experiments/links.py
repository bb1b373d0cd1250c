"""A trial's link rates, as the experiments see them: the lab's `LinkShaper` behind the runner's
errors.

`edgeferry.lab.links.trial.LinkShaper` shapes the emulated lab's edge links and refuses with
the lab's errors (`edgeferry.lab.errors`); it knows nothing of experiments. `TrialLinks` is what
scenarios hold: the same operations, with a refusal of the lab turned into `TrialFailed` (same
message), so what a trial records is the runner's error; without the emulated lab it is
`ScenarioUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from edgeferry.experiments.scenario import ScenarioContext, ScenarioUnavailable, TrialFailed
from edgeferry.lab.errors import NotAnEdge
from edgeferry.lab.links.trial import LinkShaper


@contextmanager
def _trial_errors() -> Iterator[None]:
    """A refusal of the lab inside the block ends the trial (`TrialFailed`, same message)."""
    try:
        yield
    except NotAnEdge as err:
        raise TrialFailed(str(err)) from None  # one exception in the trial's traceback, as before


class TrialLinks:
    """Sets the tbf rate of the lab's edge links for trials; `restore()` undoes every change
    (`LinkShaper`, with the runner's errors)."""

    def __init__(self, ctx: ScenarioContext) -> None:
        if ctx.lab is None:
            raise ScenarioUnavailable(
                "changing a link's rate needs the emulated lab (target: {lab: ...}); on real "
                "hardware leave 'bandwidth' unset and shape the links yourself")
        self.shaper = LinkShaper(ctx.lab, ctx.connection)

    def configured(self, host: str) -> int | None:
        """The lab's rate of `host`'s link (None: not shaped); TrialFailed unless an edge."""
        with _trial_errors():
            return self.shaper.configured(host)

    def set(self, host: str, direction: str, rate: int | None) -> str:
        """Put `rate` (None: no shaping) on one direction of an edge's link; the device."""
        with _trial_errors():
            return self.shaper.set(host, direction, rate)

    def ensure(self, hosts: list[str], bandwidth: str | int | None) -> dict[str, Any]:
        """Both directions of each host's link at `bandwidth` (`LinkShaper.ensure`)."""
        with _trial_errors():
            return self.shaper.ensure(hosts, bandwidth)

    @contextmanager
    def unshaped(self, hosts: list[str]) -> Iterator[None]:
        """The block runs with the hosts' links unshaped, then at their rates again
        (`LinkShaper.unshaped`)."""
        with _trial_errors(), self.shaper.unshaped(hosts):
            yield

    def restore(self) -> list[str]:
        """Every touched link back to what it had; the problems (never raises)."""
        return self.shaper.restore()

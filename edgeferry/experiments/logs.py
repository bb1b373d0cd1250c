"""Per-trial log collection over SSH (Fabric): the agents' journal on every host of the target.

After a trial (by default only a failed one; `logs: all` in the definition for every trial,
`logs: none` to switch it off) the runner fetches ``journalctl -u 'edgeferry-*'`` from each host
for the trial's time window and keeps it beside the raw results as
``logs/<part>/<index>/<host>.log``. A host that cannot be read is noted in the trial record, never
allowed to turn the trial's own outcome into something else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from edgeferry.hosts import run

LogPolicy = Literal["failed", "all", "none"]
UNITS = "edgeferry-*"
SKEW_S = 5.0  # hosts' clocks may lag the controller's a little (real hardware)
MAX_LINES = 20000


def wanted(policy: LogPolicy, outcome: str) -> bool:
    return policy == "all" or (policy == "failed" and outcome != "ok")


def journal_argv(since: float, until: float) -> list[str]:
    """journalctl for the agents' units between two Unix times (seconds, widened by SKEW_S)."""
    return ["journalctl", "--no-pager", "--quiet", "-o", "short-iso-precise", "-u", UNITS,
            "--since", f"@{int(since - SKEW_S)}", "--until", f"@{int(until + SKEW_S) + 1}",
            "-n", str(MAX_LINES)]


def collect(connect: Callable[[str], Any], hosts: Iterable[str], since: float, until: float,
            dest: Path, *, relative_to: Path) -> dict[str, str]:
    """Fetch each host's agent journal into dest/<host>.log.

    Returns host -> the log's path relative to `relative_to`, or "error: ..." for a host that
    could not be read (the trial record keeps both).
    """
    dest.mkdir(parents=True, exist_ok=True)
    found: dict[str, str] = {}
    argv = journal_argv(since, until)
    for host in sorted(hosts):
        try:
            text = run(connect(host), argv, timeout=60)
        except Exception as err:  # a log we cannot read is reported, not raised
            found[host] = f"error: {type(err).__name__}: {err}"[:300]
            continue
        path = dest / f"{host}.log"
        path.write_text(text)
        found[host] = str(path.relative_to(relative_to))
    return found

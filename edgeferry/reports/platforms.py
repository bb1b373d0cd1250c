"""Where a migration's workloads ran, and what emulation cost (issue 19).

A jetson-class host of the emulated lab runs its workloads as linux/arm64 under qemu-user on an
x86_64 machine: their CPU time says nothing about a real Jetson. The migration scenarios record
each trial's source and destination platform and how it ran (``detail.platforms``:
`edgeferry.experiments.scenarios.migration_common.platform_detail`); this table sets the
destination's start and first response of every part beside the same phases of the run's
trials whose destination ran native, so an emulated start is read as what it is.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from edgeferry.reports.stats import measured, phase_value
from edgeferry.stats import median

PHASES = ("start", "first-response")
HEADER = ["part", "source", "destination", "n", "start (s)", "first response (s)",
          "start / native start"]
NOTE = ("Where each part's workloads ran, as the node agents reported it (platform; `qemu-user`: "
        "emulated on this machine's CPU, `native`: not). Start = the destination's `docker "
        "start` until the container runs; first response = until the service answers. The "
        "ratio divides a part's median start by the median start of the run's trials whose "
        "destination ran native: the cost of emulation, not a Jetson's speed (a real Jetson "
        "runs arm64 natively). Medians of measured trials.")


def _where(p: dict[str, Any]) -> str:
    return f"{p.get('host', '?')}: {p.get('platform', '?')} ({p.get('emulation', '?')})"


def platform_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per part whose trials recorded their platforms, when any of them ran emulated
    (no rows otherwise: a run without emulation needs no such table)."""
    parts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in measured(records):
        if isinstance((r.get("detail") or {}).get("platforms"), dict):
            parts[str(r["part"])].append(r)
    emulated = [r for rs in parts.values() for r in rs
                if any(p.get("emulation") not in (None, "native")
                       for p in r["detail"]["platforms"].values())]
    if not emulated:
        return []
    native_starts = [v for rs in parts.values() for r in rs
                     if r["detail"]["platforms"].get("destination", {}).get("emulation")
                     == "native"
                     for v in [phase_value(r, "start")] if v is not None]
    native = median(native_starts) if native_starts else None
    rows = []
    for part, rs in parts.items():
        where = rs[0]["detail"]["platforms"]
        values = {ph: [v for r in rs for v in [phase_value(r, ph)] if v is not None]
                  for ph in PHASES}
        meds = {ph: median(vs) if vs else None for ph, vs in values.items()}
        start = meds["start"]
        ratio = "-" if start is None or not native else f"{start / native:.2f}"
        rows.append([part, _where(where.get("source", {})),
                     _where(where.get("destination", {})), str(len(rs)),
                     *("-" if meds[ph] is None else f"{meds[ph]:.3f}" for ph in PHASES),
                     ratio])
    return rows

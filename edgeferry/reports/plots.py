"""Report plots (matplotlib, Agg): phase breakdown, time vs size with the bandwidth bound,
CDF of totals, bandwidth distribution (BloSM Figure 5 style). Each returns the PNG path."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from edgeferry.reports.stats import TOTAL, GroupStats, RunStats, measured
from edgeferry.reports.units import best_time_unit, from_base, kind, to_base
from edgeferry.stats import median

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": 110})


_UNIT_SUFFIXES = {"_mb": "MB", "_gb": "GB", "_s": "s", "_ms": "ms", "_bps": "bit/s"}


def _name_and_unit(param: str) -> tuple[str, str | None]:
    """image_size_mb -> ("image size", "MB"); nodes -> ("nodes", None)."""
    for suffix, unit in _UNIT_SUFFIXES.items():
        if param.endswith(suffix):
            return param[: -len(suffix)].replace("_", " "), unit
    return param.replace("_", " "), None


def axis_label(param: str) -> str:
    """A parameter name as an axis label: image_size_mb -> "image size (MB)"."""
    name, unit = _name_and_unit(param)
    return f"{name} ({unit})" if unit else name


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def phase_breakdown(groups: list[GroupStats], part: str, out: Path) -> Path | None:
    """Stacked bars of the median of each phase per parameter combination."""
    gs = [g for g in groups if g.part == part and g.phases]
    if not gs:
        return None
    phases = [p for p in gs[0].phases if p != TOTAL]
    for g in gs[1:]:
        phases += [p for p in g.phases if p != TOTAL and p not in phases]
    unit = best_time_unit(max(g.phases[TOTAL].median for g in gs))
    # room for the legend beside the bars (one line per phase) and a two-line title
    fig, ax = plt.subplots(figsize=(max(7.5, 1.1 * len(gs) + 5), max(4.2, 0.2 * len(phases) + 1.5)))
    labels = [g.params_label.replace(", ", "\n") for g in gs]  # one parameter per line
    bottoms = [0.0] * len(gs)
    cmap = plt.get_cmap("tab20")
    for i, phase in enumerate(phases):
        heights = [from_base(g.phases[phase].median, unit) if phase in g.phases else 0.0
                   for g in gs]
        ax.bar(labels, heights, bottom=bottoms, label=phase, color=cmap(i % 20))
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_ylabel(f"median wall time ({unit})")
    ax.set_xlabel("parameters")
    ax.set_title(f"{part}: phase breakdown\n(median per phase, stacked)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if len(gs) > 4:
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return _save(fig, out)


def time_vs_size(stats: RunStats, part: str, param: str, out: Path) -> Path | None:
    """Total time of every measured trial against a numeric parameter, with the medians and
    the physical bound (bytes moved / measured bandwidth)."""
    recs = [r for r in measured(stats.records) if r["part"] == part
            and isinstance(r["params"].get(param), int | float)]
    if len({r["params"][param] for r in recs}) < 2:
        return None
    unit = best_time_unit(median([float(r["total_s"]) for r in recs]))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    xs = [r["params"][param] for r in recs]
    ax.scatter(xs, [from_base(r["total_s"], unit) for r in recs], s=14, alpha=0.6,
               label="trials (total)")
    gs = sorted((g for g in stats.groups if g.part == part and param in g.params),
                key=lambda g: g.params[param])
    ax.plot([g.params[param] for g in gs], [from_base(g.phases[TOTAL].median, unit) for g in gs],
            "o-", color="C1", label="median total")
    bound = [(g.params[param], from_base(g.bound_s.median, unit)) for g in gs if g.bound_s]
    if bound:
        ax.plot(*zip(*bound, strict=True), "k--", label="bound: bytes moved / bandwidth")
    published = [(c.where[param], from_base(to_base(c.reference, c.unit), unit), c.source)
                 for c in stats.comparisons
                 if c.part == part and c.quantity == f"phase {TOTAL}"
                 and isinstance(c.where.get(param), int | float) and kind(c.unit) == "time"]
    for i, (x, y, source) in enumerate(published):
        ax.scatter([x], [y], marker="X", s=70, color="C3", zorder=3,
                   label=f"published ({source})" if i == 0 else None)
    ax.set_xlabel(axis_label(param))
    ax.set_ylabel(f"total time ({unit})")
    ax.set_title(f"{part}: time vs {_name_and_unit(param)[0]}")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out)


def downtime_vs_size(stats: RunStats, part: str, param: str, out: Path) -> Path | None:
    """Probed downtime of every measured trial against a numeric parameter (the image or state
    size), per combination of the other parameters: trials, medians and the median downtime
    bound (`edgeferry.bounds`)."""
    recs = [r for r in measured(stats.records) if r["part"] == part
            and isinstance(r["params"].get(param), int | float)
            and "downtime_s" in r.get("metrics", {})]
    if len({r["params"][param] for r in recs}) < 2:
        return None
    unit = best_time_unit(median([float(r["metrics"]["downtime_s"]) for r in recs]))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))

    def others(params: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in params.items() if k != param) or "all"

    series = list(dict.fromkeys(others(g.params) for g in stats.groups
                                if g.part == part and param in g.params))
    for i, label in enumerate(series[:8]):
        rs = [r for r in recs if others(r["params"]) == label]
        ax.scatter([r["params"][param] for r in rs],
                   [from_base(float(r["metrics"]["downtime_s"]), unit) for r in rs],
                   s=14, alpha=0.5, color=f"C{i}")
        gs = sorted((g for g in stats.groups if g.part == part and param in g.params
                     and others(g.params) == label and "downtime_s" in g.metrics),
                    key=lambda g: g.params[param])
        xs = [g.params[param] for g in gs]
        ax.plot(xs, [from_base(g.metrics["downtime_s"].median, unit) for g in gs], "o-",
                color=f"C{i}", label=f"downtime, {label}")
        if all("downtime_bound_s" in g.metrics for g in gs):
            ax.plot(xs, [from_base(g.metrics["downtime_bound_s"].median, unit) for g in gs],
                    "--", color=f"C{i}", label=f"downtime bound, {label}")
    ax.set_xlabel(axis_label(param))
    ax.set_ylabel(f"downtime ({unit})")
    ax.set_title(f"{part}: downtime vs {_name_and_unit(param)[0]}\n(probed; dashed: "
                 "control stop + bytes after the stop / bandwidth + control start)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out)


def cdf_totals(stats: RunStats, part: str, out: Path) -> Path | None:
    gs = [g for g in stats.groups if g.part == part and TOTAL in g.phases]
    if not gs:
        return None
    unit = best_time_unit(median([g.phases[TOTAL].median for g in gs]))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for g in gs[:10]:
        vals = sorted(from_base(r["total_s"], unit) for r in measured(stats.records)
                      if r["part"] == part and r["params"] == g.params)
        if not vals:
            continue
        ys = [(i + 1) / len(vals) for i in range(len(vals))]
        ax.step(vals, ys, where="post", label=f"{g.params_label} (n={len(vals)})")
    ax.set_xlabel(f"total wall time per trial ({unit})")
    ax.set_ylabel("fraction of trials ≤ x")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{part}: CDF of trial totals")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out)


def bandwidth_samples(stats: RunStats) -> dict[str, list[float]]:
    """iperf3 interval samples (bit/s): from link-bandwidth trials, else from the lab state."""
    out: dict[str, list[float]] = {}
    for r in measured(stats.records):
        samples = (r.get("detail") or {}).get("samples_bps")
        if samples:
            key = f"{r['params'].get('host', '?')} {r['params'].get('direction', '')}".strip()
            out.setdefault(key, []).extend(float(s) for s in samples)
    if out:
        return out
    lab = (stats.info.get("provenance") or {}).get("lab") or {}
    for host, entry in (lab.get("bandwidth") or {}).items():
        for d in ("up", "down"):
            if isinstance(entry.get(d), dict) and entry[d].get("samples_bps"):
                out[f"{host} {d} (lab up)"] = [float(s) for s in entry[d]["samples_bps"]]
    return out


def bandwidth_distribution(stats: RunStats, out: Path) -> Path | None:
    """Histogram of iperf3 samples per link with a fitted normal curve (BloSM Figure 5)."""
    series = bandwidth_samples(stats)
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (name, vals) in enumerate(sorted(series.items())[:6]):
        mbit = [v / 1e6 for v in vals]
        mean = statistics.fmean(mbit)
        sd = statistics.stdev(mbit) if len(mbit) > 1 else 0.0
        ax.hist(mbit, bins=min(30, max(5, len(mbit) // 3)), density=True, alpha=0.35,
                color=f"C{i}", label=f"{name}: mean {mean:.2f}, sd {sd:.2f} Mbit/s, "
                                      f"n={len(mbit)}")
        if sd > 0:
            lo, hi = min(mbit), max(mbit)
            xs = [lo + (hi - lo) * k / 200 for k in range(201)]
            ax.plot(xs, [math.exp(-((x - mean) / sd) ** 2 / 2) / (sd * math.sqrt(2 * math.pi))
                         for x in xs], color=f"C{i}")
    ax.set_xlabel("bandwidth (Mbit/s), iperf3 interval samples")
    ax.set_ylabel("probability density")
    ax.set_title("link bandwidth distribution (cf. BloSM Figure 5)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out)


def comparison_chart(stats: RunStats, out: Path) -> Path | None:
    """Ratio ours / published for every reference figure (1 = same as the paper)."""
    rows = [(c.label, c.ratio) for c in stats.comparisons if c.ratio is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.6))
    labels = [label for label, _ in rows]
    ax.barh(labels, [ratio for _, ratio in rows], color="C0")
    ax.axvline(1.0, color="k", linestyle="--", label="same as published")
    ax.set_xscale("log")
    ax.set_xlabel("our median / published value (log scale)")
    ax.set_title("comparison with the published figures")
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    return _save(fig, out)


_MARKERS = ("o", "s", "^", "D", "v")
_STYLES = ("-", "--", ":", "-.")


def figure_lines(stats: RunStats, spec: dict[str, Any], parts: list[str]
                 ) -> dict[tuple[str, str], list[tuple[float, float, float, float]]]:
    """The points of an experiment's figure: (part, "series=value") -> sorted
    [(x, median, p5, p95)] of `y` over the measured trials of each parameter combination."""
    x, y, series = spec["x"], spec["y"], spec.get("series")
    lines: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    for g in stats.groups:
        if g.part not in parts or not isinstance(g.params.get(x), int | float):
            continue
        s = g.metrics.get(y) or g.phases.get(y)
        if s is None:
            continue
        key = (g.part, "" if series is None else f"{series}={g.params.get(series)}")
        lines.setdefault(key, []).append((float(g.params[x]), s.median, s.p5, s.p95))
    return {k: sorted(v) for k, v in lines.items()}


def metric_vs_param(stats: RunStats, spec: dict[str, Any], parts: list[str],
                    unit: str, out: Path) -> Path | None:
    """An experiment's own figure (`plots:` in its YAML): the median of `y` (a metric, a phase
    or the total) against the parameter `x` with p5-p95 bars, one line per `series` value and
    per part; parts are told apart by marker and line style and named by `labels`."""
    x, y = spec["x"], spec["y"]
    labels: dict[str, str] = spec.get("labels") or {}
    lines = figure_lines(stats, spec, parts)
    if not lines:
        return None
    scale, shown = (1e6, "Mbit/s") if unit == "bit/s" else (1.0, unit)
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    series_values = sorted({k[1] for k in lines})
    for (part, value), pts in sorted(lines.items()):
        pts.sort()
        pi, si = parts.index(part), series_values.index(value)
        label = ", ".join(v for v in (value, labels.get(part, part)) if v)
        med = [p[1] / scale for p in pts]
        err = [[(p[1] - p[2]) / scale for p in pts], [(p[3] - p[1]) / scale for p in pts]]
        ax.errorbar([p[0] for p in pts], med, yerr=err, marker=_MARKERS[pi % len(_MARKERS)],
                    linestyle=_STYLES[pi % len(_STYLES)], color=f"C{si % 10}", capsize=3,
                    label=label)
    if spec.get("log_x"):
        ax.set_xscale("log")
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(f"{y.replace('_', ' ')} ({shown})" if shown else y.replace("_", " "))
    ax.set_title(spec["title"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if spec.get("note"):
        fig.text(0.01, 0.005, spec["note"], fontsize=7, ha="left", va="bottom", wrap=True)
        fig.subplots_adjust(bottom=0.2)
    return _save(fig, out)

"""report.md and a self-contained report.html (plots embedded as base64 PNG) for a run dir.

report.html comes from the Jinja2 template `templates/report.html.j2` (autoescape on); the parts
written in Markdown (the summary list, the tables' notes) are rendered by markdown-it-py with raw
HTML disabled, so what reads `**complete**` in report.md is <strong>complete</strong> there.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markdown_it import MarkdownIt
from markupsafe import Markup

from edgeferry.experiments.results import RunDir, step_durations
from edgeferry.reports.stats import TOTAL, Comparison, RunStats, compute, params_label
from edgeferry.reports.units import best_time_unit, from_base
from edgeferry.stats import Interval

STATS_HEADER = ["part", "parameters", "phase", "n", "median", "median 95% CI", "p5", "p95",
                "unit"]
METRICS_HEADER = ["part", "parameters", "metric", "n", "median", "p5", "p95", "unit"]


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def ci_cell(ci: Interval | None, scale: float = 1.0) -> str:
    """A confidence interval as "[lo, hi]" (values x `scale`, `fmt`), "—" when there is none."""
    return "—" if ci is None else f"[{fmt(ci.lo * scale)}, {fmt(ci.hi * scale)}]"


def phase_table(stats: RunStats) -> Table:
    """Per part, parameters and phase: n, median with its 95 % bootstrap CI, p5, p95."""
    rows = []
    for g in stats.groups:
        for phase, s in g.phases.items():
            unit = best_time_unit(s.median)
            rows.append([g.part, g.params_label, phase, str(s.n), fmt(from_base(s.median, unit)),
                         ci_cell(s.median_ci(), from_base(1.0, unit)),
                         fmt(from_base(s.p5, unit)), fmt(from_base(s.p95, unit)), unit])
    return Table("Wall time per phase", STATS_HEADER, rows,
                 "Measured trials only (warm-ups and failed trials excluded); `total` is the sum "
                 "of a trial's phases. Median, p5 and p95 interpolate linearly between order "
                 "statistics; the median's 95 % CI is a percentile bootstrap (2000 resamples, "
                 "seeded), shown from 3 trials on (— below). Definitions: `edgeferry.stats`.")


def metric_units(stats: RunStats) -> dict[str, dict[str, str]]:
    """Part -> metric -> unit, as the run recorded its scenarios' specs."""
    return {name: part.get("metrics", {})
            for name, part in (stats.info.get("parts") or {}).items()}


def metrics_table(stats: RunStats) -> Table:
    units = metric_units(stats)
    rows = []
    for g in stats.groups:
        for metric, s in g.metrics.items():
            unit = units.get(g.part, {}).get(metric, "")
            scale = 1e6 if unit == "bit/s" else 1.0
            shown = "Mbit/s" if unit == "bit/s" else unit
            rows.append([g.part, g.params_label, metric, str(s.n), fmt(s.median / scale),
                         fmt(s.p5 / scale), fmt(s.p95 / scale), shown])
    return Table("Per-trial metrics", METRICS_HEADER, rows)


def counts_table(stats: RunStats) -> Table:
    rows = [[g.part, g.params_label, str(g.phases[TOTAL].n if TOTAL in g.phases else 0),
             str(g.failed), str(g.warmups)] for g in stats.groups]
    return Table("Trials", ["part", "parameters", "measured", "failed", "warm-ups (excluded)"],
                 rows)


def bound_table(stats: RunStats) -> Table:
    """Per group: MB moved, the bound, the measured total and their ratio (medians). Groups
    with `edgeferry.bounds`' per-trial metrics show the migration's round trip and the median
    of the per-trial ratios; others the sum of the phases over bytes x 8 / bandwidth."""
    rows = []
    for g in stats.groups:
        if g.bound_s is None or TOTAL not in g.phases:
            continue
        ours = "migration_s" in g.metrics and "total_over_bound" in g.metrics
        total = g.metrics["migration_s"].median if ours else g.phases[TOTAL].median
        ratio = (g.metrics["total_over_bound"].median if ours
                 else g.phases[TOTAL].median / g.bound_s.median)
        unit = best_time_unit(total)
        rows.append([g.part, g.params_label, fmt((g.bytes_median or 0) / 1e6),
                     fmt(from_base(g.bound_s.median, unit)), fmt(from_base(total, unit)), unit,
                     fmt(ratio), g.bandwidth_source])
    return Table("Physical bound (bytes moved / measured bandwidth)",
                 ["part", "parameters", "MB moved (median)", "bound (median)",
                  "measured total (median)", "unit", "ratio measured/bound", "bandwidth"], rows,
                 "Migrations (`edgeferry.bounds`, per trial): bound = control stop + wire bytes "
                 "each link carried / its receiver-side iperf3 bandwidth measured just before the "
                 "trial + control start; measured total = the MigrateService round trip; ratio = "
                 "median of the per-trial total / bound. Other scenarios: bytes the trial "
                 "recorded x 8 / link bandwidth against the sum of its phases. A ratio near 1 "
                 "means the transfer ran at link speed.")


#: metric -> column of the downtime table (medians; MB = 1e6 bytes)
DOWNTIME_COLUMNS = (("downtime_bound_s", "downtime bound (s)"),
                    ("downtime_over_bound", "downtime / bound"),
                    ("migration_s", "total (s)"), ("bound_s", "bound (s)"),
                    ("total_over_bound", "total / bound"),
                    ("push_wire_after_stop_mb", "push MB after stop (wire)"),
                    ("pull_wire_after_stop_mb", "pull MB after stop (wire)"),
                    ("pulled_after_stop_mb", "pull MB after stop (manifest)"),
                    ("bw_push_mbps", "bw push (Mbit/s)"), ("bw_pull_mbps", "bw pull (Mbit/s)"),
                    ("control_stop_s", "control stop (s)"),
                    ("control_start_s", "control start (s)"))


def downtime_table(stats: RunStats) -> Table:
    """Per group of a migration scenario: the probed downtime (median, 95 % CI), its bound and
    ratio, the round trip against its bound, bytes after the stop, both links, control costs."""
    rows = []
    for g in stats.groups:
        if "downtime_s" not in g.metrics or "downtime_bound_s" not in g.metrics:
            continue
        d = g.metrics["downtime_s"]
        rows.append([g.part, g.params_label, str(d.n), fmt(d.median), ci_cell(d.median_ci()),
                     *(fmt(g.metrics[k].median) if k in g.metrics else "-"
                       for k, _ in DOWNTIME_COLUMNS)])
    return Table("Downtime and its bound",
                 ["part", "parameters", "n", "downtime (s)", "downtime 95% CI",
                  *(title for _, title in DOWNTIME_COLUMNS)], rows,
                 "Downtime = last answer of the service at the source -> first at the "
                 "destination, a client on the controller probing both ends every 20 ms "
                 "(`edgeferry.experiments.prober`; HTTP 200 or a verified TLS handshake, never a "
                 "TCP accept). Downtime bound = control stop + wire bytes each link carried after "
                 "the stop / its receiver-side bandwidth + control start (`edgeferry.bounds`; the "
                 "control trial stops and starts the service at the source, no transfer). "
                 "Medians of per-trial values; ratios are medians of per-trial ratios.")


def comparison_table(stats: RunStats) -> Table:
    rows = []
    for c in stats.comparisons:
        where = params_label(c.where, empty="all")
        rows.append([c.label, c.part, c.quantity, where, fmt(c.reference), c.unit, c.source,
                     fmt(c.ours), str(c.n), fmt(c.ratio)])
    return Table("Comparison with the published figures",
                 ["figure", "part", "quantity", "trials", "published", "unit", "source",
                  "ours (median)", "n", "ratio ours/published"], rows,
                 cost_agreement(stats.comparisons))


def _side_of_direct(cost: float) -> str:
    return "cheaper than" if cost < 1 else "as dear as" if cost == 1 else "dearer than"


def cost_agreement(comparisons: list[Comparison]) -> str:
    """For figures in cost units (cost 1 = the direct two-node operation, BloSM Fig. 11):
    where ours and the paper's are on the same side of direct, and where not."""
    agree, differ = [], []
    for c in comparisons:
        if c.unit != "cost" or c.ours is None:
            continue
        ours, paper = _side_of_direct(c.ours), _side_of_direct(c.reference)
        if ours == paper:
            agree.append(f"{c.label} (both {ours} direct)")
        else:
            differ.append(f"{c.label} (ours {fmt(c.ours)}, {ours} direct; published "
                          f"{fmt(c.reference)}, {paper} direct)")
    if not agree and not differ:
        return ""
    return ("Costs against direct (cost 1): "
            + (f"agree in direction on {'; '.join(agree)}. " if agree else "")
            + (f"Differ on {'; '.join(differ)}. " if differ else "No direction differs. ")
            + "The part's note says how our operation and the paper's compare.")


def failed_table(stats: RunStats) -> Table:
    """Every failed trial (warm-ups too): where it stopped, why, and the agents' logs kept."""
    rows = []
    for r in stats.records:
        if r.get("outcome") == "ok":
            continue
        params = params_label(r.get("params") or {})
        stopped = next((p["phase"] for p in r.get("phases") or [] if p.get("outcome") != "ok"),
                       "-")
        kept = "; ".join(f"{host}: {where}" for host, where in (r.get("logs") or {}).items())
        rows.append([r["trial_id"], params, "yes" if r.get("warmup") else "no", stopped,
                     (r.get("error") or "-")[:300], kept or "-"])
    return Table("Failed trials", ["trial", "parameters", "warm-up", "failed phase", "error",
                                   "agent logs (journal, per host)"], rows,
                 "Excluded from every statistic above. Logs are the hosts' `edgeferry-*` "
                 "journals for the trial's time window, relative to the run directory.")


def policies_tables(info: dict[str, Any]) -> list[Table]:
    """The seed-002 data-audit policies a run's migrations ran under (run.json provenance):
    each part's container policy (Table 1) and each edge's attributes (Table 2)."""
    from agents.audit.domain import CONTAINER_ELEMENTS, EDGE_ELEMENTS
    from edgeferry.experiments.provenance import AUDIT_POLICIES

    recorded = (info.get("provenance") or {}).get(AUDIT_POLICIES) or {}
    containers, edges = recorded.get("containers") or {}, recorded.get("edges") or {}
    if not containers and not edges:
        return []
    container_rows = [[part, c.get("service", "-"), c.get("source", "-"),
                       *((c.get("requirements") or {}).get(e, "*") for e in CONTAINER_ELEMENTS)]
                      for part, c in containers.items()]
    edge_rows = [[host, *(attrs.get(e, "(not declared)") for e in EDGE_ELEMENTS)]
                 for host, attrs in sorted(edges.items())]
    return [
        Table("Container policy in force (seed 002 Table 1)",
              ["part", "service", "from", *CONTAINER_ELEMENTS], container_rows,
              "What the migrated service registered with the audit agent: the experiment's "
              "`container_policy` / `container_policy_file`, else the documented default "
              "(`edgeferry.auditpolicy`). `*`: not constrained."),
        Table("Edge attributes in force (seed 002 Table 2)", ["edge", *EDGE_ELEMENTS],
              edge_rows,
              "As registered with the audit agent: each host's "
              "`edgeferry_audit_edge_attributes` (lab file `audit:` or inventory) over the "
              "documented defaults (`edgeferry.auditpolicy`)."),
    ]


def placement_table(stats: RunStats) -> Table:
    """Every trial that recorded a placement (seed 000 Algorithm 2 at the SMF): requirement,
    chosen cloud, refused clouds and why (failed trials too: a mismatch says what differed)."""
    from edgeferry.experiments.placement import PLACEMENT_HEADER, table_row

    rows = []
    for r in stats.records:
        row = table_row(r)
        if row is not None:
            rows.append(row)
        elif "placement not as expected" in (r.get("error") or ""):
            rows.append([str(r.get("trial_id", "-")), "-", "-", "-", "-", "-",
                         "no: " + str(r["error"])[:300]])
    return Table("Placement (Algorithm 2)", PLACEMENT_HEADER, rows,
                 "MigrateService with destination \"\": the SMF's placement phase. A cloud is "
                 "refused when the requirement exceeds its advertised FREE on some resource.")


def platforms_table(stats: RunStats) -> Table:
    """Where the migrated workloads ran (platform, emulated or native) and the cost of
    emulation on the destination's start (`edgeferry.reports.platforms`)."""
    from edgeferry.reports import platforms

    return Table("Workload platforms and emulation", platforms.HEADER,
                 platforms.platform_rows(stats.records), platforms.NOTE)


def md_table(t: Table) -> str:
    """One table as a Markdown section (a `## title` heading, the note, the rows)."""
    if not t.rows:
        return f"## {t.title}\n\n(none)\n"
    lines = [f"## {t.title}", ""]
    if t.note:
        lines += [t.note, ""]
    lines.append("| " + " | ".join(t.header) + " |")
    lines.append("|" + "|".join("---" for _ in t.header) + "|")
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in t.rows]
    return "\n".join(lines) + "\n"


def _summary_lines(stats: RunStats, run_dir: Path) -> list[str]:
    info = stats.info
    prov = info.get("provenance") or {}
    git = prov.get("git") or {}
    host = prov.get("host") or {}
    lab = prov.get("lab")
    lines = [
        f"- experiment: `{info.get('experiment')}` ({info.get('experiment_file') or '-'})",
        f"- run: `{run_dir.name}`, status **{info.get('status')}**, started "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(info.get('started_at', 0)))}",
        f"- trials recorded: {len(stats.records)}",
        f"- edgeferry {prov.get('edgeferry_version')}, git {git.get('revision') or '?'}"
        + (" (dirty work tree)" if git.get("dirty") else ""),
        f"- host: {host.get('hostname')} {host.get('system')} {host.get('kernel')} "
        f"{host.get('machine')}, {host.get('cpus_logical')} CPUs, "
        f"{(host.get('memory_bytes') or 0) / 2**30:.1f} GiB, Python {host.get('python')}",
    ]
    if lab:
        lines.append(f"- lab `{lab.get('name')}` ({lab.get('spec', {}).get('bandwidth')} "
                     f"configured), measured bandwidth (slowest link): "
                     + (f"{stats.lab_bandwidth_bps / 1e6:.2f} Mbit/s"
                        if stats.lab_bandwidth_bps else "not measured"))
    else:
        lines.append("- lab: none recorded")
    for step, value in (info.get("steps") or {}).items():
        text = value if isinstance(value, str) else ", ".join(
            f"{k}: {v if isinstance(v, str) else 'ok'}" for k, v in value.items())
        lines.append(f"- step {step}: {text}")
    for name, part in (info.get("parts") or {}).items():
        if not part.get("enabled", True):
            lines.append(f"- part `{name}` ({part['scenario']}) not run: disabled"
                         + (f" - {part['note']}" if part.get("note") else ""))
        elif part.get("note"):
            lines.append(f"- part `{name}` ({part['scenario']}): {part['note']}")
    durations = step_durations(info)
    if durations:
        lines.append("- step durations: " + ", ".join(
            f"{step} {seconds:.1f} s" for step, seconds in durations.items()))
    if info.get("error"):
        lines.append(f"- error: {info['error']}")
    lines.append("- raw results: `trials.jsonl` (one line per trial), `trials.csv` (one row per "
                 "phase), provenance in `run.json`")
    return lines


def make_plots(stats: RunStats, out_dir: Path) -> list[tuple[str, Path]]:
    from edgeferry.reports import plots  # matplotlib: loaded only when plots are drawn

    out_dir.mkdir(exist_ok=True)
    made: list[tuple[str, Path | None]] = []
    parts = list(dict.fromkeys(g.part for g in stats.groups))
    for part in parts:
        made.append((f"{part}: phase breakdown",
                     plots.phase_breakdown(stats.groups, part, out_dir / f"{part}-phases.png")))
        numeric = [k for g in stats.groups if g.part == part for k, v in g.params.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        if numeric and any(g.bound_s for g in stats.groups if g.part == part):
            param = numeric[0]
            made.append((f"{part}: time vs {param}",
                         plots.time_vs_size(stats, part, param, out_dir / f"{part}-vs-size.png")))
        if numeric and any("downtime_s" in g.metrics for g in stats.groups if g.part == part):
            param = numeric[0]
            made.append((f"{part}: downtime vs {param}",
                         plots.downtime_vs_size(stats, part, param,
                                                out_dir / f"{part}-downtime.png")))
        made.append((f"{part}: CDF of totals",
                     plots.cdf_totals(stats, part, out_dir / f"{part}-cdf.png")))
    definition = stats.info.get("definition") or {}
    units = metric_units(stats)
    for i, spec in enumerate(definition.get("plots") or []):
        chosen = spec.get("parts") or [p for p in parts if any(
            g.part == p and spec["x"] in g.params for g in stats.groups)]
        unit = next((units.get(p, {}).get(spec["y"], "") for p in chosen
                     if spec["y"] in units.get(p, {})), "s")
        made.append((spec["title"], plots.metric_vs_param(
            stats, spec, chosen, unit, out_dir / f"figure-{i + 1}.png")))
    made.append(("bandwidth distribution",
                 plots.bandwidth_distribution(stats, out_dir / "bandwidth.png")))
    made.append(("comparison", plots.comparison_chart(stats, out_dir / "comparison.png")))
    return [(title, path) for title, path in made if path is not None]


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False})


@cache
def _templates() -> Environment:
    env = Environment(loader=PackageLoader("edgeferry.reports", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["markdown"] = lambda text: Markup(_markdown().render(text))
    return env


def render_html(title: str, summary: list[str], tables: list[Table],
                figures: list[tuple[str, Path]]) -> str:
    """The self-contained report.html: the template, the summary and notes as rendered
    Markdown, every table cell escaped, the plots inlined as base64 PNG."""
    images = [{"title": t, "data": base64.b64encode(p.read_bytes()).decode()}
              for t, p in figures]
    return _templates().get_template("report.html.j2").render(
        title=title, summary="\n".join(summary), tables=tables, figures=images)


def write_report(run_dir: Path) -> tuple[Path, Path]:
    rd = RunDir.open(run_dir)
    stats = compute(rd)
    tables = [counts_table(stats), phase_table(stats), metrics_table(stats),
              comparison_table(stats), bound_table(stats)]
    downtime = downtime_table(stats)
    if downtime.rows:
        tables.append(downtime)
    failures = failed_table(stats)
    if failures.rows:
        tables.append(failures)
    placements = placement_table(stats)
    if placements.rows:
        tables.append(placements)
    where = platforms_table(stats)
    if where.rows:
        tables.append(where)
    tables += policies_tables(stats.info)
    figures = make_plots(stats, rd.path / "plots")
    title = f"edgeferry report: {stats.info.get('experiment')} / {rd.path.name}"
    summary = _summary_lines(stats, rd.path)
    md = [f"# {title}", "", *summary, ""]
    md += [md_table(t) for t in tables]
    md += ["## Plots", ""] + [f"![{t}](plots/{p.name})" for t, p in figures]
    md_path = rd.path / "report.md"
    md_path.write_text("\n".join(md) + "\n")
    html_path = rd.path / "report.html"
    html_path.write_text(render_html(title, summary, tables, figures))
    return md_path, html_path


def table_rows(md_text: str, title: str) -> list[dict[str, Any]]:
    """Parse one table of a report.md back into dicts (used by tests and tools)."""
    lines = md_text.splitlines()
    start = lines.index(f"## {title}")
    header: list[str] | None = None
    rows: list[dict[str, Any]] = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if header is None:
            header = cells
        else:
            rows.append(dict(zip(header, cells, strict=True)))
    return rows

"""`edgeferry run` end to end on the emulated lab: a small container-migration experiment.

Runs on the shared deployed lab (tests/integration/conftest.py: `edgeferry run` brings it up
from its lab file, which finds it up and measures its links; `--skip-deploy --skip-verify`
because the fixture deployed it and test_deploy verifies it: bringing up and deploying a lab from
nothing through `edgeferry run` is the installed-wheel test's and the demo's), runs the
ecosystem bootstrap and two real migrations of a small synthetic image through
SMF.MigrateService at a trial bandwidth below the lab's (the links are reshaped for the part and
put back after it), keeping every trial's agent journals; then checks the report against the
raw JSONL: every trial ok, the phase medians in report.md equal the medians of the recorded wall
times, the bytes pulled cover the image, the measured bandwidth of both links follows the trial's
rate, the bounds recomputed from the recorded measurements equal the reported ones, the probed
downtime is plausible, and the journals hold the SMF's record of the migration.

Needs root and a Docker engine (CI is root with Docker).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.shared_lab_run import read_trials, run_experiment

pytestmark = [pytest.mark.lab, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SIZE_MB = 8
TRIAL_RATE, TRIAL_BPS = "20mbit", 20_000_000  # below the default lab's 40 Mbit/s
UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def experiment(path: Path, lab_file: Path) -> Path:
    doc = {
        "name": "itest-migration",
        "description": "integration test: two small container migrations edge1 -> edge2",
        "target": {"lab": {"lab_file": str(lab_file)}},
        "seed": 7,
        "logs": "all",
        "scenario": "container-migration",
        "workload": {"source": "edge1", "destination": "edge2"},
        "parameters": {"image_size_mb": SIZE_MB, "bandwidth": TRIAL_RATE},
        "repetitions": 2,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def phase_table(md: str) -> dict[str, tuple[int, float]]:
    """phase -> (n, median in seconds) from report.md's "Wall time per phase" table (columns:
    part, parameters, phase, n, median, median 95% CI, p5, p95, unit). The CI cell is "—" below
    3 trials, else "[lo, hi]" around the median."""
    section = md.split("## Wall time per phase", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and f"image_size_mb={SIZE_MB}" in cells[1]:
            n, med = int(cells[3]), float(cells[4])
            if n < 3:
                assert cells[5] == "—", cells
            else:
                lo, hi = (float(x) for x in cells[5].strip("[]").split(","))
                assert lo <= med <= hi, cells
            out[cells[2]] = (n, med * UNITS[cells[8]])
    return out


def live_rate(container: str) -> int | None:
    """The tbf rate on a lab host's eth0 now (egress: its uploads)."""
    from edgeferry.lab.links.tbf import parse_tbf_rate

    out = subprocess.run(["docker", "exec", container, "tc", "qdisc", "show", "dev", "eth0"],
                         capture_output=True, text=True, check=True).stdout
    return parse_tbf_rate(out)


def lab_state(name: str) -> dict:
    out = subprocess.run([str(BIN / "edgeferry"), "lab", "status", "--name", name, "--json"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def test_container_migration_experiment_report_matches_raw(
        tmp_path: Path, deployed_lab: Path, deployed_lab_file: Path) -> None:
    name = str(yaml.safe_load(deployed_lab_file.read_text())["name"])
    run_dir = run_experiment(experiment(tmp_path / "itest-migration.yaml", deployed_lab_file),
                             tmp_path / "reports", timeout=3300)
    # the lab is still up: what the part left on the links
    restored = {h: live_rate(f"ef-{name}-{h}") for h in ("edge1", "edge2")}
    lab = lab_state(name)
    configured = {h: lab["bandwidth"][h]["configured_bps"] for h in ("edge1", "edge2")}
    measured = [t for t in read_trials(run_dir) if not t.get("warmup")]
    assert len(measured) == 2
    # the part reshaped both links once, measured at the trial's rate, and put the lab's back
    assert [len(t["detail"]["shaping"]["changed"]) for t in measured] == [4, 0]
    assert all(0.7 * TRIAL_BPS < t["bandwidth_bps"] < 1.1 * TRIAL_BPS for t in measured), \
        [t["bandwidth_bps"] for t in measured]
    assert restored == configured, (restored, configured)
    for t in measured:  # logs: all -> every host's agent journal for every trial
        assert set(t["logs"]) == set(lab["hosts"]), t["logs"]
        assert not any(v.startswith("error") for v in t["logs"].values()), t["logs"]
        journals = "".join((run_dir / rel).read_text() for rel in t["logs"].values())
        assert "migrated" in journals and "edgeferry-smf" in journals, journals[-2000:]
    for t in measured:
        assert t["outcome"] == "ok", t.get("error")
        names = [p["phase"] for p in t["phases"]]
        for phase in ("audit", "stop", "commit", "push", "rasp", "ledger-write",
                      "self-evaluation", "pull", "start", "first-response"):
            assert phase in names, names
        assert names.index("stop") < names.index("pull") < names.index("first-response")
        # diff-first order (the default): RASP 1-8, ledger and self-evaluation before the stop
        assert names.index("rasp") < names.index("stop") < names.index("rasp-transfer")
        pulled = sum(p["bytes"] for p in t["phases"] if p["phase"] in ("prepull", "pull"))
        # the destination forgot the image: prepull + pull moved at least the random layer
        assert pulled >= SIZE_MB * 1_000_000, pulled
        assert t["metrics"]["pulled_mb"] == pytest.approx(pulled / 1e6)
        pushed = sum(p["bytes"] for p in t["phases"] if p["phase"] == "push")
        assert t["metrics"]["pushed_mb"] == pytest.approx(pushed / 1e6)
        # the one bound, recomputed by hand from the recorded measurements
        m = t["detail"]["measurements"]
        ctl = m["control"]
        bound = (ctl["stop_s"] + m["push"]["wire"] * 8 / m["bw_push_bps"]
                 + m["pull"]["wire"] * 8 / m["bw_pull_bps"] + ctl["start_s"])
        down_bound = (ctl["stop_s"] + m["push"]["wire_after_stop"] * 8 / m["bw_push_bps"]
                      + m["pull"]["wire_after_stop"] * 8 / m["bw_pull_bps"] + ctl["start_s"])
        assert t["metrics"]["bound_s"] == pytest.approx(bound)
        assert t["metrics"]["downtime_bound_s"] == pytest.approx(down_bound)
        assert 0.7 * TRIAL_BPS < m["bw_push_bps"] < 1.1 * TRIAL_BPS, m["bw_push_bps"]
        # wire bytes: at least the layers the agents moved over each link
        assert m["pull"]["wire"] >= m["pull"]["manifest"] and \
            m["push"]["wire"] >= m["push"]["manifest"], m
        # downtime from the prober: inside the round trip, and no shorter than the SMF's own
        # pull + start (the service cannot answer before its layers are there)
        phases = {p["phase"]: p["wall_s"] for p in t["phases"]}
        prober = t["detail"]["prober"]
        assert prober["source"]["answers"] > 0 and prober["destination"]["answers"] > 0
        assert phases["pull"] + phases["start"] <= t["metrics"]["downtime_s"] \
            < t["metrics"]["migration_s"]
        downtime = sum(p["wall_s"] for p in t["phases"][names.index("stop"):
                                                       names.index("first-response") + 1])
        assert t["metrics"]["downtime_phases_s"] == pytest.approx(downtime)
        assert phases["pull"] < t["metrics"]["migration_s"]

    md = (run_dir / "report.md").read_text()
    table = phase_table(md)
    assert table, md[:3000]
    for phase in ("stop", "push", "pull", "first-response", "total"):
        if phase == "total":
            values = [sum(p["wall_s"] for p in t["phases"]) for t in measured]
        else:
            values = [sum(p["wall_s"] for p in t["phases"] if p["phase"] == phase)
                      for t in measured]
        n, median = table[phase]
        assert n == len(values)
        assert median == pytest.approx(statistics.median(values), rel=5e-3), (phase, table)
    assert re.search(r"!\[[^\]]*\]\(plots/[^)]+\.png\)", md), "the report shows no plot"
    for png in re.findall(r"\(plots/([^)]+\.png)\)", md):
        assert (run_dir / "plots" / png).stat().st_size > 1000

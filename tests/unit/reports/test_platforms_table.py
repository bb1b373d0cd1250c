"""The report's "Workload platforms and emulation" table: per part, where source and destination
ran, the destination's median start and first response, and its start over the run's native
starts. Records hand-written with known values; expectations worked out by hand below."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeferry.experiments.results import RunDir
from edgeferry.reports.platforms import platform_rows
from edgeferry.reports.render import write_report
from tests.unit.reports.rundir import info, record

X86 = {"platform": "linux/amd64", "emulation": "native"}
ARM = {"platform": "linux/arm64", "emulation": "qemu-user"}


def _trial(i: int, part: str, dest: dict[str, str], start: float, first: float,
           **kw: Any) -> dict[str, Any]:
    r = record(f"t{i}", part, {}, i, phases=[
        {"phase": "pull", "wall_s": 1.0, "bytes": 10, "outcome": "ok"},
        {"phase": "start", "wall_s": start, "bytes": 0, "outcome": "ok"},
        {"phase": "first-response", "wall_s": first, "bytes": 0, "outcome": "ok"}], **kw)
    r["detail"] = {"platforms": {"source": {"host": "edge1", **X86},
                                 "destination": {"host": "e", **dest}}}
    return r


def _records() -> list[dict[str, Any]]:
    return [
        _trial(1, "x86", X86, 0.4, 0.2), _trial(2, "x86", X86, 0.6, 0.3),
        _trial(3, "x86", X86, 0.5, 0.1),
        _trial(4, "jetson", ARM, 1.5, 2.0), _trial(5, "jetson", ARM, 2.5, 4.0),
        # neither counts: a warm-up and a failed trial
        _trial(6, "jetson", ARM, 90.0, 90.0, warmup=True),
        _trial(7, "jetson", ARM, 90.0, 90.0, outcome="failed", error="x"),
    ]


def test_rows_give_platforms_medians_and_the_emulation_ratio() -> None:
    rows = platform_rows(_records())
    # x86: starts 0.4, 0.5, 0.6 -> 0.5; first responses 0.1, 0.2, 0.3 -> 0.2; native = 0.5
    # jetson: starts 1.5, 2.5 -> 2.0; first responses 2.0, 4.0 -> 3.0; 2.0 / 0.5 = 4.00
    assert rows == [
        ["x86", "edge1: linux/amd64 (native)", "e: linux/amd64 (native)", "3", "0.500", "0.200",
         "1.00"],
        ["jetson", "edge1: linux/amd64 (native)", "e: linux/arm64 (qemu-user)", "2", "2.000",
         "3.000", "4.00"],
    ]


def test_no_emulated_trial_no_table_and_no_native_trial_no_ratio() -> None:
    assert platform_rows([r for r in _records() if r["part"] == "x86"]) == []
    only_arm = platform_rows([r for r in _records() if r["part"] == "jetson"])
    assert [row[-1] for row in only_arm] == ["-"]


def test_the_written_report_has_the_table(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "fx")
    rd.write_info(info())
    for r in _records():
        rd.append_trial(r)
    md, html = write_report(rd.path)
    text = md.read_text()
    section = text.split("## Workload platforms and emulation", 1)[1].split("\n## ", 1)[0]
    assert "| jetson | edge1: linux/amd64 (native) | e: linux/arm64 (qemu-user) | 2 | 2.000 |" \
        in section
    assert "Workload platforms and emulation" in html.read_text()

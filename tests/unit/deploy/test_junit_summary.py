"""`edgeferry verify --json`'s counts come from the suite's junit report: every testsuite summed,
the failed and errored tests named."""

from __future__ import annotations

from pathlib import Path

from edgeferry.deploy.verify import junit_summary

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4">
<testcase classname="tests.infra.test_agents" name="test_a[ansible://edge1]" time="0.1"/>
<testcase classname="tests.infra.test_agents" name="test_b[ansible://edge2]" time="0.1">
  <failure message="assert 1 == 2">...</failure></testcase>
<testcase classname="tests.infra.test_pki" name="test_c" time="0.1">
  <error message="fixture">...</error></testcase>
<testcase classname="tests.infra.test_pki" name="test_d" time="0.0">
  <skipped message="no GPU"/></testcase>
</testsuite></testsuites>"""


def test_counts_and_failed_names(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    assert junit_summary(path) == {
        "tests": 4, "failures": 1, "errors": 1, "skipped": 1,
        "failed": ["tests.infra.test_agents::test_b[ansible://edge2]",
                   "tests.infra.test_pki::test_c"]}

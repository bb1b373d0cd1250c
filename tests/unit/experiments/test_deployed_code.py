"""run.json's provenance names the code the deploy shipped to each host (from the manifests)."""

from __future__ import annotations

import json
from pathlib import Path

from edgeferry.experiments.provenance import deployed_code


def test_deployed_code_reads_each_hosts_build_record(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "edge1.json").write_text(json.dumps({
        "host": "edge1", "wheel": "edgeferry-0.1-py3-none-any.whl", "wheel_sha256": "ab" * 32,
        "source": "worktree of 0123456789ab (dirty)",
        "build": {"commit": "0123456789ab" + "0" * 28, "dirty": True, "tree_sha256": "cd" * 32},
        "agents": []}))
    (folder / "edge2.json").write_text("{broken")
    got = deployed_code(folder)
    assert got["edge1"] == {"wheel": "edgeferry-0.1-py3-none-any.whl", "wheel_sha256": "ab" * 32,
                            "source": "worktree of 0123456789ab (dirty)",
                            "commit": "0123456789ab" + "0" * 28, "dirty": True,
                            "tree_sha256": "cd" * 32}
    assert "edge2.json" in got["edge2"]["error"]
    assert deployed_code(tmp_path / "missing") == {}

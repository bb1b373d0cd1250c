"""`edgeferry lab status --json` names the deployed UI server's URL and the lab CA a browser
must trust, read from the controller's deployment manifests (none: null)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeferry.cli.main import cli
from edgeferry.lab.config import load_spec
from edgeferry.lab.state import LabState

FIXTURES = Path(__file__).resolve().parents[1] / "deploy" / "manifests"


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with a lab 'lab' that is up (its saved state) and its inventory; returns
    the manifests folder the edgeferry_agent role fills on deploy."""
    monkeypatch.setenv("EDGEFERRY_HOME", str(tmp_path))
    spec = load_spec(None, name="lab")
    inventory = tmp_path / "inventory" / "lab"
    inventory.mkdir(parents=True)
    LabState(name="lab", spec=spec.model_dump(mode="json"), fingerprint="f", image="i",
             network="n", hosts={"ctl01": {"role": "control"}},
             inventory=str(inventory)).save()
    return tmp_path / ".edgeferry" / "state" / "lab" / "manifests"


def status_json() -> dict[str, object]:
    result = CliRunner().invoke(cli, ["lab", "status", "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_no_deploy_no_ui_url(lab: Path) -> None:
    doc = status_json()
    assert doc["ui_url"] is None and doc["ui_ca_cert"] is None
    assert doc["name"] == "lab"


def test_the_deployed_ui_server_url_and_the_ca_to_trust(lab: Path, tmp_path: Path) -> None:
    lab.mkdir(parents=True)
    shutil.copy(FIXTURES / "ctl01.json", lab / "ctl01.json")  # the ui instance at 192.0.2.10:8443
    doc = status_json()
    assert doc["ui_url"] == "https://192.0.2.10:8443/"
    assert doc["ui_ca_cert"] == str(tmp_path / ".edgeferry" / "pki" / "lab" / "ca" / "ca.crt")

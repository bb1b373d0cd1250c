"""`edgeferry smf ...` against real agents (RAS, SMF, two edge hosts over mTLS)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edgeferry.cli.smf import smf
from edgeferry.errors import EdgeferryError
from tests.adversarial.harness import Lab


@pytest.fixture
def lab(lab_pki, tmp_path: Path) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    lab = Lab(lab_pki, tmp_path / "lab").start()
    yield lab
    lab.close()


def run(lab: Lab, *args: str) -> Result:
    assert lab.smf is not None and lab.ras is not None
    env = {"EDGEFERRY_SMF": f"127.0.0.1:{lab.smf.port}",
           "EDGEFERRY_RAS": f"127.0.0.1:{lab.ras.port}",
           "EDGEFERRY_CA_CERT": str(lab.pki.ca.cert_path),
           "EDGEFERRY_CERT": str(lab.pki.client.cert_path),
           "EDGEFERRY_KEY": str(lab.pki.client.key_path)}
    return CliRunner().invoke(smf, list(args), env=env, catch_exceptions=True)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_every_command_for_people(lab: Lab, tmp_path: Path) -> None:
    keys = {n: str(lab.root / n / "keys" / "rasp-endpoint.pub") for n in ("edge1", "edge2")}
    ports = {n: lab.edges[n].server.port for n in ("edge1", "edge2")}
    ok(run(lab, "keygen", "cms", "--out", str(tmp_path / "cms.key")))
    assert (tmp_path / "cms.key").stat().st_mode & 0o777 == 0o600
    ok(run(lab, "register-cms", "--identity", str(tmp_path / "cms.key.pub")))
    for n in ("edge1", "edge2"):
        # the registry's MAX must cover what the host advertises (Algorithm 3)
        out = ok(run(lab, "ras-register", "--identity", keys[n], "--cpu", "64000",
                     "--memory", "65536", "--storage", "1000000", "--network", "10000"))
        assert f"{n} registered: FREE cpu 64000 m" in out
    out = ok(run(lab, "register-service", "nms", "--version", "1", "--cms-key",
                 str(tmp_path / "cms.key"),
                 "--server", f"127.0.0.1:{ports['edge1']}={keys['edge1']}",
                 "--cpu", "500", "--memory", "256", "--storage", "100", "--network", "10",
                 "--image", "registry.lab:5000/nms:1", "--description", "block storage"))
    match = re.search(r"SERV ID (\S+)", out)
    assert match, out
    sid = match.group(1)
    ok(run(lab, "add-server", sid, "--server", f"127.0.0.1:{ports['edge2']}={keys['edge2']}",
           "--max-load", "10"))
    ok(run(lab, "keygen", "app", "--out", str(tmp_path / "app.key")))
    app_pub = str(tmp_path / "app.key.pub")
    out = ok(run(lab, "register-user", "Ada", "Lovelace", "--role", "driver", "--rank", "3",
                 "--app-identity", app_pub, "--cap-out", str(tmp_path / "ada.cap")))
    uid = re.search(r"global id (\S+)", out).group(1)  # type: ignore[union-attr]
    assert re.search(r"USER CAP ([0-9a-f]{4}:){7}[0-9a-f]{4}", out)
    out = ok(run(lab, "register-device", "phone", "--owner", "Ada", "Lovelace",
                 "--app-identity", app_pub, "--cap-out", str(tmp_path / "phone.cap")))
    did = re.search(r"global id (\S+),", out).group(1)  # type: ignore[union-attr]
    out = ok(run(lab, "request-service", "nms", "--version", "1", "--user-cap",
                 str(tmp_path / "ada.cap"), "--device-cap", str(tmp_path / "phone.cap"),
                 "--app-key", str(tmp_path / "app.key"), "--send", "read block 7"))
    assert f"session open with 127.0.0.1:{ports['edge1']}" in out and "stage3" in out
    out = ok(run(lab, "migrate", sid, "--to", "edge2", "--user", uid, "--device", did,
                 "--user-cap", str(tmp_path / "ada.cap"), "--device-cap",
                 str(tmp_path / "phone.cap")))
    assert "rasp_handshake" in out and "now runs on edge2 (epoch 2)" in out
    assert "phase order diff" in out and "rasp_transfer" in out
    # each phase was printed as it ended, before the summary table
    live = re.findall(r"^  (\w+)\s+(ok|failed|rejected|skipped)\s+[\d.]+ ms$",
                      out.split("phase order")[0], re.M)
    assert live == [("rasp_handshake", "ok"), ("rasp_transfer", "ok"),
                    ("rasp_location_update", "ok"), ("location_commit", "ok")]
    # --json: stdout is the report alone, the live phases go to stderr in the same order
    back = run(lab, "migrate", sid, "--to", "edge1", "--user", uid, "--device", did,
               "--user-cap", str(tmp_path / "ada.cap"), "--device-cap",
               str(tmp_path / "phone.cap"), "--json")
    assert back.exit_code == 0, (back.output, back.exception)
    report = json.loads(back.stdout)
    assert report["migrated"] and report["location"] == "edge1" and report["epoch"] == 3
    assert set(report) >= {"phases", "error_code", "round_trip_seconds", "order", "tries"}
    assert re.findall(r"^  (\w+)\s+ok\s", back.stderr, re.M) == [
        p["phase"] for p in report["phases"]]
    ok(run(lab, "migrate", sid, "--to", "edge2", "--user", uid, "--device", did,
           "--user-cap", str(tmp_path / "ada.cap"), "--device-cap", str(tmp_path / "phone.cap")))
    assert re.search(rf"{sid}\s+nms\s+1\s+edge2\s+4", ok(run(lab, "services")))
    assert "location edge2 at epoch 4" in ok(run(lab, "show", sid))
    assert "Ada Lovelace" in ok(run(lab, "users"))
    assert "phone" in ok(run(lab, "devices"))
    table = ok(run(lab, "ras-table"))
    assert re.search(r"nms\s+edge2", table)

    refused = run(lab, "migrate", sid, "--to", "edge9", "--user", uid, "--device", did,
                  "--user-cap", str(tmp_path / "ada.cap"), "--device-cap",
                  str(tmp_path / "phone.cap"))
    assert isinstance(refused.exception, EdgeferryError)
    assert refused.exception.exit_code == 1
    assert "UNKNOWN_PRINCIPAL" in str(refused.exception)


def test_bad_input_and_unreachable_agent(lab: Lab, tmp_path: Path) -> None:
    bad = run(lab, "add-server", "svc-x", "--server", "no-port=x.pub")
    assert isinstance(bad.exception, EdgeferryError) and bad.exception.exit_code == 2
    (tmp_path / "junk.cap").write_text("not a capability")
    bad = run(lab, "migrate", "s", "--to", "e", "--user", "u", "--device", "d",
              "--user-cap", str(tmp_path / "junk.cap"), "--device-cap",
              str(tmp_path / "junk.cap"))
    assert isinstance(bad.exception, EdgeferryError) and bad.exception.exit_code == 2
    down = CliRunner().invoke(smf, ["services", "--smf", "127.0.0.1:1", "--ca-cert",
                                    str(lab.pki.ca.cert_path), "--cert",
                                    str(lab.pki.client.cert_path), "--key",
                                    str(lab.pki.client.key_path)])
    assert isinstance(down.exception, EdgeferryError) and down.exception.exit_code == 3

"""tbf command construction, tc output parsing, iperf3 JSON parsing, SSH key generation."""

from __future__ import annotations

import json
import stat

import pytest

from edgeferry.lab.links.iperf import parse_iperf3_json
from edgeferry.lab.links.tbf import TbfConfig, parse_tbf_rate
from edgeferry.lab.sshkeys import ensure_keypair


def test_tbf_arguments():
    args = TbfConfig(40_000_000).replace_args("eth0")
    assert args[:7] == ["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf"]
    assert "40000000bit" in args
    assert TbfConfig(40_000_000).burst_bytes >= 64 * 1024
    assert TbfConfig(10**10).burst_bytes > 64 * 1024


@pytest.mark.parametrize(
    ("output", "rate"),
    [
        ("qdisc tbf 8002: root refcnt 3 rate 40Mbit burst 64Kb lat 50ms \n", 40_000_000),
        ("qdisc tbf 1: root refcnt 2 rate 500Kbit burst 64Kb lat 50ms\n", 500_000),
        ("qdisc noqueue 0: root refcnt 2 \n", None),
        ("", None),
    ],
)
def test_parse_tbf_rate(output, rate):
    assert parse_tbf_rate(output) == rate


def _iperf(intervals, receiver=38e6):
    return json.dumps(
        {
            "intervals": [
                {"sum": {"bits_per_second": b, "seconds": 0.5, "omitted": o}} for b, o in intervals
            ],
            "end": {"sum_received": {"bits_per_second": receiver}},
        }
    )


def test_iperf3_parsing_drops_omitted_and_warmup_intervals():
    text = _iperf([(90e6, True), (19e6, False), (38e6, False), (40e6, False)])
    sample = parse_iperf3_json(text, "down", "test", drop_first=True)
    assert sample.samples_bps == (38e6, 40e6)
    assert sample.mean_bps == pytest.approx(39e6)
    assert sample.stdev_bps == pytest.approx(1414213.56, rel=1e-6)
    assert sample.within(40_000_000, 0.15)
    assert not sample.within(60_000_000, 0.15)


def test_iperf3_errors_are_reported():
    with pytest.raises(ValueError, match="unable to connect"):
        parse_iperf3_json(json.dumps({"error": "unable to connect"}), "up", "t")
    with pytest.raises(ValueError, match="no JSON"):
        parse_iperf3_json("iperf3: error", "up", "t")


def test_ssh_keypair_is_private_and_stable(tmp_path):
    key = tmp_path / "lab" / "id_ed25519"
    public, created = ensure_keypair(key, "edgeferry-lab-test")
    assert created and public.startswith("ssh-ed25519 ") and public.endswith("edgeferry-lab-test")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    again, created_again = ensure_keypair(key, "edgeferry-lab-test")
    assert again == public and not created_again

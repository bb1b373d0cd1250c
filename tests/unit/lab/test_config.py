"""Lab specification: defaults, overrides, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeferry.errors import ConfigError
from edgeferry.lab.config import format_rate, load_spec, parse_rate, parse_size


def test_default_lab_is_one_control_and_three_edges_at_40mbit():
    spec = load_spec()
    assert [h.role for h in spec.hosts] == ["control", "edge", "edge", "edge"]
    assert spec.control.address == "10.250.0.10"
    assert [h.address for h in spec.edges] == ["10.250.0.11", "10.250.0.12", "10.250.0.13"]
    assert all(spec.rate_bps(h) == 40_000_000 for h in spec.edges)
    assert spec.rate_bps(spec.control) is None
    # jetson-class hosts are smaller than x86 ones
    assert spec.profiles["jetson"].cpus < spec.profiles["x86"].cpus
    assert spec.profiles["jetson"].memory_bytes < spec.profiles["x86"].memory_bytes


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("40mbit", 40_000_000),
        ("1gbit", 10**9),
        ("500kbit", 500_000),
        ("5mbps", 40_000_000),
        ("2.5Mbit", 2_500_000),
        (1000000, 1_000_000),
    ],
)
def test_rates_parse(text, bps):
    assert parse_rate(text) == bps


@pytest.mark.parametrize("text", ["fast", "40", "40 mb/s", "-3mbit", "0mbit", "1bit"])
def test_bad_rates_are_refused(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_sizes_and_formatting():
    assert parse_size("1536m") == 1536 * 2**20
    assert parse_size("3g") == 3 * 2**30
    assert format_rate(38_300_000) == "38.3 Mbit/s"


def test_flags_override_name_subnet_rate_and_edges():
    spec = load_spec(name="small", subnet="10.99.0.0/24", bandwidth="20mbit", edges=1)
    assert spec.name == "small"
    assert [h.name for h in spec.hosts] == ["control", "edge1"]
    assert spec.control.address == "10.99.0.10"
    assert spec.rate_bps(spec.edges[0]) == 20_000_000


def test_more_edges_cycle_profiles_and_get_fresh_addresses():
    spec = load_spec(edges=5)
    assert [h.name for h in spec.edges] == ["edge1", "edge2", "edge3", "edge4", "edge5"]
    assert [h.profile for h in spec.edges] == ["x86", "x86", "jetson", "x86", "x86"]
    assert len({h.address for h in spec.hosts}) == 6


def test_fingerprint_tracks_changes():
    assert load_spec().fingerprint() == load_spec().fingerprint()
    assert load_spec().fingerprint() != load_spec(bandwidth="20mbit").fingerprint()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return path


def test_unknown_profile_names_the_host_and_the_known_profiles(tmp_path):
    path = _write(
        tmp_path,
        "hosts:\n- {name: c, role: control, profile: x86}\n"
        "- {name: e, role: edge, profile: arm-supercomputer}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    message = str(err.value)
    assert "'e'" in message and "arm-supercomputer" in message and "jetson, x86" in message
    assert "\n" not in message


def test_a_profile_named_by_the_user_must_state_its_class(tmp_path):
    path = _write(
        tmp_path,
        "profiles:\n  my-box: {cpus: 1, memory: 1g}\n"
        "hosts:\n- {name: c, role: control, profile: my-box}\n"
        "- {name: e, role: edge, profile: my-box}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert "my-box" in str(err.value) and "class: x86" in str(err.value)
    path.write_text(path.read_text().replace("{cpus: 1", "{class: riscv, cpus: 1"))
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert "my-box.class" in str(err.value) and "'x86' or 'jetson'" in str(err.value)
    path.write_text(path.read_text().replace("class: riscv", "class: jetson"))
    spec = load_spec(path)
    assert [spec.host_class(h) for h in spec.hosts] == ["jetson", "jetson"]


def test_unknown_key_is_named_with_the_file(tmp_path):
    path = _write(tmp_path, "bandwith: 40mbit\nhosts: []\n")
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and "bandwith" in str(err.value)


def test_bad_bandwidth_flag():
    with pytest.raises(ConfigError, match="does not parse"):
        load_spec(bandwidth="forty")


@pytest.mark.parametrize(
    ("hosts", "fragment"),
    [
        ("- {name: e, role: edge, profile: x86}\n", "exactly one host with role 'control'"),
        ("- {name: c, role: control, profile: x86}\n", "at least one host with role 'edge'"),
        (
            "- {name: c, role: control, profile: x86}\n- {name: c, role: edge, profile: x86}\n",
            "repeated: c",
        ),
        (
            "- {name: c, role: control, profile: x86, address: 10.250.0.1}\n"
            "- {name: e, role: edge, profile: x86}\n",
            "gateway",
        ),
        (
            "- {name: c, role: control, profile: x86, address: 10.1.0.5}\n"
            "- {name: e, role: edge, profile: x86}\n",
            "not a usable host address",
        ),
        (
            "- {name: c, role: control, profile: x86, address: 10.250.0.20}\n"
            "- {name: e, role: edge, profile: x86, address: 10.250.0.20}\n",
            "share 10.250.0.20",
        ),
        ("- {name: Bad_Name, role: control, profile: x86}\n", "must start with a letter"),
    ],
)
def test_inconsistent_labs_are_refused(tmp_path, hosts, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_spec(_write(tmp_path, "hosts:\n" + hosts))


def test_bad_subnet_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not a network"):
        load_spec(subnet="10.250.0.1/33")
    with pytest.raises(ConfigError, match="/28 or larger"):
        load_spec(subnet="10.250.0.0/30")
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="--edges must be at least 1"):
        load_spec(edges=0)

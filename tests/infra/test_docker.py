"""Docker: engine active, no insecure registry, registry CA trusted, NVIDIA runtime on L4T."""

from __future__ import annotations

import json

LOOPBACK = {"127.0.0.0/8", "::1/128"}


def docker_info(host) -> dict:
    with host.sudo():
        out = host.check_output("docker info --format '{{json .}}'")
    return json.loads(out)


def test_docker_engine_is_active(host):
    assert host.service("docker").is_running
    assert host.service("docker").is_enabled


def test_docker_uses_no_insecure_registry(host):
    cfg = docker_info(host)["RegistryConfig"]
    cidrs = set(cfg.get("InsecureRegistryCIDRs") or [])
    assert cidrs <= LOOPBACK, f"insecure registry ranges configured: {cidrs - LOOPBACK}"
    insecure = [n for n, i in (cfg.get("IndexConfigs") or {}).items() if not i.get("Secure")]
    assert insecure == [], f"insecure registries configured: {insecure}"
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert "insecure-registries" not in daemon


def test_lab_registry_ca_is_trusted(host, registry_endpoint):
    ca = host.file(f"/etc/docker/certs.d/{registry_endpoint}/ca.crt")
    assert ca.exists and ca.user == "root" and ca.mode == 0o644
    assert ca.content_string == host.file("/etc/edgeferry/pki/ca.crt").content_string


def test_nvidia_runtime_follows_l4t(host, inventory, name):
    """The NVIDIA runtime is the default exactly where L4T is detected (/etc/nv_tegra_release).

    Jetson-group hosts of the emulated lab are amd64 containers without L4T or a GPU, so there the
    runtime must *not* be configured, as on any non-L4T host; on a real Jetson it must be.
    """
    from tests.infra.conftest import group_hosts

    is_l4t = host.file("/etc/nv_tegra_release").exists
    info = docker_info(host)
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    if is_l4t:
        assert name in group_hosts(inventory, "jetson"), "an L4T host must be in group jetson"
        assert daemon.get("default-runtime") == "nvidia"
        assert "nvidia" in (info.get("Runtimes") or {})
        assert info.get("DefaultRuntime") == "nvidia"
    else:
        assert "default-runtime" not in daemon
        assert info.get("DefaultRuntime") == "runc"

"""The Docker engine as the emulated lab uses it: root, the client, labels, commands in hosts."""

from __future__ import annotations

import os
import time

import docker
import docker.errors
from docker.models.containers import Container

from edgeferry.errors import EnvironmentProblem, OperationFailed

LABEL_LAB = "io.edgeferry.lab"
LABEL_HOST = "io.edgeferry.host"
LABEL_HOSTSPEC = "io.edgeferry.hostspec"
LABEL_WORKSPACE = "io.edgeferry.workspace"


def require_root() -> None:
    """Refuse (exit 3) unless running as root: containers and veth shaping need it."""
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "the emulated lab needs root (containers, veth shaping): run as root or with sudo"
        )


def docker_client() -> docker.DockerClient:
    """A client of the local engine, pinged; an unreachable engine is an `EnvironmentProblem`."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as err:
        raise EnvironmentProblem(
            "Docker engine not reachable (is dockerd running? `make setup` starts it): "
            f"{str(err).splitlines()[0][:160]}"
        ) from None
    return client


def exec_in(container: Container, cmd: list[str], check: bool = True,
            expect_output: bool = False) -> str:
    """Run ``cmd`` in a lab host; its output (a failure raises `OperationFailed` if ``check``).

    ``expect_output``: ``cmd`` always prints when it succeeds (a file's contents, a listing). A
    busy engine sometimes hands back an exec's exit status 0 without its output (the output
    stream attached late); such an answer is asked for again, up to 5 times."""
    for attempt in range(5):
        result = container.exec_run(cmd, demux=False)
        output = result.output.decode(errors="replace") if result.output else ""
        if output.strip() or result.exit_code != 0 or not expect_output:
            break
        time.sleep(0.2 * (attempt + 1))
    if check and result.exit_code != 0:
        raise OperationFailed(
            f"{container.name}: `{' '.join(cmd)}` failed ({result.exit_code}): "
            f"{output.strip()[:300]}"
        )
    return output

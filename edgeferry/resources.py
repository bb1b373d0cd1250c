"""Where the files edgeferry ships are: the checkout it runs from, or the installed package.

From a checkout, the playbooks, roles, ansible.cfg, the example inventory and the experiment
definitions are where they are in the repository. An installed wheel carries the same files
under `edgeferry/_ansible/` (setup.py copies them there when it builds; the repository keeps one
copy). Everything the controller *writes* goes under `workspace()/.edgeferry` instead
(edgeferry/workspace.py), never into the package.
"""

from __future__ import annotations

from pathlib import Path

from edgeferry.errors import EnvironmentProblem

_PACKAGE = Path(__file__).resolve().parent
#: the folder of an installed wheel that holds the shipped Ansible content and definitions
INSTALLED_DIR = _PACKAGE / "_ansible"


def checkout() -> Path | None:
    """The source checkout edgeferry runs from, or None when it runs from an installed wheel."""
    root = _PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "playbooks").is_dir() \
            and (root / "roles").is_dir():
        return root
    return None


def shipped_root() -> Path:
    """The folder holding playbooks/, roles/, ansible.cfg, inventory/ and experiments/."""
    root = checkout()
    if root is not None:
        return root
    if (INSTALLED_DIR / "playbooks").is_dir():
        return INSTALLED_DIR
    raise EnvironmentProblem(
        f"edgeferry's playbooks are missing: neither a checkout ({_PACKAGE.parent}) nor an "
        f"installed wheel's {INSTALLED_DIR}; reinstall the wheel")


def playbook_dir() -> Path:
    """The folder of the playbooks (site.yml, stamp.yml, ...)."""
    return shipped_root() / "playbooks"


def roles_dir() -> Path:
    """The folder of the Ansible roles (ANSIBLE_ROLES_PATH)."""
    return shipped_root() / "roles"


def ansible_cfg() -> Path:
    """The controller's ansible.cfg (ANSIBLE_CONFIG)."""
    return shipped_root() / "ansible.cfg"


def experiments_dir() -> Path:
    """The shipped experiment definitions (quick.yaml, ...)."""
    return shipped_root() / "experiments"


def example_inventory() -> Path:
    """The example inventory for real hardware."""
    return shipped_root() / "inventory" / "example-hardware"


def host_tests_dir() -> Path | None:
    """The testinfra host suite (tests/infra): a checkout's, None when installed."""
    root = checkout()
    return root / "tests" / "infra" if root is not None else None


def code_root() -> Path:
    """The folder holding the `edgeferry` and `agents` packages: the checkout, or the
    site-packages folder of the installed wheel."""
    return _PACKAGE.parent


def agent_source() -> str:
    """What the edgeferry_agent role builds the hosts' wheel from: the checkout's path, or ""
    (repack the controller's installed edgeferry distribution, edgeferry_package.py)."""
    root = checkout()
    return str(root) if root is not None else ""

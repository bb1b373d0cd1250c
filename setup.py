"""Ship the Ansible content and the experiment definitions inside the wheel (one copy in the repo).

pyproject.toml holds the project's metadata; this file only adds a build step: the playbooks,
roles, ansible.cfg, the example inventory and the experiment definitions stay where they are in
the repository (ansible-lint, the tests and `ansible-playbook playbooks/site.yml` use them there)
and are copied into the built package as `edgeferry/_ansible/`, where edgeferry/resources.py
finds them when edgeferry runs from an installed wheel. An editable install needs no copy (it
runs from the checkout).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: repository paths copied into edgeferry/_ansible/ (a folder's whole tree)
SHIPPED = ("playbooks", "roles", "ansible.cfg", "inventory/example-hardware", "experiments",
           "collections/requirements.yml")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildWithAnsible(build_py):
    """build_py that also copies SHIPPED into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "edgeferry" / "_ansible"
        if target.exists():
            shutil.rmtree(target)
        for rel in SHIPPED:
            src = ROOT / rel
            if src.is_dir():
                shutil.copytree(src, target / rel, ignore=_IGNORED)
            elif src.is_file():
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / rel)
            # absent: a partial tree (the agents' wheel is built from the packages alone)


setup(cmdclass={"build_py": BuildWithAnsible})

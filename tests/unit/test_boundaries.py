"""Import boundaries between rooms (docs/architecture.md).

Every deployed process has its own package under `agents/`. A package may import from another
agent's package only that agent's public surface (`client`, `convert`); everything else an agent
shares lives in the shared packages (`agents.common`, `agents.security`, the generated
`agents._proto`). The deployed side never imports the controller (`edgeferry`), and workloads
(shipped inside their own images) import nothing of the agents at all.

On the controller side, the emulated lab (`edgeferry.lab`) sits below what uses it: it imports
nothing of the experiments, the reports or the CLI.

The expectation here is the rule itself, read from the source with `ast`: the test fails naming
each offending import, file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENTS = REPO / "agents"
EDGEFERRY = REPO / "edgeferry"
#: what the lab package may not import: the layers that use it
ABOVE_THE_LAB = ("edgeferry.experiments", "edgeferry.reports", "edgeferry.cli")
#: sso: the SSO domain package (no grpc), shared by the blockcache and composer agents and by
#: the controller's simulator (edgeferry/sso)
SHARED = {"common", "security", "_proto", "sso"}
PUBLIC = {"client", "convert"}


def _packages() -> list[str]:
    return sorted(p.name for p in AGENTS.iterdir()
                  if p.is_dir() and (p / "__init__.py").exists() and p.name not in SHARED)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Absolute module names imported by `path` (relative imports resolved), with line numbers."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = list(path.relative_to(REPO).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from agents.ledger import domain` (or `from edgeferry import experiments`) names
            # a module (or package) too
            folder = REPO / module.replace(".", "/")
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names
                         if (folder / f"{alias.name}.py").exists()
                         or (folder / alias.name / "__init__.py").exists())
    return found


def _violation(owner: str, module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "edgeferry":
        return "the deployed side imports the controller"
    if parts[0] != "agents" or len(parts) < 2:
        return None
    target = parts[1]
    if owner == "workloads":
        return None if target == "workloads" else "a workload image carries only its own package"
    if target in SHARED or target == owner:
        return None
    if target == "workloads":
        return None if len(parts) > 3 and parts[3] == "client" else "workload internals"
    if len(parts) == 2 or parts[2] not in PUBLIC:
        return f"imports {target}'s internals (only agents.{target}.client/.convert are public)"
    return None


def _violations(owner: str) -> list[str]:
    out = []
    for path in sorted((AGENTS / owner).rglob("*.py")):
        for line, module in _imports(path):
            why = _violation(owner, module)
            if why:
                out.append(f"{path.relative_to(REPO)}:{line}: {module}: {why}")
    return out


def test_the_rule_catches_what_it_should() -> None:
    """The checker itself: an internal import is caught, a client import is not."""
    assert _violation("smf", "agents.ras.domain")
    assert _violation("smf", "agents.ras")
    assert _violation("node", "edgeferry.pki")
    assert _violation("workloads", "agents.common.tls")
    assert _violation("smf", "agents.ras.client") is None
    assert _violation("smf", "agents.node.convert") is None
    assert _violation("smf", "agents.common.status") is None
    assert _violation("smf", "agents.smf.core") is None


@pytest.mark.parametrize("owner", _packages())
def test_no_agent_imports_another_agents_internals(owner: str) -> None:
    assert _violations(owner) == []


def test_shared_packages_import_no_agent() -> None:
    """common and security sit below every agent: they import none of them."""
    bad = []
    for shared in ("common", "security"):
        for path in sorted((AGENTS / shared).rglob("*.py")):
            for line, module in _imports(path):
                parts = module.split(".")
                if parts[0] == "edgeferry" or (
                        parts[0] == "agents" and len(parts) > 1 and parts[1] not in SHARED):
                    bad.append(f"{path.relative_to(REPO)}:{line}: {module}")
    assert bad == []


def _above_the_lab(module: str) -> bool:
    return any(module == m or module.startswith(f"{m}.") for m in ABOVE_THE_LAB)


def test_the_lab_rule_catches_what_it_should() -> None:
    assert _above_the_lab("edgeferry.experiments.scenario")
    assert _above_the_lab("edgeferry.cli")
    assert not _above_the_lab("edgeferry.errors")
    assert not _above_the_lab("edgeferry.experimentsx")
    assert not _above_the_lab("edgeferry.lab.errors")


def test_the_lab_imports_no_experiments_reports_or_cli() -> None:
    """edgeferry.lab is used by the experiments, reports and CLI; it uses none of them."""
    bad = [f"{path.relative_to(REPO)}:{line}: {module}"
           for path in sorted((EDGEFERRY / "lab").rglob("*.py"))
           for line, module in _imports(path) if _above_the_lab(module)]
    assert bad == []

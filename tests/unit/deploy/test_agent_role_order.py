"""The agent role renders the catalog once (a fact) and reads that fact afterwards: it must
render it after every fact the catalog's templates read has been set (a catalog rendered before
the ledger authority's key is known gives the ledger peers an empty key, and they do not start)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "edgeferry_agent" / "tasks"
RENDER = "Render the catalog entries of this host's agent instances once"


def _catalog_source() -> str:
    text = (ROOT / "roles" / "edgeferry" / "defaults" / "main.yml").read_text()
    catalog = yaml.safe_load(text)["edgeferry_agent_catalog"]
    return yaml.safe_dump(catalog)


def _facts_set(tasks: list[dict], base: Path) -> list[str]:
    """Names set by set_fact in `tasks`, following include_tasks/import_tasks of the role."""
    names: list[str] = []
    for task in tasks:
        for key in ("ansible.builtin.set_fact", "set_fact"):
            if isinstance(task.get(key), dict):
                names += [n for n in task[key] if n != "cacheable"]
        for key in ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks"):
            if key in task:
                included = yaml.safe_load((base / str(task[key])).read_text()) or []
                names += _facts_set(included, base)
        if "block" in task:
            names += _facts_set(task["block"], base)
    return names


def test_the_catalog_is_rendered_after_every_fact_it_reads() -> None:
    main = yaml.safe_load((ROLE / "main.yml").read_text())
    names = [t.get("name") for t in main]
    assert RENDER in names
    at = names.index(RENDER)
    before = set(_facts_set(main[:at], ROLE))
    after = set(_facts_set(main[at + 1:], ROLE))
    read = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", _catalog_source()))
    # the facts the catalog reads that the role sets: all before the rendering, none after
    assert read & after == set(), f"set after the catalog is rendered: {read & after}"
    assert "edgeferry_agent_ledger_authority_key" in read & before


def test_no_task_before_the_rendering_reads_the_rendered_fact() -> None:
    text = (ROLE / "main.yml").read_text()
    head = text.split(f"- name: {RENDER}", 1)[0]
    assert "__edgeferry_agent_catalog" not in head
    for name in ("build.yml", "install.yml", "python.yml", "users.yml", "ledger.yml"):
        assert "__edgeferry_agent_catalog" not in (ROLE / name).read_text(), name

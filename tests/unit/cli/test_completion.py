"""Shell completion as the README documents it, through the installed `edgeferry` script."""

from __future__ import annotations

import os
import subprocess

from tests.entry import REPO, SCRIPT


def complete(words: str) -> list[str]:
    """What bash completion offers for the last word of `words` (click's bash protocol)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)  # a new word after a space
    env = {**os.environ, "PYTHONPATH": str(REPO), "_EDGEFERRY_COMPLETE": "bash_complete",
           "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=60, check=True)
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


def test_the_documented_bash_source_defines_the_completion_function() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "_EDGEFERRY_COMPLETE": "bash_source"}
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=60, check=True)
    assert "complete -o nosort -F _edgeferry_completion edgeferry" in done.stdout


def test_verbs_and_subverbs_complete() -> None:
    assert complete("edgeferry pk") == ["pki"]
    assert set(complete("edgeferry pki ")) >= {"revoke", "list"}
    assert "--json" in complete("edgeferry lab status --")

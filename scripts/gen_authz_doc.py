#!/usr/bin/env python3
"""Write docs/authorization.md, the authorization matrix, from the agents' policy tables.

Usage (from the repository root, with the project's virtualenv)::

    python scripts/gen_authz_doc.py            # (re)write docs/authorization.md
    python scripts/gen_authz_doc.py --check    # exit 1 if the document is stale

The tables themselves live in each agent's ``policy.py`` (agents/*/policy.py) and are enforced
by ``agents.common.authz``; this document is only their readable form. The adversarial matrix
test (tests/adversarial/test_authz_matrix.py) checks the running agents against the same tables.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.policies import render_markdown  # noqa: E402

DOC = ROOT / "docs" / "authorization.md"


def main(argv: list[str]) -> int:
    text = render_markdown()
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run python scripts/gen_authz_doc.py")
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

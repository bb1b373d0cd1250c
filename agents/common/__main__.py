"""A bare agent (health + reflection only): ``python -m agents.common --config FILE``.

Useful to check a host's TLS material and ports before the real agents are deployed.
"""

import sys

from agents.common.runner import run_agent

if __name__ == "__main__":
    sys.exit(run_agent("bare"))

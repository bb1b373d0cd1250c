"""Provisioning through Ansible: one wrapper owns every ansible-runner argument (`runner`)."""

from edgeferry.deploy.runner import HostRecap, PlaybookResult, resolve_inventory, run_playbook

__all__ = ["HostRecap", "PlaybookResult", "resolve_inventory", "run_playbook"]

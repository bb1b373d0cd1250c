"""Provisioning through Ansible: one wrapper owns every ansible-runner argument (`runner`)."""

from edgeferry.deploy.experiment import deploy_for_experiment
from edgeferry.deploy.runner import HostRecap, PlaybookResult, resolve_inventory, run_playbook

__all__ = ["HostRecap", "PlaybookResult", "deploy_for_experiment", "resolve_inventory",
           "run_playbook"]

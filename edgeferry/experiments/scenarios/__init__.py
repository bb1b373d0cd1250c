"""Scenario implementations, one module each; `edgeferry.experiments.registry` names them."""

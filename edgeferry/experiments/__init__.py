"""Experiments: definitions (schema), matrix expansion, scenarios and the runner."""

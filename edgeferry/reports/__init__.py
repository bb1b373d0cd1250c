"""Reports of experiment runs: statistics, comparison with published figures, plots, HTML."""

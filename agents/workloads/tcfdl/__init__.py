"""TCFDL workloads: the processing function (a small MLP inference) and the offloading client."""

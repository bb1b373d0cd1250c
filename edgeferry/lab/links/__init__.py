"""Link emulation and measurement on the emulated lab, in one room (EnOSlib's service/emul).

* `tbf`: the kernel token-bucket filter: the `tc` command lines and reading a rate back.
* `veth`: the bridge-side end of a host's link on this machine.
* `iperf`: iperf3 JSON to a `BandwidthSample` (mean, stdev, how it was measured).
* `lab`: `LabLinks`, what `edgeferry lab up` does to the links: shape both directions of every
  edge's link to the lab spec and validate the rates with iperf3.
* `trial`: `LinkShaper`, a trial's rate on edge links (over SSH), put back after the part
  (the experiments hold it as `edgeferry.experiments.links.TrialLinks`).
"""

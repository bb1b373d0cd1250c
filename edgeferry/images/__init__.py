"""Controller-side builders for workload images, all built locally (no Docker Hub).

* `base`: a tiny busybox base (Debian's ``busybox-static`` on a scratch rootfs) and a small Python
  base (debootstrap minbase + python3), each tagged by a hash of its recipe so it is built once.
* `synthetic`: synthetic workloads for migration sweeps: base + N layers of incompressible bytes
  + a state diff written at run time, an HTTP health endpoint, prompt exit on SIGTERM.
* `nms`: the Network Memory Server workload image (seed 000's prototype).
* `registry`: a real local TLS registry with htpasswd auth for tests and benchmarks, and a
  byte-counting TCP relay that measures what actually crosses the wire to it.
"""

"""The edge node agent: resources, workloads and cold-migration phases on one edge host.

* `domain`: resource arithmetic (FREE = MAX - ALLOC), Algorithm 3's request-migration rule and
  neighbour choice, image references, layer byte accounting from engine progress streams,
  migration fencing (no grpc or docker imports).
* `resources`: probes MAX / measured use (psutil, Docker, nvidia-smi / jetson-stats).
* `engine`: the phases against the host's own Docker engine (docker SDK) and the registry API.
* `store`: SQLite records of workloads and migration phases (a restarted agent resumes).
* `core`: `NodeCore` ties them together (idempotent, fenced phases); `servicer`: gRPC mapping.
"""

"""The edge node agent: everything the process on one edge host runs.

* `domain`: resource arithmetic (FREE = MAX - ALLOC), Algorithm 3's request-migration rule and
  neighbour choice, image references, layer byte accounting from engine progress streams,
  migration fencing (no grpc or docker imports).
* `resources`: probes MAX / measured use (psutil, Docker, nvidia-smi / jetson-stats).
* `engine`: the phases against the host's own Docker engine (docker SDK) and the registry API.
* `store`: SQLite records of workloads and migration phases (a restarted agent resumes).
* `core`: `NodeCore` ties them together (idempotent, fenced phases); `servicer`: gRPC mapping.
* `rasp_core`, `rasp_store`, `rasp_endpoint`: the host's RASP endpoint (seed 000's Server SA /
  Cloud CB): advertisements, the step-9..11 handshake, release orders from the registry.
* `ssp_server`, `locate`: the host's SSP chosen-server role (steps 9..11) and `locate`.
* `client`: how other processes reach this agent (`node_stub`, `EndpointClient`,
  `SspServerClient`); `convert`: the node's protobuf <-> domain conversions.
"""

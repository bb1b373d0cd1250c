"""The Network Memory Server (NMS) of seed 000's prototype: block storage over the network.

* `protocol`: the wire format (length-prefixed frames; ALLOC / READ / WRITE / FREE / STAT /
  PING on fixed-size blocks, 8 KiB by default as in the paper).
* `auth`: pluggable client authentication. `SharedKeyAuth` is a mutual HMAC-SHA256
  challenge-response over a shared session key (provisioned at run time; SSP's session key Ksc
  is the intended source) that derives per-direction keys and authenticates every frame with a
  sequence number (no replay, no reordering, no tampering).
* `tls`: the transport: TLS 1.3, the server presenting a lab-CA certificate for the stable
  name ``nms.edgeferry.internal`` (valid wherever the container runs), the client trusting the
  lab CA only; the `auth` handshake and frame MACs run inside the tunnel.
* `server`: the block server (handshake deadline and connection caps: `server.Limits`);
  SIGTERM finishes the request in flight, syncs and exits 0 promptly.
* `store`, `segments`: the blocks, as checksummed records in append-only 4 MiB segment files
  under ``/var/lib/nms/segments`` inside the container (so ``docker commit`` carries them in a
  few files, not one per block).
* `client`: the client library (re-resolves the server through a resolver callable and
  reconnects after a migration; the SMF RequestService plugs in there) and the CLI
  ``python -m agents.workloads.nms.client``.
* `fuxfs`: the FUSE client (seed 000's fuxfs): files whose data and metadata live in NMS
  blocks, mounted with ``python -m agents.workloads.nms.fuxfs MOUNTPOINT ...``.

``protocol``, ``auth``, ``tls``, ``segments``, ``store`` and ``server`` use only the Python
standard library and relative imports: the NMS image copies them as the top-level package
``nms`` (``python3 -m nms.server``).
"""

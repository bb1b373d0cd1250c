"""TCFDL's secure transmission of offloaded tasks (seed 003, section 3), shared by the future
tcfdl manager (trusted authority), master and worker agents (their TEE proxies):

* `hse`: hop-by-hop symmetric encryption, AES-128-GCM with one key per hop; an intermediary
  decrypts and re-encrypts (`hse.forward`).
* `eae`: end-to-end hybrid encryption; the payload is AES-128-GCM under a fresh key and only that
  key travels by proxy re-encryption, through one of the schemes in `pre` (`pre.scheme(name)`):
  "p256-paper" (section 3.2 as written, on NIST P-256) or "umbral" (umbral-pre, secp256k1).
* `frame`, `replay`: the bounded wire frame and the bounded replay cache both use.

No I/O, no grpc: the agents carry these frames over NATS.
"""

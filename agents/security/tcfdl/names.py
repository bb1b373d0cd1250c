"""The shapes TCFDL's settings accept, one definition for every TCFDL process (manager, master,
proxy, worker, client) and the NATS configuration: a cluster name, a host:port address, and the
TLS URL of a cluster's NATS server."""

from __future__ import annotations

#: a TCFDL cluster name (also a NATS account/server name fragment)
CLUSTER_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
#: host:port of a gRPC agent
ADDRESS_PATTERN = r"^[A-Za-z0-9_.:\[\]-]{1,255}:[0-9]{1,5}$"
#: tls://host:port of a cluster's NATS server (TLS only)
NATS_URL_PATTERN = r"^tls://[A-Za-z0-9_.:\[\]-]{1,255}:[0-9]{1,5}$"

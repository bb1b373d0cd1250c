"""The synthetic migration workload: what runs inside ``edgeferry/synthetic`` images.

The image (built by `edgeferry.images.synthetic`) is a busybox base, N layers of random
(incompressible) bytes and this entrypoint. At its first start the container writes a *state
diff* of ``EF_STATE_DIFF_BYTES`` random bytes to ``/state/diff`` (so ``docker commit`` has a diff
of known size to carry) and serves over HTTP on ``EF_PORT`` (default 8080):

* ``GET /health`` -> ``ok`` (the first-response probe: downtime ends when it answers);
* ``GET /state``  -> the SHA-256 of ``/state/diff`` (unchanged after a migration iff the state
  moved with the container).

A restarted or migrated container keeps the existing ``/state/diff``. SIGTERM/SIGINT stop the
HTTP server and exit 0 at once, so ``docker stop`` never waits out the 10 s grace period.
"""

ENTRYPOINT_SH = """\
#!/bin/sh
# edgeferry synthetic workload (see agents/workloads/synthetic/__init__.py)
set -eu
port="${EF_PORT:-8080}"
mkdir -p /state /www
if [ ! -f /state/diff ]; then
  head -c "${EF_STATE_DIFF_BYTES:-0}" /dev/urandom > /state/diff.tmp
  mv /state/diff.tmp /state/diff
fi
sha256sum /state/diff | cut -d' ' -f1 > /www/state
echo ok > /www/health
httpd -f -p "$port" -h /www &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; exit 0' TERM INT
wait "$child"
"""

DEFAULT_PORT = 8080
HEALTH_PATH = "/health"
STATE_PATH = "/state"

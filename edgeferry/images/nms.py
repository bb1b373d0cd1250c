"""The NMS workload image: ``edgeferry/nms:<hash>`` = the Python base + agents/workloads/nms.

    built = nms_image()
    docker run -d -p 7070 -v /path/nms.key:/run/secrets/nms.key:ro \
        -v /path/nms-tls.crt:/run/secrets/nms.crt:ro \
        -v /path/nms-tls.key:/run/secrets/nms-tls.key:ro built.tag

The server runs as uid/gid 65534 and stores its blocks (4 MiB segment files, see ``nms.store``)
under ``/var/lib/nms`` inside the container filesystem (no volume), so ``docker commit`` carries
every acknowledged block to the destination. The session key is *not* in the image: it is bind-
mounted read-only at run time (``NMS_KEY_FILE``, default ``/run/secrets/nms.key``, owned by uid
65534, mode 0400/0600) and bind mounts are not committed. The same holds for its TLS certificate
and key (``NMS_CERT_FILE``, ``NMS_TLS_KEY_FILE``: the lab-CA certificate for the NMS name that
the pki role issues; the node agent writes every secret file 0400 owned by uid 65534). SIGTERM
makes the server finish in-flight requests and exit 0. Handshake deadline and connection caps:
``NMS_HANDSHAKE_TIMEOUT``, ``NMS_MAX_CONNECTIONS``, ``NMS_MAX_PENDING`` (defaults in
``nms.server.Limits``).
"""

from __future__ import annotations

from pathlib import Path

import agents.workloads.nms as nms_pkg
from agents.common.platforms import Platform
from edgeferry.images.common import (
    IMAGE_NAMESPACE,
    BuiltImage,
    Log,
    build_from_context,
    cached,
    recipe_hash,
)

NMS_REPO = f"{IMAGE_NAMESPACE}/nms"
NMS_PORT = 7070
NMS_UID = 65534
KEY_PATH_IN_CONTAINER = "/run/secrets/nms.key"
CERT_PATH_IN_CONTAINER = "/run/secrets/nms.crt"
TLS_KEY_PATH_IN_CONTAINER = "/run/secrets/nms-tls.key"
#: Modules copied into the image (standard library only; `client` is handy for debugging).
MODULES = ("__init__.py", "protocol.py", "auth.py", "tls.py", "segments.py", "store.py",
           "server.py", "client.py")


def dockerfile(base_tag: str) -> str:
    return "\n".join([
        f"FROM {base_tag}",
        "COPY nms /opt/nms/nms",
        # Byte code in the image: the server runs as nobody and cannot write it, so every start
        # (a migration's first response included) would compile the modules again. Files the
        # server never reads go (time zones but UTC, perl, completion, terminfo: 39% of the
        # base's files): the engine's change listing (`docker diff`, which the direct order's
        # export runs after the stop) walks every file of the image, 80 us each on a lab edge.
        "RUN python3 -m compileall -q /opt/nms/nms "
        f"&& mkdir -p /var/lib/nms && chown {NMS_UID}:{NMS_UID} /var/lib/nms "
        "&& chmod 0700 /var/lib/nms "
        "&& rm -rf /usr/share/perl5 /usr/lib/*-linux-gnu/perl-base /usr/share/bash-completion "
        "/usr/lib/terminfo "
        "&& find /usr/share/zoneinfo -mindepth 1 -maxdepth 1 ! -name Etc -exec rm -rf {} +",
        "ENV PYTHONPATH=/opt/nms NMS_DATA=/var/lib/nms "
        f"NMS_LISTEN=0.0.0.0:{NMS_PORT} NMS_KEY_FILE={KEY_PATH_IN_CONTAINER} "
        f"NMS_CERT_FILE={CERT_PATH_IN_CONTAINER} NMS_TLS_KEY_FILE={TLS_KEY_PATH_IN_CONTAINER}",
        f"USER {NMS_UID}:{NMS_UID}",
        f"EXPOSE {NMS_PORT}",
        "STOPSIGNAL SIGTERM",
        'ENTRYPOINT ["/usr/bin/python3", "-m", "nms.server"]',
    ]) + "\n"


def context_files(base_tag: str) -> dict[str, tuple[int, bytes]]:
    src = Path(nms_pkg.__file__).parent
    files = {f"nms/{name}": (0o644, (src / name).read_bytes()) for name in MODULES}
    files["Dockerfile"] = (0o644, dockerfile(base_tag).encode())
    return files


def nms_image(log: Log = print, platform: Platform | str | None = None) -> BuiltImage:
    """Build (once per source change) the NMS image on the local engine, for ``platform``
    (default: the controller's; ``linux/arm64`` builds on the arm64 Python base)."""
    from edgeferry.images.multiarch import is_native, platform_of, python_base_for

    target = platform_of(platform)
    base = python_base_for(target, log=log)
    files = context_files(base.tag)
    tag = f"{NMS_REPO}:{recipe_hash('nms', sorted((k, v[1].hex()) for k, v in files.items()))}"
    if not is_native(target):
        tag += f"-{target.architecture}"
    hit = cached(tag)
    if hit is not None:
        return hit
    return build_from_context(tag, files, recipe=tag, log=log,
                              platform=None if is_native(target) else str(target))

"""One OCI image index per workload image, written through the registry API.

The per-platform images are pushed as ordinary tags (``<repo>:<tag>-amd64``, ``-arm64``) by the
Docker engine; `publish_index` then reads each one's manifest descriptor (media type, digest,
size) and PUTs an OCI image index naming them under ``<repo>:<tag>``. A client pulling
``<repo>:<tag>`` gets the variant for its platform; the node agent selects it itself
(`agents.common.platforms.select`) and pulls it by digest. Docker's ``docker manifest`` needs a
login and the experimental CLI; ``buildx`` is absent here (measured: "docker: unknown command:
docker buildx"), so the index is written directly (distribution 2.8 accepts OCI indexes).
"""

from __future__ import annotations

import hashlib
import json
import ssl
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.common.platforms import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    Descriptor,
    Platform,
    image_index,
    index_bytes,
)
from edgeferry.errors import OperationFailed


@dataclass(frozen=True)
class RegistryApi:
    """HTTPS + basic auth access to one registry (``host:port``)."""

    address: str
    username: str
    password: str
    ca_cert: Path

    def _request(self, method: str, path: str, *, accept: str = "",
                 body: bytes | None = None, content_type: str = "") -> tuple[int, dict[str, str],
                                                                             bytes]:
        token = b64encode(f"{self.username}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
        if accept:
            headers["Accept"] = accept
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(f"https://{self.address}{path}", data=body, method=method,
                                     headers=headers)
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
                return int(resp.status), dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as err:
            return int(err.code), dict(err.headers.items()), err.read()
        except (urllib.error.URLError, OSError) as err:
            raise OperationFailed(f"registry {self.address} unreachable: {err}") from None

    def manifest(self, repo: str, reference: str,
                 accept: tuple[str, ...] = MANIFEST_TYPES + INDEX_TYPES
                 ) -> tuple[str, str, bytes]:
        """(media type, digest, raw bytes) of ``repo:reference``."""
        status, headers, body = self._request("GET", f"/v2/{repo}/manifests/{reference}",
                                              accept=", ".join(accept))
        if status != 200:
            raise OperationFailed(f"registry {self.address}: {repo}:{reference}: HTTP {status} "
                                  f"{body[:200]!r}")
        media = headers.get("Content-Type", "").split(";")[0].strip()
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        served = headers.get("Docker-Content-Digest", digest)
        if served != digest:
            raise OperationFailed(f"{repo}:{reference}: served digest {served} is not the "
                                  f"sha256 of the body ({digest})")
        return media, digest, body

    def put_manifest(self, repo: str, reference: str, media_type: str, body: bytes) -> str:
        """PUT a manifest (or index); return the digest the registry computed."""
        status, headers, reply = self._request(
            "PUT", f"/v2/{repo}/manifests/{reference}", body=body, content_type=media_type)
        if status not in (200, 201):
            raise OperationFailed(f"registry {self.address}: PUT {repo}:{reference}: HTTP "
                                  f"{status} {reply[:300]!r}")
        return headers.get("Docker-Content-Digest", "")


@dataclass(frozen=True)
class PublishedIndex:
    """What `publish_index` wrote: the index reference and digest, one digest per platform."""

    reference: str  # registry/repo:tag
    digest: str
    platforms: dict[str, str] = field(default_factory=dict)  # "linux/arm64" -> manifest digest

    def provenance(self) -> dict[str, Any]:
        """The record a run's provenance keeps (`experiments.provenance.record_images`)."""
        return {"reference": self.reference, "index_digest": self.digest,
                "platforms": dict(sorted(self.platforms.items()))}


def publish_index(api: RegistryApi, repo: str, tag: str,
                  variants: Mapping[Platform, str]) -> PublishedIndex:
    """Write ``repo:tag`` as an OCI image index of the already pushed ``variants``
    (platform -> tag in the same repository); verify the registry stored exactly our bytes."""
    entries = []
    for plat, variant_tag in variants.items():
        media, digest, body = api.manifest(repo, variant_tag, accept=MANIFEST_TYPES)
        if media not in MANIFEST_TYPES:
            raise OperationFailed(f"{repo}:{variant_tag} is a {media or 'untyped document'}, "
                                  "not a single-platform image manifest")
        config_arch = _config_platform(api, repo, json.loads(body))
        if not config_arch.matches(plat):
            raise OperationFailed(f"{repo}:{variant_tag} is built for {config_arch}, not {plat}")
        entries.append(Descriptor(media, digest, len(body), plat))
    body = index_bytes(image_index(entries))
    expected = f"sha256:{hashlib.sha256(body).hexdigest()}"
    stored = api.put_manifest(repo, tag, OCI_INDEX, body)
    if stored and stored != expected:
        raise OperationFailed(f"the registry stored {repo}:{tag} as {stored}, expected {expected}")
    media, digest, _ = api.manifest(repo, tag, accept=(OCI_INDEX,))
    if digest != expected or media != OCI_INDEX:
        raise OperationFailed(f"{repo}:{tag} reads back as {media} {digest}, not the index "
                              f"{expected}")
    return PublishedIndex(f"{api.address}/{repo}:{tag}", expected,
                          {str(e.platform): e.digest for e in entries})


def _config_platform(api: RegistryApi, repo: str, manifest: Mapping[str, Any]) -> Platform:
    """The platform an image manifest's config blob states."""
    digest = str(manifest.get("config", {}).get("digest", ""))
    status, _, body = api._request("GET", f"/v2/{repo}/blobs/{digest}")
    if status != 200:
        raise OperationFailed(f"registry {api.address}: config blob {digest}: HTTP {status}")
    config = json.loads(body)
    return Platform(str(config.get("os", "")), str(config.get("architecture", "")),
                    str(config.get("variant", "")))

"""What a blockcache agent does, without gRPC: the origin's store and an edge's cache + executor.

An edge answers a client request (`EdgeCore.fetch`) block by block with
`agents.sso.lookup.resolve`: its own cache (one counted request per block, eq. 16), then each
neighbour, then the origin; every block that arrives is verified against its digest (a corrupt
copy is counted, discarded and the next source asked; nothing corrupt is cached or served).
With full-file caching a miss brings the whole file in (its other blocks are fetched without
counting requests), since the file is the unit of caching. Neighbours are asked with peer
queries (`EdgeCore.peek`: no request counted, no recursion).

The cache is one `agents.sso.cache.BlockCache` behind a lock taken per cache operation, never
across a network fetch (two edges fetching from each other cannot deadlock).
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from agents.blockcache import services
from agents.blockcache.store import OriginStore, check_digest, check_file_id
from agents.security.errors import ErrorCode, ProtocolError
from agents.security.grant import GrantVerifier, SignedGrant
from agents.sso.blocks import FileManifest
from agents.sso.cache import BlockCache, CacheStats, Granularity, Policy
from agents.sso.lookup import Fetcher, Source, resolve
from agents.sso.secure import ServiceOffer
from agents.sso.strategies import sample_cost_ms

#: Blocks one Fetch may ask for.
MAX_FETCH_BLOCKS = 256
#: Largest modeled cost (ms) an Execute may ask for.
MAX_COST_MS = 600_000.0
#: Manifests an edge remembers (least recently used dropped first).
MAX_MANIFESTS = 10_000

ManifestSource = Callable[[str], FileManifest | None]


class NotInThisMode(Exception):
    """The RPC is served by the other mode (origin vs edge)."""


@dataclass
class Counters:
    """Where blocks came from and what crossed the network, since the last reset."""

    from_neighbours: int = 0
    from_origin: int = 0
    bytes_in: int = 0
    rejected_corrupt: int = 0
    served_to_peers: int = 0


@dataclass(frozen=True)
class ServedBlock:
    """One block of a fetch: index, digest, verified bytes and the tier that had it."""

    index: int
    digest: str
    data: bytes
    source: Source


@dataclass
class FetchOutcome:
    """A client request's blocks and what answering it cost."""

    manifest: FileManifest
    blocks: list[ServedBlock] = field(default_factory=list)
    hits: int = 0
    from_neighbours: int = 0
    from_origin: int = 0
    bytes_in: int = 0
    rejected_corrupt: int = 0


@dataclass(frozen=True)
class ExecuteOutcome:
    """An execution's output and its times (ns)."""

    output: bytes
    transform_ns: int
    modeled_ns: int
    granted: bool


class _GuardedCache:
    """The edge's BlockCache seen by `resolve`: each operation under the lock; `counted`
    False turns lookup into a peek (filling an FFC unit counts no requests)."""

    def __init__(self, core: EdgeCore, counted: bool) -> None:
        self.core = core
        self.counted = counted

    def lookup(self, file_id: str, index: int, digest: str) -> bytes | Literal[True] | None:
        with self.core.lock:
            if self.counted:
                return self.core.cache.lookup(file_id, index, digest)
            return self.core.cache.peek(digest)

    def admit(self, manifest: FileManifest, index: int, data: bytes | None) -> None:
        with self.core.lock:
            self.core.cache.admit(manifest, index, data)

    def peek(self, digest: str) -> bytes | None:
        with self.core.lock:
            return self.core.cache.peek(digest)


class EdgeCore:
    """An edge host's cache, lookup order and service executor."""

    mode = "edge"

    def __init__(self, node: str, cache: BlockCache, *, neighbours: Sequence[tuple[str, Fetcher]],
                 origin: Fetcher, manifests: ManifestSource,
                 offers: Mapping[str, ServiceOffer], verifier: GrantVerifier | None,
                 require_grant: bool = False, model_service_time: bool = False,
                 seed: int = 0, execution_slots: int = 1) -> None:
        self.node = node
        # the edge's service capacity: executions running at once (the paper's model: a node
        # performs one action at a time); the others queue
        self._slots = threading.BoundedSemaphore(execution_slots)
        self.cache = cache
        self.lock = threading.Lock()
        self.counters = Counters()
        self.offers = dict(offers)
        self.verifier = verifier
        self.require_grant = require_grant
        self.model_service_time = model_service_time
        self._rng = random.Random(seed)
        self._manifest_source = manifests
        self._manifests: OrderedDict[str, FileManifest] = OrderedDict()
        self._neighbours = [(name, self._counting(f)) for name, f in neighbours]
        self._origin = self._counting(origin)

    def _counting(self, fetch: Fetcher) -> Fetcher:
        def fetched(file_id: str, digest: str, index: int) -> bytes | None:
            data = fetch(file_id, digest, index)
            if data is not None:
                with self.lock:
                    self.counters.bytes_in += len(data)
            return data
        return fetched

    # -- manifests and peer queries -------------------------------------------------------------
    def manifest(self, file_id: str) -> FileManifest:
        """The manifest of `file_id` (remembered, else asked of the origin); LookupError."""
        check_file_id(file_id)
        with self.lock:
            known = self._manifests.get(file_id)
            if known is not None:
                self._manifests.move_to_end(file_id)
                return known
        found = self._manifest_source(file_id)
        if found is None:
            raise LookupError(f"the origin holds no file {file_id!r}")
        with self.lock:
            self._manifests[file_id] = found
            while len(self._manifests) > MAX_MANIFESTS:
                self._manifests.popitem(last=False)
        return found

    def peek(self, file_id: str, index: int, digest: str) -> bytes | None:
        """A block this edge holds, for a neighbour (no request counted, no recursion)."""
        check_file_id(file_id)
        check_digest(digest)
        with self.lock:
            data = self.cache.peek(digest)
            if data is not None:
                self.counters.served_to_peers += 1
            return data

    # -- client requests ------------------------------------------------------------------------
    def fetch(self, file_id: str, indices: Sequence[int]) -> FetchOutcome:
        """Answer a request for blocks `indices` (all when empty) of `file_id`."""
        manifest = self.manifest(file_id)
        wanted = list(indices) or list(range(len(manifest.blocks)))
        if len(wanted) > MAX_FETCH_BLOCKS:
            raise ValueError(f"a fetch asks for at most {MAX_FETCH_BLOCKS} blocks, "
                             f"not {len(wanted)}")
        for i in wanted:
            if not 0 <= i < len(manifest.blocks):
                raise ValueError(f"file {file_id!r} has no block {i} "
                                 f"({len(manifest.blocks)} blocks)")
        out = FetchOutcome(manifest)
        bytes_before = self.counters.bytes_in
        counted = cast("BlockCache", _GuardedCache(self, counted=True))
        for i in wanted:
            res = resolve(file_id, i, manifest.blocks[i], counted, self._neighbours,
                          self._origin, manifest)
            out.rejected_corrupt += res.rejected_corrupt
            out.blocks.append(ServedBlock(i, manifest.blocks[i], res.data, res.source))
            if res.source is Source.LOCAL:
                out.hits += 1
            else:
                self._count_source(out, res.source)
                if self.cache.granularity is Granularity.FILE:
                    self._fill_file(manifest, skip=i, out=out)
        with self.lock:
            self.counters.rejected_corrupt += out.rejected_corrupt
            out.bytes_in = self.counters.bytes_in - bytes_before
        return out

    def _count_source(self, out: FetchOutcome, source: Source) -> None:
        with self.lock:
            if source is Source.NEIGHBOUR:
                out.from_neighbours += 1
                self.counters.from_neighbours += 1
            elif source is Source.ORIGIN:
                out.from_origin += 1
                self.counters.from_origin += 1

    def _fill_file(self, manifest: FileManifest, skip: int, out: FetchOutcome) -> None:
        """FFC miss: bring the file's other blocks in (no requests counted)."""
        quiet = cast("BlockCache", _GuardedCache(self, counted=False))
        for j, digest in enumerate(manifest.blocks):
            if j == skip:
                continue
            res = resolve(manifest.file_id, j, digest, quiet, self._neighbours, self._origin,
                          manifest)
            out.rejected_corrupt += res.rejected_corrupt
            if res.source is Source.LOCAL:  # held under another unit: admit to this file's
                with self.lock:
                    self.cache.admit(manifest, j, res.data)
            else:
                self._count_source(out, res.source)

    # -- administration -------------------------------------------------------------------------
    def configure(self, capacity_bytes: int | None, policy: Policy | None,
                  granularity: Granularity | None) -> CacheStats:
        """Replace the cache (empty, counters reset) keeping unspecified settings."""
        with self.lock:
            old = self.cache
            self.cache = BlockCache(capacity_bytes if capacity_bytes else old.capacity_bytes,
                                    policy or old.policy, granularity or old.granularity,
                                    old.block_size)
            self.counters = Counters()
            return self.cache.stats()

    def stats(self) -> tuple[CacheStats, Counters]:
        """The cache's statistics and this edge's counters."""
        with self.lock:
            return self.cache.stats(), Counters(**vars(self.counters))

    def reset_stats(self) -> tuple[CacheStats, Counters]:
        """Zero the statistics (cached blocks stay); the values before."""
        with self.lock:
            before = self.cache.stats(), Counters(**vars(self.counters))
            self.cache.reset_stats()
            self.counters = Counters()
            return before

    # -- execution ------------------------------------------------------------------------------
    def execute(self, service: str, data: bytes, grant: SignedGrant | None,
                cost: tuple[float, float] | None = None) -> ExecuteOutcome:
        """Apply `service` to `data` after checking the grant (when given or required).

        A service this edge does not offer still runs when the edge implements it (the
        non-cooperative strategy puts every transition on the home node); its modeled time
        then comes from `cost` (mean, sd in ms) as the composer assigned it.
        """
        if service not in services.TRANSFORMS:
            raise services.UnknownService(
                f"node {self.node!r} implements no service {service!r} (offers: "
                f"{', '.join(sorted(self.offers)) or 'none'})")
        if cost is not None and not (0 <= cost[0] <= MAX_COST_MS and 0 <= cost[1] <= MAX_COST_MS):
            raise ValueError(f"modeled cost {cost} ms is outside 0..{MAX_COST_MS}")
        granted = False
        if grant is not None:
            if self.verifier is None:
                raise ProtocolError(ErrorCode.NOT_AUTHORISED, "this edge cannot check grants")
            self.verifier.verify(grant, service=service, data=data)
            granted = True
        elif self.require_grant:
            raise ProtocolError(ErrorCode.NOT_AUTHORISED,
                                f"node {self.node!r} executes only with a composer's grant")
        with self._slots:
            start = time.perf_counter_ns()
            output = services.apply(service, data)
            transform_ns = time.perf_counter_ns() - start
            modeled_ns = 0
            if self.model_service_time:
                offer = self.offers.get(service)
                if cost is not None and cost[0] > 0:
                    offer = ServiceOffer(self.node, service, cost[0], cost[1])
                if offer is not None:
                    with self.lock:
                        modeled_ns = int(sample_cost_ms(offer, self._rng) * 1e6)
                    time.sleep(modeled_ns / 1e9)
        return ExecuteOutcome(output, transform_ns, modeled_ns, granted)


class OriginCore:
    """The control host's store: manifests and blocks for edges, uploads from the controller."""

    mode = "origin"

    def __init__(self, node: str, store: OriginStore, block_size: int) -> None:
        self.node = node
        self.store = store
        self.block_size = block_size
        self.lock = threading.Lock()
        self.counters = Counters()

    def manifest(self, file_id: str) -> FileManifest:
        """The manifest of a stored file; LookupError when absent."""
        check_file_id(file_id)
        found = self.store.manifest(file_id)
        if found is None:
            raise LookupError(f"the origin holds no file {file_id!r}")
        return found

    def peek(self, file_id: str, index: int, digest: str) -> bytes | None:
        """A stored block (verified on read from disk)."""
        check_file_id(file_id)
        data = self.store.block(digest)
        if data is not None:
            with self.lock:
                self.counters.served_to_peers += 1
        return data

    def put(self, file_id: str, data: bytes, block_size: int = 0) -> FileManifest:
        """Store a file (decomposed with `block_size`, default the configured one)."""
        return self.store.put(file_id, data, block_size or self.block_size)

    def stats(self) -> Counters:
        """Blocks served since the last reset."""
        with self.lock:
            return Counters(**vars(self.counters))

    def reset_stats(self) -> Counters:
        """Zero the counters; the values before."""
        with self.lock:
            before, self.counters = self.counters, Counters()
            return before

"""The SSO agents end to end over mTLS on 127.0.0.1: an origin blockcache (control), three edge
blockcaches and the composer (tests/adversarial/sso_lab.py).

* a cooperative-secure request across the three edges returns the result computed here
  independently (zlib, XOR and the subtitle bytes written out below), every block's hash
  checked against the file's own bytes;
* a neighbour answering with a corrupt block is never served: the block comes from the origin
  and the edge caches the good copy;
* unsound, cyclic and unknown-service compositions are refused with the reason;
* the hit counts of BC and FFC caches through the real agents equal a naive recount (an
  OrderedDict LRU written here) of the same Zipf request sequence.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agents._proto.edgeferry.blockcache.v1 import blockcache_service_pb2 as bpb
from agents.common.status import RemoteProtocolError
from agents.security.errors import ErrorCode
from agents.sso.workload import file_bytes, zipf_requests
from tests.adversarial.sso_lab import CATALOG, SEED, SsoLab

SUBTITLES = b"\n--- subtitles (en) ---\n00:00:01,000 --> 00:00:04,000\nedgeferry\n"
BS = CATALOG.block_size


@pytest.fixture(scope="module")
def lab(lab_pki: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoLab]:
    lab = SsoLab(lab_pki, tmp_path_factory.mktemp("sso")).start()
    yield lab
    lab.close()


def _blocks_of(data: bytes) -> list[bytes]:
    return [data[i:i + BS] for i in range(0, len(data), BS)]


def test_cooperative_secure_request_across_three_edges(lab: SsoLab) -> None:
    file_id = "file-000002"
    original = file_bytes(CATALOG, file_id, SEED)
    # every block as the home edge serves it matches the file's own bytes and its digest
    fetched = lab.edge_client("edge1").fetch(file_id, (), return_data=True)
    assert [b.data for b in fetched.blocks] == _blocks_of(original)
    for b in fetched.blocks:
        assert hashlib.sha256(b.data).hexdigest() == b.digest
    assert lab.origin_client().manifest(file_id).blocks == tuple(
        hashlib.sha256(c).hexdigest() for c in _blocks_of(original))

    reply = lab.composer_client().run("{seq: [filter, transcode, subtitle-merge]}",
                                      "cooperative-secure", "edge1", file_id,
                                      request_id="it-secure-1", return_result=True)
    filtered = bytes(b ^ 0x5A for b in original)
    expected = zlib.compress(filtered, 9) + SUBTITLES
    assert reply.result == expected
    assert reply.result_digest == hashlib.sha256(expected).hexdigest()
    assert reply.result_size == len(expected)
    nodes = {t.service: t.node for t in reply.tasks}
    assert nodes == {"filter": "edge1", "transcode": "edge2", "subtitle-merge": "edge3"}
    services = {t.transition: t.service for t in reply.tasks}
    assert [services[t] for t in reply.serial_order] == ["filter", "transcode",
                                                          "subtitle-merge"]
    assert reply.grants == 3
    names = [p.name for p in reply.phases]
    assert names[:5] == ["compose", "soundness", "assign", "authorize", "fetch"]
    assert names[5:8] == [f"execute:{t}" for t in reply.serial_order]
    assert names[-1] == "return"
    assert all(p.ns > 0 for p in reply.phases if p.name != "return")
    assert [p.node for p in reply.phases[5:8]] == ["edge1", "edge2", "edge3"]
    # the home edge already held the file (fetched above): every block a local hit
    assert (reply.hits_local, reply.hits_neighbour, reply.from_origin) == (4, 0, 0)
    # bytes moved: 4 blocks to the composer + each execution's input and output
    sizes = [len(original), len(filtered), len(filtered), len(zlib.compress(filtered, 9)),
             len(zlib.compress(filtered, 9)), len(expected)]
    assert reply.bytes_moved == len(original) + sum(sizes)


def test_non_secure_strategies_need_grants_on_these_edges(lab: SsoLab) -> None:
    """The lab's edges require grants: the cooperative (non-secure) strategy is refused at the
    first execution; the secure one on the same request runs (positive control)."""
    composer = lab.composer_client()
    with pytest.raises(RemoteProtocolError) as err:
        composer.run("{seq: [filter, transcode]}", "cooperative", "edge2", "file-000003")
    assert (err.value.status, err.value.code) == (grpc.StatusCode.PERMISSION_DENIED,
                                                  ErrorCode.NOT_AUTHORISED)
    assert "executes only with a composer's grant" in err.value.message
    ok = composer.run("{seq: [filter, transcode]}", "cooperative-secure", "edge2",
                      "file-000003")
    original = file_bytes(CATALOG, "file-000003", SEED)
    assert ok.result_digest == hashlib.sha256(
        zlib.compress(bytes(b ^ 0x5A for b in original), 9)).hexdigest()
    assert ok.from_origin + ok.hits_neighbour + ok.hits_local == 4


def test_corrupt_block_at_a_neighbour_is_not_served(lab: SsoLab) -> None:
    file_id = "file-000004"
    original = file_bytes(CATALOG, file_id, SEED)
    good = _blocks_of(original)
    lab.edge_client("edge2").fetch(file_id, (), return_data=False)  # edge2 now holds it
    edge2 = lab.edge_core("edge2")
    honest = edge2.peek
    served: list[str] = []

    def corrupt(file: str, index: int, digest: str) -> bytes | None:
        data = honest(file, index, digest)
        served.append(digest)
        return None if data is None else bytes([data[0] ^ 0xFF]) + data[1:]

    edge2.peek = corrupt  # type: ignore[method-assign]
    try:
        reply = lab.edge_client("edge1").fetch(file_id, (), return_data=True)
    finally:
        edge2.peek = honest  # type: ignore[method-assign]
    assert len(served) == 4  # edge2 was asked for every block and lied every time
    assert [b.data for b in reply.blocks] == good
    assert [b.source for b in reply.blocks] == [bpb.BLOCK_SOURCE_ORIGIN] * 4
    assert reply.rejected_corrupt == 4
    # what edge1 cached is the good copy: a second request hits locally with the right bytes
    again = lab.edge_client("edge1").fetch(file_id, (), return_data=True)
    assert [b.data for b in again.blocks] == good
    assert [b.source for b in again.blocks] == [bpb.BLOCK_SOURCE_LOCAL] * 4
    assert lab.edge_client("edge1").stats().rejected_corrupt >= 4


def test_an_uploaded_file_larger_than_one_fetch_is_composed(lab: SsoLab) -> None:
    """The controller uploads a 300-block file to the origin (PutFile); the composer reads it
    through the home edge in several Fetch calls (128 blocks each) and the result matches."""
    data = bytes((i * 7 + i // 4096) % 251 for i in range(300 * BS - 123))
    manifest = lab.origin_client().put_file("upload-1", data)
    assert len(manifest.blocks) == 300 and manifest.size == len(data)
    reply = lab.composer_client().run("{seq: [filter, subtitle-merge]}", "cooperative-secure",
                                      "edge1", "upload-1")
    assert reply.result_digest == hashlib.sha256(
        bytes(b ^ 0x5A for b in data) + SUBTITLES).hexdigest()
    assert reply.from_origin + reply.hits_neighbour + reply.hits_local == 300
    # uploads go to the origin only: an edge refuses PutFile
    with pytest.raises(grpc.RpcError) as err:
        lab.edge_client("edge1").put_file("x", b"y")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


UNSOUND = """
places: [i, p1, p2, o]
transitions:
  - {name: split, service: filter, consumes: [i], produces: [p1, p2]}
  - {name: finish, service: transcode, consumes: [p1], produces: [o]}
source: i
sink: o
"""
CYCLIC = """
places: [i, p1, o]
transitions:
  - {name: start, service: filter, consumes: [i], produces: [p1]}
  - {name: again, service: transcode, consumes: [p1], produces: [p1]}
  - {name: finish, service: subtitle-merge, consumes: [p1], produces: [o]}
source: i
sink: o
"""


@pytest.mark.parametrize(("process", "code", "says"), [
    (UNSOUND, grpc.StatusCode.FAILED_PRECONDITION, "refused"),
    (CYCLIC, grpc.StatusCode.FAILED_PRECONDITION, "cycl"),
    ("{seq: [filter, teleport]}", grpc.StatusCode.INVALID_ARGUMENT, "teleport"),
    ("{seq: [filter", grpc.StatusCode.INVALID_ARGUMENT, "YAML"),
])
def test_bad_compositions_are_refused_with_the_reason(lab: SsoLab, process: str,
                                                      code: grpc.StatusCode, says: str) -> None:
    composer = lab.composer_client()
    for call in (lambda: composer.compose(process),
                 lambda: composer.run(process, "cooperative-secure", "edge1", "file-000001")):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == code
        assert says in (err.value.details() or "")
    # positive control: a sound composition of the same services composes
    assert len(composer.compose("{seq: [filter, transcode]}").tasks) == 2


def naive_hits(requests: list[tuple[str, int]], capacity: int, unit: str) -> int:
    """LRU recount: BC caches blocks (digest of (file, index)), FFC whole files."""
    cached: OrderedDict[Any, int] = OrderedDict()
    file_size = CATALOG.blocks_per_file * BS
    hits = 0
    for file_id, index in requests:
        key: Any = (file_id, index) if unit == "bc" else file_id
        size = BS if unit == "bc" else file_size
        if key in cached:
            hits += 1
            cached.move_to_end(key)
            continue
        if size > capacity:
            continue
        while sum(cached.values()) + size > capacity:
            cached.popitem(last=False)
        cached[key] = size
    return hits


@pytest.mark.parametrize("granularity", ["bc", "ffc"])
def test_hit_counts_equal_a_naive_recount(lab: SsoLab, granularity: str) -> None:
    capacity = 8 * BS  # 8 blocks (BC) or 2 files (FFC)
    sequence = [(r.file_id, r.index) for r in zipf_requests(CATALOG, 80, 0.9, seed=11)]
    edge = lab.edge_client("edge3")
    edge.configure(capacity, bpb.CACHE_POLICY_LRU,
                   bpb.GRANULARITY_BLOCK if granularity == "bc" else bpb.GRANULARITY_FILE)
    counted = 0
    for file_id, index in sequence:
        counted += lab.edge_client("edge3").fetch(file_id, [index]).hits
    stats = edge.stats()
    want = naive_hits(sequence, capacity, granularity)
    assert (stats.requests, stats.hits, counted) == (len(sequence), want, want)
    assert 0 < want < len(sequence)
    assert stats.misses == len(sequence) - want


def test_blockcache_runs_as_a_module(lab: SsoLab, tmp_path: Path) -> None:
    """``python -m agents.blockcache`` starts from a config file and serves health over mTLS
    (what the systemd unit runs)."""
    import subprocess
    import sys
    import time

    import yaml
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tests.adversarial.sso_lab import free_port

    cert = lab.pki.issue("blockcache-origin.modtest")
    port = free_port()
    cfg = tmp_path / "blockcache.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "blockcache", "listen_host": "127.0.0.1", "listen_port": port,
        "data_dir": str(tmp_path / "data"), "log_level": "ERROR",
        "tls": {"ca_cert": str(lab.pki.ca.cert_path), "cert": str(cert.cert_path),
                "key": str(cert.key_path)},
        "settings": {"mode": "origin", "node": "cloud",
                     "catalog": {"n_files": 2, "blocks_per_file": 2, "block_size": 1024}}}))
    proc = subprocess.Popen([sys.executable, "-m", "agents.blockcache", "--config", str(cfg)])
    try:
        stub = health_pb2_grpc.HealthStub(lab.channel(f"127.0.0.1:{port}"))
        deadline = time.monotonic() + 20
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert status == health_pb2.HealthCheckResponse.SERVING
        client = lab.origin_client()
        client.stub = type(client.stub)(lab.channel(f"127.0.0.1:{port}"))
        assert len(client.manifest("file-000001").blocks) == 2
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_three_strategies_give_the_same_result(lab_pki: Any, tmp_path: Path) -> None:
    """Edges that accept executions without grants and model service time: the three
    strategies compute the same bytes; non-cooperative runs everything on the home node (also
    the services it does not offer), cooperative spreads them, secure adds grants; every
    execution phase lasted at least the service time its edge modeled."""
    open_lab = SsoLab(lab_pki, tmp_path, require_grant=False, model_service_time=True).start()
    try:
        composer = open_lab.composer_client()
        original = file_bytes(CATALOG, "file-000000", SEED)
        want = hashlib.sha256(zlib.compress(bytes(b ^ 0x5A for b in original), 9)
                              + SUBTITLES).hexdigest()
        process = "{seq: [filter, transcode, subtitle-merge]}"
        replies = {s: composer.run(process, s, "edge3", "file-000000")
                   for s in ("non-cooperative", "cooperative", "cooperative-secure")}
        assert {r.result_digest for r in replies.values()} == {want}
        assert {t.node for t in replies["non-cooperative"].tasks} == {"edge3"}
        assert {t.node for t in replies["cooperative"].tasks} == {"edge1", "edge2", "edge3"}
        assert (replies["cooperative"].grants, replies["cooperative-secure"].grants) == (0, 3)
        for reply in replies.values():
            runs = [p for p in reply.phases if p.name.startswith("execute:")]
            assert len(runs) == 3
            assert all(p.modeled_ns > 0 and p.ns >= p.modeled_ns for p in runs)
        # the cooperating edges can be narrowed: only they run anything
        two = composer.run("{seq: [filter, subtitle-merge]}", "cooperative", "edge3",
                           "file-000000", nodes=["edge1", "edge3"])
        assert two.result_digest == hashlib.sha256(bytes(b ^ 0x5A for b in original)
                                                   + SUBTITLES).hexdigest()
        assert {t.node for t in two.tasks} == {"edge1", "edge3"}
        # a query over some of the file's blocks, in the order asked
        blocks = _blocks_of(original)
        part = composer.run("{seq: [filter, subtitle-merge]}", "cooperative", "edge3",
                            "file-000000", indices=[2, 0], return_result=True)
        assert part.result == bytes(b ^ 0x5A for b in blocks[2] + blocks[0]) + SUBTITLES
        with pytest.raises(grpc.RpcError) as err:
            composer.run(process, "cooperative", "edge3", "file-000000", indices=[99])
        assert "no block 99" in (err.value.details() or "")
        for nodes, message in ((["edge9", "edge3"], "edge9"),
                               (["edge1", "edge2"], "must be one of the cooperating")):
            with pytest.raises(grpc.RpcError) as err:
                composer.run(process, "cooperative", "edge3", "file-000000", nodes=nodes)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in (err.value.details() or "")
    finally:
        open_lab.close()


def test_an_edge_runs_one_execution_at_a_time(lab_pki: Any, tmp_path: Path) -> None:
    """execution_slots=1 (the default, the paper's one action at a time): four concurrent
    executions of a modeled service on one edge queue, so the last ends no sooner than the sum
    of the four modeled times after the first began."""
    import threading
    import time

    open_lab = SsoLab(lab_pki, tmp_path, require_grant=False, model_service_time=True).start()
    try:
        edge = open_lab.edge_client("edge1", cn="composer.control")
        spans: list[tuple[float, float, int]] = []
        lock = threading.Lock()

        def one() -> None:
            t0 = time.monotonic()
            reply = edge.execute("transcode", b"x" * 1024, cost=(40.0, 1.0))
            with lock:
                spans.append((t0, time.monotonic(), reply.modeled_ns))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        modeled = sum(m for _, _, m in spans) / 1e9
        assert len(spans) == 4 and all(m > 0 for _, _, m in spans)
        elapsed = max(e for _, e, _ in spans) - min(s for s, _, _ in spans)
        assert elapsed >= modeled, (elapsed, modeled)
    finally:
        open_lab.close()


@pytest.mark.parametrize("granularity", ["bc", "ffc"])
def test_agents_and_simulator_agree_on_the_hit_ratio(lab: SsoLab, granularity: str) -> None:
    """The simulator's own job plan replayed through the three real edge agents (Fetch, one
    request each, neighbours then origin) and through edgeferry.sso.sim at the same scale (three
    edges, every other edge a neighbour, one origin, empty caches): the same hits, so the same
    hit ratio (eq. 16); with BC also the same number of blocks fetched from the origin (FFC
    agents count the blocks of a whole-file fetch, the simulator the fetches)."""
    from edgeferry.sso.sim import job_plan, simulate_caching

    capacity = 6 * BS
    gran = {"bc": bpb.GRANULARITY_BLOCK, "ffc": bpb.GRANULARITY_FILE}[granularity]
    names = sorted(lab.edges)
    edges = {n: lab.edge_client(n) for n in names}
    for client in edges.values():
        client.configure(capacity, bpb.CACHE_POLICY_LRU, gran)
    plan = job_plan(CATALOG, 150, len(names), 0.8, 11, 1.5)
    for edge, reqs in plan:
        for r in reqs:
            edges[names[edge]].fetch(r.file_id, [r.index])
    stats = [edges[n].stats() for n in names]
    requests, hits = sum(s.requests for s in stats), sum(s.hits for s in stats)
    sim = simulate_caching(len(names), capacity, granularity, "lru", CATALOG, 150, 0.8, 11,
                           block_alpha=1.5, n_neighbours=len(names) - 1, cloud_sites=1,
                           warm="none")
    assert (requests, sim["requests"]) == (150, 150)
    assert 0 < hits < requests
    assert hits == sim["hits"], (hits, sim["hits"])
    if granularity == "bc":
        assert sum(s.from_origin for s in stats) == round(sim["origin_ratio"] * 150)

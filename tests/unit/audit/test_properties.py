"""Property-based tests of the data-audit decision rule against an independent oracle."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.audit.destination import Target, choose_destination
from agents.audit.domain import (
    CONTAINER_ELEMENTS,
    EdgeState,
    evaluate,
    parse_container_policy,
    parse_edge,
)

VOCAB = {
    "eDAl": ["jp", "us", "fr", "de", "kr"],
    "eDAo": ["caA", "caB", "caC", "caD"],
    "eHRh": ["deA", "deB", "deC"],
    "eHRt": ["lxc", "docker", "podman"],
    "eHRac": ["dla", "tpu", "npu"],
    "eHRaf": ["tf", "torch", "onnx"],
}
SET_ELEMENTS = {"cDAl": "eDAl", "cDAo": "eDAo", "cHRh": "eHRh", "cHRt": "eHRt",
                "cHRac": "eHRac", "cHRaf": "eHRaf"}
ALL_OF = {"cHRac", "cHRaf"}
SINGLE = {"eDAl", "eDAo", "eHRh"}


# ---- model used to generate both the policy text and the oracle's answer ------------------

@dataclass(frozen=True)
class SetReq:
    allowed: frozenset[str]
    excluded: frozenset[str]

    def text(self) -> str:
        return ",".join(sorted(self.allowed) + [f"-{x}" for x in sorted(self.excluded)])


def set_req(vocab):
    @st.composite
    def build(draw):
        allowed = draw(st.frozensets(st.sampled_from(vocab), max_size=len(vocab)))
        rest = [v for v in vocab if v not in allowed]
        excluded = draw(st.frozensets(st.sampled_from(rest), max_size=len(rest))) if rest \
            else frozenset()
        if not allowed and not excluded:
            return None
        return SetReq(allowed, excluded)
    return build()


numbers = st.integers(min_value=0, max_value=100).map(float)
requirements = st.fixed_dictionaries({
    **{c: st.none() | set_req(VOCAB[e]) for c, e in SET_ELEMENTS.items()},
    "cHRcu": st.none() | numbers,
    "cHRmu": st.none() | numbers,
    "cHRc": st.none() | st.sampled_from([0.0, 1.2, 1.6, 2.4, 2.6, 3.0]),
    "cHRm": st.none() | st.sampled_from([0.0, 2.0, 4.0, 8.0, 16.0]),
    "cHRgpu": st.booleans(),
})


@st.composite
def edges(draw):
    attrs: dict[str, object] = {}
    for e, vocab in VOCAB.items():
        kind = draw(st.sampled_from(["absent", "none", "value"]))
        if kind == "absent":
            continue
        if kind == "none" and e != "eDAl":
            attrs[e] = frozenset()
            continue
        size = 1 if e in SINGLE else draw(st.integers(1, len(vocab)))
        attrs[e] = frozenset(draw(st.permutations(vocab))[:size])
    for e, choices in (("eHRc", [1.2, 1.6, 2.6, 3.0]), ("eHRm", [2.0, 4.0, 8.0, 32.0])):
        if draw(st.booleans()):
            attrs[e] = draw(st.sampled_from(choices))
    gpu = draw(st.sampled_from([None, True, False]))
    if gpu is not None:
        attrs["eHRgpu"] = gpu
    return attrs


states = st.none() | st.builds(EdgeState, cpu_percent=numbers, memory_percent=numbers,
                               alive=st.booleans(), measured_at=st.just(0.0))


def to_text(reqs) -> dict[str, object]:
    out: dict[str, object] = {}
    for element, req in reqs.items():
        if req is None or req is False:
            continue
        if isinstance(req, SetReq):
            out[element] = req.text()
        elif req is True:
            out[element] = "yes"
        else:
            out[element] = req
    return out


def edge_text(attrs) -> dict[str, object]:
    return {e: (",".join(sorted(v)) if v else "-") if isinstance(v, frozenset) else v
            for e, v in attrs.items()}


def oracle(reqs, attrs, state, accessible=True) -> dict[str, bool]:
    """Per-element verdicts written directly from the spec, independently of domain.py."""
    held: dict[str, bool] = {}
    for c, e in SET_ELEMENTS.items():
        r = reqs[c]
        if r is None:
            held[c] = True
            continue
        have = attrs.get(e)
        if have is None:
            held[c] = False
            continue
        have = {h.casefold() for h in have}
        allowed = {a.casefold() for a in r.allowed}
        excluded = {x.casefold() for x in r.excluded}
        if have & excluded:
            held[c] = False
        elif not allowed:
            held[c] = True
        elif c in ALL_OF:
            held[c] = allowed <= have
        else:
            held[c] = bool(allowed & have)
    for c, which in (("cHRcu", "cpu_percent"), ("cHRmu", "memory_percent")):
        held[c] = reqs[c] is None or (state is not None and getattr(state, which) <= reqs[c])
    for c, e in (("cHRc", "eHRc"), ("cHRm", "eHRm")):
        held[c] = reqs[c] is None or (e in attrs and attrs[e] >= reqs[c])
    held["cHRgpu"] = not reqs["cHRgpu"] or attrs.get("eHRgpu") is True
    held["access"] = accessible
    held["liveness"] = state is None or state.alive
    return held


@settings(max_examples=250, deadline=None)
@given(reqs=requirements, attrs=edges(), state=states, accessible=st.booleans())
def test_decision_matches_oracle_and_never_permits_a_failed_constraint(reqs, attrs, state,
                                                                        accessible):
    policy = parse_container_policy("c", to_text(reqs))
    edge = parse_edge("e", edge_text(attrs))
    d = evaluate(policy, edge, state, accessible=accessible)
    expected = oracle(reqs, attrs, state, accessible)
    assert {c.element: c.held for c in d.checks} == expected
    if any(c.constrained and not c.held for c in d.checks):
        assert not d.permit
    assert d.permit == all(expected.values())
    assert all(c.held for c in d.checks if not c.constrained)
    assert [c.element for c in d.checks][2:] == list(CONTAINER_ELEMENTS)


@st.composite
def tightened(draw, reqs):
    """reqs plus one more constraint: a newly constrained element or a stricter one.

    An all-of list (cHRac, cHRaf) is tightened by requiring one more item or excluding one; when
    every item is already required or excluded it cannot be tightened, so it is left as it is
    (dropping a required item would loosen it)."""
    element = draw(st.sampled_from(sorted(reqs)))
    new = dict(reqs)
    cur = reqs[element]
    if element in SET_ELEMENTS:
        vocab = VOCAB[SET_ELEMENTS[element]]
        if cur is None:
            new[element] = draw(set_req(vocab).filter(lambda r: r is not None))
        elif element in ALL_OF and len(cur.allowed | cur.excluded) < len(vocab):
            extra = draw(st.sampled_from([v for v in vocab if v not in cur.allowed | cur.excluded]))
            add_excl = draw(st.booleans())
            new[element] = SetReq(cur.allowed | ({extra} if not add_excl else set()),
                                  cur.excluded | ({extra} if add_excl else set()))
        elif len(cur.allowed | cur.excluded) < len(vocab):
            extra = draw(st.sampled_from([v for v in vocab if v not in cur.allowed | cur.excluded]))
            new[element] = SetReq(cur.allowed, cur.excluded | {extra})
        elif element not in ALL_OF and len(cur.allowed) > 1:  # narrow an any-of allow-list
            drop = draw(st.sampled_from(sorted(cur.allowed)))
            new[element] = SetReq(cur.allowed - {drop}, cur.excluded)
    elif element in ("cHRcu", "cHRmu"):
        new[element] = draw(st.integers(0, int(cur if cur is not None else 100)).map(float))
    elif element in ("cHRc", "cHRm"):
        lo = cur if cur is not None else 0.0
        new[element] = draw(st.sampled_from([lo, lo + 0.4, lo + 1.0, lo + 8.0]))
    else:
        new[element] = True
    return new


@settings(max_examples=250, deadline=None)
@given(data=st.data(), reqs=requirements, attrs=edges(), state=states)
def test_adding_a_constraint_never_turns_a_deny_into_a_permit(data, reqs, attrs, state):
    stricter = data.draw(tightened(reqs))
    edge = parse_edge("e", edge_text(attrs))
    before = evaluate(parse_container_policy("c", to_text(reqs)), edge, state)
    after = evaluate(parse_container_policy("c", to_text(stricter)), edge, state)
    assert {c.element for c in before.failures} <= {c.element for c in after.failures}
    if not before.permit:
        assert not after.permit


@settings(max_examples=150, deadline=None)
@given(reqs=requirements, pool=st.lists(edges(), min_size=1, max_size=6), seed=st.integers(),
       region_of=st.lists(st.sampled_from(["r1", "r2"]), min_size=6, max_size=6),
       any_mode=st.booleans())
def test_modes_only_choose_a_permitting_edge_and_stop_there(reqs, pool, seed, region_of,
                                                           any_mode):
    policy = parse_container_policy("c", to_text(reqs), location="e0")
    edge_map = {f"e{i}": parse_edge(f"e{i}", edge_text(a), region=region_of[i])
                for i, a in enumerate(pool)}
    state = EdgeState(50, 50, True, 0.0)
    states = dict.fromkeys(edge_map, state)
    target = Target.any() if any_mode else Target.region("r1")
    if not any_mode and not any(e.region == "r1" for e in edge_map.values()):
        return
    md = choose_destination(policy, edge_map, states, target, seed=seed)
    permitted = {n for n, a in enumerate(pool)
                 if f"e{n}" != "e0" and (any_mode or region_of[n] == "r1")
                 and all(oracle(reqs, a, state).values())}
    assert "e0" not in [d.edge for d in md.tries]
    if md.permit:
        assert int(md.chosen[1:]) in permitted
        assert md.tries[-1].edge == md.chosen
    else:
        assert not permitted and len(md.tries) == len(md.candidates)
    assert all(not d.permit for d in md.tries[:-1])

"""agents.sso.wfnet: composition, soundness (both engines), cycles, names, firing order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.sso.wfnet import CompositionError, check_soundness, firing_order, parse_process

ENGINES = ["reachability", "woflan"]


def net(transitions: list[tuple[str, str | None, list[str], list[str]]],
        places: list[str]) -> dict[str, Any]:
    return {"places": places, "source": "i", "sink": "o",
            "transitions": [{"name": n, "service": s, "consumes": c, "produces": p}
                            for n, s, c, p in transitions]}


# AND-split joined by an XOR (two transitions each putting a token in o): improper completion
AND_XOR = net([("split", None, ["i"], ["p1", "p2"]), ("a", "x", ["p1"], ["o"]),
               ("b", "y", ["p2"], ["o"])], ["i", "p1", "p2", "o"])
# XOR-split joined by an AND: deadlock
XOR_AND = net([("a", "x", ["i"], ["p1"]), ("b", "y", ["i"], ["p2"]),
               ("j", "z", ["p1", "p2"], ["o"])], ["i", "p1", "p2", "o"])
# a choice, plus a transition needing both branches: sound runs, but `e` is dead
DEAD = net([("a", "x", ["i"], ["p1"]), ("b", "y", ["i"], ["p2"]), ("c", "x", ["p1"], ["o"]),
            ("d", "y", ["p2"], ["o"]), ("e", "z", ["p1", "p2"], ["o"])],
           ["i", "p1", "p2", "o"])
CYCLE = net([("a", "x", ["i"], ["p1"]), ("redo", "y", ["p2"], ["p1"]),
             ("b", "z", ["p1"], ["p2"]), ("end", "w", ["p2"], ["o"])], ["i", "p1", "p2", "o"])
SOUND_EXPLICIT = net([("a", "x", ["i"], ["p1", "p2"]), ("b", "y", ["p1"], ["p3"]),
                      ("c", "z", ["p2"], ["p4"]), ("d", "w", ["p3", "p4"], ["o"])],
                     ["i", "p1", "p2", "p3", "p4", "o"])


@pytest.mark.parametrize("engine", ENGINES)
def test_sound_sequence_parallel_choice_composition(engine: str) -> None:
    c = parse_process({"seq": ["fetch", {"par": ["transcode", {"choice": ["subtitle", "filter"]}]},
                               "deliver"]})
    assert sorted(c.tasks.values()) == ["deliver", "fetch", "filter", "subtitle", "transcode"]
    # + and-split, and-join; places i, o, 2 between the seq steps, 2 branch inputs, 2 outputs
    assert len(c.net.transitions) == 7 and len(c.net.places) == 8
    assert check_soundness(c, engine)[0] is True
    assert check_soundness(parse_process(SOUND_EXPLICIT), engine)[0] is True


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("spec", "words"), [
    (AND_XOR, "improper completion"), (XOR_AND, "deadlock"), (DEAD, "dead transitions")])
def test_known_unsound_nets_refused_with_reason(engine: str, spec: dict[str, Any],
                                                words: str) -> None:
    ok, reason = check_soundness(parse_process(spec), engine)
    assert ok is False
    if engine == "reachability":
        assert words in reason
    else:
        assert reason.startswith("unsound (woflan)")


def test_dead_transition_named() -> None:
    assert check_soundness(parse_process(DEAD))[1] == "dead transitions (can never fire): ['e']"


@pytest.mark.parametrize("engine", ENGINES)
def test_cycle_refused_naming_it(engine: str) -> None:
    ok, reason = check_soundness(parse_process(CYCLE), engine)
    assert not ok and reason == "cycle refused: p1 -> b -> p2 -> redo -> p1"


def test_not_a_workflow_net() -> None:
    two_sinks = net([("a", "x", ["i"], ["o", "q"])], ["i", "o", "q"])
    ok, reason = check_soundness(parse_process(two_sinks))
    assert not ok and "places without output arcs ['o', 'q']" in reason
    island = net([("a", "x", ["i"], ["o"]), ("b", "y", ["q"], ["r"])], ["i", "o", "q", "r"])
    ok, reason = check_soundness(parse_process(island))
    assert not ok and "without input arcs ['i', 'q']" in reason


@pytest.mark.parametrize(("obj", "msg"), [
    ({"seq": ["fetch", "teleport"]}, r"process.seq\[1\]: unknown service 'teleport'"),
    ({"loop": ["fetch"]}, "unknown operator 'loop'"),
    ({"par": []}, "non-empty list"),
    ("bad name!", "not a valid name"),
    (net([("a", "x", ["i"], ["nowhere"])], ["i", "o"]), "unknown place 'nowhere'"),
    (net([("a", "x", ["i"], ["o"]), ("a", "x", ["i"], ["o"])], ["i", "o"]), "duplicate"),
])
def test_bad_input_refused(obj: object, msg: str) -> None:
    with pytest.raises(CompositionError, match=msg):
        parse_process(obj, known_services={"fetch", "x"})


def test_unknown_service_in_explicit_net() -> None:
    with pytest.raises(CompositionError, match=r"\(a\): unknown service 'x'"):
        parse_process(SOUND_EXPLICIT, known_services={"y", "z", "w"})


def test_firing_order_stages() -> None:
    c = parse_process({"seq": ["a", {"par": ["b", {"seq": ["c", "d"]}]}, "e"]})
    names = firing_order(c)
    assert [[c.tasks[t] for t in st_] for st_ in names] == [["a"], ["b", "c"], ["d"], ["e"]]
    c2 = parse_process({"choice": ["x", "y"]})
    assert [[c2.tasks[t] for t in s] for s in firing_order(c2)] == [["x"]]
    e = parse_process(SOUND_EXPLICIT)
    assert firing_order(e) == [["a"], ["b", "c"], ["d"]]
    with pytest.raises(CompositionError, match="no run reaches the sink"):
        firing_order(parse_process(XOR_AND))


services = st.sampled_from(["s1", "s2", "s3", "s4"])
exprs = st.recursive(services, lambda inner: st.one_of(
    st.builds(lambda xs: {"seq": xs}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda xs: {"par": xs}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda xs: {"choice": xs}, st.lists(inner, min_size=1, max_size=3))),
    max_leaves=8)


@settings(max_examples=40, deadline=None)
@given(expr=exprs)
def test_every_expression_is_sound_and_engines_agree(expr: object) -> None:
    """Block-structured compositions are sound by construction (seq/par/choice of sound
    blocks); both engines must say so, and a firing order ends in the sink."""
    c = parse_process(expr)
    assert check_soundness(c)[0] is True
    assert check_soundness(c, "woflan")[0] is True
    assert all(t in c.tasks for stage in firing_order(c) for t in stage)


def test_pm4py_loads_when_the_parent_process_is_hidden() -> None:
    """An agent's systemd sandbox (ProtectProc=invisible) hides PID 1, its parent: pm4py's
    import looks its parent up with psutil. Here the parent is a PID that does not exist."""
    import subprocess
    import sys

    import psutil

    ghost = next(p for p in range(4_194_000, 4_194_300) if not psutil.pid_exists(p))
    code = (f"import os; os.getppid = lambda: {ghost}\n"
            "from agents.sso.wfnet import preload, parse_process, check_soundness\n"
            f"preload(); assert os.getppid() == {ghost}\n"
            "print(check_soundness(parse_process({'seq': ['a', 'b']}))[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"
    # without the guard the import itself fails the same way the sandbox made it fail
    bare = subprocess.run([sys.executable, "-c", f"import os; os.getppid = lambda: {ghost}\n"
                           "import pm4py"], capture_output=True, text=True, timeout=120)
    assert bare.returncode != 0 and "NoSuchProcess" in bare.stderr

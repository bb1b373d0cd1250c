"""Service-specific overlays as workflow nets (seed 004, sections 5-6) on pm4py's Petri-net
objects, with a soundness check that refuses what it cannot accept and says why.

A composite request is either a process expression (YAML)::

    transcode                                  # one service
    {seq: [e1, e2, ...]}                       # one after the other
    {par: [e1, e2, ...]}                       # AND-split ... AND-join (silent transitions)
    {choice: [e1, e2, ...]}                    # XOR: exactly one branch runs

or an explicit net ``{places: [...], transitions: [{name, service, consumes, produces}],
source: i, sink: o}`` that may be unsound or cyclic (then refused). Both become a pm4py
`PetriNet` with markings [source] -> [sink] and `tasks` (transition -> service).

`check_soundness` refuses, in order: a cycle (named), a net that is not a workflow net (one
source place, one sink place, every node on a path from source to sink), and an unsound net.
Soundness (van der Aalst: option to complete, proper completion, no dead transitions) is decided
by one of two engines:

* ``"reachability"`` (default): exhaustive exploration of the reachable markings. The nets that
  reach it are acyclic, hence bounded with finite firing sequences, so the exploration is exact;
  it is capped at `MAX_MARKINGS` (refused beyond, with the reason). Reasons name a witness.
* ``"woflan"``: pm4py's woflan (`pm4py.algo.analysis.woflan`), the reference. Its S-component
  enumeration grows quickly with parallel branches (seconds for a 50-transition net with
  parallelism on this machine; benchmarks/bench_sso.py prints both), so it is not the default;
  tests check that both engines agree on sound and unsound nets.

pm4py imports in about a second, so it is imported lazily (first composition), not at import.
"""

from __future__ import annotations

import os
import re
import sys
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: most places + transitions a composition may have (bounded input)
MAX_NODES = 2000
#: most markings the reachability engine explores before refusing
MAX_MARKINGS = 200_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class CompositionError(ValueError):
    """A composition that cannot be built or accepted; the message says what and where."""


@dataclass(frozen=True)
class NetTransition:
    """One transition: its service (None = silent routing), input and output places."""

    name: str
    service: str | None
    consumes: tuple[str, ...]
    produces: tuple[str, ...]


@dataclass(frozen=True)
class NetStructure:
    """The net as plain data (what the checks and the executor read)."""

    places: tuple[str, ...]
    transitions: tuple[NetTransition, ...]
    source: str
    sink: str


@dataclass
class Composition:
    """A composed overlay: the pm4py net, its markings and transition -> service."""

    net: Any
    initial_marking: Any
    final_marking: Any
    tasks: dict[str, str]
    structure: NetStructure = field(repr=False, default=NetStructure((), (), "", ""))

    @property
    def n_transitions(self) -> int:
        """Transitions in the net (silent routing ones included)."""
        return len(self.structure.transitions)


# -- building ---------------------------------------------------------------------------------

def _check_name(kind: str, name: object, where: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise CompositionError(f"{where}: {kind} name {name!r} is not a valid name "
                               "(letters, digits, _ . : -, at most 64 characters)")
    return name


def _check_service(name: object, where: str, known: Collection[str] | None) -> str:
    svc = _check_name("service", name, where)
    if known is not None and svc not in known:
        raise CompositionError(f"{where}: unknown service {svc!r} (offered: "
                               f"{', '.join(sorted(known)) or 'none'})")
    return svc


class _ExprBuilder:
    def __init__(self, known: Collection[str] | None) -> None:
        self.known = known
        self.places: list[str] = ["i", "o"]
        self.transitions: list[NetTransition] = []

    def place(self) -> str:
        name = f"p{len(self.places) - 1}"
        self.places.append(name)
        return name

    def add(self, kind: str, service: str | None, consumes: Sequence[str],
            produces: Sequence[str]) -> None:
        n = len(self.transitions) + 1
        self.transitions.append(NetTransition(f"t{n}.{kind}", service, tuple(consumes),
                                              tuple(produces)))
        if len(self.places) + len(self.transitions) > MAX_NODES:
            raise CompositionError(f"composition larger than {MAX_NODES} places + transitions")

    def build(self, expr: object, p_in: str, p_out: str, where: str) -> None:
        if isinstance(expr, str):
            svc = _check_service(expr, where, self.known)
            self.add(svc, svc, [p_in], [p_out])
            return
        if not isinstance(expr, Mapping) or len(expr) != 1:
            raise CompositionError(f"{where}: expected a service name or one of "
                                   f"{{seq|par|choice: [...]}}, got {expr!r:.80}")
        ((op, items),) = expr.items()
        if op not in ("seq", "par", "choice"):
            raise CompositionError(f"{where}: unknown operator {op!r} (seq, par, choice)")
        if not isinstance(items, list) or not items:
            raise CompositionError(f"{where}.{op}: expected a non-empty list")
        if op == "seq":
            cur = p_in
            for k, item in enumerate(items):
                nxt = p_out if k == len(items) - 1 else self.place()
                self.build(item, cur, nxt, f"{where}.seq[{k}]")
                cur = nxt
        elif op == "choice":
            for k, item in enumerate(items):
                self.build(item, p_in, p_out, f"{where}.choice[{k}]")
        else:
            ins = [self.place() for _ in items]
            outs = [self.place() for _ in items]
            self.add("and-split", None, [p_in], ins)
            for k, item in enumerate(items):
                self.build(item, ins[k], outs[k], f"{where}.par[{k}]")
            self.add("and-join", None, outs, [p_out])


def _from_expression(expr: object, known: Collection[str] | None) -> NetStructure:
    b = _ExprBuilder(known)
    b.build(expr, "i", "o", "process")
    return NetStructure(tuple(b.places), tuple(b.transitions), "i", "o")


def _str_list(obj: object, where: str) -> list[str]:
    if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
        raise CompositionError(f"{where}: expected a list of names")
    return list(obj)


def _from_explicit(obj: Mapping[str, Any], known: Collection[str] | None) -> NetStructure:
    extra = set(obj) - {"places", "transitions", "source", "sink"}
    if extra:
        raise CompositionError(f"net: unknown keys {sorted(extra)}")
    places = _str_list(obj.get("places"), "net.places")
    for p in places:
        _check_name("place", p, "net.places")
    if len(set(places)) != len(places):
        raise CompositionError("net.places: duplicate place names")
    raw = obj.get("transitions")
    if not isinstance(raw, list) or not raw:
        raise CompositionError("net.transitions: expected a non-empty list")
    if len(places) + len(raw) > MAX_NODES:
        raise CompositionError(f"net larger than {MAX_NODES} places + transitions")
    known_places = set(places)
    out: list[NetTransition] = []
    for k, t in enumerate(raw):
        where = f"net.transitions[{k}]"
        if not isinstance(t, Mapping):
            raise CompositionError(f"{where}: expected a mapping")
        bad = set(t) - {"name", "service", "consumes", "produces"}
        if bad:
            raise CompositionError(f"{where}: unknown keys {sorted(bad)}")
        name = _check_name("transition", t.get("name"), where)
        svc = t.get("service")
        service = None if svc is None else _check_service(svc, f"{where} ({name})", known)
        consumes = _str_list(t.get("consumes", []), f"{where}.consumes")
        produces = _str_list(t.get("produces", []), f"{where}.produces")
        for p in consumes + produces:
            if p not in known_places:
                raise CompositionError(f"{where} ({name}): unknown place {p!r}")
        if name in known_places:
            raise CompositionError(f"{where}: transition {name!r} has a place's name")
        out.append(NetTransition(name, service, tuple(consumes), tuple(produces)))
    if len({t.name for t in out}) != len(out):
        raise CompositionError("net.transitions: duplicate transition names")
    source, sink = obj.get("source", "i"), obj.get("sink", "o")
    for role, p in (("source", source), ("sink", sink)):
        if p not in known_places:
            raise CompositionError(f"net.{role}: {p!r} is not a place")
    return NetStructure(tuple(places), tuple(out), str(source), str(sink))


def _import_pm4py() -> None:
    """Import pm4py once, in a way that works inside an agent's systemd sandbox.

    pm4py's import (pm4py/util/constants.py) asks psutil for the name of its parent process to
    pick a graph viewer. Under the agents' ProtectProc=invisible the parent (systemd, PID 1) is
    hidden, so psutil raises NoSuchProcess and the import fails. For the duration of the import,
    os.getppid answers this process's own PID (always visible); nothing else is changed and the
    sandbox stays as it is."""
    if "pm4py" in sys.modules:
        return
    real = os.getppid
    os.getppid = os.getpid
    try:
        import pm4py  # noqa: F401
    finally:
        os.getppid = real


def _to_pm4py(s: NetStructure) -> tuple[Any, Any, Any]:
    _import_pm4py()
    from pm4py.objects.petri_net.obj import Marking, PetriNet
    from pm4py.objects.petri_net.utils import petri_utils

    net = PetriNet("sso")
    places = {p: PetriNet.Place(p) for p in s.places}
    for p in places.values():
        net.places.add(p)
    for t in s.transitions:
        pt = PetriNet.Transition(t.name, t.service)
        net.transitions.add(pt)
        for p in t.consumes:
            petri_utils.add_arc_from_to(places[p], pt, net)
        for p in t.produces:
            petri_utils.add_arc_from_to(pt, places[p], net)
    return net, Marking({places[s.source]: 1}), Marking({places[s.sink]: 1})


def preload() -> None:
    """Import pm4py now (about a second) instead of on the first composition: an agent calls
    this at startup so its first request is not the slow one."""
    _import_pm4py()
    from pm4py.algo.analysis.woflan import algorithm  # noqa: F401
    from pm4py.objects.petri_net.obj import PetriNet  # noqa: F401


def parse_process(obj: object, known_services: Collection[str] | None = None) -> Composition:
    """Build a `Composition` from a process expression or an explicit net (see the module
    docstring). With `known_services`, a service not in it is refused. Shape and names are
    validated here; soundness is `check_soundness`'s job. Raises `CompositionError`."""
    if isinstance(obj, Mapping) and ("transitions" in obj or "places" in obj):
        s = _from_explicit(obj, known_services)
    else:
        s = _from_expression(obj, known_services)
    net, im, fm = _to_pm4py(s)
    tasks = {t.name: t.service for t in s.transitions if t.service is not None}
    return Composition(net, im, fm, tasks, s)


# -- checks -----------------------------------------------------------------------------------

def _workflow_shape(s: NetStructure) -> str | None:
    """Why `s` is not a workflow net, or None."""
    has_in = {p for t in s.transitions for p in t.produces}
    has_out = {p for t in s.transitions for p in t.consumes}
    sources = [p for p in s.places if p not in has_in]
    sinks = [p for p in s.places if p not in has_out]
    if sources != [s.source]:
        return (f"not a workflow net: places without input arcs {sources}, expected only the "
                f"source {s.source!r}")
    if sinks != [s.sink]:
        return (f"not a workflow net: places without output arcs {sinks}, expected only the "
                f"sink {s.sink!r}")
    bare = [t.name for t in s.transitions if not t.consumes or not t.produces]
    if bare:
        return f"not a workflow net: transitions without input or output places {bare}"
    succ, pred = _graph(s)
    fwd, back = _reach(s.source, succ), _reach(s.sink, pred)
    nodes = [*s.places, *(t.name for t in s.transitions)]
    off = [n for n in nodes if n not in fwd or n not in back]
    if off:
        return f"not a workflow net: not on a path from {s.source!r} to {s.sink!r}: {off}"
    return None


def _graph(s: NetStructure) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    succ: dict[str, list[str]] = {n: [] for n in s.places}
    pred: dict[str, list[str]] = {n: [] for n in s.places}
    for t in s.transitions:
        succ[t.name] = list(dict.fromkeys(t.produces))
        pred[t.name] = list(dict.fromkeys(t.consumes))
        for p in dict.fromkeys(t.consumes):
            succ[p].append(t.name)
        for p in dict.fromkeys(t.produces):
            pred[p].append(t.name)
    return succ, pred


def _reach(start: str, edges: Mapping[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for m in edges[todo.pop()]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def find_cycle(s: NetStructure) -> list[str] | None:
    """A directed cycle of the net as node names (first repeated at the end), or None."""
    succ, _ = _graph(s)
    state: dict[str, int] = {}          # 1 = on the DFS stack, 2 = done
    for root in succ:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        while stack:
            node, k = stack[-1]
            if k < len(succ[node]):
                stack[-1] = (node, k + 1)
                nxt = succ[node][k]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt):], nxt]
                if nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return None


def _fmt_marking(places: Sequence[str], m: Sequence[int]) -> str:
    return "[" + ", ".join(p if n == 1 else f"{n}*{p}" for p, n in zip(places, m, strict=True)
                           if n) + "]"


def _soundness_by_reachability(s: NetStructure) -> tuple[bool, str]:
    idx = {p: k for k, p in enumerate(s.places)}
    pre = [[idx[p] for p in t.consumes] for t in s.transitions]
    post = [[idx[p] for p in t.produces] for t in s.transitions]
    src, snk = idx[s.source], idx[s.sink]
    init = tuple(1 if k == src else 0 for k in range(len(s.places)))
    final = tuple(1 if k == snk else 0 for k in range(len(s.places)))
    parent: dict[tuple[int, ...], tuple[tuple[int, ...], int] | None] = {init: None}
    fired: set[int] = set()
    todo = deque([init])

    def path_to(m: tuple[int, ...]) -> str:
        names: list[str] = []
        cur = parent[m]
        while cur is not None:
            names.append(s.transitions[cur[1]].name)
            cur = parent[cur[0]]
        return " -> ".join(reversed(names)) or "(start)"

    while todo:
        m = todo.popleft()
        if m[snk] and m != final:
            return False, (f"improper completion: marking {_fmt_marking(s.places, m)} puts a "
                           f"token in the sink {s.sink!r} with others left, after "
                           f"{path_to(m)}")
        enabled = False
        for k, ins in enumerate(pre):
            need: dict[int, int] = {}
            for p in ins:
                need[p] = need.get(p, 0) + 1
            if all(m[p] >= n for p, n in need.items()):
                enabled = True
                fired.add(k)
                nm = list(m)
                for p in ins:
                    nm[p] -= 1
                for p in post[k]:
                    nm[p] += 1
                t_m = tuple(nm)
                if t_m not in parent:
                    if len(parent) >= MAX_MARKINGS:
                        return False, (f"state space larger than {MAX_MARKINGS} markings: "
                                       "soundness not decided, refused")
                    parent[t_m] = (m, k)
                    todo.append(t_m)
        if not enabled and m != final:
            return False, (f"deadlock (no option to complete): marking "
                           f"{_fmt_marking(s.places, m)} reached by {path_to(m)} enables "
                           "nothing and is not the final marking")
    dead = [t.name for k, t in enumerate(s.transitions) if k not in fired]
    if dead:
        return False, f"dead transitions (can never fire): {dead}"
    return True, f"sound ({len(parent)} reachable markings)"


def _soundness_by_woflan(comp: Composition) -> tuple[bool, str]:
    import warnings

    _import_pm4py()
    from pm4py.algo.analysis.woflan import algorithm as woflan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = woflan.apply(comp.net, comp.initial_marking, comp.final_marking,
                           parameters={"print_diagnostics": False, "return_diagnostics": True,
                                       "return_asap_when_not_sound": True})
    sound, diag = res if isinstance(res, tuple) else (bool(res), {})
    msgs = [str(x) for x in diag.get(woflan.Outputs.DIAGNOSTIC_MESSAGES.value, [])
            or diag.get(woflan.Outputs.DIAGNOSTIC_MESSAGES, [])]
    dead = diag.get(woflan.Outputs.DEAD_TASKS.value) or []
    if sound:
        return True, "sound (woflan)"
    detail = "; ".join(msgs[-3:]) or "not sound"
    if dead:
        detail += f"; dead transitions: {sorted(str(t.name) for t in dead)}"
    return False, f"unsound (woflan): {detail}"


def check_soundness(comp: Composition, engine: str = "reachability") -> tuple[bool, str]:
    """(sound, reason). Refuses cycles (the reason names the cycle) and non-workflow nets
    before deciding soundness with `engine` ("reachability" or "woflan", see the module)."""
    s = comp.structure
    cycle = find_cycle(s)
    if cycle:
        return False, f"cycle refused: {' -> '.join(cycle)}"
    why = _workflow_shape(s)
    if why:
        return False, why
    if engine == "woflan":
        return _soundness_by_woflan(comp)
    if engine != "reachability":
        raise ValueError(f"unknown soundness engine {engine!r} (reachability, woflan)")
    return _soundness_by_reachability(s)


def firing_order(comp: Composition) -> list[list[str]]:
    """Stages of labelled transitions (services) that can run concurrently, in an order that
    takes the token from the source to the sink; of conflicting transitions (a choice) the
    first declared runs. Silent routing transitions fire but are not listed. Raises
    `CompositionError` when no such run exists (check soundness first)."""
    s = comp.structure
    marking: dict[str, int] = {s.source: 1}
    stages: list[list[str]] = []
    for _ in range(len(s.transitions) + 1):
        if marking == {s.sink: 1}:
            return stages
        step: list[NetTransition] = []
        avail = dict(marking)
        for t in s.transitions:
            need: dict[str, int] = {}
            for p in t.consumes:
                need[p] = need.get(p, 0) + 1
            if all(avail.get(p, 0) >= n for p, n in need.items()):
                for p, n in need.items():
                    avail[p] -= n
                step.append(t)
        if not step:
            break
        marking = {p: n for p, n in avail.items() if n}
        for t in step:
            for p in t.produces:
                marking[p] = marking.get(p, 0) + 1
        labelled = [t.name for t in step if t.service is not None]
        if labelled:
            stages.append(labelled)
    if marking == {s.sink: 1}:
        return stages
    raise CompositionError(f"no run reaches the sink {s.sink!r}: stuck at "
                           f"{sorted(marking.items())}")

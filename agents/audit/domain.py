"""Data-audit policy model and per-edge decisions (seed 002, Tables 1-2, section 3.2).

A container owner writes *requirements* (Table 1: cDAl ... cHRaf); an edge owner writes
*attributes* (Table 2: eDAl ... eHRaf); the monitor supplies the edge's current CPU and memory
utilisation and liveness. A migration to an edge is permitted only if every constrained
requirement holds. A decision lists every element with the values compared, so a denial always
says why.

Value syntax (the spec's, which follows Table 5):
- ``*``, empty or absent: unconstrained. A bare ``-`` in a requirement also means "nothing
  required" (Table 3 writes ``-`` for cHRgpu/cHRac/cHRaf and the text says they are not considered).
- Lists are comma-separated (``jp,us,fr``); YAML lists are accepted too.
- A leading ``-`` excludes an item (``-caB``: any organisation except caB). Allowed and excluded
  items may be mixed (``eu,-fr``: any EU member state except France).
- Country elements take ISO 3166-1 alpha-2 codes (case-insensitive) or a group (``eu``, ``eea``).
- Other names (organisations, manufacturers, tools, accessories, frameworks) compare
  case-insensitively and are shown as written.

Choosing among edges (target modes) lives in :mod:`agents.audit.destination`.

This module is pure: no gRPC, Docker or Ansible, no I/O beyond reading the shipped code tables.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources
from typing import Any

import yaml

# --------------------------------------------------------------------------------------------
# Elements (Tables 1 and 2)
# --------------------------------------------------------------------------------------------

CONTAINER_ELEMENTS: tuple[str, ...] = (
    "cDAl", "cDAo", "cHRh", "cHRt", "cHRcu", "cHRmu", "cHRc", "cHRm", "cHRgpu", "cHRac", "cHRaf",
)
EDGE_ELEMENTS: tuple[str, ...] = (
    "eDAl", "eDAo", "eHRh", "eHRt", "eHRc", "eHRm", "eHRgpu", "eHRac", "eHRaf",
)

#: Rows a decision carries besides the eleven requirements (system conditions, not policy).
ACCESS = "access"
LIVENESS = "liveness"

#: Names for the monitored values that cHRcu / cHRmu are compared with.
CPU_UTILISATION = "cpu_util"
MEMORY_UTILISATION = "mem_util"

_UNCONSTRAINED = "*"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+@ -]{0,63}$")
_NUMBER_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z%]*)\s*$")


class Kind(Enum):
    """How a container requirement is compared with the edge."""

    ANY_OF = "any-of"  # the edge's value must be one of the allowed items, none of the excluded
    ALL_OF = "all-of"  # the edge must offer every required item and none of the excluded ones
    MAX_PERCENT = "max-percent"  # measured utilisation at the edge must be <= the threshold
    MIN_NUMBER = "min-number"  # the edge's number must be >= the threshold
    FLAG = "flag"  # when required, the edge must declare the capability


@dataclass(frozen=True, slots=True)
class ElementSpec:
    """One row of Table 1 and the Table 2 attribute (or monitored value) it is compared with."""

    element: str
    edge_element: str
    kind: Kind
    description: str
    unit: str = ""
    countries: bool = False


ELEMENT_SPECS: dict[str, ElementSpec] = {
    s.element: s
    for s in (
        ElementSpec("cDAl", "eDAl", Kind.ANY_OF, "countries or regions allowed", countries=True),
        ElementSpec("cDAo", "eDAo", Kind.ANY_OF, "administrative organisations allowed"),
        ElementSpec("cHRh", "eHRh", Kind.ANY_OF, "edge device manufacturers allowed"),
        ElementSpec("cHRt", "eHRt", Kind.ANY_OF, "virtualisation tools to be used"),
        ElementSpec("cHRcu", CPU_UTILISATION, Kind.MAX_PERCENT,
                    "max CPU utilisation at the destination", "%"),
        ElementSpec("cHRmu", MEMORY_UTILISATION, Kind.MAX_PERCENT,
                    "max memory utilisation at the destination", "%"),
        ElementSpec("cHRc", "eHRc", Kind.MIN_NUMBER, "min CPU frequency", "GHz"),
        ElementSpec("cHRm", "eHRm", Kind.MIN_NUMBER, "min memory capacity", "GB"),
        ElementSpec("cHRgpu", "eHRgpu", Kind.FLAG, "AI support required"),
        ElementSpec("cHRac", "eHRac", Kind.ALL_OF, "AI accessories required"),
        ElementSpec("cHRaf", "eHRaf", Kind.ALL_OF, "AI frameworks required"),
    )
}

#: Table 2: what each edge attribute holds.
EDGE_ELEMENT_DESCRIPTIONS: dict[str, str] = {
    "eDAl": "country of placement (ISO 3166-1 alpha-2)",
    "eDAo": "managing organisation",
    "eHRh": "edge device manufacturer",
    "eHRt": "available virtualisation tools (list)",
    "eHRc": "CPU frequency (GHz)",
    "eHRm": "memory capacity (GB)",
    "eHRgpu": "AI support (yes/no)",
    "eHRac": "available AI accessories (list)",
    "eHRaf": "available AI frameworks (list)",
}
_EDGE_SINGLE = frozenset({"eDAl", "eDAo", "eHRh"})
_EDGE_SETS = ("eDAl", "eDAo", "eHRh", "eHRt", "eHRac", "eHRaf")
_EDGE_NUMBERS = {"eHRc": "GHz", "eHRm": "GB"}

_TRUE_WORDS = frozenset({"yes", "y", "true", "1", "required", "available", "on"})
_FALSE_WORDS = frozenset({"no", "n", "false", "0", "none", "off", "na", "n/a", "-"})


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class AuditError(Exception):
    """Base class of the data-audit domain errors; ``str(err)`` is one line saying what to fix."""


class PolicyError(AuditError):
    """A requirement or attribute is invalid (unknown element, bad number, bad country code)."""

    def __init__(self, message: str, element: str = "") -> None:
        super().__init__(f"{element}: {message}" if element else message)
        self.element = element


class UnknownEdge(AuditError):
    """The named edge is not registered."""


class UnknownRegion(AuditError):
    """No registered edge belongs to the named region."""


class InvalidTarget(AuditError):
    """The target makes no sense (e.g. migrating a container to the edge it already runs on)."""


class NotFound(AuditError):
    """The edge, container or share key does not exist."""


class AlreadyExists(AuditError):
    """An edge or container with that name is already registered."""


class NotOwner(AuditError):
    """The authenticated owner does not own (and was not given) the object."""


class InvalidOwnerToken(AuditError):
    """The owner capability/token did not verify (forged, expired, revoked or malformed)."""


# --------------------------------------------------------------------------------------------
# Shipped tables: country codes and country groups
# --------------------------------------------------------------------------------------------


@cache
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes (lower case), from ``agents/audit/data/iso3166_alpha2.csv``."""
    text = resources.files("agents.audit").joinpath("data/iso3166_alpha2.csv").read_text("utf-8")
    rows = csv.reader(line for line in text.splitlines() if line and not line.startswith("#"))
    next(rows)  # header
    return frozenset(row[0].strip().lower() for row in rows)


@cache
def country_groups() -> dict[str, frozenset[str]]:
    """Named country groups usable in cDAl (``eu``, ``eea``), from ``data/country_groups.yaml``."""
    text = resources.files("agents.audit").joinpath("data/country_groups.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)["groups"]
    codes = country_codes()
    groups: dict[str, frozenset[str]] = {}
    for name, members in raw.items():
        members_set = frozenset(str(m).lower() for m in members)
        unknown = members_set - codes
        if unknown:  # pragma: no cover - guards the shipped file
            raise PolicyError(f"country group {name!r} has unknown codes {sorted(unknown)}")
        groups[str(name).lower()] = members_set
    return groups


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------


def _items(value: object, element: str) -> list[str]:
    """Split a comma-separated string (or a YAML list) into stripped, non-empty items."""
    if value is None:
        return []
    if isinstance(value, bool):
        raise PolicyError(f"expected a name or a comma-separated list, got {value!r}", element)
    if isinstance(value, (list, tuple)):
        parts: list[str] = []
        for v in value:
            parts.extend(_items(v, element))
        return parts
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise PolicyError(f"expected a name or a comma-separated list, got {value!r}", element)
    return [p.strip() for p in value.split(",") if p.strip()]


def _check_token(token: str, element: str) -> None:
    if not _TOKEN_RE.match(token):
        raise PolicyError(
            f"{token!r} is not a valid name (letters, digits and . _ : / + @ - space; "
            "at most 64 characters; must start with a letter or digit)", element)


def _country(token: str, element: str, allow_groups: bool) -> frozenset[str]:
    code = token.lower()
    if allow_groups:
        groups = country_groups()
        if code in groups:
            return groups[code]
    if code in country_codes():
        return frozenset({code})
    hint = " (the United Kingdom is 'gb')" if code == "uk" else ""
    kinds = "an ISO 3166-1 alpha-2 code or a group (eu, eea)" if allow_groups else \
        "an ISO 3166-1 alpha-2 code"
    raise PolicyError(f"unknown country code {token!r}; use {kinds}, e.g. jp, us, fr{hint}",
                      element)


def _number(value: object, element: str, unit: str) -> float:
    if isinstance(value, bool):
        raise PolicyError(f"{value!r} is not a number", element)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        m = _NUMBER_RE.match(value)
        if not m or (m.group(2) and m.group(2).lower() != unit.lower()):
            example = {"%": "60", "GHz": "2.4", "GB": "4"}.get(unit, "1")
            raise PolicyError(f"{value!r} is not a number ({unit}, e.g. {example})", element)
        number = float(m.group(1))
    else:
        raise PolicyError(f"{value!r} is not a number", element)
    if not math.isfinite(number) or number < 0:
        raise PolicyError(f"{value!r} must be a finite number >= 0", element)
    if unit == "%" and number > 100:
        raise PolicyError(f"{value!r} is a percentage and must be between 0 and 100", element)
    return number


def _fmt_number(x: float) -> str:
    return f"{x:g}"


def _is_unconstrained(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() in ("", _UNCONSTRAINED, "-")
    if isinstance(value, (list, tuple)):
        return len(value) == 0
    return False


# --------------------------------------------------------------------------------------------
# Edge attributes and monitored state
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EdgeState:
    """What the monitor last saw at an edge (seed 002, Figure 8)."""

    cpu_percent: float
    memory_percent: float
    alive: bool
    measured_at: float  # Unix time, seconds
    #: why the reading failed ("" when the node agent answered): utilisation rows then fail
    failure: str = ""


@dataclass(frozen=True, slots=True)
class EdgeAttributes:
    """An edge server as its owner registered it (Table 2) plus its name, region and address.

    ``sets`` holds the case-folded values of the list-like attributes; an attribute the owner did
    not declare is absent (a requirement on it then fails); ``-`` declares "none" (empty set).
    """

    name: str
    region: str
    address: str
    sets: Mapping[str, frozenset[str]]
    numbers: Mapping[str, float]
    gpu: bool | None
    display: Mapping[str, str]  # element -> value as written (normalised spacing)

    def canonical(self) -> dict[str, str]:
        """Attribute text that parses back to the same edge (for storage and the wire)."""
        return dict(self.display)


def parse_edge(name: str, attributes: Mapping[str, object], *, region: str = "",
               address: str = "") -> EdgeAttributes:
    """Validate an edge owner's attributes (Table 2); raise PolicyError on any bad entry."""
    _check_token(name, "name")
    if region:
        _check_token(region, "region")
    for key in attributes:
        if key not in EDGE_ELEMENT_DESCRIPTIONS:
            hint = " (that is a container requirement)" if key in ELEMENT_SPECS else ""
            raise PolicyError(f"unknown edge attribute{hint}; known: {', '.join(EDGE_ELEMENTS)}",
                              str(key))
    sets: dict[str, frozenset[str]] = {}
    numbers: dict[str, float] = {}
    display: dict[str, str] = {}
    gpu: bool | None = None
    for element in _EDGE_SETS:
        raw = attributes.get(element)
        if raw is None or (isinstance(raw, str) and raw.strip() in ("", _UNCONSTRAINED)):
            continue  # not declared
        items = _items(raw, element)
        if items == ["-"]:
            sets[element], display[element] = frozenset(), "-"
            continue
        if element in _EDGE_SINGLE and len(items) != 1:
            raise PolicyError(f"takes exactly one value, got {len(items)}", element)
        for item in items:
            _check_token(item, element)
        if element == "eDAl":
            items = [item.lower() for item in items]
            _country(items[0], element, allow_groups=False)
        sets[element] = frozenset(i.casefold() for i in items)
        display[element] = ",".join(items)
    for element, unit in _EDGE_NUMBERS.items():
        raw = attributes.get(element)
        if _is_unconstrained(raw) or (isinstance(raw, str) and raw.strip() == "-"):
            continue
        numbers[element] = _number(raw, element, unit)
        display[element] = _fmt_number(numbers[element])
    raw_gpu = attributes.get("eHRgpu")
    if raw_gpu is not None and not (isinstance(raw_gpu, str) and raw_gpu.strip() in ("", "*")):
        gpu = _flag(raw_gpu, "eHRgpu")
        display["eHRgpu"] = "yes" if gpu else "no"
    return EdgeAttributes(name=name, region=region, address=address, sets=sets,
                          numbers=numbers, gpu=gpu, display=display)


def _flag(value: object, element: str) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().casefold()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise PolicyError(f"{value!r} is not yes/no", element)


# --------------------------------------------------------------------------------------------
# Element checks and decisions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ElementCheck:
    """One row of a decision: what was required, what the edge has, whether it held."""

    element: str  # "cDAl" ... "cHRaf", or "access" / "liveness"
    edge_element: str  # "eDAl", "cpu_util", ...
    required: str  # the requirement as written ("*" when unconstrained)
    actual: str  # the edge's value ("(not declared)" / "(not measured)" when missing)
    constrained: bool
    held: bool
    note: str  # one short sentence: why it held or failed

    def as_dict(self) -> dict[str, Any]:
        """This row as a JSON-ready dict, one key per field."""
        return {"element": self.element, "edge_element": self.edge_element,
                "required": self.required, "actual": self.actual,
                "constrained": self.constrained, "held": self.held, "note": self.note}


@dataclass(frozen=True, slots=True)
class Decision:
    """The data audit of one container against one edge."""

    container: str
    edge: str
    permit: bool
    checks: tuple[ElementCheck, ...]

    @property
    def failures(self) -> tuple[ElementCheck, ...]:
        """The rows that did not hold, in order; empty exactly when ``permit``."""
        return tuple(c for c in self.checks if not c.held)

    def reasons(self) -> list[str]:
        """One line per failed element, e.g. ``cDAl: de not in allowed jp,us,fr``."""
        return [f"{c.element}: {c.note}" for c in self.checks if not c.held]

    def as_dict(self) -> dict[str, Any]:
        """This decision as a JSON-ready dict (audit log, ``--json``), every row in order."""
        return {"container": self.container, "edge": self.edge, "permit": self.permit,
                "checks": [c.as_dict() for c in self.checks]}


_NOT_DECLARED = "(not declared)"


class Requirement:
    """A parsed container requirement for one element."""

    __slots__ = ("constrained", "element", "spec", "text")

    def __init__(self, spec: ElementSpec, text: str, constrained: bool) -> None:
        self.spec = spec
        self.element = spec.element
        self.text = text
        self.constrained = constrained

    def check(self, edge: EdgeAttributes, state: EdgeState | None,
              stale: str | None) -> ElementCheck:
        """This element's row for ``edge``; utilisation fails with no ``state`` or a stale one."""
        raise NotImplementedError

    def _unconstrained(self, actual: str) -> ElementCheck:
        return ElementCheck(self.element, self.spec.edge_element, self.text, actual, False, True,
                            "unconstrained")


class _Unconstrained(Requirement):
    __slots__ = ()

    def check(self, edge: EdgeAttributes, state: EdgeState | None,
              stale: str | None) -> ElementCheck:
        e = self.spec.edge_element
        if self.spec.kind is Kind.MAX_PERCENT:
            actual = _fmt_util(state, e) if state is not None else "(not measured)"
        else:
            actual = edge.display.get(e, _NOT_DECLARED)
        return self._unconstrained(actual)


class _SetRequirement(Requirement):
    __slots__ = ("allowed", "excluded")

    def __init__(self, spec: ElementSpec, text: str, allowed: frozenset[str],
                 excluded: frozenset[str]) -> None:
        super().__init__(spec, text, True)
        self.allowed = allowed
        self.excluded = excluded

    def check(self, edge: EdgeAttributes, state: EdgeState | None,
              stale: str | None) -> ElementCheck:
        e = self.spec.edge_element
        have = edge.sets.get(e)
        if have is None:
            return ElementCheck(self.element, e, self.text, _NOT_DECLARED, True, False,
                                f"edge does not declare {e}")
        actual = edge.display[e]
        banned = have & self.excluded
        if banned:
            return ElementCheck(self.element, e, self.text, actual, True, False,
                                f"{actual} is excluded")
        if self.allowed:
            if self.spec.kind is Kind.ANY_OF:
                ok = not have.isdisjoint(self.allowed)
                note = f"{actual} in allowed {self.text}" if ok else \
                    f"{actual} not in allowed {self.text}"
            else:
                missing = self.allowed - have
                ok = not missing
                note = f"edge offers {self.text}" if ok else \
                    f"edge lacks {','.join(sorted(missing))}"
            return ElementCheck(self.element, e, self.text, actual, True, ok, note)
        return ElementCheck(self.element, e, self.text, actual, True, True,
                            f"{actual} is not excluded")


def _fmt_util(state: EdgeState, which: str) -> str:
    v = state.cpu_percent if which == CPU_UTILISATION else state.memory_percent
    return f"{v:g}%"


class _MaxPercent(Requirement):
    __slots__ = ("limit",)

    def __init__(self, spec: ElementSpec, text: str, limit: float) -> None:
        super().__init__(spec, text, True)
        self.limit = limit

    def check(self, edge: EdgeAttributes, state: EdgeState | None,
              stale: str | None) -> ElementCheck:
        e = self.spec.edge_element
        if state is None:
            return ElementCheck(self.element, e, self.text, "(not measured)", True, False,
                                "no utilisation measurement for this edge yet")
        value = state.cpu_percent if e == CPU_UTILISATION else state.memory_percent
        actual = f"{value:g}%"
        if stale is not None:
            return ElementCheck(self.element, e, self.text, actual, True, False, stale)
        ok = value <= self.limit
        cmp = "<=" if ok else ">"
        return ElementCheck(self.element, e, self.text, actual, True, ok,
                            f"{actual} {cmp} {self.text}")


class _MinNumber(Requirement):
    __slots__ = ("minimum",)

    def __init__(self, spec: ElementSpec, text: str, minimum: float) -> None:
        super().__init__(spec, text, True)
        self.minimum = minimum

    def check(self, edge: EdgeAttributes, state: EdgeState | None,
              stale: str | None) -> ElementCheck:
        e = self.spec.edge_element
        value = edge.numbers.get(e)
        if value is None:
            return ElementCheck(self.element, e, self.text, _NOT_DECLARED, True, False,
                                f"edge does not declare {e}")
        actual = edge.display[e]
        ok = value >= self.minimum
        cmp = ">=" if ok else "<"
        return ElementCheck(self.element, e, self.text, actual, True, ok,
                            f"{actual} {self.spec.unit} {cmp} {self.text} {self.spec.unit}")


class _FlagRequired(Requirement):
    __slots__ = ()

    def check(self, edge: EdgeAttributes, state: EdgeState | None,
              stale: str | None) -> ElementCheck:
        e = self.spec.edge_element
        if edge.gpu is None:
            return ElementCheck(self.element, e, self.text, _NOT_DECLARED, True, False,
                                f"edge does not declare {e}")
        actual = edge.display[e]
        if edge.gpu:
            return ElementCheck(self.element, e, self.text, actual, True, True,
                                "edge supports AI processing")
        return ElementCheck(self.element, e, self.text, actual, True, False,
                            "edge has no AI support")


def parse_requirement(element: str, value: object) -> Requirement:
    """Validate one container requirement (Table 1); raise PolicyError when it is invalid."""
    spec = ELEMENT_SPECS.get(element)
    if spec is None:
        hint = " (that is an edge attribute)" if element in EDGE_ELEMENT_DESCRIPTIONS else ""
        raise PolicyError(
            f"unknown container requirement{hint}; known: {', '.join(CONTAINER_ELEMENTS)}",
            element)
    if _is_unconstrained(value):
        return _Unconstrained(spec, _UNCONSTRAINED, False)
    if spec.kind in (Kind.ANY_OF, Kind.ALL_OF):
        return _parse_set(spec, value)
    if spec.kind is Kind.MAX_PERCENT:
        limit = _number(value, element, "%")
        return _MaxPercent(spec, _fmt_number(limit), limit)
    if spec.kind is Kind.MIN_NUMBER:
        minimum = _number(value, element, spec.unit)
        return _MinNumber(spec, _fmt_number(minimum), minimum)
    if _flag(value, element):
        return _FlagRequired(spec, "yes", True)
    return _Unconstrained(spec, _UNCONSTRAINED, False)  # "no": AI support not required



def percent_limit(element: str, value: object) -> float | None:
    """The limit a utilisation requirement (cHRcu, cHRmu; "60" or "60%") puts on an edge, in
    percent; None when unconstrained ("*", absent). PolicyError when invalid or not such an
    element."""
    req = parse_requirement(element, value)
    if req.spec.kind is not Kind.MAX_PERCENT:
        raise PolicyError("not a utilisation requirement (cHRcu, cHRmu)", element)
    return req.limit if isinstance(req, _MaxPercent) else None

def _parse_set(spec: ElementSpec, value: object) -> Requirement:
    element = spec.element
    items = _items(value, element)
    if _UNCONSTRAINED in items:
        raise PolicyError("'*' means unconstrained and cannot be combined with other items",
                          element)
    allowed: set[str] = set()
    excluded: set[str] = set()
    shown: list[str] = []
    for item in items:
        negate = item.startswith("-")
        name = item[1:].strip() if negate else item
        if not name:
            raise PolicyError("'-' must be followed by the name to exclude", element)
        _check_token(name, element)
        if spec.countries:
            name = name.lower()
            members = _country(name, element, allow_groups=True)
        else:
            members = frozenset({name.casefold()})
        (excluded if negate else allowed).update(members)
        shown.append(f"-{name}" if negate else name)
    overlap = allowed & excluded
    if overlap and not spec.countries:
        raise PolicyError(f"{','.join(sorted(overlap))} is both allowed and excluded", element)
    allowed -= excluded  # "eu,-fr": the group minus the exclusion
    if not allowed and not excluded:  # pragma: no cover - _is_unconstrained caught it
        return _Unconstrained(spec, _UNCONSTRAINED, False)
    if not allowed and any(not s.startswith("-") for s in shown):
        raise PolicyError(f"{','.join(shown)} excludes everything it allows", element)
    return _SetRequirement(spec, ",".join(shown), frozenset(allowed), frozenset(excluded))


@dataclass(frozen=True, slots=True)
class ContainerPolicy:
    """A container and its owner's requirements (Table 1), in Table 1 order."""

    name: str
    location: str  # the edge the container runs on now ("" when unknown)
    requirements: tuple[Requirement, ...]

    def canonical(self) -> dict[str, str]:
        """Requirement text for every element; parses back to the same policy."""
        return {r.element: r.text for r in self.requirements}

    def constrained(self) -> tuple[str, ...]:
        """The elements this container constrains (not ``*``), in Table 1 order."""
        return tuple(r.element for r in self.requirements if r.constrained)


def parse_container_policy(name: str, requirements: Mapping[str, object], *,
                           location: str = "") -> ContainerPolicy:
    """Validate a container owner's requirements; absent elements are unconstrained."""
    _check_token(name, "name")
    if location:
        _check_token(location, "location")
    for key in requirements:
        if key not in ELEMENT_SPECS:
            parse_requirement(str(key), None)  # raises the unknown-element error
    reqs = tuple(parse_requirement(el, requirements.get(el)) for el in CONTAINER_ELEMENTS)
    return ContainerPolicy(name=name, location=location, requirements=reqs)


def evaluate(policy: ContainerPolicy, edge: EdgeAttributes, state: EdgeState | None, *,
             accessible: bool = True, now: float | None = None,
             max_state_age: float | None = None) -> Decision:
    """Audit one container against one edge: permit only if every constrained row holds.

    ``state`` is the monitor's last observation (None when never measured). When ``now`` and
    ``max_state_age`` are given, an older observation is stale: utilisation requirements fail,
    as they do after a failed reading (``state.failure``), each with that reason.
    ``accessible`` says whether the container's owner may use the edge (owned or shared).
    """
    stale: str | None = None
    if state is not None and now is not None and max_state_age is not None:
        age = now - state.measured_at
        if age > max_state_age:
            stale = f"measurement is stale ({age:.0f} s old > {max_state_age:.0f} s)"
    if state is not None and state.failure:
        stale = f"monitor reading failed: {state.failure}"
    access = ElementCheck(ACCESS, "owner", "owned or shared", "yes" if accessible else "no",
                          True, accessible,
                          "edge is available to the container's owner" if accessible else
                          "edge is neither owned by nor shared with the container's owner")
    if state is None:
        live = ElementCheck(LIVENESS, LIVENESS, "alive", "(not monitored)", False, True,
                            "not monitored yet")
    elif not state.alive:
        live = ElementCheck(LIVENESS, LIVENESS, "alive", "down", True, False,
                            "the monitor found the edge down")
    else:
        live = ElementCheck(LIVENESS, LIVENESS, "alive", "up", True, True, "edge is up")
    checks = (access, live, *(r.check(edge, state, stale) for r in policy.requirements))
    permit = all(c.held for c in checks)
    return Decision(container=policy.name, edge=edge.name, permit=permit, checks=checks)

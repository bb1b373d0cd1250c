"""Experiment definitions (`experiments/*.yaml`): schema, loading and validation.

Two forms. A single-scenario experiment puts the scenario's keys at the top level::

    name: container-migration
    description: ...
    target: {lab: {bandwidth: 40mbit}}          # or {inventory: inventory/example-hardware}
    seed: 1
    scenario: container-migration
    workload: {source: edge1, destination: edge2}
    parameters: {image_size_mb: [264, 2130, 4400]}   # lists are swept (cartesian product)
    repetitions: 5
    warmups: 1
    logs: failed                                # agents' journals kept for: failed | all | none
    phases: [stop, commit, push, pull, start, first-response]
    references:
      - {label: "Table 3, 264 MB", phase: total, where: {image_size_mb: 264},
         value: 20.33, unit: s, source: "seed 001 Table 3"}

A composite experiment (the demo) lists `parts:`, each with those scenario keys and a `name`.
Unknown keys are refused everywhere, and every error names the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeferry.errors import ConfigError
from edgeferry.experiments import registry
from edgeferry.reports.units import UNIT_KINDS

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
PART_KEYS = ("scenario", "workload", "parameters", "repetitions", "warmups", "order", "phases",
             "references")
TOTAL = "total"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabTarget(_Strict):
    """The emulated lab: the default one, a lab file, and/or flag-like overrides."""

    lab_file: str | None = None  # relative to the experiment file
    name: str | None = None
    bandwidth: str | None = None
    edges: int | None = Field(default=None, ge=1, le=32)
    edge_profile: str | None = None


class Target(_Strict):
    lab: LabTarget | None = None
    inventory: str | None = None  # an Ansible inventory directory (relative to the workspace)

    @model_validator(mode="after")
    def _one(self) -> Target:
        if (self.lab is None) == (self.inventory is None):
            raise ValueError("give exactly one of 'lab' (emulated lab) or 'inventory'")
        return self


class Reference(_Strict):
    """A published figure to set beside our measurement."""

    label: str
    value: float
    unit: str
    source: str
    phase: str | None = None  # a phase name or "total" (sum of the trial's phases)
    metric: str | None = None  # or a per-trial metric of the scenario
    where: dict[str, Any] = Field(default_factory=dict)  # parameter values to select trials
    part: str | None = None  # composite experiments: which part (default: the only one)

    @field_validator("unit")
    @classmethod
    def _unit_known(cls, value: str) -> str:
        if value not in UNIT_KINDS:
            raise ValueError(f"unit {value!r} is not one of {', '.join(UNIT_KINDS)}")
        return value

    @model_validator(mode="after")
    def _one(self) -> Reference:
        if (self.phase is None) == (self.metric is None):
            raise ValueError("give exactly one of 'phase' or 'metric'")
        return self


class PlotSpec(_Strict):
    """A figure the report draws: `y` (a metric, a phase or "total") against the parameter `x`,
    one line per value of the parameter `series` and per part (the parts of one figure may be
    measured on the lab and simulated: `labels` names them in the legend)."""

    title: str
    x: str
    y: str
    series: str | None = None
    parts: list[str] = Field(default_factory=list)  # default: every part that sweeps x
    labels: dict[str, str] = Field(default_factory=dict)  # part name -> legend label
    log_x: bool = False
    note: str = ""  # printed under the figure, e.g. what the paper's figure shows


class Part(_Strict):
    name: str = ""
    scenario: str
    enabled: bool = True
    note: str = ""
    workload: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    repetitions: int = Field(default=5, ge=1, le=100000)
    warmups: int = Field(default=0, ge=0, le=1000)
    order: Literal["shuffled", "grouped"] = "shuffled"
    phases: list[str] = Field(default_factory=list)
    references: list[Reference] = Field(default_factory=list)

    @model_validator(mode="after")
    def _default_name(self) -> Part:
        if not self.name:
            self.name = self.scenario
        if not _NAME_RE.match(self.name):
            raise ValueError(f"part name {self.name!r} must use a-z, 0-9 and '-'")
        return self

    def values(self) -> dict[str, list[Any]]:
        """Each parameter as a list of values (a scalar is a one-value sweep)."""
        return {k: (list(v) if isinstance(v, list) else [v]) for k, v in self.parameters.items()}


class Experiment(_Strict):
    name: str
    description: str
    target: Target
    seed: int = 0
    parts: list[Part]
    references: list[Reference] = Field(default_factory=list)  # composite: cross-part refs
    plots: list[PlotSpec] = Field(default_factory=list)  # figures beyond the standard ones
    logs: Literal["failed", "all", "none"] = "failed"  # agents' journals kept per trial
    source: str = Field(default="", exclude=True)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"experiment name {value!r} must start with a letter and use "
                             "a-z, 0-9, '-'")
        return value

    @model_validator(mode="after")
    def _parts_ok(self) -> Experiment:
        if not self.parts:
            raise ValueError("an experiment needs a scenario (or at least one part)")
        names = [p.name for p in self.parts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"part names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def enabled_parts(self) -> list[Part]:
        return [p for p in self.parts if p.enabled]

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)

    def fingerprint(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def all_references(self) -> list[tuple[Part, Reference]]:
        out = [(p, r) for p in self.parts for r in p.references]
        for ref in self.references:
            out.append((self.part(ref.part) if ref.part else self.parts[0], ref))
        return out


# ---------------------------------------------------------------------------------- loading
def _single_to_parts(doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    if "parts" in doc or "scenario" not in doc:
        return doc, False
    part = {k: doc.pop(k) for k in PART_KEYS if k in doc}
    doc["parts"] = [part]
    return doc, True


def _loc(loc: tuple[Any, ...], single: bool) -> str:
    parts = [str(p) for p in loc]
    if single and parts[:2] == ["parts", "0"]:
        parts = parts[2:]
    return ".".join(parts)


def _describe(err: ValidationError, source: str, single: bool) -> str:
    messages = []
    for e in err.errors()[:5]:
        loc = tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            where = _loc(loc[:-1], single)
            text = f"unknown key {loc[-1]!r}"
            messages.append(f"{where}: {text}" if where else text)
        else:
            where = _loc(loc, single)
            msg = e["msg"].removeprefix("Value error, ")
            messages.append(f"{where}: {msg}" if where else msg)
    return f"{source}: " + "; ".join(messages)


def workload_context(source: str) -> dict[str, Any]:
    """The validation context of a part's workload: files it names (e.g. a migration's
    container_policy_file) are relative to the experiment file's directory."""
    return {"experiment_dir": Path(source).parent} if source else {}


def _scenario_errors(exp: Experiment, single: bool, source: str = "") -> list[str]:
    """Check every part (enabled or not) against its scenario's declared spec."""
    errors: list[str] = []
    for i, part in enumerate(exp.parts):
        prefix = "" if single else f"parts.{i}."
        try:
            spec = registry.spec_of(part.scenario)
        except KeyError:
            errors.append(f"{prefix}scenario: unknown scenario {part.scenario!r}; known: "
                          f"{', '.join(registry.names())}")
            continue
        fields = spec.params.model_fields
        for key in part.parameters:
            if key not in fields:
                errors.append(f"{prefix}parameters: unknown key {key!r} ({part.scenario} takes "
                              f"{registry.describe_params(spec)})")
        missing = [k for k, f in fields.items() if f.is_required() and k not in part.parameters]
        if missing:
            errors.append(f"{prefix}parameters: {part.scenario} needs {', '.join(missing)}")
        for key, values in part.values().items():
            if key not in fields:
                continue
            if not values:
                errors.append(f"{prefix}parameters.{key}: an empty list sweeps nothing")
            for value in values:
                try:
                    spec.params.model_validate({**_required_stub(spec, part), key: value})
                except ValidationError as err:
                    msg = next((e["msg"] for e in err.errors() if e["loc"] == (key,)), None)
                    if msg:
                        errors.append(f"{prefix}parameters.{key}: "
                                      f"{msg.removeprefix('Value error, ')} (value {value!r})")
        try:
            spec.workload.model_validate(part.workload, context=workload_context(source))
        except ValidationError as err:
            for e in err.errors()[:3]:
                loc = ".".join(str(x) for x in e["loc"])
                if e["type"] == "extra_forbidden":
                    parent = ".".join(str(x) for x in e["loc"][:-1])
                    where = f"workload.{parent}" if parent else "workload"
                    errors.append(f"{prefix}{where}: unknown key {e['loc'][-1]!r}")
                else:
                    where = f"workload.{loc}" if loc else "workload"
                    errors.append(f"{prefix}{where}: {e['msg'].removeprefix('Value error, ')}")
        for j, phase in enumerate(part.phases):
            if phase not in spec.phases:
                errors.append(f"{prefix}phases.{j}: {part.scenario} has no phase {phase!r} "
                              f"(it records {', '.join(spec.phases)})")
        for j, ref in enumerate(part.references):
            errors += _reference_errors(f"{prefix}references.{j}", ref, part, spec)
    for j, ref in enumerate(exp.references):
        names = [p.name for p in exp.parts]
        if ref.part is None and len(exp.parts) > 1:
            errors.append(f"references.{j}: say which part (one of {', '.join(names)})")
            continue
        if ref.part is not None and ref.part not in names:
            errors.append(f"references.{j}.part: no part {ref.part!r}")
            continue
        part = exp.part(ref.part) if ref.part else exp.parts[0]
        if part.scenario in registry.names():
            errors += _reference_errors(f"references.{j}", ref, part,
                                        registry.spec_of(part.scenario))
    for j, plot in enumerate(exp.plots):
        errors += _plot_errors(f"plots.{j}", plot, exp)
    return errors


def plot_parts(plot: PlotSpec, exp: Experiment) -> list[Part]:
    """The parts a figure draws: those it names, else every enabled part sweeping its x."""
    if plot.parts:
        return [p for p in exp.parts if p.name in plot.parts]
    return [p for p in exp.enabled_parts if plot.x in p.parameters]


def _plot_errors(where: str, plot: PlotSpec, exp: Experiment) -> list[str]:
    names = [p.name for p in exp.parts]
    errors = [f"{where}.parts: no part {n!r} (parts: {', '.join(names)})"
              for n in plot.parts if n not in names]
    errors += [f"{where}.labels: no part {n!r}" for n in plot.labels if n not in names]
    parts = plot_parts(plot, exp)
    if not parts and not errors:
        errors.append(f"{where}.x: no part sweeps the parameter {plot.x!r}")
    for part in parts:
        if plot.x not in part.parameters:
            errors.append(f"{where}.x: part {part.name!r} has no parameter {plot.x!r}")
        if plot.series is not None and plot.series not in part.parameters:
            errors.append(f"{where}.series: part {part.name!r} has no parameter {plot.series!r}")
        if part.scenario in registry.names():
            spec = registry.spec_of(part.scenario)
            if plot.y != TOTAL and plot.y not in spec.metrics and plot.y not in spec.phases:
                errors.append(f"{where}.y: {part.scenario} records no metric or phase "
                              f"{plot.y!r}")
    return errors


def _required_stub(spec: registry.ScenarioSpec, part: Part) -> dict[str, Any]:
    """Values for required parameters so one parameter can be validated on its own."""
    stub: dict[str, Any] = {}
    for key, f in spec.params.model_fields.items():
        if f.is_required():
            vals = part.values().get(key)
            stub[key] = vals[0] if vals else None
    return stub


def _reference_errors(where: str, ref: Reference, part: Part,
                      spec: registry.ScenarioSpec) -> list[str]:
    errors = []
    if ref.phase is not None and ref.phase != TOTAL and ref.phase not in spec.phases:
        errors.append(f"{where}.phase: {part.scenario} has no phase {ref.phase!r}")
    if ref.metric is not None and ref.metric not in spec.metrics:
        errors.append(f"{where}.metric: {part.scenario} has no metric {ref.metric!r} "
                      f"(it records {', '.join(spec.metrics) or 'none'})")
    for key, value in ref.where.items():
        if key not in part.parameters:
            errors.append(f"{where}.where: unknown key {key!r} (not a parameter of "
                          f"{part.name})")
        elif value not in part.values()[key]:
            errors.append(f"{where}.where.{key}: {value!r} is not among the swept values")
    return errors


def parse_experiment(doc: object, source: str) -> Experiment:
    """Validate a parsed YAML document; raise ConfigError naming the file and the key."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping with name, description, target, ...")
    doc, single = _single_to_parts(dict(doc))
    try:
        exp = Experiment.model_validate(doc)
    except ValidationError as err:
        raise ConfigError(_describe(err, source, single)) from None
    errors = _scenario_errors(exp, single, source)
    if errors:
        raise ConfigError(f"{source}: " + "; ".join(errors[:5]))
    exp.source = source
    return exp


def load_experiment(path: Path | str) -> Experiment:
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"experiment file {path} does not exist") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML ({err})".replace("\n", " ")) from None
    return parse_experiment(doc, source)

"""The fault test's schedule and its independent checker (no Docker, no gRPC: unit-tested).

* `schedule`: a seeded list of faults (kind, phase, where inside the phase) over the phases a
  clean migration actually ran, so it follows whatever order the SMF's plan has.
* `phase_spans` / `landed`: the SMF's ``phase_started`` / ``phase_ended`` log events (host clock)
  decide whether a fault's instant fell inside its phase; one that did not is "missed".
* `Sampler`: lists the running copies of the service at a fixed interval for the whole run.
* `check`: after all faults, the verdict from what was read back, sampled and located, never
  from the number of faults the test meant to inject.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

KINDS = ("kill_source", "kill_destination", "kill_registry", "kill_smf",
         "cut_source", "cut_destination", "cut_registry")


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: `kind` fires `fraction` of the way into `phase` (as long as the
    phase took in the clean run); a cut lasts `cut_s`."""

    kind: str
    phase: str
    fraction: float
    cut_s: float = 0.0

    def __str__(self) -> str:
        cut = f" {self.cut_s:.1f}s" if self.kind.startswith("cut") else ""
        return f"{self.kind}{cut}@{self.phase}+{self.fraction:.2f}"


def schedule(seed: int, count: int, phases: Sequence[str],
             kinds: Sequence[str] = KINDS) -> list[Fault]:
    """`count` faults drawn from `seed`: kind and phase uniformly, a point in the phase, and
    for cuts a duration of 0.5-2.5 s."""
    if not phases:
        raise ValueError("no phase to put a fault in")
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        kind = rng.choice(list(kinds))
        phase = rng.choice(list(phases))
        fraction = rng.random()
        cut_s = round(rng.uniform(0.5, 2.5), 2) if kind.startswith("cut") else 0.0
        out.append(Fault(kind, phase, fraction, cut_s))
    return out


@dataclass(frozen=True)
class Span:
    """One phase as the SMF logged it; `ended` None when no end was logged (SMF killed)."""

    migration: str
    phase: str
    started: float
    ended: float | None
    outcome: str = ""


def phase_spans(lines: Iterable[str]) -> list[Span]:
    """The phase spans in the SMF's JSON log lines (other lines are ignored)."""
    open_: dict[tuple[str, str], float] = {}
    spans: list[Span] = []
    for line in lines:
        if '"phase_' not in line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        key = (str(doc.get("migration")), str(doc.get("phase")))
        if doc.get("event") == "phase_started":
            if key in open_:  # started again without an end: the SMF died inside it
                spans.append(Span(*key, open_.pop(key), None))
            open_[key] = float(doc["at"])
        elif doc.get("event") == "phase_ended" and key in open_:
            spans.append(Span(*key, open_.pop(key), float(doc["at"]), str(doc.get("outcome"))))
    spans.extend(Span(*key, start, None) for key, start in open_.items())
    return spans


def landed(at: float, phase: str, spans: Iterable[Span], since: float) -> bool:
    """True when a span of `phase` that started at or after `since` contains the instant `at`
    (an open span, the SMF killed inside it, contains every later instant)."""
    return any(s.phase == phase and s.started >= since and s.started <= at
               and (s.ended is None or at <= s.ended) for s in spans)


@dataclass
class Sampler:
    """Calls `running()` (the hosts whose copy of the service runs) every `interval` seconds
    in a thread until `stop()`; keeps every sample."""

    running: Callable[[], Sequence[str]]
    interval: float = 0.1
    samples: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, name="double-run-sampler",
                                        daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), tuple(sorted(self.running()))))
            except Exception:  # an engine hiccup is counted, not fatal
                self.errors += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def lost_blocks(expected: Mapping[int, str], read: Callable[[int], bytes]) -> list[int]:
    """The block ids whose content no longer hashes to the SHA-256 written (or cannot be
    read at all)."""
    lost = []
    for bid, digest in sorted(expected.items()):
        try:
            ok = hashlib.sha256(read(bid)).hexdigest() == digest
        except Exception:
            ok = False
        if not ok:
            lost.append(bid)
    return lost


def double_running(samples: Iterable[tuple[float, Sequence[str]]]) -> int:
    """How many samples saw two or more hosts running the service."""
    return sum(1 for _, hosts in samples if len(set(hosts)) > 1)


@dataclass
class Verdict:
    """The checker's counts and what is wrong (empty `problems`: the run passed)."""

    faults_injected: int
    missed: int
    lost_blocks: int
    blocks: int
    samples: int
    double_running_samples: int
    retries_needed: int
    migrations_completed: int
    migrations_not_completed: int
    location_runs: bool
    problems: list[str]

    def summary(self) -> str:
        """One line with every count."""
        return (f"faults injected {self.faults_injected} (confirmed landings), missed "
                f"{self.missed}, lost blocks {self.lost_blocks}/{self.blocks}, double-running "
                f"samples {self.double_running_samples}/{self.samples}, failed migrations "
                f"completed by a retry {self.retries_needed}, migrations completed "
                f"{self.migrations_completed}, not completed {self.migrations_not_completed}, "
                f"final location runs its copy {self.location_runs}")


def check(*, landings: Sequence[bool], max_missed_fraction: float,
          expected_blocks: Mapping[int, str], read: Callable[[int], bytes],
          samples: Sequence[tuple[float, Sequence[str]]], location: str,
          running_hosts: Sequence[str], retries_needed: int, completed: int,
          not_completed: int) -> Verdict:
    """Judge a run from independent observations: which faults landed in their phase, the
    blocks read back now, the engine samples, and where the SMF says the service is."""
    missed = sum(1 for ok in landings if not ok)
    lost = lost_blocks(expected_blocks, read)
    doubles = double_running(samples)
    runs = location in running_hosts and len(set(running_hosts)) == 1
    problems = []
    if landings and missed > max_missed_fraction * len(landings):
        problems.append(f"{missed}/{len(landings)} faults missed their phase "
                        f"(allowed {max_missed_fraction:.0%})")
    if lost:
        problems.append(f"lost blocks {lost[:20]}")
    if doubles:
        problems.append(f"{doubles} samples saw two running copies")
    if not samples:
        problems.append("the sampler took no sample")
    if not runs:
        problems.append(f"the SMF location {location!r} does not run the only copy "
                        f"(running: {list(running_hosts)})")
    if not_completed:
        problems.append(f"{not_completed} migrations not completed")
    return Verdict(len(landings) - missed, missed, len(lost), len(expected_blocks),
                   len(samples), doubles, retries_needed, completed, not_completed, runs,
                   problems)

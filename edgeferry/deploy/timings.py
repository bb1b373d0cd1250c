"""Where a deploy's time goes, read from ansible-runner's job events (no Ansible import).

A run folder holds ``artifacts/<ident>/job_events/<counter>-<uuid>.json``; each event has an
``event`` kind, a ``created`` ISO timestamp and ``event_data`` (play, task, host, and for
finished host tasks ``duration`` seconds and ``res.changed``). `play_timings` gives one row per
play (wall seconds from its start to the next play's start or the end of the run, host-task
count, changed count), `slow_tasks` the tasks that took longest summed over hosts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: events that end a host's task
_DONE = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")


@dataclass(frozen=True)
class PlayTiming:
    """One play of a run: wall seconds, host-tasks finished, of which changed."""

    play: str
    seconds: float
    host_tasks: int
    changed: int


@dataclass(frozen=True)
class TaskTiming:
    """One task summed over the hosts it ran on."""

    play: str
    task: str
    seconds: float
    hosts: int
    changed: int


def load_events(run_dir: Path) -> list[dict[str, Any]]:
    """Every job event of the run folder's artifacts, in the runner's counter order."""
    files = list(run_dir.glob("artifacts/*/job_events/*.json"))
    events = []
    for path in sorted(files, key=lambda p: int(p.name.split("-", 1)[0])):
        try:
            events.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a partial event file of an interrupted run
    return events


def _at(event: Mapping[str, Any]) -> float:
    return dt.datetime.fromisoformat(str(event["created"])).timestamp()


def play_timings(events: Iterable[Mapping[str, Any]]) -> list[PlayTiming]:
    """Per play, in order: wall time (play start to the next play start or the run's last
    event), host-tasks finished and how many of them changed something."""
    rows: list[PlayTiming] = []
    current: str | None = None
    start = last = 0.0
    tasks = changed = 0
    for ev in events:
        if "created" not in ev:
            continue
        at = _at(ev)
        kind = ev.get("event")
        data = ev.get("event_data") or {}
        if kind == "playbook_on_play_start":
            if current is not None:
                rows.append(PlayTiming(current, at - start, tasks, changed))
            current = str(data.get("play") or data.get("name") or "play")
            start, tasks, changed = at, 0, 0
        elif kind in _DONE and current is not None:
            tasks += 1
            changed += bool((data.get("res") or {}).get("changed"))
        last = at
    if current is not None:
        rows.append(PlayTiming(current, last - start, tasks, changed))
    return rows


def slow_tasks(events: Iterable[Mapping[str, Any]], top: int = 10) -> list[TaskTiming]:
    """The ``top`` tasks with the most host-seconds (each host's ``duration`` summed)."""
    acc: dict[tuple[str, str], list[float]] = {}
    for ev in events:
        if ev.get("event") not in _DONE:
            continue
        data = ev.get("event_data") or {}
        key = (str(data.get("play", "")), str(data.get("task", "")))
        entry = acc.setdefault(key, [0.0, 0, 0])
        entry[0] += float(data.get("duration") or 0.0)
        entry[1] += 1
        entry[2] += bool((data.get("res") or {}).get("changed"))
    rows = [TaskTiming(p, t, s, int(h), int(c)) for (p, t), (s, h, c) in acc.items()]
    return sorted(rows, key=lambda r: r.seconds, reverse=True)[:top]


__all__ = ["PlayTiming", "TaskTiming", "load_events", "play_timings", "slow_tasks"]

"""Deploy timings from ansible-runner job events."""

from __future__ import annotations

import json
from pathlib import Path

from edgeferry.deploy.timings import load_events, play_timings, slow_tasks


def _ev(n: int, kind: str, at: str, **data: object) -> dict[str, object]:
    return {"counter": n, "event": kind, "created": f"2026-11-26T03:00:{at}+00:00",
            "event_data": data}


EVENTS = [
    _ev(1, "playbook_on_start", "00.000000"),
    _ev(2, "playbook_on_play_start", "01.000000", play="Prepare"),
    _ev(3, "runner_on_ok", "02.000000", play="Prepare", task="apt", host="a", duration=0.5,
        res={"changed": True}),
    _ev(4, "runner_on_ok", "02.500000", play="Prepare", task="apt", host="b", duration=0.75,
        res={"changed": False}),
    _ev(5, "runner_on_skipped", "03.000000", play="Prepare", task="skip", host="a"),
    _ev(6, "playbook_on_play_start", "05.500000", play="Agents"),
    _ev(7, "runner_on_ok", "06.000000", play="Agents", task="unit", host="a", duration=2.0,
        res={"changed": False}),
    _ev(8, "playbook_on_stats", "09.000000"),
]


def test_plays_last_from_their_start_to_the_next_play_or_the_end() -> None:
    rows = play_timings(EVENTS)
    assert [(r.play, r.seconds, r.host_tasks, r.changed) for r in rows] == [
        ("Prepare", 4.5, 3, 1), ("Agents", 3.5, 1, 0)]


def test_slow_tasks_sum_host_seconds() -> None:
    rows = slow_tasks(EVENTS, top=2)
    assert [(r.task, r.seconds, r.hosts, r.changed) for r in rows] == [
        ("unit", 2.0, 1, 0), ("apt", 1.25, 2, 1)]


def test_events_load_in_counter_order_and_skip_broken_files(tmp_path: Path) -> None:
    folder = tmp_path / "artifacts" / "x" / "job_events"
    folder.mkdir(parents=True)
    for ev in EVENTS:
        (folder / f"{ev['counter']}-u.json").write_text(json.dumps(ev))
    (folder / "9-u.json").write_text("{partial")
    assert [e["counter"] for e in load_events(tmp_path)] == [1, 2, 3, 4, 5, 6, 7, 8]

"""Matrix expansion: cartesian product of the parameters x (warm-ups + repetitions), seeded order.

Order ``shuffled`` (default): every combination's warm-ups first, then all measured trials in an
order shuffled by the experiment's seed (so slow drift does not line up with one parameter).
Order ``grouped``: combinations in a seeded order, each with its warm-ups then its repetitions
(for scenarios whose warm-up only helps the very next trials, e.g. cache filling).
Warm-up trials are run and recorded but marked and left out of every statistic.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import asdict, dataclass
from typing import Any

from edgeferry.experiments.schema import Experiment, Part


@dataclass(frozen=True)
class PlannedTrial:
    trial_id: str  # "<part>/<index>" - stable within a run, used to resume
    part: str
    index: int  # position in the part's run order
    params: dict[str, Any]  # the combination's values (as written in the experiment)
    repetition: int  # 0-based within the combination (warm-ups and measured counted apart)
    warmup: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlannedTrial:
        return cls(**data)


def combinations(part: Part) -> list[dict[str, Any]]:
    values = part.values()
    keys = list(values)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values.values())]


def params_key(params: dict[str, Any]) -> str:
    """Canonical text of a combination (used to group trials)."""
    return json.dumps(params, sort_keys=True, default=str)


def _part_seed(seed: int, part: str) -> int:
    digest = hashlib.sha256(f"{seed}:{part}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def expand_part(part: Part, seed: int) -> list[PlannedTrial]:
    rng = random.Random(_part_seed(seed, part.name))
    combos = combinations(part)
    slots: list[tuple[dict[str, Any], int, bool]] = []
    if part.order == "grouped":
        order = list(range(len(combos)))
        rng.shuffle(order)
        for c in order:
            slots += [(combos[c], r, True) for r in range(part.warmups)]
            slots += [(combos[c], r, False) for r in range(part.repetitions)]
    else:
        warm = [(combo, r, True) for r in range(part.warmups) for combo in combos]
        measured = [(combo, r, False) for combo in combos for r in range(part.repetitions)]
        rng.shuffle(measured)
        slots = warm + measured
    return [PlannedTrial(f"{part.name}/{i:05d}", part.name, i, params, rep, warm)
            for i, (params, rep, warm) in enumerate(slots)]


def expand(experiment: Experiment) -> list[PlannedTrial]:
    """Every trial of the enabled parts, part after part, in run order."""
    plan: list[PlannedTrial] = []
    for part in experiment.enabled_parts:
        plan += expand_part(part, experiment.seed)
    return plan

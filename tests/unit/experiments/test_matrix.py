from __future__ import annotations

from collections import Counter

from edgeferry.experiments.matrix import expand
from edgeferry.experiments.schema import parse_experiment


def exp(seed: int = 1, order: str = "shuffled"):
    return parse_experiment({
        "name": "m", "description": "d", "target": {"lab": {}}, "seed": seed,
        "scenario": "container-migration", "order": order,
        "parameters": {"image_size_mb": [1, 2, 3], "bandwidth": ["10mbit", "40mbit"]},
        "repetitions": 4, "warmups": 1}, "m.yaml")


def test_cartesian_product_times_repetitions_plus_warmups():
    plan = expand(exp())
    measured = [t for t in plan if not t.warmup]
    assert len(measured) == 3 * 2 * 4
    assert len([t for t in plan if t.warmup]) == 6
    counts = Counter((t.params["image_size_mb"], t.params["bandwidth"]) for t in measured)
    assert set(counts.values()) == {4} and len(counts) == 6


def test_warmups_come_first_in_shuffled_order():
    plan = expand(exp())
    assert all(t.warmup for t in plan[:6]) and not any(t.warmup for t in plan[6:])


def test_grouped_order_runs_each_combination_warmup_then_repetitions():
    plan = expand(exp(order="grouped"))
    for i in range(0, len(plan), 5):
        block = plan[i:i + 5]
        assert block[0].warmup and not any(t.warmup for t in block[1:])
        assert len({str(t.params) for t in block}) == 1


def test_order_is_seeded():
    a, b, c = expand(exp(1)), expand(exp(1)), expand(exp(2))
    assert [t.params for t in a] == [t.params for t in b]
    assert [t.params for t in a] != [t.params for t in c]
    assert len({t.trial_id for t in a}) == len(a)

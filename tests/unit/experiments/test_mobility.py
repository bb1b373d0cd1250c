"""BloSM Algorithm 3's distance rule over a moving client (edgeferry.experiments.mobility),
against positions and crossing times worked out by hand."""

from __future__ import annotations

import pytest

from edgeferry.experiments.mobility import EdgeSite, Point, Trajectory, decide, first_trigger

EDGE1 = EdgeSite("edge1", Point(0, 0), 600)
EDGE2 = EdgeSite("edge2", Point(1000, 0), 600)
ROAD = Trajectory((Point(0, 0), Point(1000, 0)), speed_mps=50)  # 20 s end to end


def test_positions_along_a_two_leg_path() -> None:
    path = Trajectory((Point(0, 0), Point(300, 400), Point(300, 0)), speed_mps=100)
    assert path.length_m == 900 and path.duration_s == 9
    assert path.position(2.5) == Point(150, 200)  # half of the 500 m first leg
    assert path.position(7) == Point(300, 200)  # 200 m into the 400 m second leg
    assert path.position(60) == Point(300, 0) and path.position(-1) == Point(0, 0)


def test_the_service_stays_while_the_client_is_within_the_threshold() -> None:
    at_edge = decide(Point(600, 0), "edge1", [EDGE1, EDGE2])  # exactly at the threshold
    assert not at_edge.migrate and at_edge.distance_m == 600
    past = decide(Point(625, 0), "edge1", [EDGE1, EDGE2])
    assert past.target == "edge2" and past.distance_m == 625 and past.threshold_m == 600


def test_the_first_sample_past_the_threshold_triggers_the_migration() -> None:
    # x = 50 t: 600 m (still served) at t = 12.0 s, 625 m (past) at the next 0.5 s sample
    t, d = first_trigger(ROAD, "edge1", [EDGE1, EDGE2], step_s=0.5) or (None, None)
    assert t == 12.5 and d is not None and d.target == "edge2"


def test_no_other_edge_covering_the_client_means_no_migration_yet() -> None:
    short = EdgeSite("edge2", Point(1000, 0), 300)  # covers from x = 700 m, t = 14 s
    t, d = first_trigger(ROAD, "edge1", [EDGE1, short], step_s=0.5) or (None, None)
    assert t == 14.0 and d is not None and d.target == "edge2" and d.distance_m == 700
    assert decide(Point(650, 0), "edge1", [EDGE1, short]).target is None


def test_the_nearest_covering_edge_is_chosen() -> None:
    edge3 = EdgeSite("edge3", Point(700, 100), 400)  # 100 m from (700, 0); edge2 is 300 m
    assert decide(Point(700, 0), "edge1", [EDGE1, EDGE2, edge3]).target == "edge3"


def test_a_client_that_never_leaves_its_edge_never_triggers() -> None:
    stroll = Trajectory((Point(0, 0), Point(400, 300)), speed_mps=10)
    assert first_trigger(stroll, "edge1", [EDGE1, EDGE2], step_s=1) is None


def test_bad_input_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="'edge9' has no position"):
        decide(Point(0, 0), "edge9", [EDGE1])
    with pytest.raises(ValueError, match="speed must be positive"):
        Trajectory((Point(0, 0),), speed_mps=0)
    with pytest.raises(ValueError, match="step must be positive"):
        first_trigger(ROAD, "edge1", [EDGE1], step_s=0)

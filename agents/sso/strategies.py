"""Who runs each service of a composition (seed 004, section 8.1): non-cooperative (the home
node does everything), cooperative (each service on the cheapest offering node, balancing
load) and cooperative secure (the same, among the nodes chi allows).

Costs are the paper's: each offer's cost is normal(mean, sd), truncated at 0.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from agents.common.compat import StrEnum
from agents.sso.secure import ServiceOffer
from agents.sso.wfnet import Composition, firing_order

#: a home node running a service it does not offer pays this factor on the cheapest offer
PENALTY_FACTOR = 2.0
#: cost (ms) of a service nobody offers when the home node has to run it anyway
UNOFFERED_COST_MS = 100.0


class Strategy(StrEnum):
    """The three strategies of Figs. 4-6."""

    NON_COOPERATIVE = "non-cooperative"
    COOPERATIVE = "cooperative"
    SECURE = "cooperative-secure"


class AssignmentError(ValueError):
    """No node may run a service of the composition; the message names the service."""


def home_offer(offers: Sequence[ServiceOffer], home: str, service: str) -> ServiceOffer:
    """The home node's offer for `service`, or a penalised stand-in (PENALTY_FACTOR times the
    cheapest offer anywhere, UNOFFERED_COST_MS when nobody offers it)."""
    own = [o for o in offers if o.node == home and o.service == service]
    if own:
        return min(own, key=lambda o: o.cost_mean_ms)
    others = [o for o in offers if o.service == service]
    if not others:
        return ServiceOffer(home, service, UNOFFERED_COST_MS * PENALTY_FACTOR,
                            UNOFFERED_COST_MS * PENALTY_FACTOR * 0.1)
    best = min(others, key=lambda o: o.cost_mean_ms)
    return ServiceOffer(home, service, best.cost_mean_ms * PENALTY_FACTOR,
                        best.cost_sd_ms * PENALTY_FACTOR)


def assign(comp: Composition, offers: Sequence[ServiceOffer], strategy: Strategy, home: str,
           chi: Mapping[str, frozenset[str]] | None = None,
           files: Sequence[str] = (), load: dict[str, float] | None = None
           ) -> dict[str, str]:
    """transition -> node for every service transition of `comp`.

    Cooperative strategies go stage by stage (`firing_order`) and put each transition on the
    offering node that would finish it first: its mean cost plus the mean cost already assigned
    to it (greedy list scheduling; ties by node name). The secure strategy only considers
    nodes whose chi holds the service and every file in `files`. `load` (node -> mean cost
    already queued there, ms) starts the balance from other requests' work and is updated in
    place. Raises `AssignmentError`."""
    strategy = Strategy(strategy)
    if strategy is Strategy.NON_COOPERATIVE:
        return {t: home for t in comp.tasks}
    if strategy is Strategy.SECURE and chi is None:
        raise AssignmentError("the secure strategy needs chi (node -> allowed resources)")
    if load is None:
        load = {}
    out: dict[str, str] = {}
    for stage in firing_order(comp):
        for t in stage:
            svc = comp.tasks[t]
            cands = [o for o in offers if o.service == svc]
            if strategy is Strategy.SECURE:
                assert chi is not None
                cands = [o for o in cands
                         if svc in chi.get(o.node, frozenset())
                         and all(f in chi.get(o.node, frozenset()) for f in files)]
            if not cands:
                why = " among the nodes chi allows" if strategy is Strategy.SECURE else ""
                raise AssignmentError(f"no node offers service {svc!r}{why} "
                                      f"(transition {t!r})")
            best = min(cands, key=lambda o: (load.get(o.node, 0.0) + o.cost_mean_ms, o.node))
            out[t] = best.node
            load[best.node] = load.get(best.node, 0.0) + best.cost_mean_ms
    return out


def sample_cost_ms(offer: ServiceOffer, rng: random.Random) -> float:
    """One execution cost: normal(mean, sd) truncated at 0 (redrawn while negative; after 64
    negative draws, 0)."""
    if offer.cost_sd_ms == 0:
        return offer.cost_mean_ms
    for _ in range(64):
        x = rng.gauss(offer.cost_mean_ms, offer.cost_sd_ms)
        if x >= 0:
            return x
    return 0.0

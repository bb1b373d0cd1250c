"""Who may call the composer (agents.common.authz table; deny by default): the controller
(experiment runner, CLI) composes and runs requests and reads the offers; no agent calls it."""

from __future__ import annotations

from agents.common.authz import CONTROLLER, Policy, allow

COMPOSER_SERVICE = "edgeferry.composer.v1.ComposerService"

COMPOSER_POLICY = Policy(COMPOSER_SERVICE, {
    "Compose": allow(CONTROLLER),
    "Run": allow(CONTROLLER),
    "ListOffers": allow(CONTROLLER),
})

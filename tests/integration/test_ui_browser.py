"""A real headless browser (Debian's chromium, driven by Playwright) against the UI server in
uvicorn over HTTPS, over the real audit agent (gRPC + mTLS on loopback).

Both owners sign up and in, the edge owner registers two edges and reads their share keys, the
container owner redeems them, registers a container with a policy naming every Table 1
element, sees a DENY with the failing element (cDAl) for the forbidden edge, starts that
migration and watches the status page update itself (server-sent events) to "denied", reads
the audit log with its chain verification, and signs out.

A second test runs the UI over the loopback migration lab (migration_lab.py: RAS, audit agent,
ledger, SMF, two node agents as processes, the NMS on the local Docker engine): the container
owner signs in, registers the lab's container "nms" (the container the SMF's service is, in the
audit agent, owned by the owner's UI account) and migrates it to the first permitted edge of
region r1; the status page turns "done" by itself with the SMF's tries and phases, and the
clicks from sign-in to the completed, audited migration are counted.

With EDGEFERRY_UI_SCREENSHOTS=<dir> set, the main pages are saved there as PNGs (the README's
screenshots: EDGEFERRY_UI_SCREENSHOTS=docs/screenshots).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from agents.audit.client import AuditClient
from agents.common.store import Store
from agents.smf.client import SmfClient
from agents.ui.agent import UiSettings, build_state
from agents.ui.backend import GrpcBackend, SmfBinding, owner_id
from agents.ui.web import create_app
from edgeferry.stats import median
from tests.integration.migration_lab import NMS_REQUIREMENTS, MigrationLab, migration_lab
from tests.integration.test_migration_e2e import PHASES
from tests.integration.ui_env import (
    EDGE_JP,
    EDGE_KR,
    PASSWORD,
    POLICY,
    UiEnv,
    report_state,
    serve_https,
)

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def env(lab_pki, agent_config, run_agent_server, tmp_path) -> Iterator[UiEnv]:
    made = UiEnv(lab_pki, agent_config, run_agent_server, tmp_path)
    yield made
    made.close()


def _shot(page: Page, name: str) -> None:
    folder = os.environ.get("EDGEFERRY_UI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = Path(folder) / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        from PIL import Image  # matplotlib's dependency: a 64-colour palette keeps them small

        with Image.open(path) as img:
            img.convert("RGB").quantize(64).save(path, optimize=True)


def _sign_up(page: Page, base: str, username: str, kind: str) -> None:
    page.goto(f"{base}/signup")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.check(f"#kind-{kind}")
    page.click("#create")
    page.wait_for_url(f"{base}/login?done=signup")


def _sign_in(page: Page, base: str, username: str, kind: str,
             click: Callable[[str], None] | None = None) -> None:
    """Sign in from the sign-in page (``click``: how the button is clicked, e.g. counted)."""
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    (click or page.click)("#signin")
    page.wait_for_url(f"{base}/{'edges' if kind == 'edge' else 'containers'}")


def _sign_up_and_in(page: Page, base: str, username: str, kind: str) -> None:
    _sign_up(page, base, username, kind)
    _sign_in(page, base, username, kind)


def _page_times(page: Page) -> float:
    """The last navigation's request start -> response end, in seconds (browser's clock)."""
    return float(page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return (n.responseEnd - n.requestStart) / 1000; }"))


def test_owners_in_a_real_browser(env, tmp_path):
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), "apt-get install chromium"
    loads: list[float] = []
    with env.serve() as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        # the lab CA is not in chromium's store: accept the certificate of this test server
        ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1100,
                                                                      "height": 800})
        page = ctx.new_page()
        _sign_up_and_in(page, base, "erin", "edge")
        for name, attrs in (("Edge-jp", EDGE_JP), ("Edge-kr", EDGE_KR)):
            page.fill("#edge-name", name)
            page.fill("#edge-region", "regionA")
            for element, value in attrs.items():
                page.fill(f"#edge-{element}", value)
            page.click("#register-edge")
            page.wait_for_url(f"{base}/edges?done=edge")
            loads.append(_page_times(page))
            report_state(env, name)  # what the monitor would record
        keys = {name: page.inner_text(f"code.share-key[data-edge='{name}']")
                for name in ("Edge-jp", "Edge-kr")}
        assert all(len(k) == 40 for k in keys.values()), keys
        _shot(page, "edges")
        page.click("#signout")
        page.wait_for_url(f"{base}/login")

        # a bad attribute is refused with the audit parser's message, in the page
        _sign_up_and_in(page, base, "carl", "container")
        for key in keys.values():
            page.fill("#share-key", key)
            page.click("#redeem")
            page.wait_for_url(f"{base}/containers?done=redeemed")
        assert page.inner_text("#usable-edges").count("regionA") == 2
        page.fill("#container-name", "App1")
        page.fill("#container-location", "Edge-jp")
        page.fill("#req-cHRc", "fast")
        page.click("#register-container")
        assert page.inner_text("#error").startswith("cHRc: 'fast' is not a number")
        for element, value in POLICY.items():
            page.fill(f"#req-{element}", value)
        page.click("#register-container")
        page.wait_for_url(f"{base}/containers?done=container")
        loads.append(_page_times(page))
        assert "cDAl=jp,us,fr" in page.inner_text("#containers")
        _shot(page, "containers")

        page.goto(f"{base}/decide")
        page.select_option("#decide-container", "App1")
        page.fill("#decide-edge", "Edge-kr")
        page.click("#decide")
        page.wait_for_selector("#verdict")
        loads.append(_page_times(page))
        assert page.inner_text("#verdict").startswith("DENY")
        assert page.inner_text("#failing") == "Failing: cDAl"
        failed_rows = page.locator("#decision tr.fail td:first-child").all_inner_texts()
        assert failed_rows == ["cDAl"]
        _shot(page, "decision-deny")

        # the status page is open in one tab; the forbidden migration starts in another and
        # the first tab turns "denied" by itself (server-sent events, no reload)
        page.goto(f"{base}/status")
        page.wait_for_selector("#live[data-state='open']", timeout=5000)
        page.evaluate("() => { window.notReloaded = true; }")
        other = ctx.new_page()
        other.goto(f"{base}/containers")
        other.fill("#migrate-edge", "Edge-kr")
        t0 = time.monotonic()
        other.click("#migrate")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.mstate')].some(e => e.textContent"
            " === 'denied')", timeout=5000)
        live_wait = time.monotonic() - t0
        assert page.evaluate("() => window.notReloaded") is True
        assert "DENY: cDAl" in page.inner_text("#status-migrations")
        assert "policy_audit: rejected" in page.inner_text("#status-migrations")
        other.close()
        _shot(page, "status")

        page.goto(f"{base}/audit-log")
        loads.append(_page_times(page))
        assert page.inner_text("#chain").startswith("Chain verified")
        kinds = page.locator("#log tr td:nth-child(3)").all_inner_texts()
        assert kinds.count("decision") == 2 and "container_registered" in kinds
        assert "App1 to edge Edge-kr: DENY (failing: cDAl)" in page.inner_text("#log")
        _shot(page, "audit-log")

        page.click("#signout")
        page.wait_for_url(f"{base}/login")
        page.goto(f"{base}/containers")
        page.wait_for_url(f"{base}/login")  # signed out: back to the sign-in page
        browser.close()

    server_times = [t for times in env.state.render_times.values() for t in times]
    print(f"\nui pages: browser request->response median {median(loads) * 1000:.1f} ms over "
          f"{len(loads)} loads, server median {median(server_times) * 1000:.1f} ms, "
          f"slowest {max(server_times) * 1000:.1f} ms over {len(server_times)} renders; "
          f"status page updated {live_wait:.2f} s after the migrate click")
    assert live_wait < 2.0  # the issue's goal: live status within 2 s of a change
    assert max(loads) < 1.0  # generous on 2 shared cores; the goal on a lab is 0.3 s


LAB_OWNER = "nora"  # the container owner of the migration-lab test


@pytest.fixture(scope="module")
def ui_lab(lab_pki, tmp_path_factory) -> Iterator[MigrationLab]:
    """One migration lab for this module whose container "nms" is left for the UI account
    ``nora`` to register: the audit agent's owner of it (and the owner the SMF's token is
    sealed for) is that account's owner id, ``ui:nora``; the edges are shared with it."""
    with migration_lab(lab_pki, tmp_path_factory.mktemp("ui-lab"),
                       app_owner=owner_id(LAB_OWNER), register_container=False) as lab:
        yield lab


class Actions:
    """The owner's clicks, selects and key presses on a page, counted as they are made."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.count = 0

    def click(self, selector: str) -> None:
        self.count += 1
        self.page.click(selector)

    def select(self, selector: str, value: str) -> None:
        self.count += 1
        self.page.select_option(selector, value)

    def press(self, selector: str, key: str) -> None:
        self.count += 1
        self.page.press(selector, key)


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_permitted_migration_completes_in_a_real_browser(ui_lab: MigrationLab, lab_pki,
                                                         tmp_path):
    lab = ui_lab
    assert lab.location() == ("edge-a", 1) and lab.running_on() == "edge-a"
    # the UI server as an operator configures it: the lab's audit agent and SMF as role ui,
    # the owner-token key it shares with the audit agent, the SMF binding of "nms"
    cert = lab_pki.issue("ui.localhost")
    audit = AuditClient(lab_pki.channel(lab.audit_port, cert))
    smf = SmfClient(lab_pki.channel(lab.smf_port, cert), timeout=120.0)
    who = lab.who
    binding = SmfBinding(lab.service_id, who.user_id, who.device_id, who.user_cap.to_bytes(),
                         who.device_cap.to_bytes())
    store = Store.open(tmp_path / "ui" / "ui.sqlite3")
    settings = UiSettings(audit_address=f"127.0.0.1:{lab.audit_port}",
                          owner_token_key=lab.root / "audit-owner.key")
    state = build_state(store, GrpcBackend(audit, lab.owner_key, smf=smf,
                                           bindings={"nms": binding}), settings)
    try:
        with serve_https(create_app(state), cert) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            ctx = browser.new_context(ignore_https_errors=True,
                                      viewport={"width": 1100, "height": 800})
            page = ctx.new_page()
            _sign_up(page, base, LAB_OWNER, "container")
            # from sign-in to a completed, audited migration: every click/select/press counted
            acts = Actions(page)
            _sign_in(page, base, LAB_OWNER, "container", click=acts.click)
            # the lab's edges were shared with the owner (edge-c's country is excluded)
            assert page.inner_text("#usable-edges").count("(r1)") == 3
            page.fill("#container-name", "nms")
            page.fill("#container-location", "edge-a")
            for element, value in NMS_REQUIREMENTS.items():
                page.fill(f"#req-{element}", value)
            acts.click("#register-container")
            page.wait_for_url(f"{base}/containers?done=container")
            assert page.input_value("#migrate-container") == "nms"
            acts.select("#migrate-kind", "region")
            page.fill("#migrate-region", "r1")
            t0 = time.monotonic()
            acts.click("#migrate")
            page.wait_for_url(f"{base}/status?done=migration")
            page.wait_for_selector("#live[data-state^='open']", timeout=10_000)
            first = page.evaluate("() => { window.notReloaded = true;"
                                  " return document.querySelector('.mstate').textContent; }")
            loaded = time.monotonic() - t0
            # phase by phase: the SMF's finished phases show while the migration still runs
            page.wait_for_function(
                "() => document.querySelector('.mstate').textContent === 'migrating'"
                " && document.querySelectorAll('ol.phases li').length >= 1", timeout=60_000)
            live_phases = page.locator("ol.phases li").all_inner_texts()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.mstate')].some(e => e.textContent"
                " === 'done' || e.textContent === 'failed' || e.textContent === 'denied')",
                timeout=120_000)
            done_after = time.monotonic() - t0
            clicks = acts.count
            table = page.inner_text("#status-migrations")
            assert page.inner_text(".mstate") == "done", table
            assert first in ("auditing", "migrating")  # it was not done when the page loaded
            assert page.evaluate("() => window.notReloaded") is True  # updated in place
            _shot(page, "status-migrated")
            assert page.inner_text("td.target") == "region r1 \u2192 edge-b"
            # the SMF's tries: the audit stops at the first permit (edge-b); edge-c, if it
            # came first, is denied for its country (eDAl kr is not in cDAl jp,us,fr)
            tries = page.locator("ol.tries li").all_inner_texts()
            assert tries[-1] == "edge-b: permit", tries
            assert all(t.startswith("edge-c: deny (cDAl: ") for t in tries[:-1]), tries
            phases = page.locator("ol.phases li").all_inner_texts()
            assert [p.split(":")[0] for p in phases] == PHASES, phases
            # what showed while it ran was the start of the final list, not all of it
            assert 1 <= len(live_phases) < len(phases), live_phases
            assert live_phases == phases[:len(live_phases)], (live_phases, phases)
            assert all(": ok (" in p for p in phases), phases
            assert "edge-b" in page.inner_text("#status-containers")

            # independently of the UI: the SMF's record, the one engine, the audit log
            assert lab.location() == ("edge-b", 2)
            assert lab.running_copies() == [lab.nodes["edge-b"].container]
            page.goto(f"{base}/audit-log")
            assert page.inner_text("#chain").startswith("Chain verified")
            log = page.inner_text("#log")
            assert "nms to region r1: PERMIT to edge-b" in log, log
            kinds = page.locator("#log tr td:nth-child(3)").all_inner_texts()
            assert "container_moved" in kinds, kinds
            browser.close()
    finally:
        audit.close()
        store.close()
    print(f"\nui migration over the lab: {clicks} clicks/selects/presses from sign-in to a "
          f"completed, audited migration; status page loaded {loaded:.2f} s and showed "
          f"\"done\" {done_after:.2f} s after the migrate click (tries: {'; '.join(tries)}); "
          f"{len(live_phases)} of {len(phases)} phases showed while it ran")
    assert clicks <= 6  # the issue's goal

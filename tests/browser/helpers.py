"""Reusable helpers for the browser tests: Chromium launch, console/CSP watch, axe scan, passkeys."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, CDPSession, ConsoleMessage, Page, Playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
UI_TESTS = REPO / "ui-tests"
AXE_PATH = UI_TESTS / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "test-output" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless (never `playwright install`)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


# Records Content-Security-Policy violations as the page sees them (init scripts are not subject to CSP).
_CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${where})`);
});
"""


@dataclass
class PageWatch:
    """Console errors, uncaught exceptions and CSP violations of one page."""

    page: Page
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.add_init_script(_CSP_LISTENER)
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert") and not any(p.search(message.text) for p in self.allowed):
            self.errors.append(f"console.{message.type}: {message.text}")

    def allow(self, pattern: str) -> None:
        """An expected console error (e.g. the browser logging an intended 401/422 answer)."""
        self.allowed.append(re.compile(pattern))

    def csp_violations(self) -> list[str]:
        try:
            return list(self.page.evaluate("window.__cspViolations || []"))
        except Exception:  # page navigating or closed
            return []

    def assert_clean(self) -> None:
        problems = self.errors + [f"CSP: {v}" for v in self.csp_violations()]
        assert not problems, "\n".join(problems)


def ensure_axe() -> Path:
    """axe-core from ui-tests/ (package.json + lock committed); installed with `npm ci` when missing."""
    if not AXE_PATH.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=UI_TESTS, check=True, capture_output=True,
                       timeout=300)
    return AXE_PATH


def run_axe(page: Page, *, impacts: tuple[str, ...] = ("serious", "critical"),
            disabled_rules: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """axe-core's violations of the given impacts on the page as it is now.

    The page's CSP forbids inline scripts (so add_script_tag cannot inject it); evaluating through the
    DevTools protocol is not subject to CSP, so the CSP stays on while axe runs.
    """
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(ensure_axe().read_text() + "\n;void 0")
    rules = {rule: {"enabled": False} for rule in disabled_rules}
    violations = page.evaluate(
        """async (rules) => {
            const result = await axe.run(document, {resultTypes: ['violations'], rules});
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }""", rules)
    return [v for v in violations if v["impact"] in impacts]


def assert_accessible(page: Page, **options: Any) -> None:
    violations = run_axe(page, **options)
    assert not violations, "\n".join(f"{v['impact']} {v['id']}: {v['help']} at {v['nodes']}" for v in violations)


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def add_virtual_authenticator(page: Page, *, resident_key: bool = True,
                              user_verification: bool = True) -> tuple[CDPSession, str]:
    """A CDP virtual authenticator (ctap2, internal) answering WebAuthn prompts without UI.

    Returns the CDP session and the authenticator id (for WebAuthn.getCredentials and friends).
    """
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    answer = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": resident_key,
        "hasUserVerification": user_verification, "isUserVerified": user_verification,
        "automaticPresenceSimulation": True}})
    return cdp, answer["authenticatorId"]


def virtual_credentials(cdp: CDPSession, authenticator_id: str) -> list[dict[str, Any]]:
    return list(cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"])


def wait_ready(page: Page, timeout: float = 10_000) -> None:
    """Every page script marks <body data-state="ready"> once it is wired up and loaded."""
    page.wait_for_selector("body[data-state='ready']", state="attached", timeout=timeout)


def submit_email_then_password(page: Page, base_url: str, email: str, password: str) -> None:
    """The login page, email first: the address, Continue, then (the domain uses passwords) the password
    and Sign in. Leaves the page where the answer takes it (the profile, the second factor, an error)."""
    page.goto(f"{base_url}/portal/login")
    wait_ready(page)
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Continue", exact=True).click()
    password_input = page.get_by_label("Password", exact=True)
    password_input.wait_for(state="visible")
    password_input.fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def assert_fits_phone(page: Page) -> None:
    """At a phone's width (PHONE), the page needs no horizontal scrolling."""
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "horizontal scroll on a phone"

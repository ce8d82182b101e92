"""First light: the demo user signs in and reads their profile."""

from __future__ import annotations

from profile_support import DEMO_EMAIL, ProfileHarness


async def test_demo_user_signs_in_and_reads_profile(portal: ProfileHarness) -> None:
    browser = portal.browser()
    assert await browser.login(DEMO_EMAIL) == {"state": "signed_in"}
    status, profile = await browser.get("/api/profile")
    assert status == 200, profile
    assert profile["email"] == DEMO_EMAIL
    assert profile["company"]["name"] == "Demo Client Co"

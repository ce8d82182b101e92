"""An admin cannot create an account whose address passes for another one (issue #13)."""

from __future__ import annotations

from profile_support import ADMIN_EMAIL, ProfileHarness


async def test_a_look_alike_or_direction_controlled_address_is_a_422_on_email(portal: ProfileHarness) -> None:
    admin = await portal.signed_in(ADMIN_EMAIL)
    status, client = await admin.post("/api/admin/clients", {"name": "Look-alike Ltd"})
    assert status == 201
    user = {"name": "Eve", "client_id": client["id"]}
    for address in ("billing@msp.\u0435xample",          # a Cyrillic "е" in a Latin label
                    "billing@msp.xn--xample-2of",         # the same, as punycode
                    "billing\u202e@msp.example",          # a right-to-left override
                    "billing@msp.example\u2066"):         # an isolate
        status, body = await admin.post("/api/admin/users", {**user, "email": address})
        assert status == 422, (address, body)
        assert set(body["errors"]) == {"email"}, address
    status, body = await admin.post("/api/admin/users", {**user, "email": "Eve", "name": "Eve \u202eevE"})
    assert status == 422 and set(body["errors"]) == {"email", "name"}
    assert not await portal.db.fetchval("SELECT count(*) FROM profile.users WHERE name LIKE 'Eve%'")
    status, _ = await admin.post("/api/admin/users", {**user, "email": "josé-x@client.example"})
    assert status == 201  # an international address in one alphabet is fine

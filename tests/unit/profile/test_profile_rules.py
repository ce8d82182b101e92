"""Small pure rules: throttle periods, the per-IP window, CSRF tokens, Origin, field validation, JSON shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from profile_service import sessions
from profile_service.guard import origin_allowed
from profile_service.models import Client, User
from profile_service.throttle import THRESHOLD, IpRateLimiter, is_locked, lock_seconds
from profile_service.validation import FieldError, clean_email, clean_name, clean_phone
from profile_service.views import admin_user, iso, profile


def test_lock_starts_at_the_threshold_and_grows() -> None:
    assert [lock_seconds(n) for n in range(THRESHOLD)] == [0] * THRESHOLD
    periods = [lock_seconds(n) for n in range(THRESHOLD, THRESHOLD + 5)]
    assert periods == sorted(periods) and periods[0] > 0 and periods[-1] > periods[0]
    assert lock_seconds(THRESHOLD + 50) == 3600


def test_is_locked() -> None:
    now = datetime.now(UTC)
    assert is_locked(now + timedelta(seconds=5), now)
    assert not is_locked(now - timedelta(seconds=5), now)
    assert not is_locked(None, now)


def test_ip_limiter_allows_the_limit_then_says_how_long_to_wait() -> None:
    limiter = IpRateLimiter(3, window_seconds=60)
    assert [limiter.hit("a", now=100.0 + i) for i in range(3)] == [0, 0, 0]
    assert limiter.hit("a", now=110.0) == 50
    assert limiter.hit("b", now=110.0) == 0
    assert limiter.hit("a", now=161.0) == 0


def test_csrf_token_is_bound_to_the_session_and_key() -> None:
    token = sessions.csrf_token("key", "session-a")
    assert sessions.csrf_matches("key", "session-a", token)
    assert not sessions.csrf_matches("key", "session-b", token)
    assert not sessions.csrf_matches("other", "session-a", token)
    assert not sessions.csrf_matches("key", "session-a", None)
    assert not sessions.csrf_matches("key", "session-a", "")


def test_session_ids_are_long_random_and_stored_hashed() -> None:
    raw = sessions.new_session_id()
    assert len(raw) >= 43 and raw != sessions.new_session_id()  # 32 bytes of randomness
    assert sessions.hash_id(raw) != raw.encode() and len(sessions.hash_id(raw)) == 32


def test_origin() -> None:
    assert origin_allowed(None, "http://localhost:8080")
    assert origin_allowed("http://localhost:8080", "http://localhost:8080")
    assert not origin_allowed("http://evil.example", "http://localhost:8080")
    assert not origin_allowed("http://localhost:8081", "http://localhost:8080")
    assert not origin_allowed("null", "http://localhost:8080")


def test_fields() -> None:
    assert clean_name("  Jane   Doe ") == "Jane Doe"
    assert clean_phone("+442079460018") == "+44 20 7946 0018"
    assert clean_phone("") is None and clean_phone(None) is None
    assert clean_email("Jane@Client.Example") == "Jane@client.example"
    for bad in ("", "   ", "x" * 101, 5):
        with pytest.raises(FieldError):
            clean_name(bad)
    for bad in ("12", "+44 12", "phone", 5):
        with pytest.raises(FieldError):
            clean_phone(bad)
    for bad in ("nope", "a@", "@b.example", None):
        with pytest.raises(FieldError):
            clean_email(bad)


def test_json_shapes() -> None:
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    user = User(id="u1", email="j@c.example", name="jane", role="client_user", client=Client("c1", "Co"),
                title=None, mobile=None, phone=None, password_hash=None, two_factor_enabled=False,
                failed_attempts=0, locked_until=None, created_at=created)
    assert profile(user, None) == {"id": "u1", "email": "j@c.example", "name": "jane", "initial": "J", "phone": None,
                                   "company": {"id": "c1", "name": "Co"}, "title": None, "mobile": None,
                                   "impersonator": None}
    assert admin_user(user)["created_at"] == "2025-01-02T03:04:05Z" == iso(created)

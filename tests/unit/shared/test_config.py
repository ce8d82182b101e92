"""Settings: a missing secret stops the service naming it; values are typed and validated."""

from __future__ import annotations

import pytest
from portal_shared.config import CommonSettings, Env, SettingsError


def test_missing_required_secret_is_named() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        CommonSettings.from_env("profile", 8101, Env({"AMQP_URL": "amqp://x"}))


def test_defaults_and_types() -> None:
    settings = CommonSettings.from_env("mfa", 8102, Env({"DATABASE_URL": "postgresql://a", "AMQP_URL": "amqp://b",
                                                         "PORTAL_BASE_URL": "https://portal.example/"}))
    assert settings.http_port == 8102
    assert settings.log_format == "json"
    assert settings.portal_base_url == "https://portal.example"
    with pytest.raises(AttributeError):
        settings.http_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("HTTP_PORT", "eighty", "HTTP_PORT must be an integer"),
    ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of json, console"),
])
def test_malformed_values_are_named(name: str, value: str, message: str) -> None:
    env = Env({"DATABASE_URL": "postgresql://a", "AMQP_URL": "amqp://b", name: value})
    with pytest.raises(SettingsError, match=message):
        CommonSettings.from_env("notifier", 8103, env)


def test_bool_parsing() -> None:
    assert Env({"X": "yes"}).bool("X") is True
    assert Env({"X": "0"}).bool("X") is False
    assert Env({}).bool("X", default=True) is True
    with pytest.raises(SettingsError, match="X must be true or false"):
        Env({"X": "maybe"}).bool("X")

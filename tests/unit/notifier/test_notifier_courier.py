"""Courier rules without servers: backoff, SMTP reply classes, settings, handler coverage, the operator CLI."""

from __future__ import annotations

import pytest
from notifier_service import cli, consumers
from notifier_service.config import Settings
from notifier_service.dispatcher import backoff_seconds
from notifier_service.mailer import PermanentSendError, TransientSendError, classify_reply
from portal_shared.config import SettingsError
from portal_shared.consumer import PermanentError
from portal_shared.events import ALL_EVENTS

ENV = {"DATABASE_URL": "postgresql://n@localhost/db", "AMQP_URL": "amqp://localhost/", "SERVICE_AUTH_KEY": "k"}


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    low = [backoff_seconds(n, base=1.0, cap=60.0, rand=lambda: 0.0) for n in range(1, 9)]
    high = [backoff_seconds(n, base=1.0, cap=60.0, rand=lambda: 1.0) for n in range(1, 9)]
    assert high == [1, 2, 4, 8, 16, 32, 60, 60]
    assert low == [h / 2 for h in high]
    assert all(0.5 <= backoff_seconds(1, base=1.0, cap=60.0) <= 1.0 for _ in range(100))


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
@pytest.mark.parametrize(("code", "kind", "keep"), [
    (421, TransientSendError, False), (450, TransientSendError, True), (451, TransientSendError, True),
    (452, TransientSendError, True), (550, PermanentSendError, True), (552, PermanentSendError, True),
    (554, PermanentSendError, True), (-1, TransientSendError, False),
    (503, TransientSendError, False),  # "nested MAIL command": the session's state, never the job's fault
])
def test_replies_to_a_job_s_own_commands_4xx_are_retried_and_5xx_are_final(stage: str, code: int,
                                                                           kind: type[Exception], keep: bool) -> None:
    error, kept = classify_reply(stage, code, f"{code} reason")
    assert type(error) is kind and kept is keep
    assert f"{code} reason" in str(error)


@pytest.mark.parametrize("code", [503, 530, 550, 553, 451])
def test_a_refused_mail_from_is_never_the_job_s_fault(code: int) -> None:
    error, _ = classify_reply("MAIL", code, f"{code} sender refused")
    assert type(error) is TransientSendError


def test_settings_need_the_service_auth_key() -> None:
    settings = Settings.from_env(ENV)
    assert settings.service_auth_key == "k" and settings.dispatch.workers >= 2
    with pytest.raises(SettingsError, match="SERVICE_AUTH_KEY"):
        Settings.from_env({k: v for k, v in ENV.items() if k != "SERVICE_AUTH_KEY"})


@pytest.mark.parametrize(("name", "value"), [("NOTIFIER_WORKERS", "0"), ("NOTIFIER_RETRY_BASE_SECONDS", "-1"),
                                             ("NOTIFIER_POLL_SECONDS", "soon"), ("SMTP_PORT", "x")])
def test_bad_dispatch_settings_stop_the_service_naming_them(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**ENV, name: value})


def test_the_defaults_bound_the_work_in_flight() -> None:
    dispatch = Settings.from_env(ENV).dispatch
    assert dispatch.lease_seconds > 2 * dispatch.smtp_timeout_seconds  # a live sender never loses its claim
    assert dispatch.workers * dispatch.batch_size <= 100


# The contract's Events table, written out here (not derived from ALL_EVENTS, which the handlers come from
# too): a type dropped from the code, or one the contract never listed, fails this test.
CONTRACT_EVENTS = {
    "profile.user_created", "profile.user_updated", "profile.user_invited", "profile.password_reset_requested",
    "profile.password_changed", "mfa.two_factor_enabled", "mfa.two_factor_disabled", "mfa.totp_enabled",
    "mfa.totp_disabled", "mfa.security_key_added", "mfa.security_key_removed",
    "mfa.security_key_renamed", "mfa.recovery_codes_regenerated",
    "mfa.recovery_code_used", "mfa.reset_by_admin", "profile.impersonation_started", "profile.email_changed",
    "profile.sso_linked", "profile.new_device_sign_in", "profile.change_undone",
}


def test_every_contract_event_has_a_handler() -> None:
    handlers = consumers.event_handlers()
    assert set(handlers) == CONTRACT_EVENTS == {cls.type for cls in ALL_EVENTS}
    assert handlers["profile.user_created"] is consumers.project_user
    assert handlers["profile.user_updated"] is consumers.project_user
    assert all(handlers[t] is consumers.queue_email for t in CONTRACT_EVENTS - {"profile.user_created",
                                                                                  "profile.user_updated"})


def test_timestamps_must_carry_an_offset() -> None:
    assert consumers.parse_timestamp("2025-03-04T14:05:09Z", field="t").utcoffset() is not None
    for bad in ("2025-03-04T14:05:09", "tomorrow", ""):
        with pytest.raises(PermanentError):
            consumers.parse_timestamp(bad, field="t")


def test_the_cli_retries_one_job_or_all_failed_never_neither() -> None:
    parser = cli.parser()
    assert parser.parse_args(["jobs", "retry", "--id", "abc"]).id == "abc"
    assert parser.parse_args(["jobs", "retry", "--all-failed"]).all_failed
    assert parser.parse_args(["jobs", "list"]).status == "failed"
    for argv in (["jobs", "retry"], ["jobs", "retry", "--id", "a", "--all-failed"], ["jobs", "list", "--status", "x"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)

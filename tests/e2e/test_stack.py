"""`make up`'s stack: everything healthy through the gateway; stopping leaves no process; a restart reuses data."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from tests.support.stack import throwaway_stack


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def processes_under(path: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if path in line]


@pytest.mark.slow
def test_stack_starts_healthy_stops_clean_and_restarts_on_the_same_data() -> None:
    stack = throwaway_stack()
    try:
        stack.start()
        for service in ("profile", "mfa", "notifier"):
            status, body = get(f"{stack.base_url}/health/{service}")
            assert status == 200, (service, body)
        secrets_before = (stack.var / "secrets.json").read_text()
    finally:
        stack.stop()
    assert processes_under(str(stack.var)) == []

    again = type(stack)(var=stack.var, ports=stack.ports, demo_password=stack.demo_password)
    try:
        again.start()
        assert not again.first_start
        assert (stack.var / "secrets.json").read_text() == secrets_before
        status, _ = get(f"{again.base_url}/health/profile")
        assert status == 200
    finally:
        again.stop()
    assert processes_under(str(stack.var)) == []

"""Each service starts through portal_shared.service_main: a missing setting stops it naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("service", ["profile", "mfa", "notifier"])
def test_a_missing_setting_stops_the_service_with_its_name(service: str) -> None:
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "PYTHONPATH", "VIRTUAL_ENV"}}
    done = subprocess.run([sys.executable, "-m", f"{service}_service"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith(f"{service}-service: required setting ")


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not installed on Windows")
def test_services_run_on_uvloop() -> None:
    """The services' event loop (portal_shared.runtime.run_on_service_loop) is uvloop's, and it hands back
    the coroutine's result. In a child process: a loop made in this one would replace pytest's."""
    probe = ("import asyncio\nfrom portal_shared.runtime import run_on_service_loop\n"
             "async def main():\n    return type(asyncio.get_running_loop()).__module__\n"
             "print(run_on_service_loop(main()))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip().startswith("uvloop")

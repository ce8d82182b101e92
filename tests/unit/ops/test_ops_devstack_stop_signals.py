"""`make up`'s stop-signal wait survives signals that arrive while a previous one is being handled (issue #13).

Under `make up` every Ctrl-C / SIGTERM reaches portal_devstack.up twice (directly and forwarded by `uv
run`), and an operator may press Ctrl-C again. The old wait (a threading.Event set from the handler)
deadlocked, or died of RecursionError, when a handler ran nested inside another; here a child process
waits in many short waits while this test sends it a SIGTERM every 0.2 ms, which reached that state in
every run against the old code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

CHILD = """
import time
from portal_devstack.up import StopSignals

signals = StopSignals().install()
print("ready", flush=True)
deadline = time.monotonic() + 2
while time.monotonic() < deadline:
    signals.wait(0.0005)  # many short waits: the main loop's wait, thousands of times
assert signals.wait(0) and set(signals.received) == {15}, signals.received[:5]
print("alive", flush=True)
"""


def test_stop_wait_survives_a_storm_of_sigterms() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        end = time.monotonic() + 1.5
        while time.monotonic() < end and child.poll() is None:
            os.kill(child.pid, signal.SIGTERM)
            time.sleep(0.0002)
        out, err = child.communicate(timeout=10)  # a deadlocked child times out here
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0 and "alive" in out, err[-2000:]


def test_a_stop_signal_before_the_wait_is_not_lost() -> None:
    child = subprocess.run([sys.executable, "-c", """
import os, signal
from portal_devstack.up import StopSignals
signals = StopSignals().install()
os.kill(os.getpid(), signal.SIGINT)
assert signals.wait(5)
print("stopping")
"""], capture_output=True, text=True, timeout=20, check=False)
    assert child.returncode == 0 and child.stdout == "stopping\n", child.stderr[-2000:]

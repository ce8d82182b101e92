"""schemathesis over every public operation of profile and mfa, through nginx, against the real stack.

Runs after the other flows of this tier (it edits the demo accounts' profiles). The same run, with more
examples, is a line of `make faults`.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.faults_fuzz import schemathesis_run
from bench.faults_stack import FaultStack

pytestmark = pytest.mark.slow


async def test_no_5xx_and_no_schema_violation_through_the_gateway(portal_stack: Any) -> None:
    fault_stack = FaultStack(portal_stack)
    await fault_stack.open()
    try:
        figures = await schemathesis_run(fault_stack)
    finally:
        await fault_stack.close()
    assert figures, "the fuzzer ran no operation"
    assert [f.line() for f in figures if not f.passed] == []

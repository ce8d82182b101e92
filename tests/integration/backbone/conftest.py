"""Fixtures of the event backbone tests: a fresh database, schema and vhost per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.backbone.backbone_support import Backbone, open_backbone


@pytest.fixture
async def backbone(stack_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Backbone]:
    opened = await open_backbone(stack_env, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()

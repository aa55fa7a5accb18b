"""Fixtures for the conversation core's unit tests (the rig itself is in rig.py)."""

from __future__ import annotations

import pytest

from tests.conversation.rig import Rig, build_rig


@pytest.fixture
def rig() -> Rig:
    return build_rig()

"""The backend contract on :class:`vault.backend_memory.MemoryBackend`."""

from __future__ import annotations

import pytest
from backend_contract import BackendContract

from vault.backend_memory import MemoryBackend


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


class TestMemoryBackend(BackendContract):
    """The shared suite."""

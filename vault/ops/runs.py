"""Training runs: every version records the run it belongs to (``training.run``)."""

from __future__ import annotations

import re

__all__ = ["best_pin_name"]


def best_pin_name(run: str) -> str:
    """The name of the pin that keeps ``run``'s best checkpoint: ``best-<run>``, every character
    a pin name cannot hold replaced by ``-`` (at most 128 characters)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", run).strip("-.") or "run"
    return f"best-{safe}"[:128]

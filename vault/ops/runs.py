"""Training runs: the names vault derives from a run's name."""

from __future__ import annotations

import re

__all__ = ["best_pin_name"]

PIN_NAME_MAX = 128


def best_pin_name(run: str) -> str:
    """The name of the pin that keeps ``run``'s best checkpoint: ``best-<run>``.

    Every character a pin name cannot hold (outside ``A-Z a-z 0-9 . _ -``) becomes ``-``;
    leading and trailing ``-`` and ``.`` are stripped (an empty result becomes ``run``), and
    the name is cut to 128 characters.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", run).strip("-.") or "run"
    return f"best-{safe}"[:PIN_NAME_MAX]

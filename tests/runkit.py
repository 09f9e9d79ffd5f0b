"""Trainer-like checkpoints of several training runs, committed with the real command line, for
the tests of runs, plots and comparisons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faultkit import ok, run_vault, write_checkpoint


def history(step: int, start: float, *, evals: bool = True) -> list[dict[str, Any]]:
    """A ``log_history`` up to ``step``: the loss ``start / s`` at every step ``s``, and with
    ``evals`` the ``eval_loss`` ``start / s + 0.1`` at every even step."""
    out: list[dict[str, Any]] = []
    for s in range(1, step + 1):
        out.append({"epoch": s / 10, "learning_rate": 1e-3, "loss": start / s, "step": s})
        if evals and s % 2 == 0:
            out.append({"epoch": s / 10, "eval_loss": start / s + 0.1, "step": s})
    return out


def trainer_checkpoint(path: Path, step: int, start: float, *, evals: bool = True) -> Path:
    """``path`` as a Trainer saves a checkpoint at ``step``: weights that drift with the step
    and a ``trainer_state.json`` whose ``log_history`` holds the whole run so far."""
    write_checkpoint(path, step)
    state = {"global_step": step, "max_steps": 6, "log_history": history(step, start, evals=evals)}
    (path / "trainer_state.json").write_text(json.dumps(state))
    return path


def two_runs(project: Path) -> Path:
    """A repository in ``project/.vault`` with two runs committed in turns, as two trainings
    side by side save them: ``exp1`` (steps 2, 4, 6, loss from 2.0, evaluated) is v001, v003,
    v005; ``exp2`` (steps 2, 4, loss from 3.0, never evaluated) is v002, v004."""
    repo = project / ".vault"
    ok(run_vault(repo, "init"))
    for run, step in [("exp1", 2), ("exp2", 2), ("exp1", 4), ("exp2", 4), ("exp1", 6)]:
        start, evals = (2.0, True) if run == "exp1" else (3.0, False)
        ckpt = trainer_checkpoint(project / "runs" / run / f"checkpoint-{step}", step, start,
                                  evals=evals)  # fmt: skip
        ok(run_vault(repo, "commit", str(ckpt), "-m", f"{run} step {step}"))
    return repo

"""VaultCallback's everyday options, with a real transformers Trainer on a tiny model: what it
leaves out of a checkpoint (``exclude``), the line it prints per commit (``verbose``), and a
checkpoint saved twice (nothing changed: no new version)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tinytrain import tiny_trainer
from transformers import Trainer, TrainerControl, TrainerState

from vault import Repository

HEAVY = ["optimizer.pt", "scheduler.pt", "rng_state*.pth"]


def train(repo: Repository, out: Path, **options: object) -> tuple[Trainer, object]:
    from vault.integrations import VaultCallback

    callback = VaultCallback(repo, pin_best_metric="eval_loss", **options)
    trainer = tiny_trainer(out, callback, max_steps=4, examples=16, save_total_limit=None)
    trainer.train()
    return trainer, callback


def test_exclude_drops_optimizer_state_and_prints_a_line_per_commit(
    repo: Repository, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer, _ = train(repo, tmp_path / "run", exclude=HEAVY)
    on_disk = {p.name for p in (tmp_path / "run" / "checkpoint-4").iterdir()}
    assert {"optimizer.pt", "scheduler.pt", "model.safetensors"} <= on_disk
    for v in ("v001", "v002"):
        shown = repo.show(v)
        names = {f.path for f in shown.files or []}
        assert "model.safetensors" in names and "trainer_state.json" in names
        assert not names & {"optimizer.pt", "scheduler.pt"}
        assert not any(re.fullmatch(r"rng_state.*\.pth", n) for n in names)
        assert {e["path"] for e in shown.excluded} >= {"optimizer.pt", "scheduler.pt"}

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("vault:")]
    assert len(lines) == 2, lines
    for line, version in zip(lines, repo.log()[::-1], strict=True):
        assert line == f"vault: {version.version} step {version.steps} loss {version.loss:.4g}"


def test_by_default_everything_stays_and_verbose_false_is_quiet(
    repo: Repository, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train(repo, tmp_path / "run", verbose=False)
    names = {f.path for f in repo.show("v002").files or []}
    assert {"optimizer.pt", "scheduler.pt", "model.safetensors"} <= names
    assert repo.show("v002").excluded == []
    assert not [line for line in capsys.readouterr().out.splitlines() if "vault:" in line]


def test_a_checkpoint_saved_twice_makes_one_version(
    repo: Repository, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """on_save for a checkpoint already committed (a resumed run saving the same step again)
    makes no version: the existing one stands for the step and can still be pinned best."""
    trainer, callback = train(repo, tmp_path / "run")
    capsys.readouterr()
    state = trainer.state
    assert isinstance(state, TrainerState)
    callback.on_save(trainer.args, state, TrainerControl())
    assert [v.version for v in repo.log()] == ["v002", "v001"]
    assert callback.versions[4].unchanged and callback.versions[4].version == "v002"
    out = capsys.readouterr().out
    assert re.fullmatch(r"vault: v002 step 4 loss \S+ \(unchanged\)\n", out), out
    best = next(p for p in repo.pins() if p.name == "best-run")
    assert best.version in {"v001", "v002"}

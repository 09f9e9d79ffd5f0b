"""VaultCallback with a real transformers Trainer on a tiny model, on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tinytrain import tiny_trainer
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from vault import Repository


def test_import_is_light() -> None:
    code = (
        "import sys, vault, vault.integrations, vault.cli.main\n"
        "heavy = [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_trainer_run_is_versioned(repo: Repository, tmp_path: Path) -> None:
    from vault.integrations import VaultCallback

    callback = VaultCallback(repo, pin_best_metric="eval_loss")
    assert isinstance(callback, TrainerCallback)
    trainer = tiny_trainer(tmp_path / "run", callback)
    trainer.train()

    log = repo.log()
    assert [v.version for v in log] == ["v003", "v002", "v001"]
    assert [v.steps for v in log] == [6, 4, 2]
    history = trainer.state.log_history
    for v in log:
        train_losses = [e["loss"] for e in history if "loss" in e and e["step"] <= v.steps]
        evals = [e["eval_loss"] for e in history if "eval_loss" in e and e["step"] <= v.steps]
        assert v.loss == pytest.approx(train_losses[-1])
        assert v.eval_loss == pytest.approx(evals[-1])
    shown = repo.show("v003")
    assert shown.curve and any("eval_loss" in e for e in shown.curve)
    assert {f.path for f in shown.files or []} >= {"trainer_state.json", "model.safetensors"}

    evals = {e["step"]: e["eval_loss"] for e in history if "eval_loss" in e}
    best_step = min(evals, key=evals.__getitem__)
    (best,) = [p for p in repo.pins() if p.name == "best-run"]
    assert best.type == "best"
    assert best.version == callback.versions[best_step].version
    assert f"step {best_step}" in best.reason
    # Every checkpoint is restorable although the Trainer kept only the last one on disk.
    assert len(list((tmp_path / "run").glob("checkpoint-*"))) == 1
    state = repo.load_state_dict("v001", "model.safetensors")
    assert "model.layers.0.self_attn.q_proj.weight" in state


def _checkpoint(output_dir: Path, step: int, eval_loss: float, history: list[dict]) -> None:
    """A checkpoint directory as the Trainer writes it (what on_save finds on disk)."""
    history.append({"step": step, "loss": 1.0 / step, "epoch": step / 10})
    history.append({"step": step, "eval_loss": eval_loss, "epoch": step / 10})
    ckpt = output_dir / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "weights.bin").write_bytes(step.to_bytes(4, "little") * 100)
    state = {"global_step": step, "log_history": list(history)}
    (ckpt / "trainer_state.json").write_text(json.dumps(state))


def test_best_pin_moves_only_on_improvement(repo: Repository, tmp_path: Path) -> None:
    from vault.integrations import VaultCallback

    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to=[], use_cpu=True)
    callback = VaultCallback(repo, pin_best_metric="loss")  # means eval_loss, as in Trainer
    state, control, history = TrainerState(), TrainerControl(), []
    best_versions = []
    for step, value in [(1, 0.5), (2, 0.3), (3, 0.4), (4, 0.2), (5, float("nan"))]:
        _checkpoint(Path(args.output_dir), step, value, history)
        state.global_step, state.log_history = step, history
        callback.on_save(args, state, control)
        best_versions.append(next(p.version for p in repo.pins() if p.name == "best-run"))
    assert best_versions == ["v001", "v002", "v002", "v004", "v004"]

    # A new run's callback starts from the pinned value: a worse first checkpoint is not best.
    again = VaultCallback(repo, pin_best_metric="eval_loss")
    _checkpoint(Path(args.output_dir), 6, 0.25, history)
    state.global_step, state.log_history = 6, history
    again.on_save(args, state, control)
    assert next(p.version for p in repo.pins() if p.name == "best-run") == "v004"
    assert [v.version for v in repo.log(limit=1)] == ["v006"]


def test_evaluation_after_save_still_pins(repo: Repository, tmp_path: Path) -> None:
    """An evaluation that runs after the checkpoint of its step is saved pins it then."""
    from vault.integrations import VaultCallback

    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to=[], use_cpu=True)
    callback = VaultCallback(repo, pin_best_metric="eval_accuracy")  # greater is better
    state, control = TrainerState(), TrainerControl()
    history: list[dict] = []
    _checkpoint(Path(args.output_dir), 3, 0.1, history)
    state.global_step, state.log_history = 3, []
    callback.on_save(args, state, control)
    assert repo.pins() == []
    callback.on_evaluate(args, state, control, metrics={"eval_accuracy": 0.7})
    (best,) = repo.pins()
    assert (best.name, best.version) == ("best-run", "v001")


def test_each_run_keeps_its_own_best_and_a_global_best_only_when_asked(
    repo: Repository, tmp_path: Path
) -> None:
    """Two runs: each run's best is pinned as best-<run>, chains stay within their run, and
    the repository-wide ``best`` exists only with ``global_best``."""
    from vault.integrations import VaultCallback

    state, control = TrainerState(), TrainerControl()
    for run, losses in (("exp1", [0.5, 0.3]), ("exp2", [0.4, 0.2])):
        args = TrainingArguments(output_dir=str(tmp_path / run), report_to=[], use_cpu=True)
        callback = VaultCallback(repo, pin_best_metric="eval_loss", global_best=run == "exp2")
        history: list[dict] = []
        for i, loss in enumerate(losses, start=1):
            _checkpoint(Path(args.output_dir), 2 * i, loss, history)
            state.global_step, state.log_history = 2 * i, history
            callback.on_save(args, state, control)
    pins = {p.name: p.version for p in repo.pins()}
    assert pins == {"best-exp1": "v002", "best-exp2": "v004", "best": "v004"}
    by_name = {v.version: v for v in repo.log()}
    assert [by_name[n].run for n in ("v001", "v002", "v003", "v004")] == ["exp1"] * 2 + ["exp2"] * 2
    assert by_name["v003"].parents == []  # a new run's first version has no run-parent
    assert by_name["v004"].parents == [by_name["v003"].id]
    assert by_name["v002"].parents == [by_name["v001"].id]

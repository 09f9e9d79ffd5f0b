"""vault.meta: reading Trainer checkpoints, recording data files, drawing learning curves.

Checkpoints are written with the real writers (``transformers.TrainerState.save_to_json`` and
``peft.LoraConfig.save_pretrained``), so a change in what those libraries write shows up here.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pytest
from conftest import make_safetensors

from vault import meta
from vault.errors import BadValue, PathNotFound


def training_history(
    steps: int, *, log_every: int = 10, eval_every: int = 50, start: float = 2.3, end: float = 0.4
) -> list[dict[str, Any]]:
    """A ``log_history`` as the Trainer writes it: training logs, evaluations, a final summary."""
    history: list[dict[str, Any]] = []
    for step in range(log_every, steps + 1, log_every):
        frac = step / steps
        history.append(
            {
                "epoch": round(frac, 4),
                "grad_norm": 1.5 - frac,
                "learning_rate": 2e-4 * (1 - frac),
                "loss": round(start + (end - start) * frac, 4),
                "step": step,
            }
        )
        if step % eval_every == 0:
            history.append(
                {
                    "epoch": round(frac, 4),
                    "eval_loss": round(start + 0.1 + (end - start) * frac, 4),
                    "eval_runtime": 0.5,
                    "eval_samples_per_second": 100.0,
                    "step": step,
                }
            )
    history.append(
        {"epoch": 1.0, "step": steps, "total_flos": 1.0, "train_loss": 1.1, "train_runtime": 9.0}
    )
    return history


def make_checkpoint(
    path: str | os.PathLike[str],
    *,
    steps: int = 100,
    history: list[dict[str, Any]] | None = None,
    base_model: str | None = "tiny-llama/base",
    seed: int = 0,
) -> Path:
    """A ``checkpoint-N/`` directory as a Trainer with a peft LoRA model saves it."""
    from peft import LoraConfig
    from transformers.trainer_callback import TrainerState

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    state = TrainerState(
        global_step=steps,
        max_steps=steps,
        log_history=training_history(steps) if history is None else history,
    )
    state.save_to_json(str(root / meta.TRAINER_STATE))
    if base_model is not None:
        config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
        config.base_model_name_or_path = base_model
        config.save_pretrained(str(root))
    rng = np.random.default_rng(seed)
    make_safetensors(
        root / "adapter_model.safetensors",
        {
            "base_model.model.layers.0.self_attn.q_proj.lora_A.weight": rng.standard_normal(
                (4, 32)
            ).astype("float32"),
            "base_model.model.layers.0.self_attn.q_proj.lora_B.weight": rng.standard_normal(
                (32, 4)
            ).astype("float32"),
        },
        metadata={"format": "pt"},
    )
    return root


# -- reading a checkpoint ----------------------------------------------------------------------


def test_read_checkpoint_takes_step_losses_curve_and_base_model(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "checkpoint-100", steps=100)
    info = meta.read_checkpoint(ckpt)
    assert info is not None
    assert info.steps == 100
    assert info.loss == 0.4  # the last step log, not the summary's train_loss
    assert info.eval_loss == 0.5
    assert info.base_model == "tiny-llama/base"
    written = json.loads((ckpt / "trainer_state.json").read_text())["log_history"]
    assert info.curve == written
    assert meta.is_checkpoint(ckpt)


def test_a_plain_directory_or_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert meta.read_checkpoint(tmp_path / "model") is None
    assert meta.read_checkpoint(tmp_path / "model" / "config.json") is None
    assert meta.read_checkpoint(tmp_path / "missing") is None


def test_summary_train_loss_when_no_step_logged_a_loss(tmp_path: Path) -> None:
    ckpt = make_checkpoint(
        tmp_path / "c", steps=5, history=[{"step": 5, "train_loss": 0.9}], base_model=None
    )
    info = meta.read_checkpoint(ckpt)
    assert info is not None
    assert (info.steps, info.loss, info.eval_loss, info.base_model) == (5, 0.9, None, None)


def test_diverged_run_keeps_last_finite_loss_and_curve_stays_json(tmp_path: Path) -> None:
    history = [{"loss": 1.5, "step": 1}, {"loss": float("nan"), "step": 2}]
    ckpt = make_checkpoint(tmp_path / "c", steps=2, history=history)
    info = meta.read_checkpoint(ckpt)
    assert info is not None and info.loss == 1.5
    assert info.curve[1]["loss"] is None
    json.dumps(info.curve, allow_nan=False)  # would raise on NaN


def test_damaged_trainer_state_gives_no_values_but_no_error(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "c")
    (ckpt / "trainer_state.json").write_text('{"global_step": 7, "log_hist')
    info = meta.read_checkpoint(ckpt)
    assert info is not None
    assert (info.steps, info.loss, info.curve) == (None, None, [])
    assert info.base_model == "tiny-llama/base"


def test_curve_from_state_bytes() -> None:
    assert meta.curve_from_state(b'{"log_history": [{"loss": 1, "step": 2}, 5]}') == [
        {"loss": 1, "step": 2}
    ]
    assert meta.curve_from_state(b"not json") == []
    assert meta.curve_from_state(b"[1, 2]") == []


# -- data files and values ---------------------------------------------------------------------


def test_data_record_has_absolute_path_size_and_blake3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = os.urandom(3 << 20)  # several read blocks
    (tmp_path / "train.jsonl").write_bytes(content)
    monkeypatch.chdir(tmp_path)
    record = meta.data_record("train.jsonl", stored=False)
    assert record == {
        "path": str(tmp_path / "train.jsonl"),
        "size": len(content),
        "blake3": blake3.blake3(content).hexdigest(),
        "stored": False,
    }


def test_data_record_refuses_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(PathNotFound, match="nope.jsonl"):
        meta.data_record(tmp_path / "nope.jsonl", stored=True)
    with pytest.raises(BadValue, match="not a regular file"):
        meta.data_record(tmp_path, stored=True)


@pytest.mark.parametrize("value", [-1, 1.5, "x", None, True, "-3"])
def test_bad_steps(value: object) -> None:
    with pytest.raises(BadValue):
        meta.check_steps(value)


def test_good_steps_and_losses() -> None:
    assert meta.check_steps(0) == 0
    assert meta.check_steps("12") == 12
    assert meta.check_loss("0.25") == 0.25
    assert meta.check_loss(3) == 3.0


@pytest.mark.parametrize("value", ["abc", float("nan"), float("inf"), None, False])
def test_bad_loss(value: object) -> None:
    with pytest.raises(BadValue):
        meta.check_loss(value)


# -- the curve as text and as an image ---------------------------------------------------------


def test_sparkline_follows_the_values() -> None:
    line = meta.sparkline([3.0, 2.0, 1.0, 0.0])
    assert line == "█▆▃▁"
    assert meta.sparkline([1.0, 1.0]) == meta.SPARK[4] * 2
    assert meta.sparkline([]) == ""
    long = meta.sparkline([float(i) for i in range(1000)], width=20)
    assert len(long) == 20 and long[0] == "▁" and long[-1] == "█"


def test_curve_lines_name_first_and_last_loss_and_the_span() -> None:
    lines = meta.curve_lines(training_history(500))
    assert len(lines) == 2
    loss, evals = lines
    assert loss.startswith("loss 2.262 ") and " 0.4 over 500 steps (50 points)" in loss
    assert evals.startswith("eval_loss ") and "(10 points)" in evals
    spark = loss.split()[2]
    assert spark[0] == "█" and spark[-1] == "▁" and len(spark) == meta.SPARK_WIDTH
    assert meta.curve_lines([]) == []
    assert meta.curve_lines([{"train_loss": 1.0}]) == []


def test_plot_curve_writes_a_png(tmp_path: Path) -> None:
    out = meta.plot_curve(training_history(100), tmp_path / "curve.png", title="v001")
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_plot_without_losses_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(meta.NoCurve, match="v003"):
        meta.plot_curve([{"step": 1, "learning_rate": 0.1}], tmp_path / "c.png", title="v003")
    assert not (tmp_path / "c.png").exists()


def test_non_finite_numbers_never_reach_the_curve() -> None:
    curve = meta.curve_from_state(b'{"log_history": [{"loss": Infinity, "step": 1}]}')
    assert curve == [{"loss": None, "step": 1}]
    assert not any(isinstance(v, float) and math.isinf(v) for e in curve for v in e.values())

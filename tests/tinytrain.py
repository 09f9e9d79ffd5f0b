"""A tiny causal language model and data for real transformers Trainer runs on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments


class TinyData(torch.utils.data.Dataset):
    """Random token sequences; the labels are the inputs (causal LM)."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 64, (n, 16), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def tiny_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=64,
        )
    )


def trainer_args(output_dir: Path, max_steps: int = 6, **extra: Any) -> TrainingArguments:
    """Arguments of a short CPU run that logs the loss at every step and saves and evaluates
    every 2 steps, keeping one checkpoint on disk (vault keeps them all); ``extra`` overrides."""
    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "max_steps": max_steps,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "learning_rate": 5e-3,
        "logging_steps": 1,
        "save_steps": 2,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_total_limit": 1,  # the Trainer deletes old checkpoints: vault keeps them
        "report_to": [],
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
    }
    settings.update(extra)
    return TrainingArguments(**settings)


def tiny_trainer(
    output_dir: Path, *callbacks: Any, max_steps: int = 6, examples: int = 24, **extra: Any
) -> Trainer:
    """A Trainer of :func:`tiny_model` on ``examples`` random sequences, with the arguments of
    :func:`trainer_args`, reporting to ``callbacks``."""
    return Trainer(
        model=tiny_model(),
        args=trainer_args(output_dir, max_steps, **extra),
        train_dataset=TinyData(examples, seed=1),
        eval_dataset=TinyData(8, seed=2),
        callbacks=list(callbacks),
    )

"""Training runs for ``vault watch`` to watch: a tiny model on the CPU, no model hub, no callback.

    python watch_train.py base base_model/            # a tiny Llama (random init), safetensors
    python watch_train.py trainer runs/exp1 --base base_model --lora
        # a real Hugging Face Trainer: LoRA on base_model, checkpoint-N/ every 2 steps
    python watch_train.py trainer runs/exp2            # the full tiny model, built from a config
    python watch_train.py plain runs/exp3             # a plain PyTorch loop writing step_N/
                                                      # (safetensors.torch.save_file)

Each prints one line per checkpoint it saved. Needs the ``ml`` extra (torch, transformers, peft).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

from walkthrough import VOCAB, tiny_config  # beside this file

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
warnings.filterwarnings("ignore")


def tiny_model() -> Any:
    """The walkthrough's tiny Llama (random init): a few steps train in a second on a CPU."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_config())


class Rows:
    """Counting sequences (7, 8, 9, ...): a causal-LM task a tiny model learns in a few steps."""

    def __init__(self, n: int, seed: int) -> None:
        import torch

        gen = torch.Generator().manual_seed(seed)
        starts = torch.randint(0, VOCAB, (n, 1), generator=gen)
        self.ids = (starts + torch.arange(16)) % VOCAB

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def build_base(dest: Path) -> None:
    """Save a randomly initialised tiny Llama to ``dest``."""
    tiny_model().save_pretrained(dest)
    print(f"saved a tiny Llama to {dest}/", flush=True)


class _Saved:
    """Prints a line per checkpoint the Trainer saved (a plain TrainerCallback, no vault)."""

    def __new__(cls, output_dir: Path) -> Any:
        from transformers import TrainerCallback

        class Saved(TrainerCallback):  # type: ignore[misc]
            def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                step = state.global_step
                print(f"saved {output_dir / f'checkpoint-{step}'}", flush=True)

        return Saved()


def train_trainer(
    output_dir: Path, base: Path | None, lora: bool, steps: int, every: int, delay: float
) -> None:
    """Train with a Hugging Face Trainer, saving and evaluating every ``every`` steps."""
    import torch
    from transformers import LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    model = LlamaForCausalLM.from_pretrained(base) if base else tiny_model()
    if lora:
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(0)
        model = get_peft_model(
            model,
            LoraConfig(
                r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
            ),
        )

    class Slow(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            time.sleep(delay)  # a real step takes longer: let the checkpoints land apart

    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        learning_rate=2e-2,
        logging_steps=1,
        save_steps=every,
        eval_strategy="steps",
        eval_steps=every,
        save_total_limit=None,
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Rows(64, seed=1),
        eval_dataset=Rows(16, seed=2),
        callbacks=[_Saved(output_dir), Slow()],
    )
    trainer.train()


def train_plain(output_dir: Path, steps: int, every: int, delay: float) -> None:
    """A plain PyTorch loop: ``step_N/model.safetensors`` (and ``loss.json``) every ``every``
    steps, written in place as most loops do, so only a quiet time says one is complete."""
    import torch
    from safetensors.torch import save_file

    model = tiny_model()
    data = Rows(64, seed=1)
    optim = torch.optim.AdamW(model.parameters(), lr=2e-2)
    output_dir.mkdir(parents=True, exist_ok=True)
    for step in range(1, steps + 1):
        batch = data.ids[(step * 8) % 64 : (step * 8) % 64 + 8]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
        time.sleep(delay)
        if step % every == 0:
            folder = output_dir / f"step_{step}"
            folder.mkdir()
            state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
            save_file(state, str(folder / "model.safetensors"))
            (folder / "loss.json").write_text(json.dumps({"step": step, "loss": loss.item()}))
            print(f"saved {folder}", flush=True)


def main() -> None:
    """Parse the command line and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("base").add_argument("dest", type=Path)
    for name in ("trainer", "plain"):
        p = sub.add_parser(name)
        p.add_argument("output_dir", type=Path)
        p.add_argument("--steps", type=int, default=6)
        p.add_argument("--every", type=int, default=2, help="save every N steps")
        p.add_argument("--delay", type=float, default=0.0, help="seconds added to each step")
        if name == "trainer":
            p.add_argument("--base", type=Path, help="a saved model (default: a fresh tiny one)")
            p.add_argument("--lora", action="store_true", help="train a LoRA adapter with peft")
    args = parser.parse_args()
    if args.what == "base":
        build_base(args.dest)
    elif args.what == "trainer":
        train_trainer(args.output_dir, args.base, args.lora, args.steps, args.every, args.delay)
    else:
        train_plain(args.output_dir, args.steps, args.every, args.delay)


if __name__ == "__main__":
    main()

"""The Python half of the README walkthrough: a tiny model, a LoRA training run, a reload.

No model hub is needed: the base model is built from a transformers config with random weights.
Run from the folder that holds ``.vault/`` (each step prints what it did)::

    python walkthrough.py base base_model/     # a tiny Llama saved as safetensors + data/
    python walkthrough.py train base_model/ runs/   # LoRA with peft, a real Trainer, VaultCallback
    python walkthrough.py load base            # Repository.load_state_dict, checked against
                                               # from_pretrained of the restored model

Needs the ``ml`` extra (torch, transformers, peft).
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

VOCAB = 128

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # keep the walkthrough's output short
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
warnings.filterwarnings("ignore", category=FutureWarning)


def tiny_config():  # type: ignore[no-untyped-def]
    """A Llama small enough to train for a few steps on a CPU in seconds."""
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=VOCAB,
        max_position_embeddings=64,
    )


def build_base(dest: Path) -> None:
    """Save a randomly initialised tiny Llama to ``dest`` and a token data set to ``data/``."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(tiny_config()).save_pretrained(dest)
    data = Path("data")
    data.mkdir(exist_ok=True)
    gen = torch.Generator().manual_seed(1)
    with open(data / "train.jsonl", "w") as f:  # counting sequences: 7, 8, 9, ... (learnable)
        for start in torch.randint(0, VOCAB, (48,), generator=gen).tolist():
            row = [(start + k) % VOCAB for k in range(16)]
            f.write(json.dumps({"input_ids": row}) + "\n")
    print(f"saved a tiny Llama to {dest}/ and 48 training rows to data/train.jsonl")


class TokenRows:
    """The rows of ``data/train.jsonl`` as causal-LM examples (labels are the inputs)."""

    def __init__(self, path: Path, rows: slice) -> None:
        import torch

        lines = path.read_text().splitlines()[rows]
        self.ids = torch.tensor([json.loads(line)["input_ids"] for line in lines])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def train(base: Path, output_dir: Path) -> None:
    """Train a LoRA adapter for 6 steps; VaultCallback commits each checkpoint it saves."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM, Trainer, TrainingArguments

    from vault import Repository
    from vault.integrations import VaultCallback
    from vault.ops.runs import best_pin_name

    torch.manual_seed(0)
    model = get_peft_model(
        LlamaForCausalLM.from_pretrained(base),
        LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            task_type="CAUSAL_LM",
        ),
    )
    repo = Repository.find()  # the nearest .vault/, as the vault command finds it
    callback = VaultCallback(repo, pin_best_metric="eval_loss")
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=6,
        per_device_train_batch_size=8,
        learning_rate=2e-2,
        logging_steps=1,
        save_steps=3,
        eval_strategy="steps",
        eval_steps=3,
        save_total_limit=1,  # the Trainer keeps one checkpoint on disk; vault keeps them all
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    data = Path("data/train.jsonl")
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=TokenRows(data, slice(0, 40)),
        eval_dataset=TokenRows(data, slice(40, None)),
        callbacks=[callback],
    )
    trainer.train()
    for step, result in sorted(callback.versions.items()):
        print(f"step {step}: committed {result.version} ({result.id[:12]})")
    best = [p for p in repo.pins() if p.name == best_pin_name(output_dir.name)]
    if best:
        print(f"pinned as {best[0].name}: {best[0].version} ({best[0].reason})")


def load(rev: str) -> None:
    """Read ``rev``'s weights from the store and check them against a restored model."""
    import tempfile

    import torch
    from transformers import LlamaForCausalLM

    from vault import Repository

    repo = Repository.find()
    state = repo.load_state_dict(rev, "model.safetensors")  # verified, no checkout
    with tempfile.TemporaryDirectory() as tmp:
        repo.checkout(rev, tmp)
        model = LlamaForCausalLM.from_pretrained(tmp)
    for name, tensor in model.state_dict().items():
        if name in state:
            assert torch.equal(state[name], tensor), name
    print(f"{rev}: {len(state)} tensors read from the store, equal to from_pretrained's")


def main() -> None:
    """Parse the step to run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("base").add_argument("dest", type=Path)
    t = steps.add_parser("train")
    t.add_argument("base", type=Path)
    t.add_argument("output_dir", type=Path)
    steps.add_parser("load").add_argument("rev")
    args = parser.parse_args()
    if args.step == "base":
        build_base(args.dest)
    elif args.step == "train":
        train(args.base, args.output_dir)
    else:
        load(args.rev)


if __name__ == "__main__":
    main()

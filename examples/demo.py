"""vault end to end on a small built-in example.

Builds a tiny safetensors "base model" and three LoRA adapter checkpoints (real safetensors files
written with numpy), then runs the command line on them as a user would: init, commit, log,
show, checkout (checked byte for byte), tag, gc, verify and stats.

Usage: ``python examples/demo.py [--workdir DIR]`` (default: a fresh temporary directory).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def build_base(path: Path, rng: np.random.Generator) -> None:
    """A small decoder-like model: embeddings, two layers of projections, norms."""
    path.mkdir(parents=True)
    tensors = {"model.embed_tokens.weight": rng.normal(0, 0.02, (512, 64)).astype(np.float16)}
    for i in range(2):
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            key = f"model.layers.{i}.self_attn.{proj}.weight"
            tensors[key] = rng.normal(0, 0.02, (64, 64)).astype(np.float16)
        tensors[f"model.layers.{i}.input_layernorm.weight"] = np.ones(64, np.float16)
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    config = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 512}
    (path / "config.json").write_text(json.dumps(config, indent=2))
    (path / "tokenizer.json").write_text(json.dumps({"vocab": {f"tok{i}": i for i in range(512)}}))


def build_checkpoint(path: Path, step: int, state: dict[str, np.ndarray]) -> None:
    """A peft-style LoRA checkpoint directory for training step ``step``."""
    path.mkdir(parents=True)
    save_file(state, str(path / "adapter_model.safetensors"))
    adapter_config = {
        "base_model_name_or_path": "demo/base",
        "peft_type": "LORA",
        "r": 8,
        "lora_alpha": 16,
        "target_modules": ["q_proj", "v_proj"],
    }
    (path / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    trainer_state = {
        "global_step": step,
        "log_history": [{"step": s, "loss": 2.0 / (1 + s / 100)} for s in range(10, step + 1, 10)],
    }
    (path / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2))


def vault(repo: Path, *args: str) -> str:
    """Run one vault command, echo it and its output, and return its stdout."""
    cmd = [sys.executable, "-m", "vault", "--repo", str(repo), *args]
    print(f"\n$ vault --repo {repo.name} {shlex.join(args)}")
    done = subprocess.run(cmd, capture_output=True, text=True)
    print(done.stdout, end="")
    if done.returncode != 0:
        print(done.stderr, end="", file=sys.stderr)
        raise SystemExit(f"demo failed: vault {' '.join(args)} exited {done.returncode}")
    return done.stdout


def main(argv: list[str] | None = None) -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where to work (default: a temp dir)")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vault-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    repo = work / "repo"

    base = work / "models" / "base"
    build_base(base, rng)
    state = {}
    for i in range(2):
        for proj in ("q_proj", "v_proj"):
            key = f"base_model.model.model.layers.{i}.self_attn.{proj}"
            state[f"{key}.lora_A.weight"] = rng.normal(0, 0.02, (8, 64)).astype(np.float32)
            state[f"{key}.lora_B.weight"] = np.zeros((64, 8), np.float32)
    checkpoints = []
    for step in (100, 200, 300):
        state = {k: v + rng.normal(0, 0.001, v.shape).astype(np.float32) for k, v in state.items()}
        ckpt = work / "runs" / f"checkpoint-{step}"
        build_checkpoint(ckpt, step, state)
        checkpoints.append(ckpt)

    vault(repo, "init")
    vault(
        repo, "commit", str(base), "-m", "base model", "--tag", "base-model", "--meta", "kind=base"
    )
    for ckpt in checkpoints:
        vault(repo, "commit", str(ckpt), "-m", f"LoRA {ckpt.name}", "--meta", "kind=adapter")
    again = json.loads(
        vault(repo, "commit", str(checkpoints[-1]), "-m", "same bytes again", "--json")
    )
    assert again["unchanged"] and again["new_bytes"] == 0, "the same files make no new version"
    vault(repo, "log")
    vault(repo, "show", "v003")
    out = work / "restored" / "checkpoint-200"
    vault(repo, "checkout", "v003", str(out))
    cmp = filecmp.dircmp(checkpoints[1], out)
    assert not (cmp.diff_files or cmp.left_only or cmp.right_only), "checkout differs"
    print(f"(checked: {out} is byte-identical to {checkpoints[1]})")
    vault(repo, "tag", "best", "latest~1")
    vault(repo, "tag")
    vault(repo, "gc", "--dry-run")
    vault(repo, "gc", "--grace", "0s")
    vault(repo, "verify")
    vault(repo, "stats")
    print(f"\ndemo ok: everything is in {work}")


if __name__ == "__main__":
    main()

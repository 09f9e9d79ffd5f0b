"""Generate a realistic, deterministic fine-tuning artifact series for benchmarks.

The series imitates what a LoRA fine-tuning run of a small Llama-like decoder
leaves on disk, so that a content-addressed store can be benchmarked on data
with realistic sizes, layouts and overlap between versions::

    OUT/base/                          sharded bf16 base model (~ scale GiB)
        model-0000k-of-0000K.safetensors
        model.safetensors.index.json
        config.json, generation_config.json, tokenizer.json
    OUT/checkpoints/checkpoint-{100..1000}/
        adapter_model.safetensors      fp32 LoRA (q_proj, v_proj; r=16)
        adapter_config.json, trainer_state.json
    OUT/merged/merged-{1,2,3}/         base + merged LoRA delta; only the
                                       q_proj / v_proj weights differ from base

Everything is deterministic given the seed, and the model is written tensor by
tensor in blocks, so peak memory stays far below the model size.

Usage::

    python benchmarks/series.py OUT [--scale S] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from safetensors.numpy import load_file, save_file

GIB = 1 << 30
"""Nominal base model size at ``scale=1.0``, in bytes."""

MAX_SHARD_BYTES = 500_000_000
"""Maximum shard size at ``scale=1.0`` (Hugging Face ``max_shard_size="500MB"``)."""

BLOCK_ELEMENTS = 4 << 20
"""Number of tensor elements generated and written per block."""

INIT_STD = 0.02
"""Standard deviation of the generated base model weights."""

CHECKPOINT_STEPS = tuple(range(100, 1001, 100))
"""Training steps at which LoRA checkpoints are saved."""

MERGE_STEPS = (400, 700, 1000)
"""Checkpoint steps merged into ``merged-1``, ``merged-2`` and ``merged-3``."""

LORA_R = 16
LORA_ALPHA = 32
LORA_TARGETS = ("q_proj", "v_proj")
LOGGING_STEPS = 10
BASE_MODEL_NAME = "vault-bench/llama-tiny"

# Tags separating the independent random streams derived from the seed.
_TAG_BASE = 1
_TAG_LORA_INIT = 2
_TAG_LORA_STEP = 3
_TAG_TRAINER = 4
_TAG_TOKENIZER = 5


@dataclass(frozen=True)
class TensorSpec:
    """A tensor of the base model.

    Attributes:
        name: State-dict key, e.g. ``model.layers.0.self_attn.q_proj.weight``.
        shape: Tensor shape.
        index: Position in the canonical (module) order; seeds its RNG stream.
        kind: ``"weight"`` for N(0, 0.02) matrices, ``"norm"`` for RMSNorm
            scales close to 1.0.
    """

    name: str
    shape: tuple[int, ...]
    index: int
    kind: str

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Size in bytes when stored as bf16."""
        return 2 * self.numel


# --------------------------------------------------------------------------
# Model design
# --------------------------------------------------------------------------


def design_config(scale: float = 1.0) -> dict[str, Any]:
    """Choose Llama dimensions whose bf16 weights total about ``scale`` GiB.

    Hidden size and vocabulary shrink with the cube root of the scale (capped
    at 1536 / 32000 style proportions), the MLP width follows Llama's
    ``multiple_of=256`` rule, and the number of layers fills the remaining
    budget.

    Args:
        scale: Target size as a multiple of 1 GiB; must be positive.

    Returns:
        A ``LlamaConfig``-style dictionary, as written to ``config.json``.

    Raises:
        ValueError: If ``scale`` is not positive.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    target = scale * GIB
    root = scale ** (1.0 / 3.0)
    hidden = max(256, 128 * round(1536 * root / 128))
    head_dim = 128 if hidden >= 1024 else 64
    heads = hidden // head_dim
    kv_heads = max(d for d in range(1, heads + 1) if heads % d == 0 and (d <= heads // 3 or d == 1))
    intermediate = 256 * math.ceil(int(8 * hidden / 3) / 256)
    vocab = 32000 if scale >= 1 else max(1024, 64 * round(32000 * root / 64))
    kv_dim = kv_heads * head_dim
    per_layer = 2 * (
        2 * hidden * hidden + 2 * hidden * kv_dim + 3 * hidden * intermediate + 2 * hidden
    )
    fixed = 2 * (2 * vocab * hidden + hidden)
    layers = max(1, round((target - fixed) / per_layer))
    return {
        "_name_or_path": BASE_MODEL_NAME,
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": INIT_STD,
        "intermediate_size": intermediate,
        "max_position_embeddings": 4096,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.44.2",
        "use_cache": True,
        "vocab_size": vocab,
    }


def tensor_specs(config: dict[str, Any]) -> list[TensorSpec]:
    """List the model's tensors in module (state-dict) order.

    Args:
        config: Dictionary from :func:`design_config`.

    Returns:
        One :class:`TensorSpec` per tensor: embeddings, per-layer attention,
        MLP and norm weights, the final norm and ``lm_head``.
    """
    h = config["hidden_size"]
    inter = config["intermediate_size"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    q = config["num_attention_heads"] * config["head_dim"]
    entries: list[tuple[str, tuple[int, ...], str]] = [
        ("model.embed_tokens.weight", (config["vocab_size"], h), "weight")
    ]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        entries += [
            (p + "self_attn.q_proj.weight", (q, h), "weight"),
            (p + "self_attn.k_proj.weight", (kv, h), "weight"),
            (p + "self_attn.v_proj.weight", (kv, h), "weight"),
            (p + "self_attn.o_proj.weight", (h, q), "weight"),
            (p + "mlp.gate_proj.weight", (inter, h), "weight"),
            (p + "mlp.up_proj.weight", (inter, h), "weight"),
            (p + "mlp.down_proj.weight", (h, inter), "weight"),
            (p + "input_layernorm.weight", (h,), "norm"),
            (p + "post_attention_layernorm.weight", (h,), "norm"),
        ]
    entries += [
        ("model.norm.weight", (h,), "norm"),
        ("lm_head.weight", (config["vocab_size"], h), "weight"),
    ]
    return [TensorSpec(name, shape, i, kind) for i, (name, shape, kind) in enumerate(entries)]


def plan_shards(specs: list[TensorSpec], max_shard_bytes: int) -> list[list[TensorSpec]]:
    """Split tensors into shards greedily, like ``transformers``' ``max_shard_size``.

    Args:
        specs: Tensors in module order.
        max_shard_bytes: A new shard starts when the next tensor would push the
            current one past this size.

    Returns:
        The shards, each a list of tensors in module order.
    """
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


# --------------------------------------------------------------------------
# bf16 safetensors I/O
# --------------------------------------------------------------------------


def to_bf16(values: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (round to nearest, ties to even).

    Args:
        values: Contiguous float32 array. It is overwritten (used as scratch).

    Returns:
        Little-endian uint16 array holding the bf16 bit patterns.
    """
    bits = values.view(np.uint32)
    lsb = bits >> 16
    lsb &= 1
    bits += 0x7FFF
    bits += lsb
    bits >>= 16
    return bits.astype("<u2")


def from_bf16(bits: np.ndarray) -> np.ndarray:
    """Widen bf16 bit patterns (uint16) to float32 exactly.

    Args:
        bits: Array of bf16 bit patterns.

    Returns:
        float32 array of the same shape.
    """
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _safetensors_header(specs: list[TensorSpec]) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """Build a bf16 safetensors header; tensor data is laid out sorted by name.

    Args:
        specs: Tensors of one file.

    Returns:
        The encoded header (length prefix included, padded to 8 bytes) and the
        ``[start, end)`` data offsets of each tensor.
    """
    offsets: dict[str, tuple[int, int]] = {}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    pos = 0
    for spec in sorted(specs, key=lambda s: s.name):
        offsets[spec.name] = (pos, pos + spec.nbytes)
        header[spec.name] = {
            "dtype": "BF16",
            "shape": list(spec.shape),
            "data_offsets": [pos, pos + spec.nbytes],
        }
        pos += spec.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, offsets


def read_safetensors_header(path: str | Path) -> tuple[dict[str, Any], int]:
    """Parse the JSON header of a safetensors file without loading tensors.

    Args:
        path: File to read.

    Returns:
        The header dictionary and the file offset where tensor data begins.
    """
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return header, 8 + n


def _write_tensor(f: BinaryIO, spec: TensorSpec, seed: int) -> None:
    """Generate one base tensor block by block and append it as bf16.

    Args:
        f: File positioned where the tensor's data starts.
        spec: Tensor to generate.
        seed: Series seed.
    """
    rng = np.random.default_rng([seed, _TAG_BASE, spec.index])
    remaining = spec.numel
    while remaining:
        n = min(remaining, BLOCK_ELEMENTS)
        block = rng.standard_normal(n, dtype=np.float32)
        block *= INIT_STD
        if spec.kind == "norm":
            block += 1.0
        f.write(to_bf16(block).data)
        remaining -= n


# --------------------------------------------------------------------------
# Auxiliary files
# --------------------------------------------------------------------------


def _write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, the way ``transformers`` does."""
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _tokenizer_json(vocab_size: int, seed: int) -> dict[str, Any]:
    """Build a plausible Llama-style (SentencePiece BPE) ``tokenizer.json``.

    Args:
        vocab_size: Number of vocabulary entries.
        seed: Series seed.

    Returns:
        The tokenizer dictionary in Hugging Face ``tokenizers`` format.
    """
    rng = np.random.default_rng([seed, _TAG_TOKENIZER])
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    freq = np.linspace(2.0, 0.2, len(letters))
    freq /= freq.sum()
    special = ["<unk>", "<s>", "</s>"]
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(special)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    merges: list[str] = []
    while len(vocab) < vocab_size:
        length = int(rng.integers(2, 10))
        word = "".join(rng.choice(letters, size=length, p=freq))
        if rng.random() < 0.6:
            word = "\u2581" + word
        if word in vocab:
            continue
        cut = int(rng.integers(1, len(word)))
        merges.append(f"{word[:cut]} {word[cut:]}")
        vocab[word] = len(vocab)
    added = [
        {
            "id": i,
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, tok in enumerate(special)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "\u2581"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            ],
        },
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<s>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


def _generation_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return the ``generation_config.json`` contents for ``config``."""
    return {
        "bos_token_id": config["bos_token_id"],
        "eos_token_id": config["eos_token_id"],
        "max_length": config["max_position_embeddings"],
        "pad_token_id": 0,
        "temperature": 0.6,
        "top_p": 0.9,
        "do_sample": True,
        "transformers_version": config["transformers_version"],
    }


def _adapter_config() -> dict[str, Any]:
    """Return ``adapter_config.json`` as written by ``peft`` for a LoRA run."""
    return {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": BASE_MODEL_NAME,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": LORA_ALPHA,
        "lora_dropout": 0.05,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": LORA_R,
        "rank_pattern": {},
        "revision": None,
        "target_modules": list(LORA_TARGETS),
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }


def _log_history(seed: int, max_steps: int) -> list[dict[str, Any]]:
    """Simulate the trainer's ``log_history`` for a whole run.

    Args:
        seed: Series seed.
        max_steps: Total number of optimizer steps.

    Returns:
        Training log entries every ``LOGGING_STEPS`` steps and an evaluation
        entry every 100 steps, in step order.
    """
    rng = np.random.default_rng([seed, _TAG_TRAINER])
    steps_per_epoch = 312
    peak_lr, warmup = 2e-4, 30
    history: list[dict[str, Any]] = []
    for step in range(LOGGING_STEPS, max_steps + 1, LOGGING_STEPS):
        epoch = round(step / steps_per_epoch, 4)
        if step < warmup:
            lr = peak_lr * step / warmup
        else:
            lr = 0.5 * peak_lr * (1 + math.cos(math.pi * (step - warmup) / (max_steps - warmup)))
        loss = 0.95 + 1.25 * math.exp(-step / 220) + float(rng.normal(0, 0.04))
        history.append(
            {
                "epoch": epoch,
                "grad_norm": round(
                    0.35 + 0.6 * math.exp(-step / 300) + abs(float(rng.normal(0, 0.05))), 6
                ),
                "learning_rate": lr,
                "loss": round(loss, 4),
                "step": step,
            }
        )
        if step % 100 == 0:
            runtime = 41.0 + float(rng.normal(0, 0.8))
            history.append(
                {
                    "epoch": epoch,
                    "eval_loss": round(
                        1.02 + 1.1 * math.exp(-step / 240) + float(rng.normal(0, 0.01)), 6
                    ),
                    "eval_runtime": round(runtime, 4),
                    "eval_samples_per_second": round(500 / runtime, 3),
                    "eval_steps_per_second": round(63 / runtime, 3),
                    "step": step,
                }
            )
    return history


def _trainer_state(step: int, history: list[dict[str, Any]], max_steps: int) -> dict[str, Any]:
    """Return ``trainer_state.json`` contents for the checkpoint at ``step``."""
    evals = [e for e in history if "eval_loss" in e and e["step"] <= step]
    best = min(evals, key=lambda e: e["eval_loss"]) if evals else None
    return {
        "best_metric": best["eval_loss"] if best else None,
        "best_model_checkpoint": f"output/checkpoint-{best['step']}" if best else None,
        "epoch": round(step / 312, 4),
        "eval_steps": 100,
        "global_step": step,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": [e for e in history if e["step"] <= step],
        "logging_steps": LOGGING_STEPS,
        "max_steps": max_steps,
        "num_input_tokens_seen": 0,
        "num_train_epochs": math.ceil(max_steps / 312),
        "save_steps": 100,
        "stateful_callbacks": {
            "TrainerControl": {
                "args": {
                    "should_epoch_stop": False,
                    "should_evaluate": False,
                    "should_log": False,
                    "should_save": True,
                    "should_training_stop": step >= max_steps,
                },
                "attributes": {},
            }
        },
        "total_flos": float(step) * 2.71e14,
        "train_batch_size": 4,
        "trial_name": None,
        "trial_params": None,
    }


# --------------------------------------------------------------------------
# Series parts
# --------------------------------------------------------------------------


def _dir_summary(path: Path) -> dict[str, Any]:
    """Return the path, sorted file list and byte total of a directory."""
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {"path": path, "files": files, "bytes": sum(p.stat().st_size for p in files)}


def _write_base(base: Path, config: dict[str, Any], scale: float, seed: int) -> None:
    """Write the sharded bf16 base model and its auxiliary files.

    Args:
        base: Output directory (created if needed).
        config: Model configuration from :func:`design_config`.
        scale: Size scale; shards are at most ``scale * MAX_SHARD_BYTES``.
        seed: Series seed.
    """
    base.mkdir(parents=True, exist_ok=True)
    shards = plan_shards(tensor_specs(config), max(1, int(scale * MAX_SHARD_BYTES)))
    weight_map: dict[str, str] = {}
    total = 0
    for k, shard in enumerate(shards, start=1):
        name = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        header, _ = _safetensors_header(shard)
        with open(base / name, "wb") as f:
            f.write(header)
            for spec in sorted(shard, key=lambda s: s.name):
                _write_tensor(f, spec, seed)
        for spec in shard:
            weight_map[spec.name] = name
            total += spec.nbytes
    _write_json(
        base / "model.safetensors.index.json",
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
    )
    _write_json(base / "config.json", config)
    _write_json(base / "generation_config.json", _generation_config(config))
    (base / "tokenizer.json").write_text(
        json.dumps(_tokenizer_json(config["vocab_size"], seed), indent=2, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )


def _lora_keys(config: dict[str, Any]) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """List LoRA-adapted modules as ``(prefix, A shape, B shape)`` tuples."""
    h = config["hidden_size"]
    out = {
        "q_proj": config["num_attention_heads"] * config["head_dim"],
        "v_proj": config["num_key_value_heads"] * config["head_dim"],
    }
    return [
        (f"base_model.model.model.layers.{i}.self_attn.{t}", (LORA_R, h), (out[t], LORA_R))
        for i in range(config["num_hidden_layers"])
        for t in LORA_TARGETS
    ]


def _write_checkpoints(root: Path, config: dict[str, Any], seed: int) -> list[Path]:
    """Write the LoRA checkpoints ``checkpoint-100`` ... ``checkpoint-1000``.

    The adapter starts from a peft-like state (kaiming-uniform ``lora_A``, small
    ``lora_B``) and every tensor takes a Gaussian step of a few percent of its
    RMS between successive checkpoints, so no tensor repeats exactly.

    Args:
        root: The ``checkpoints`` directory.
        config: Model configuration.
        seed: Series seed.

    Returns:
        Checkpoint directories in step order.
    """
    h = config["hidden_size"]
    rng = np.random.default_rng([seed, _TAG_LORA_INIT])
    bound = 1.0 / math.sqrt(h)
    state: dict[str, np.ndarray] = {}
    for prefix, a_shape, b_shape in _lora_keys(config):
        state[prefix + ".lora_A.weight"] = rng.uniform(-bound, bound, a_shape).astype(np.float32)
        state[prefix + ".lora_B.weight"] = rng.normal(0.0, 3e-3, b_shape).astype(np.float32)
    max_steps = CHECKPOINT_STEPS[-1]
    history = _log_history(seed, max_steps)
    adapter_config = _adapter_config()
    dirs = []
    for n, step in enumerate(CHECKPOINT_STEPS):
        if n:
            step_rng = np.random.default_rng([seed, _TAG_LORA_STEP, step])
            rel = float(step_rng.uniform(0.01, 0.05))
            for key in sorted(state):
                value = state[key]
                rms = float(np.sqrt(np.mean(np.square(value, dtype=np.float64))))
                value += step_rng.standard_normal(value.shape, dtype=np.float32) * np.float32(
                    rel * rms
                )
        ckpt = root / f"checkpoint-{step}"
        ckpt.mkdir(parents=True, exist_ok=True)
        save_file(state, str(ckpt / "adapter_model.safetensors"), metadata={"format": "pt"})
        _write_json(ckpt / "adapter_config.json", adapter_config)
        _write_json(ckpt / "trainer_state.json", _trainer_state(step, history, max_steps))
        dirs.append(ckpt)
    return dirs


def _write_merged(base: Path, dest: Path, adapter: Path) -> None:
    """Write ``base`` with a LoRA adapter merged into its q_proj/v_proj weights.

    The shards are copied from ``base`` and only the targeted tensors are
    rewritten in place as ``bf16(W + (B @ A) * lora_alpha / r)``; every other
    byte stays identical to the base model.

    Args:
        base: Base model directory.
        dest: Output directory (created if needed).
        adapter: Checkpoint directory holding ``adapter_model.safetensors``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    lora = load_file(str(adapter / "adapter_model.safetensors"))
    scaling = np.float32(LORA_ALPHA / LORA_R)
    for src in sorted(base.iterdir()):
        shutil.copyfile(src, dest / src.name)
    for shard in sorted(dest.glob("model-*.safetensors")):
        header, data_start = read_safetensors_header(shard)
        with open(shard, "r+b") as f:
            for name, meta in header.items():
                module = name.rsplit(".", 1)[0]  # model.layers.i.self_attn.q_proj
                prefix = f"base_model.model.{module}"
                if name == "__metadata__" or prefix + ".lora_A.weight" not in lora:
                    continue
                start, end = meta["data_offsets"]
                f.seek(data_start + start)
                weight = from_bf16(
                    np.frombuffer(f.read(end - start), dtype="<u2").reshape(meta["shape"])
                )
                delta = lora[prefix + ".lora_B.weight"] @ lora[prefix + ".lora_A.weight"]
                delta *= scaling
                weight += delta
                f.seek(data_start + start)
                f.write(to_bf16(weight).data)


def generate(out_dir: str | Path, scale: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """Write the whole artifact series under ``out_dir``.

    Existing files with the same names are overwritten.

    Args:
        out_dir: Output directory (created if needed).
        scale: Base model size as a multiple of 1 GiB (e.g. 0.05 for ~50 MB).
        seed: Seed making the output byte-for-byte reproducible.

    Returns:
        A description of what was written::

            {
                "out_dir": Path, "scale": float, "seed": int,
                "config": dict,                      # the model's config.json
                "base": {"path", "files", "bytes"},
                "checkpoints": [{"step", "path", "files", "bytes"}, ...],
                "merged": [{"name", "source_step", "path", "files", "bytes"}, ...],
                "total_bytes": int,
            }

        Paths are :class:`pathlib.Path` objects and ``files`` lists every
        file of that version.
    """
    out = Path(out_dir)
    config = design_config(scale)
    base = out / "base"
    _write_base(base, config, scale, seed)
    ckpts = _write_checkpoints(out / "checkpoints", config, seed)
    by_step = dict(zip(CHECKPOINT_STEPS, ckpts, strict=True))
    merged = []
    for i, step in enumerate(MERGE_STEPS, start=1):
        dest = out / "merged" / f"merged-{i}"
        _write_merged(base, dest, by_step[step])
        merged.append({"name": dest.name, "source_step": step, **_dir_summary(dest)})
    info: dict[str, Any] = {
        "out_dir": out,
        "scale": scale,
        "seed": seed,
        "config": config,
        "base": _dir_summary(base),
        "checkpoints": [{"step": s, **_dir_summary(p)} for s, p in by_step.items()],
        "merged": merged,
    }
    info["total_bytes"] = info["base"]["bytes"] + sum(
        part["bytes"] for part in info["checkpoints"] + info["merged"]
    )
    return info


def version_order(info: dict[str, Any]) -> list[Path]:
    """Return the 14 version directories in benchmark commit order.

    Args:
        info: Dictionary returned by :func:`generate`.

    Returns:
        ``base``, ``checkpoint-100`` ... ``checkpoint-1000``, then
        ``merged-1`` ... ``merged-3``.
    """
    return (
        [info["base"]["path"]]
        + [c["path"] for c in info["checkpoints"]]
        + [m["path"] for m in info["merged"]]
    )


def _format_bytes(n: float) -> str:
    """Format a byte count with a binary unit."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: generate the series and print a summary.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        Process exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="base model size in GiB (default 1.0)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if not args.scale > 0:
        parser.error("--scale must be positive")
    start = time.perf_counter()
    info = generate(args.out, scale=args.scale, seed=args.seed)
    elapsed = time.perf_counter() - start
    cfg = info["config"]
    print(
        f"model: hidden={cfg['hidden_size']} layers={cfg['num_hidden_layers']} "
        f"intermediate={cfg['intermediate_size']} heads={cfg['num_attention_heads']}/"
        f"{cfg['num_key_value_heads']} vocab={cfg['vocab_size']}"
    )
    rows = [("base", info["base"])]
    rows += [(c["path"].name, c) for c in info["checkpoints"]]
    rows += [(m["path"].name, m) for m in info["merged"]]
    for label, part in rows:
        print(f"  {label:<16} {len(part['files']):>3} files  {_format_bytes(part['bytes']):>12}")
    ckpt_bytes = sum(c["bytes"] for c in info["checkpoints"])
    merged_bytes = sum(m["bytes"] for m in info["merged"])
    print(
        f"base {_format_bytes(info['base']['bytes'])}, checkpoints {_format_bytes(ckpt_bytes)}, "
        f"merged {_format_bytes(merged_bytes)}, total {_format_bytes(info['total_bytes'])} "
        f"in {elapsed:.1f}s -> {info['out_dir']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

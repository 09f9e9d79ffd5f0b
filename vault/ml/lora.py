"""What a LoRA adapter changes, and whether a base model has it: checked from safetensors headers
alone, before anything heavy is loaded.

A peft adapter directory holds ``adapter_config.json`` and ``adapter_model.safetensors``, whose
keys are the model's module paths under ``base_model.model.``:

=========================================  ================================================
``M.lora_A.weight`` / ``M.lora_B.weight``  low-rank factors of module ``M``: ``B @ A`` has the
                                           shape of ``M.weight`` (transposed with
                                           ``fan_in_fan_out``; for convolutions the first two
                                           dimensions)
``M.lora_embedding_A`` / ``_B``            an embedding's factors: ``(B @ A).T`` has its shape
``M.lora_B.bias``, ``M.lora_magnitude_vector``  a LoRA bias, DoRA magnitudes: ``M`` must exist
``M.base_layer.P``                         a saved copy of the base's ``M.P`` (same shape)
anything else                              a full replacement (``modules_to_save``) of the
                                           base tensor with that name (same shape)
=========================================  ================================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import AdapterMismatch
from ..safetensors_format import TensorInfo

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."

_FACTOR = re.compile(r"(?P<mod>.+)\.(?P<which>lora_A|lora_B)\.weight\Z")
_EMBED = re.compile(r"(?P<mod>.+)\.(?P<which>lora_embedding_A|lora_embedding_B)\Z")
_EXTRA = re.compile(r"(?P<mod>.+)\.(?:lora_B\.bias|lora_magnitude_vector(?:\.weight)?)\Z")
_SAVED = re.compile(r"(?P<mod>.+)\.base_layer\.(?P<param>[^.]+)\Z")


@dataclass(frozen=True)
class AdapterConfig:
    """The parts of ``adapter_config.json`` consolidation uses.

    Attributes:
        raw: the whole document.
        peft_type: ``LORA`` for a LoRA adapter.
        base_model: ``base_model_name_or_path`` (``None`` when empty).
        fan_in_fan_out: whether the base stores weights as ``(in, out)``.
    """

    raw: dict
    peft_type: str
    base_model: str | None
    fan_in_fan_out: bool


def parse_config(data: bytes, where: str) -> AdapterConfig:
    """Parse an ``adapter_config.json``; only LoRA adapters are accepted."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise AdapterMismatch(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise AdapterMismatch(f"{where} is not a JSON object")
    peft_type = str(doc.get("peft_type") or "")
    if peft_type.upper() != "LORA":
        raise AdapterMismatch(f"{where}: peft_type is {peft_type or 'missing'}, not LORA")
    return AdapterConfig(
        raw=doc,
        peft_type=peft_type,
        base_model=doc.get("base_model_name_or_path") or None,
        fan_in_fan_out=bool(doc.get("fan_in_fan_out")),
    )


def _find(base: Mapping[str, TensorInfo], name: str) -> TensorInfo | None:
    """The base tensor ``name``, tolerating a differing leading prefix on either side (a base
    saved from a bare backbone has ``layers.0...`` where the adapter says ``model.layers.0...``).
    """
    if name in base:
        return base[name]
    hits = [k for k in base if name.endswith("." + k) or k.endswith("." + name)]
    return base[hits[0]] if len(hits) == 1 else None


def check_adapter(
    adapter: Mapping[str, TensorInfo], base: Mapping[str, TensorInfo], config: AdapterConfig
) -> list[str]:
    """Check that every module the adapter touches exists in the base with matching shapes.

    Args:
        adapter: the adapter's tensors (from its safetensors header).
        base: every tensor of the base model (from the headers of all its safetensors files).
        config: the adapter's configuration.

    Returns:
        The module paths the adapter targets, sorted.

    Raises:
        AdapterMismatch: naming every missing module and every shape that does not fit (the
            first few, with a count).
    """
    if not adapter:
        raise AdapterMismatch("the adapter has no tensors")
    problems: list[str] = []
    factors: dict[str, dict[str, TensorInfo]] = {}
    modules: set[str] = set()
    for key, info in adapter.items():
        name = key[len(PREFIX) :] if key.startswith(PREFIX) else key
        m = _FACTOR.match(name) or _EMBED.match(name)
        if m:
            factors.setdefault(m["mod"], {})[m["which"]] = info
            modules.add(m["mod"])
            continue
        m = _EXTRA.match(name)
        if m:
            modules.add(m["mod"])
            if _find(base, m["mod"] + ".weight") is None:
                problems.append(f"module {m['mod']} is not in the base model")
            continue
        m = _SAVED.match(name)
        target = f"{m['mod']}.{m['param']}" if m else name
        found = _find(base, target)
        if found is None:
            problems.append(f"tensor {target} is not in the base model")
        elif found.shape != info.shape:
            problems.append(
                f"{target}: adapter has shape {list(info.shape)}, base {list(found.shape)}"
            )
    for mod, parts in sorted(factors.items()):
        problems.extend(_check_factors(mod, parts, base, config))
    if problems:
        shown = "; ".join(problems[:4]) + (
            f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
        )
        raise AdapterMismatch(f"the adapter does not fit the base model: {shown}")
    return sorted(modules)


def _check_factors(
    mod: str, parts: dict[str, TensorInfo], base: Mapping[str, TensorInfo], config: AdapterConfig
) -> list[str]:
    embedding = "lora_embedding_A" in parts or "lora_embedding_B" in parts
    a = parts.get("lora_embedding_A" if embedding else "lora_A")
    b = parts.get("lora_embedding_B" if embedding else "lora_B")
    if a is None or b is None:
        return [f"module {mod}: the adapter has only one of its two LoRA factors"]
    weight = _find(base, mod + ".weight")
    if weight is None:
        return [f"module {mod} is not in the base model"]
    if len(a.shape) < 2 or len(b.shape) < 2 or len(weight.shape) < 2:
        return [f"module {mod}: LoRA factors or base weight are not matrices"]
    if a.shape[0] != b.shape[1]:
        return [f"module {mod}: LoRA ranks differ ({a.shape[0]} and {b.shape[1]})"]
    if embedding:
        expected = (a.shape[1], b.shape[0])  # (num_embeddings, embedding_dim)
    else:
        expected = (b.shape[0], a.shape[1])  # (out_features, in_features)
        if config.fan_in_fan_out:
            expected = expected[::-1]
    if tuple(weight.shape[:2]) != expected:
        return [
            f"module {mod}: LoRA update has shape {list(expected)}, base weight"
            f" {list(weight.shape)}"
        ]
    return []

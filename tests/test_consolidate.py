"""vault consolidate: a real peft LoRA adapter merged into a tiny transformers model.

The base is a two-layer Llama built from a config (no model hub), the adapter a peft LoRA on it
whose ``lora_B`` is perturbed so that the merge changes the weights. The merged version must load
with ``from_pretrained`` and give the logits of peft's ``merge_and_unload`` in memory. Failures
(a wrong adapter, a crash at each step, a full disk) must leave refs, objects and the user's
directories exactly as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from faultkit import (
    assert_clean_error,
    assert_verify_ok,
    object_files,
    ok,
    run_vault,
    run_vault_failing,
    snapshot,
    vault_env,
)
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

from vault import Repository
from vault.errors import AdapterMismatch, ConsolidateError, PathNotFound

TARGETS = ["q_proj", "v_proj", "embed_tokens"]


def tiny_config(hidden: int = 32) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=128,
    )


def make_base(path: Path, *, seed: int = 0, hidden: int = 32, dtype=torch.float32) -> Path:
    torch.manual_seed(seed)
    LlamaForCausalLM(tiny_config(hidden)).to(dtype).save_pretrained(path)
    (path / "tokenizer.json").write_text(json.dumps({"vocab": {f"t{i}": i for i in range(128)}}))
    (path / "special_tokens_map.json").write_text('{"eos_token": "t0"}')
    return path


def make_adapter(base: Path, path: Path, *, seed: int = 1, targets=TARGETS) -> Path:
    """A LoRA adapter for the model in ``base``, with non-zero ``lora_B`` (a non-trivial merge)."""
    model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name or "lora_embedding_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    peft_model.save_pretrained(path)
    cfg = json.loads((path / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = None  # as for a base that never had a hub name
    (path / "adapter_config.json").write_text(json.dumps(cfg))
    return path


def peft_merged(base: Path, adapter: Path) -> torch.nn.Module:
    model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
    return PeftModel.from_pretrained(model, adapter).merge_and_unload().eval()


def logits(model: torch.nn.Module) -> torch.Tensor:
    ids = torch.arange(0, 96, dtype=torch.long).reshape(3, 32) % 128
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Built once: a base, its adapter, an adapter for a wider model, a bf16 base."""
    root = tmp_path_factory.mktemp("models")
    base = make_base(root / "base")
    wide = make_base(root / "wide", hidden=48)
    return {
        "base": base,
        "adapter": make_adapter(base, root / "adapter"),
        "wrong_shape": make_adapter(wide, root / "wrong_shape"),
        "bf16_base": make_base(root / "bf16_base", dtype=torch.bfloat16),
    }


@pytest.fixture
def work(models: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """Private copies of the model directories (tests delete and compare them)."""
    return {k: Path(shutil.copytree(v, tmp_path / "user" / k)) for k, v in models.items()}


def repo_state(root: Path) -> tuple[bytes, bytes, set[str]]:
    """What must not change when consolidation fails: refs.json, the reflog, the objects."""
    reflog = root / "logs" / "reflog.jsonl"
    return (
        (root / "refs.json").read_bytes(),
        reflog.read_bytes() if reflog.exists() else b"",
        set(object_files(root)),
    )


def test_api_merge_gives_peft_outputs(repo: Repository, work: dict[str, Path], tmp_path) -> None:
    before = {k: snapshot(work[k]) for k in ("base", "adapter")}
    result = repo.consolidate(work["base"], work["adapter"], message="merged adapter")
    assert result.version == "v001"
    assert result.dtype == "fp32"
    assert "model.layers.0.self_attn.q_proj" in result.modules
    refs = repo.refs.read().refs
    assert refs["base"] == refs["latest"] == refs["versions/v001"] == result.id
    pins = {p.name: p for p in repo.pins()}
    assert set(pins) == set(result.pins) and len(pins) == 2
    assert {p.type for p in pins.values()} == {"pre_consolidation"}
    assert {p.id for p in pins.values()} == {result.base, result.adapter}
    lineage = repo.show("v001").meta["lineage"]
    assert (lineage["base"], lineage["adapter"]) == (result.base, result.adapter)
    assert lineage["dtype"] == "fp32"
    assert {"peft", "transformers", "torch"} <= set(lineage)
    # The base and the adapter are stored: pinned versions with exactly the user's files.
    for src, oid in (("base", result.base), ("adapter", result.adapter)):
        dest = tmp_path / f"co-{src}"
        repo.checkout(oid, dest)
        assert snapshot(dest) == before[src]
    assert {k: snapshot(work[k]) for k in ("base", "adapter")} == before  # untouched
    assert list((repo.root / "tmp").iterdir()) == []

    out = tmp_path / "merged"
    repo.checkout("base", out)
    assert {"config.json", "model.safetensors", "tokenizer.json", "special_tokens_map.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "adapter_config.json").exists()
    loaded = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    expected = logits(peft_merged(work["base"], work["adapter"]))
    torch.testing.assert_close(logits(loaded), expected, atol=1e-5, rtol=1e-5)
    plain = logits(LlamaForCausalLM.from_pretrained(work["base"], dtype=torch.float32).eval())
    assert (expected - plain).abs().max() > 1e-2  # the merge really changed the model
    changed = {t.name for t in repo.diff(result.base, "v001").tensors}
    assert "model.layers.0.self_attn.q_proj.weight" in changed
    assert "model.layers.0.mlp.up_proj.weight" not in changed  # not targeted: same bytes


def test_cli_with_revisions_dtype_and_training_data(
    repo: Repository, work: dict[str, Path], vault_cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    repo.commit(work["base"], "base model")
    repo.commit(work["adapter"], "adapter")
    data = [tmp_path / "train.jsonl", tmp_path / "eval.jsonl"]
    data[0].write_text('{"text": "hello"}\n')
    data[1].write_text('{"text": "hi"}\n')
    result = vault_cli(
        "consolidate", "--base", "v001", "--adapter", "v002", "-m", "merged in bf16",
        "--training-data", str(data[0]), str(data[1]), "--dtype", "bf16", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["version"] == "v003"
    assert doc["id"] == repo.resolve("base") == repo.resolve("latest")
    assert (doc["base_version"], doc["adapter_version"]) == ("v001", "v002")
    assert {p.version for p in repo.pins()} == {"v001", "v002"}
    shown = repo.show("v003")
    assert shown.meta["lineage"]["base"] == repo.resolve("v001")
    assert shown.meta["lineage"]["adapter"] == repo.resolve("v002")
    # The merge belongs to the adapter's run, on top of it, not to a scratch folder's name.
    assert shown.run == repo.show("v002").run == work["adapter"].parent.name
    assert shown.parents == [repo.resolve("v002")]
    assert "checkpoint" not in repo.store.get_version(repo.resolve("v003")).training
    assert [(d["path"], d["size"]) for d in shown.data] == [  # relative to the project folder
        ("train.jsonl", 18),
        ("eval.jsonl", 15),
    ]

    # The stored weights are peft's fp32 merge cast to bf16, exactly.
    merged = repo.load_state_dict("v003", "model.safetensors")
    reference = peft_merged(work["base"], work["adapter"]).state_dict()
    assert {t.dtype for t in merged.values()} == {torch.bfloat16}
    for name, t in merged.items():
        assert torch.equal(t, reference[name].to(torch.bfloat16)), name


def test_a_directory_holding_a_version_is_that_version(
    repo: Repository, work: dict[str, Path]
) -> None:
    first = repo.commit(work["base"], "the base")
    result = repo.consolidate(work["base"], work["adapter"], message="merged")
    assert (result.base, result.base_version) == (first.id, "v001")
    assert result.adapter_version is None
    assert {p.version for p in repo.pins()} == {"v001", None}
    assert repo.show("v002").base_model == "v001"


def test_default_dtype_is_the_bases(repo: Repository, work: dict[str, Path]) -> None:
    result = repo.consolidate(work["bf16_base"], work["adapter"], message="bf16 base")
    assert result.dtype == "bf16"
    dtypes = {t.dtype for t in repo.load_state_dict("latest", "model.safetensors").values()}
    assert dtypes == {torch.bfloat16}
    again = repo.consolidate(result.base, result.adapter, message="fp32", dtype="fp32")
    assert again.version == "v002" and again.base == result.base
    dtypes = {t.dtype for t in repo.load_state_dict("latest", "model.safetensors").values()}
    assert dtypes == {torch.float32}


def _rename_module(adapter: Path, old: str, new: str) -> None:
    f = adapter / "adapter_model.safetensors"
    tensors = load_file(str(f))
    save_file({k.replace(old, new): v for k, v in tensors.items()}, str(f))


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("wrong_shape", ["does not fit", "q_proj", "shape"]),
        ("missing_module", ["does not fit", "model.layers.0.self_attn.x_proj", "not in the base"]),
        ("not_an_adapter", ["adapter_config.json", "not a peft adapter"]),
        ("base_is_no_model", ["no config.json"]),
        ("unknown_revision", ["v042", "neither a directory nor a revision"]),
        ("missing_data", ["path not found", "nope.jsonl"]),
    ],
)
def test_bad_input_changes_nothing(
    repo: Repository, work: dict[str, Path], tmp_path: Path, case: str, needles: list[str]
) -> None:
    repo.commit(work["base"], "base")
    base, adapter, extra = str(work["base"]), str(work["adapter"]), []
    if case == "wrong_shape":
        adapter = str(work["wrong_shape"])
    elif case == "missing_module":
        _rename_module(work["adapter"], "layers.0.self_attn.q_proj", "layers.0.self_attn.x_proj")
    elif case == "not_an_adapter":
        (work["adapter"] / "adapter_config.json").unlink()
    elif case == "base_is_no_model":
        (work["base"] / "config.json").unlink()
    elif case == "unknown_revision":
        base = "v042"
    elif case == "missing_data":
        extra = ["--training-data", str(tmp_path / "nope.jsonl")]
    dirs = {k: snapshot(work[k]) for k in ("base", "adapter", "wrong_shape")}
    state = repo_state(repo.root)
    proc = run_vault(
        repo.root, "consolidate", "--base", base, "--adapter", adapter, "-m", "x",
        "--remove-adapter-dir", *extra,
    )  # fmt: skip
    assert_clean_error(proc, *needles)
    assert repo_state(repo.root) == state
    assert {k: snapshot(work[k]) for k in ("base", "adapter", "wrong_shape")} == dirs
    assert list((repo.root / "tmp").iterdir()) == []


def test_a_broken_latest_is_refused_before_anything_is_published(
    repo: Repository, work: dict[str, Path]
) -> None:
    """latest edited by hand to name a missing object: the merged version would have it as
    its parent, so consolidation fails with commit's one line; refs, pins and the adapter
    directory stay as they were."""
    repo.commit(work["base"], "base")
    doc = json.loads((repo.root / "refs.json").read_bytes())
    doc["refs"]["latest"] = "ab" * 32
    (repo.root / "refs.json").write_text(json.dumps(doc))
    state = repo_state(repo.root)[:2]
    adapter = snapshot(work["adapter"])
    proc = run_vault(
        repo.root, "consolidate", "--base", "v001", "--adapter", str(work["adapter"]),
        "-m", "merged", "--remove-adapter-dir",
    )  # fmt: skip
    assert_clean_error(proc, "latest (abababababab", "not a readable version", "vault verify")
    assert repo_state(repo.root)[:2] == state
    assert snapshot(work["adapter"]) == adapter
    assert repo.pins() == []


def test_api_errors_are_typed(repo: Repository, work: dict[str, Path]) -> None:
    with pytest.raises(AdapterMismatch):
        repo.consolidate(work["base"], work["wrong_shape"], message="x")
    with pytest.raises(ConsolidateError, match="the same"):
        repo.consolidate(work["base"], work["base"], message="x")
    with pytest.raises(PathNotFound):
        repo.consolidate(work["base"], work["adapter"], message="x", training_data=["/no/such"])
    assert repo.refs.read().refs == {}


def test_warning_and_remove_adapter_dir(repo: Repository, work: dict[str, Path]) -> None:
    """A differing base_model_name_or_path is a warning on stderr; --remove-adapter-dir deletes
    the adapter only once the merged version is stored, and the pin keeps its files."""
    cfg_path = work["adapter"] / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "some-org/another-model"
    cfg_path.write_text(json.dumps(cfg))
    adapter_files = snapshot(work["adapter"])
    proc = ok(
        run_vault(
            repo.root,
            "consolidate",
            "--base",
            str(work["base"]),
            "--adapter",
            str(work["adapter"]),
            "-m",
            "merged",
            "--remove-adapter-dir",
            "--json",
        )  # fmt: skip
    )
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("vault: warning: "), proc.stderr
    assert "some-org/another-model" in warnings[0]
    doc = json.loads(proc.stdout)
    assert doc["removed_adapter_dir"] == str(work["adapter"])
    assert not work["adapter"].exists()
    assert work["base"].exists()
    restored = work["base"].parent / "restored-adapter"
    repo.checkout(doc["adapter"], restored)
    assert snapshot(restored) == adapter_files


CRASHES = [
    "consolidate-checked",
    "consolidate-pinned",  # the adapter directory is committed, its pin not published
    "consolidate-merged",
    "version-written:2",  # the merged version object is durable (1: the adapter's)
]


@pytest.mark.parametrize("point", CRASHES)
def test_killed_before_publishing_changes_nothing(
    repo: Repository, work: dict[str, Path], point: str
) -> None:
    repo.commit(work["base"], "base")
    state = repo_state(repo.root)
    dirs = {k: snapshot(work[k]) for k in ("base", "adapter")}
    proc = run_vault(
        repo.root, "consolidate", "--base", "v001", "--adapter", str(work["adapter"]), "-m", "x",
        "--remove-adapter-dir", env=vault_env(VAULT_CRASHPOINT=point),
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    refs, reflog, objects = repo_state(repo.root)
    assert (refs, reflog) == state[:2]
    assert objects >= state[2]  # only unreachable garbage may have been added
    assert {k: snapshot(work[k]) for k in ("base", "adapter")} == dirs
    assert_verify_ok(repo.root)
    # A retry succeeds.
    result = repo.consolidate("v001", work["adapter"], message="retry")
    assert result.version == "v002"


def test_killed_after_publishing_keeps_the_adapter_dir(
    repo: Repository, work: dict[str, Path]
) -> None:
    proc = run_vault(
        repo.root, "consolidate", "--base", str(work["base"]), "--adapter", str(work["adapter"]),
        "-m", "x", "--remove-adapter-dir", env=vault_env(VAULT_CRASHPOINT="consolidate-committed"),
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    refs = repo.refs.read().refs
    assert refs["base"] == refs["latest"] == refs["versions/v001"]
    assert len([k for k in refs if k.startswith("pins/")]) == 2
    assert work["adapter"].exists()  # step 5 never ran


def test_full_disk_changes_nothing(repo: Repository, work: dict[str, Path]) -> None:
    repo.commit(work["base"], "base")
    state = repo_state(repo.root)
    dirs = {k: snapshot(work[k]) for k in ("base", "adapter")}
    proc = run_vault_failing(
        repo.root, "write", 1, "consolidate", "--base", "v001", "--adapter",
        str(work["adapter"]), "-m", "x",
    )  # fmt: skip
    assert_clean_error(proc, "no space left")
    assert repo_state(repo.root)[:2] == state[:2]
    assert {k: snapshot(work[k]) for k in ("base", "adapter")} == dirs
    assert list((repo.root / "tmp").iterdir()) == []


def test_disk_full_while_saving_the_merge(work: dict[str, Path], tmp_path: Path) -> None:
    """The merged model does not fit on the repository's file system (a 1 MiB tmpfs)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mnt)], check=True)
    try:
        repo = Repository.init(mnt / ".vault")
        repo.commit(work["base"], "base")
        repo.commit(work["adapter"], "adapter")
        # Room for step 2 (two small version records), not for the 116 KiB merged weights.
        (mnt / "filler").write_bytes(bytes(shutil.disk_usage(mnt).free - (40 << 10)))
        state = repo_state(repo.root)
        dirs = {k: snapshot(work[k]) for k in ("base", "adapter")}
        proc = run_vault(
            repo.root, "consolidate", "--base", str(work["base"]), "--adapter",
            str(work["adapter"]), "-m", "x",
        )  # fmt: skip
        assert_clean_error(proc, "no space left", "merged")  # in step 3, saving the merge
        assert repo_state(repo.root)[:2] == state[:2]
        assert {k: snapshot(work[k]) for k in ("base", "adapter")} == dirs
        assert list((repo.root / "tmp").iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_gc_removes_what_a_killed_consolidation_left(
    repo: Repository, work: dict[str, Path]
) -> None:
    proc = run_vault(
        repo.root, "consolidate", "--base", str(work["base"]), "--adapter", str(work["adapter"]),
        "-m", "x", env=vault_env(VAULT_CRASHPOINT="consolidate-merged"),
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    assert [p.name[:12] for p in (repo.root / "tmp").iterdir()] == ["consolidate-"]
    ok(run_vault(repo.root, "gc", "--grace", "0s"))
    assert list((repo.root / "tmp").iterdir()) == []
    assert object_files(repo.root) == {}  # the unpinned commits of step 2 were garbage
    assert_verify_ok(repo.root)

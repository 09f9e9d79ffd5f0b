"""``consolidate``: merge a LoRA adapter into its base model and store the result as a version.

The steps, in this order (each ends at a crash point the fault tests use):

1. **check** (``consolidate-checked``): the base and the adapter exist (a directory, else a
   revision), the adapter is a LoRA adapter, and every module it targets exists in the base with
   matching shapes; all read from safetensors headers, before torch is imported. A differing
   ``base_model_name_or_path`` is only a warning.
2. **commit** (``consolidate-pinned``): a base or adapter given as a directory is committed as an
   unnamed version (a revision needs nothing). Their ``pre_consolidation`` pins are *not*
   published yet: they go into step 4's transaction, so that a failure anywhere before it leaves
   every ref exactly as it was. From here to the end the writer lock is held, so no gc can
   remove what step 2 stored before the pins reach it.
3. **merge** (``consolidate-merged``): transformers loads the base (in float32, so the merge is
   not rounded twice) and peft the adapter; ``merge_and_unload``; the result is cast to the base's
   dtype (or ``dtype``) and saved as safetensors in a temporary directory inside the
   repository's ``tmp/``, with the base's other files (tokenizer, ...) beside it. A base or
   adapter given as a revision is checked out (verified) there first.
4. **publish** (``consolidate-committed``): the merged directory is committed with lineage
   metadata; one refs transaction names the version, moves ``latest``, points ``base`` at it and
   publishes both pins.
5. **clean up**: only with ``remove_adapter_dir``, the adapter's directory is deleted.

The temporary directory is removed on success and on failure; a killed process leaves it in
``tmp/``, where gc finds it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

from ..errors import (
    AdapterMismatch,
    BadValue,
    ConsolidateError,
    DiskFull,
    FileNotInVersion,
    MissingExtra,
    PathNotFound,
    UnknownRevision,
    VaultError,
)
from ..faults import crashpoint
from ..ids import Oid
from ..ml.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterConfig, check_adapter, parse_config
from ..ml.tensors import StoredFile, read_header_path
from ..objects import KIND_FILE, Tree, Version
from ..refs import BASE, VERSIONS, Transaction, version_number
from ..revisions import resolve
from ..safetensors_format import Header, TensorInfo
from . import pins as pins_op
from .checkout import checkout_version
from .commit import commit
from .parts import Parts
from .versions import version_names, version_tree

log = logging.getLogger("vault")

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
"""``--dtype`` values and the torch dtypes they name."""

_FROM_SAFETENSORS = {"BF16": "bf16", "F16": "fp16", "F32": "fp32"}

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")
"""Files of the base that the merged weights replace (with ``*.index.json`` shard indexes)."""

TMP_PREFIX = "consolidate-"


@dataclass
class ConsolidateResult:
    """The merged version and where it came from (what ``vault consolidate --json`` prints).

    Attributes:
        version: the merged version's name.
        id: its id.
        base: the base's version id; ``base_version`` its name (``None`` if unnamed).
        adapter: the adapter's version id; ``adapter_version`` its name (``None`` if unnamed).
        dtype: ``bf16``, ``fp16`` or ``fp32``.
        modules: the base modules the adapter changed.
        pins: the ``pre_consolidation`` pins made (base, then adapter).
        files, bytes, new_bytes, stored_bytes: as for a commit.
        removed_adapter_dir: the adapter directory deleted in step 5, if any.
        warnings: what was logged as a warning.
    """

    version: str | None
    id: str
    base: str
    adapter: str
    base_version: str | None
    adapter_version: str | None
    dtype: str
    modules: list[str]
    pins: list[str]
    files: int
    bytes: int
    new_bytes: int
    stored_bytes: int
    removed_adapter_dir: str | None = None
    warnings: list[str] = field(default_factory=list)


class Source:
    """A base or an adapter: a directory of the user's, or a stored version.

    Args:
        parts: the repository's collaborators.
        arg: what the user gave: a directory (when one exists there) or a revision.
        role: ``base`` or ``adapter``, for messages.
    """

    def __init__(self, parts: Parts, arg: str | os.PathLike[str], role: str) -> None:
        arg = os.fspath(arg)
        self.parts = parts
        self.arg = arg
        self.role = role
        self.path: Path | None = None
        self.oid: Oid | None = None
        self.name: str | None = None
        self._tree: Tree | None = None
        if Path(arg).is_dir():
            self.path = Path(arg)
            return
        refs = parts.refs.read()
        try:
            self.oid = resolve(arg, refs, parts.store)
        except UnknownRevision:
            raise ConsolidateError(
                f"{role} {arg!r} is neither a directory nor a revision of this repository",
                kind="not_found",
            ) from None
        names, _ = version_names(refs)
        self.name = names.get(self.oid) or parts.store.get_version(self.oid).name
        self._tree = version_tree(parts.store, refs, self.oid, arg)

    def files(self) -> list[str]:
        """Relative paths of its regular files."""
        if self._tree is not None:
            return [e.path for e in self._tree.entries if e.kind == KIND_FILE]
        assert self.path is not None
        out = []
        skip = {p.resolve() for p in self.parts.local_paths()}
        for d, dirnames, names in os.walk(self.path):
            dirnames[:] = [n for n in dirnames if (Path(d) / n).resolve() not in skip]
            for f in names:
                full = Path(d) / f
                if full.is_file() and not full.is_symlink():
                    out.append(full.relative_to(self.path).as_posix())
        return out

    def _entry_oid(self, rel: str) -> Oid:
        assert self._tree is not None
        for e in self._tree.entries:
            if e.path == rel and e.kind == KIND_FILE and e.file is not None:
                return e.file
        raise FileNotInVersion(self.arg, rel)

    def read(self, rel: str) -> bytes:
        """A whole (small) file."""
        if self.path is not None:
            try:
                return (self.path / rel).read_bytes()
            except FileNotFoundError:
                raise PathNotFound(str(self.path / rel)) from None
        reader = StoredFile.open(self.parts.store, self._entry_oid(rel), rel)
        return reader.read(0, reader.size)

    def header(self, rel: str) -> Header:
        """The safetensors header of one of its files."""
        if self.path is not None:
            if not (self.path / rel).is_file():
                raise PathNotFound(str(self.path / rel))
            return read_header_path(self.path / rel)
        return StoredFile.open(self.parts.store, self._entry_oid(rel), rel).header()

    def describe(self) -> str:
        """How messages name it."""
        return str(self.path) if self.path is not None else (self.name or str(self.oid)[:12])


def _named_with_tree(parts: Parts, tree: Oid) -> tuple[Oid, str] | None:
    """The newest named version whose tree is ``tree``, if any."""
    named = parts.refs.read().names_for(VERSIONS)
    for name in sorted(named, key=lambda n: version_number(n) or 0, reverse=True):
        if parts.store.get_version(named[name]).tree == tree:
            return named[name], name
    return None


# -- step 1 ----------------------------------------------------------------------------------


@dataclass
class Plan:
    """What step 1 established."""

    base: Source
    adapter: Source
    config: AdapterConfig
    modules: list[str]
    dtype: str
    warnings: list[str]


def check(
    parts: Parts,
    base: str | os.PathLike[str],
    adapter: str | os.PathLike[str],
    *,
    training_data: tuple[str | os.PathLike[str], ...] | list[str | os.PathLike[str]] = (),
    dtype: str | None = None,
) -> Plan:
    """Step 1: everything that can be checked before anything is stored or loaded."""
    missing = [m for m in ("torch", "transformers", "peft") if importlib_util.find_spec(m) is None]
    if missing:
        raise MissingExtra("consolidate", ", ".join(missing))
    if dtype is not None and dtype not in DTYPES:
        raise BadValue("--dtype", dtype, "expected bf16, fp16 or fp32")
    for f in training_data:
        if not Path(f).is_file():
            raise PathNotFound(str(f))
    b = Source(parts, base, "base")
    a = Source(parts, adapter, "adapter")
    if (b.path and a.path and b.path.resolve() == a.path.resolve()) or (b.oid and b.oid == a.oid):
        raise ConsolidateError("the base and the adapter are the same")
    adapter_files = set(a.files())
    for needed in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if needed not in adapter_files:
            raise AdapterMismatch(f"adapter {a.describe()} has no {needed}: not a peft adapter")
    config = parse_config(a.read(ADAPTER_CONFIG), f"{a.describe()}/{ADAPTER_CONFIG}")
    base_files = b.files()
    if "config.json" not in base_files:
        raise ConsolidateError(f"base {b.describe()} has no config.json: not a model directory")
    weights = sorted(f for f in base_files if "/" not in f and f.endswith(".safetensors"))
    if not weights:
        raise ConsolidateError(f"base {b.describe()} has no .safetensors weights")
    base_tensors: dict[str, TensorInfo] = {}
    for f in weights:
        base_tensors.update(b.header(f).tensors)
    modules = check_adapter(a.header(ADAPTER_WEIGHTS).tensors, base_tensors, config)
    warnings = []
    if config.base_model and not _names_base(config.base_model, b):
        warnings.append(
            f"the adapter was trained on {config.base_model!r}, but the base is"
            f" {b.describe()!r}; consolidating anyway (shapes match)"
        )
    return Plan(b, a, config, modules, dtype or _dominant_dtype(base_tensors), warnings)


def _names_base(name: str, base: Source) -> bool:
    """Whether ``name`` plausibly names ``base``: its path, folder name, config name or revision."""
    name = name.rstrip("/")
    seen = {base.arg.rstrip("/"), base.name or "", str(base.oid or "")}
    if base.path is not None:
        seen |= {str(base.path), str(base.path.resolve()), base.path.resolve().name}
    try:
        cfg = json.loads(base.read("config.json"))
        seen |= {str(cfg.get("_name_or_path") or ""), str(cfg.get("name_or_path") or "")}
    except (ValueError, AttributeError):
        pass
    return name in seen or Path(name).name in seen - {""}


def _dominant_dtype(tensors: dict[str, TensorInfo]) -> str:
    """The float dtype holding most of the base's bytes (``fp32`` when there is none)."""
    sizes: dict[str, int] = {}
    for t in tensors.values():
        if t.dtype in _FROM_SAFETENSORS:
            sizes[t.dtype] = sizes.get(t.dtype, 0) + t.nbytes
    return _FROM_SAFETENSORS[max(sizes, key=sizes.__getitem__)] if sizes else "fp32"


# -- steps 2 to 5 ----------------------------------------------------------------------------


def consolidate(
    parts: Parts,
    base: str | os.PathLike[str],
    adapter: str | os.PathLike[str],
    *,
    message: str,
    training_data: tuple[str | os.PathLike[str], ...] | list[str | os.PathLike[str]] = (),
    dtype: str | None = None,
    remove_adapter_dir: bool = False,
) -> ConsolidateResult:
    """Merge the LoRA adapter ``adapter`` into ``base`` (each a directory or a revision) and
    commit the merged model as the next version, ``latest`` and ``base``, with lineage
    metadata; the base and the adapter are pinned as ``pre_consolidation`` in the same
    transaction. Any failure leaves every ref and the user's directories as they were. The
    steps are those of the module docstring.

    Args:
        parts: the repository's collaborators.
        base: the base model: a directory, else a revision.
        adapter: the LoRA adapter: a directory, else a revision.
        message: the merged version's description.
        training_data: data files recorded with the version (path, size, BLAKE3).
        dtype: ``bf16``, ``fp16`` or ``fp32``; default: the base's.
        remove_adapter_dir: delete the adapter's directory once the merged version is
            stored (step 5).

    Raises:
        AdapterMismatch: the adapter targets a module the base lacks, or shapes differ.
        ConsolidateError: the base or adapter is not a model, or is the other one.
        MissingExtra: torch, transformers or peft are not installed.
    """
    plan = check(parts, base, adapter, training_data=training_data, dtype=dtype)
    for w in plan.warnings:
        log.warning("%s", w)
    crashpoint("consolidate-checked")
    summary = message.splitlines()[0] if message else ""
    with parts.writing():  # held until the pins are published: gc must not take step 2's objects
        for src in (plan.base, plan.adapter):
            if src.oid is None:
                assert src.path is not None
                res = commit(
                    parts,
                    src.path,
                    f"{pins_op.PRE_CONSOLIDATION}: {src.role} of '{summary}'",
                    name_version=False,
                    move_latest=False,
                    ignore_files=False,  # the pinned source is what was merged, whole
                    allow_empty=True,
                )
                # A directory that holds exactly a named version is that version.
                src.oid, src.name = _named_with_tree(parts, Oid(res.tree)) or (Oid(res.id), None)
        crashpoint("consolidate-pinned")
        work = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=parts.backend.scratch_dir()))
        try:
            merged = work / "merged"
            base_dir = _materialise(parts, plan.base, work / "base")
            adapter_dir = _materialise(parts, plan.adapter, work / "adapter")
            versions = merge(base_dir, adapter_dir, merged, plan.dtype, skip=parts.root)
            crashpoint("consolidate-merged")
            result = _publish(parts, plan, merged, message, training_data, versions)
            crashpoint("consolidate-committed")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    result.warnings = list(plan.warnings)
    if remove_adapter_dir:
        result.removed_adapter_dir = _remove_adapter(plan.adapter, result.warnings)
    return result


def _materialise(parts: Parts, src: Source, dest: Path) -> Path:
    """The directory to load ``src`` from: the user's, or a verified checkout of the version."""
    if src.path is not None:
        return src.path
    checkout_version(parts, str(src.oid), dest)
    return dest


def _publish(
    parts: Parts,
    plan: Plan,
    merged: Path,
    message: str,
    training_data: tuple[str | os.PathLike[str], ...] | list[str | os.PathLike[str]],
    versions: dict[str, str],
) -> ConsolidateResult:
    """Step 4: commit the merged model; name it, move ``latest`` and ``base``, publish the pins."""
    b, a = plan.base, plan.adapter
    assert b.oid is not None and a.oid is not None
    lineage = {
        "base": b.oid,
        "base_version": b.name,
        "adapter": a.oid,
        "adapter_version": a.name,
        "dtype": plan.dtype,
        "modules": len(plan.modules),
        **versions,
    }
    made: list[str] = []
    summary = message.splitlines()[0] if message else ""

    def on_publish(txn: Transaction, oid: Oid, version: Version) -> None:
        txn.set(BASE, oid, expected=txn.get(BASE))
        for src in (b, a):
            assert src.oid is not None
            made.append(
                pins_op.set_pin(
                    txn,
                    src.oid,
                    type=pins_op.PRE_CONSOLIDATION,
                    reason=f"{src.role} of {version.name or oid[:12]}: {summary}",
                    label=src.name or src.role,
                )
            )

    # The merged model is the adapter's run's last word: a version of that run, on top of
    # it; an adapter from a folder, or from before runs, leaves it outside any run.
    adapter_run = None
    if a.oid is not None:
        adapter_run = parts.store.get_version(a.oid).training.get("run")
    res = commit(
        parts,
        merged,
        message,
        run=adapter_run,
        record_run=adapter_run is not None,
        record_checkpoint=False,
        meta={"lineage": lineage},
        data=list(training_data),
        base_model=b.name or b.oid[:12],
        on_publish=on_publish,
        ignore_files=False,
        allow_empty=True,  # the new base and its pins need a version, whatever latest holds
    )
    return ConsolidateResult(
        version=res.version,
        id=res.id,
        base=b.oid,
        adapter=a.oid,
        base_version=b.name,
        adapter_version=a.name,
        dtype=plan.dtype,
        modules=plan.modules,
        pins=list(made),
        files=res.files,
        bytes=res.bytes,
        new_bytes=res.new_bytes,
        stored_bytes=res.stored_bytes,
    )


def _remove_adapter(adapter: Source, warnings: list[str]) -> str | None:
    """Step 5: delete the adapter's directory; a failure now loses nothing, so it only warns."""
    if adapter.path is None:
        w = f"the adapter {adapter.arg} is a revision: there is no directory to remove"
        log.warning("%s", w)
        warnings.append(w)
        return None
    try:
        shutil.rmtree(adapter.path)
    except OSError as exc:
        w = f"the merged version is stored, but {adapter.path} could not be removed: {exc}"
        log.warning("%s", w)
        warnings.append(w)
        return None
    return str(adapter.path)


# -- step 3: the merge itself ----------------------------------------------------------------


def merge(
    base_dir: Path, adapter_dir: Path, out: Path, dtype: str, *, skip: Path | None = None
) -> dict[str, str]:
    """Load the base and the adapter, merge, save safetensors to ``out`` with the base's other
    files (``skip``: a directory not to copy, the repository); return the versions of the
    libraries that did it (for the lineage)."""
    import peft
    import torch
    import transformers

    # vault's output is its own: no progress bars or notices from the libraries, then put their
    # settings back (an API caller may rely on them).
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _merge(base_dir, adapter_dir, out, dtype)
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()
    _copy_other_files(base_dir, out, skip)
    return {
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


def _merge(base_dir: Path, adapter_dir: Path, out: Path, dtype: str) -> None:
    import torch
    import transformers
    from peft import PeftModel

    config = transformers.AutoConfig.from_pretrained(base_dir)
    archs = getattr(config, "architectures", None) or []
    model_cls: Any = getattr(transformers, archs[0], None) if archs else None
    if model_cls is None:
        model_cls = transformers.AutoModelForCausalLM
    try:
        model = model_cls.from_pretrained(base_dir, **{_dtype_kwarg(): torch.float32})
    except (OSError, VaultError):
        raise
    except Exception as exc:
        raise ConsolidateError(f"transformers could not load the base: {exc}") from exc
    try:
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    except (OSError, VaultError):
        raise
    except Exception as exc:
        raise AdapterMismatch(f"peft could not apply the adapter: {exc}") from exc
    model = model.to(getattr(torch, DTYPES[dtype]))
    try:
        model.save_pretrained(out)
    except (OSError, VaultError):
        raise
    except Exception as exc:  # safetensors reports I/O errors as its own type
        if "os error 28" in str(exc) or "No space left" in str(exc):
            raise DiskFull(str(out)) from exc
        raise ConsolidateError(f"saving the merged model failed: {exc}") from exc


def _dtype_kwarg() -> str:
    """transformers renamed ``torch_dtype`` to ``dtype`` (4.56)."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _copy_other_files(base_dir: Path, out: Path, skip: Path | None) -> None:
    """Copy the base's files that are not weights (tokenizer, ...) unless the save wrote them."""
    skipped = skip.resolve() if skip is not None else None
    for dirpath, dirnames, names in os.walk(base_dir):
        dirnames[:] = [d for d in dirnames if (Path(dirpath) / d).resolve() != skipped]
        for name in names:
            src = Path(dirpath) / name
            rel = src.relative_to(base_dir)
            if name.endswith(WEIGHT_SUFFIXES) or name.endswith(".index.json"):
                continue
            dest = out / rel
            if dest.exists() or dest.is_symlink():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dest)
            else:
                shutil.copyfile(src, dest)

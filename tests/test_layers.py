"""vault's layers import downward only, read from the source with ``ast``.

From the bottom: ids and errors; codecs, chunking and the formats of files; the backends and
locks; the store, objects, refs, leases and revisions; the verbs (``vault/ops``); the
repository facade; the command line and the web view. A module may import its own layer and the
ones below, never one above: the verbs work over explicit collaborators, not the facade that
calls them.
Every import counts, those under ``TYPE_CHECKING`` and inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vault

PACKAGE = Path(vault.__file__).parent

LAYERS: dict[str, int] = {
    # 0: what everything may use
    "vault.ids": 0,
    "vault.errors": 0,
    "vault.faults": 0,
    "vault.progress": 0,
    "vault.memory": 0,
    # 1: bytes and files, no repository
    "vault.codec": 1,
    "vault.safetensors_format": 1,
    "vault.chunking": 1,
    "vault.fsutil": 1,
    "vault.objects": 1,
    "vault.meta": 1,
    "vault.statcache": 1,
    "vault.ignore": 1,
    "vault.ml": 1,
    "vault.ml.lora": 1,
    # 2: where repository files live, and how they are locked
    "vault.lock": 2,
    "vault.backend": 2,
    "vault.backend_memory": 2,
    "vault.backend_s3": 2,
    # 3: what the repository holds
    "vault.store": 3,
    "vault.packs": 3,
    "vault.refs": 3,
    "vault.leases": 3,
    "vault.revisions": 3,
    "vault.config": 3,
    "vault.remotes": 3,
    "vault.ml.tensors": 3,
    # 4: the verbs (every vault.ops module)
    "vault.ops": 4,
    # 5: the facade and what is built on it alone
    "vault.repo": 5,
    "vault.repo_remotes": 5,
    "vault.integrations": 5,
    "vault.watch": 5,
    # 6: the command line, the web view beside it, and the package's front door
    "vault.cli": 6,
    "vault.web": 6,
    "vault.__main__": 6,
    "vault": 6,
}
"""The layer of each module; a package's entry covers its modules (``vault.ops``, ``vault.cli``,
``vault.web``, ``vault.ml`` by module)."""

NAMES = {0: "base", 1: "formats", 2: "backends", 3: "storage", 4: "ops", 5: "repo", 6: "cli"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int | None:
    """The layer of ``module``: its own entry, else its closest package's (not ``vault``'s)."""
    name = module
    while name:
        if name in LAYERS and (name != "vault" or module == "vault"):
            return LAYERS[name]
        name = name.rpartition(".")[0]
    return None


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, module: str) -> set[str]:
    """Every vault module ``path`` imports, anywhere in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    known = modules()
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "vault")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.split(".")[0] == "vault":
                target = node.module
            else:
                continue
            for alias in node.names:  # 'from . import pins' imports the module vault.ops.pins
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    return out


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in modules() if layer(m) is None]
    assert not unplaced, f"add these to LAYERS in {__file__}: {unplaced}"


def test_imports_go_downward_only() -> None:
    upward = []
    for module, path in modules().items():
        own = layer(module)
        assert own is not None
        for target in sorted(imports(path, module)):
            theirs = layer(target)
            if theirs is not None and theirs > own:
                upward.append(f"{module} ({NAMES[own]}) imports {target} ({NAMES[theirs]})")
    assert not upward, "\n".join(upward)


def test_the_verbs_never_import_the_facade_or_the_command_line() -> None:
    found = modules()
    ops = {m: p for m, p in found.items() if m.startswith("vault.ops")}
    assert "vault.ops.commit" in ops and "vault.ops.consolidate" in ops
    for module, path in ops.items():
        bad = {t for t in imports(path, module) if t == "vault.repo" or t.startswith("vault.cli")}
        assert not bad, f"{module} imports {sorted(bad)}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The test above would pass vacuously if the parser missed imports: it does not."""
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ..repo import Repository\n"
        "def f():\n"
        "    from . import pins\n"
        "    import vault.cli.main\n"
    )
    assert imports(source, "vault.ops.sample") == {"vault.repo", "vault.ops.pins", "vault.cli.main"}

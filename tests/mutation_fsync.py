"""Mutation check of the durability tests: take out one fsync at a time and see which test fails.

Run by hand from the repository's root (pytest does not collect it: its name does not start
with ``test_``)::

    .venv/bin/python tests/mutation_fsync.py            # every site
    .venv/bin/python tests/mutation_fsync.py backend    # the sites of files matching 'backend'

A *site* is every use of ``os.fsync``, ``os.fdatasync``, ``fsync_dir`` or ``_fsync_file`` in
``vault/`` (found in the syntax tree, so definitions, imports, comments and docstrings are not
sites). For each one the script copies ``vault/``, ``tests/`` and ``pyproject.toml`` into a
temporary folder, replaces the name at that site by ``(lambda *_: None)`` (the call still
happens, and does nothing), runs ``tests/test_durability.py`` there (``python -m pytest`` puts
the copy first on ``sys.path``) and records the tests that fail. It first runs the unmutated copy,
which must pass. It prints a table, site to the tests that caught its removal (the output of
each failing run is kept in ``$TMPDIR/vault-mutants/``), and exits 1 if a site survived (no test
failed without it).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = "tests/test_durability.py"
NOOP = "(lambda *_: None)"
FAILED_RE = re.compile(r"^FAILED (\S+)", re.MULTILINE)
LOGS = Path(tempfile.gettempdir()) / "vault-mutants"
"""Where the output of each failing run is kept, for reading why a test failed."""


@dataclass(frozen=True)
class Site:
    """One use of an fsync function: file (relative to the root), line, columns, the code."""

    path: str
    line: int
    start: int
    end: int
    code: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def find_sites() -> list[Site]:
    """Every site in ``vault/``, in file and line order."""
    out = []
    for file in sorted((ROOT / "vault").rglob("*.py")):
        text = file.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            fsync_attr = (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in ("fsync", "fdatasync")
            )
            helper = isinstance(node, ast.Name) and node.id in ("fsync_dir", "_fsync_file")
            if fsync_attr or helper:
                assert node.end_col_offset is not None
                out.append(
                    Site(
                        file.relative_to(ROOT).as_posix(),
                        node.lineno,
                        node.col_offset,
                        node.end_col_offset,
                        lines[node.lineno - 1].strip(),
                    )
                )
    return sorted(out, key=lambda s: (s.path, s.line, s.start))


def run_suite(site: Site | None) -> tuple[bool, list[str], float]:
    """Run the suite on a copy with ``site`` taken out; (passed, failed test ids, seconds)."""
    with tempfile.TemporaryDirectory(prefix="vault-mutant-") as tmp:
        work = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(ROOT / "vault", work / "vault", ignore=ignore)
        shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
        shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
        if site is not None:
            target = work / site.path
            lines = target.read_text().splitlines(keepends=True)
            line = lines[site.line - 1]
            lines[site.line - 1] = line[: site.start] + NOOP + line[site.end :]
            target.write_text("".join(lines))
        where = subprocess.run(
            [sys.executable, "-c", "import vault; print(vault.__file__)"],
            cwd=work,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not where.startswith(str(work)):
            raise SystemExit(f"the copy imports {where}, not its own vault/")
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", SUITE],
            cwd=work,
            capture_output=True,
            text=True,
        )
        took = time.monotonic() - started
    if proc.returncode:
        LOGS.mkdir(exist_ok=True)
        name = "unmutated" if site is None else f"{site.path.replace('/', '.')}.{site.line}"
        (LOGS / f"{name}.log").write_text(proc.stdout + proc.stderr)
    failed = sorted(set(FAILED_RE.findall(proc.stdout)))
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not failed):
        raise SystemExit(f"pytest could not run ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.returncode == 0, failed, took


def main(argv: list[str]) -> int:
    sites = [s for s in find_sites() if not argv or any(a in s.path for a in argv)]
    passed, failed, took = run_suite(None)
    if not passed:
        print(f"the unmutated suite fails: {failed}")
        return 2
    print(f"unmutated: passes in {took:.1f} s; {len(sites)} sites\n")
    print("| site | code | caught by |")
    print("|---|---|---|")
    survived = []
    for site in sites:
        passed, failed, took = run_suite(site)
        names = ", ".join(f.split("::", 1)[-1] for f in failed) or "**SURVIVED**"
        print(f"| `{site}` | `{site.code}` | {names} |", flush=True)
        if passed:
            survived.append(site)
    if survived:
        print(f"\n{len(survived)} site(s) survived: {', '.join(map(str, survived))}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

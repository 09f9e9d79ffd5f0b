"""The README walkthrough runs as written: its commands are examples/walkthrough.sh's, and that
script trains, versions, consolidates, deletes and restores a tiny model end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vault import Repository

ROOT = Path(__file__).resolve().parent.parent
MARKER = "# --- the README's commands ---\n"


def readme_commands() -> str:
    """The shell block of the README's walkthrough section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Walkthrough", 1)[1]
    m = re.search(r"```sh\n(.*?)```", section, re.S)
    assert m, "the walkthrough section has no sh block"
    return m.group(1)


def test_readme_shows_exactly_the_script() -> None:
    script = (ROOT / "examples" / "walkthrough.sh").read_text()
    assert MARKER in script
    assert readme_commands() == script.split(MARKER, 1)[1]


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the walkthrough once; return its project folder and its output."""
    tmp = tmp_path_factory.mktemp("walk")
    env = {k: v for k, v in os.environ.items() if k != "VAULT_DIR"}
    env["TMPDIR"] = str(tmp)  # mktemp -d makes the project folder here
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run(
        ["bash", str(ROOT / "examples" / "walkthrough.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (project,) = [p.parent for p in tmp.glob("*/.vault")]
    return project, run.stdout + run.stderr


def test_walkthrough_output(walked: tuple[Path, str]) -> None:
    _, out = walked
    assert "Traceback" not in out
    assert re.search(r"curve +loss \S+ [▁▂▃▄▅▆▇█]+ \S+ over 6 steps", out)
    assert "refusing to delete v003 without confirmation" in out
    assert "(refused: deleting needs --confirm)" in out
    assert "tensors read from the store, equal to from_pretrained's" in out
    assert re.search(r"^ok: \d+ objects", out, re.M)


def test_walkthrough_leaves_the_repository_as_described(walked: tuple[Path, str]) -> None:
    project, _ = walked
    repo = Repository.open(project / ".vault")
    assert [v.version for v in repo.log()] == ["v004", "v002", "v001"]  # v003 deleted
    merged = repo.show("base")
    assert merged.version == "v004" and repo.resolve("latest") == merged.id
    lineage = merged.meta["lineage"]
    assert lineage["base"] == repo.resolve("llama-base")
    assert lineage["adapter"] == repo.resolve("best-runs")
    assert {"peft", "transformers", "dtype"} <= set(lineage)
    assert repo.show("v002").steps == 3 and repo.show("v001").tags == ["llama-base"]

    pins = {p.type: p for p in repo.pins()}
    assert set(pins) == {"best", "emergency", "pre_consolidation", "pre_deletion", "pre_restore"}
    assert pins["pre_deletion"].version == "v003"
    assert "first-adapter" not in {p.name for p in repo.pins()}  # unpinned
    kept = repo.show(f"pins/{pins['pre_restore'].name}")
    assert "NOTES.md" in {f.path for f in kept.files or []}

    current = project / "current_model"
    assert sorted(p.name for p in current.iterdir()) == sorted(f.path for f in merged.files or [])
    assert (project / "curve.png").stat().st_size > 0
    assert repo.verify().ok

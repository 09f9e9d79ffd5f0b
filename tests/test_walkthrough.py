"""The README walkthrough runs as written: its commands are examples/walkthrough.sh's, and that
script trains, versions, consolidates, deletes and restores a tiny model end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from faultkit import README_MARKER, readme_block, run_example_script

from vault import Repository

ROOT = Path(__file__).resolve().parent.parent


def test_readme_shows_exactly_the_script() -> None:
    script = (ROOT / "examples" / "walkthrough.sh").read_text()
    assert README_MARKER in script
    block = readme_block(ROOT / "README.md", "## Walkthrough")
    assert block == script.split(README_MARKER, 1)[1]


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the walkthrough once; return its project folder and its output."""
    tmp = tmp_path_factory.mktemp("walk")
    return run_example_script(ROOT / "examples" / "walkthrough.sh", tmp)


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

"""``vault plot`` (curves of versions and whole runs in one image, read back) and ``vault show A
--compare B``, from real checkpoints committed by the command line; one test on the checkpoints
of a real tiny Trainer run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from faultkit import assert_clean_error, ok, run_vault, snapshot, vault_env
from runkit import two_runs

from vault.meta import SPARK

SERIES_KEYS = {"label", "run", "version", "metric", "points"}
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c"]
"""matplotlib's first line colours, in the order the series are drawn."""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`runkit.two_runs`, then v006: a plain folder (no trainer_state.json) committed to
    ``exp2`` with ``--run``: a run whose last version records no curve."""
    root = tmp_path_factory.mktemp("plot")
    repo = two_runs(root)
    final = root / "export" / "final"
    final.mkdir(parents=True)
    (final / "weights.bin").write_bytes(b"final weights")
    ok(run_vault(repo, "commit", str(final), "--run", "exp2", "-m", "exported"))
    return root


def plot_json(repo: Path, *args: str) -> dict:
    return json.loads(ok(run_vault(repo, "plot", *args, "--json")).stdout)


def pixels_of(png: Path, color: str) -> int:
    """How many pixels of the image at ``png`` have (about) the colour ``color``."""
    import matplotlib.image

    image = matplotlib.image.imread(str(png))[..., :3]
    rgb = np.array([int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(image - rgb).max(axis=-1) < 0.04).sum())


def test_plot_overlays_versions_and_whole_runs(project: Path) -> None:
    out = project / "curves.png"
    got = plot_json(project / ".vault", "v003", "--run", "exp1", "--run", "exp2", "-o", str(out))
    assert set(got) == {"file", "metric", "series"}
    assert got["file"] == str(out.resolve()) and got["metric"] == "loss"
    assert all(set(s) == SERIES_KEYS for s in got["series"])
    assert [(s["label"], s["run"], s["version"], s["points"]) for s in got["series"]] == [
        ("exp1 v003", "exp1", "v003", 4),  # the version: its curve up to step 4
        ("exp1 v001..v005", "exp1", "v005", 6),  # the run: every step it logged
        ("exp2 v002..v006", "exp2", "v006", 4),  # v006 has no curve: its run still has one
    ]
    assert out.stat().st_size > 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(str(out)).shape[:2] == (400, 700)
    for color in COLORS:  # each series drawn, in its colour
        assert pixels_of(out, color) > 50, color


def test_plot_prints_where_it_wrote(project: Path) -> None:
    out = project / "eval.png"
    proc = ok(run_vault(project / ".vault", "plot", "--run", "exp1", "v002", "--metric",
                        "eval_loss", "-o", str(out)))  # fmt: skip
    lines = proc.stdout.splitlines()
    assert lines[0] == f"wrote eval_loss of 1 series to {out.resolve()}"
    assert lines[1].split() == ["exp2", "v002", "logged", "no", "eval_loss"]
    assert lines[2].split() == ["exp1", "v001..v005", "3", "points"]
    assert pixels_of(out, COLORS[0]) > 50  # the one drawn series takes the first colour


def test_a_metric_nobody_logged_is_one_error_line_and_no_file(project: Path) -> None:
    out = project / "none.png"
    proc = run_vault(project / ".vault", "plot", "--run", "exp2", "--metric", "eval_loss",
                     "-o", str(out))  # fmt: skip
    line = assert_clean_error(proc, "no eval_loss to plot", "exp2", "they log")
    assert "learning_rate, loss" in line
    assert proc.returncode == 3 and not out.exists()
    proc = run_vault(project / ".vault", "plot", "v006", "-o", str(out), "--json")
    assert_clean_error(proc, "no loss to plot", "no learning curve")
    assert json.loads(proc.stderr)["error"] == {
        "code": 3, "kind": "not_found", "message": json.loads(proc.stderr)["error"]["message"],
    }  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "code", "needles"),
    [
        (["--run", "nope"], 3, ["no run named 'nope'", "exp1, exp2"]),
        (["v001", "--run", "exp1", "--run", "nope"], 3, ["no run named 'nope'"]),
        (["v099"], None, ["unknown revision: v099"]),
        ([], 2, ["name at least one version"]),
        (["v001", "--metric", " "], 2, ["--metric"]),
    ],
)
def test_bad_requests_are_one_error_line(
    project: Path, args: list[str], code: int | None, needles: list[str]
) -> None:
    before = snapshot(project / ".vault")
    out = project / "bad.png"
    proc = run_vault(project / ".vault", "plot", *args, "-o", str(out))
    assert_clean_error(proc, *needles)
    if code is not None:  # the classes this command added; others are the lead's to map
        assert proc.returncode == code
    assert not out.exists()
    assert snapshot(project / ".vault") == before


def test_bad_outputs_are_one_error_line(project: Path) -> None:
    repo = project / ".vault"
    assert_clean_error(run_vault(repo, "plot", "v001"), "-o")
    assert run_vault(repo, "plot", "v001").returncode == 2
    assert_clean_error(run_vault(repo, "plot", "v001", "-o", str(project / "no" / "x.png")),
                       "path not found")  # fmt: skip
    assert_clean_error(run_vault(repo, "plot", "v001", "-o", str(project / "x.nope")), "x.nope")
    assert not (project / "x.nope").exists()


def test_plot_without_matplotlib_names_the_extra(project: Path, tmp_path: Path) -> None:
    """A Python where 'import matplotlib' fails (a package of that name that raises
    ImportError comes first on the path), as it does where it is not installed."""
    fake = tmp_path / "site" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = vault_env(
        PYTHONPATH=os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])
    )
    out = project / "nomatplotlib.png"
    proc = run_vault(project / ".vault", "plot", "v001", "-o", str(out), env=env)
    assert_clean_error(proc, "plot needs matplotlib", "pip install 'vault[ml]'")
    assert proc.returncode == 2 and not out.exists()


def test_show_compare_prints_both_side_by_side(project: Path) -> None:
    repo = project / ".vault"
    out = ok(run_vault(repo, "show", "v005", "--compare", "v004")).stdout.splitlines()
    rows = {line.split()[0] if not line.startswith("curve") else " ".join(line.split()[:2]): line
            for line in out[1:]}  # fmt: skip
    assert out[0].split() == ["v005", "v004"]
    assert rows["run"].split() == ["run", "exp1", "exp2"]
    assert rows["steps"].split() == ["steps", "6", "4"]
    assert rows["loss"].split() == ["loss", "0.3333", "0.75"]
    assert rows["eval_loss"].split() == ["eval_loss", "0.4333", "-"]
    assert rows["base"].split() == ["base", "-", "-"]
    assert rows["size"].count(" in 2 files") == 2
    sparks = [w for w in rows["curve loss"].split() if set(w) <= set(SPARK)]
    assert len(sparks) == 2 and len(sparks[0]) == 6 and len(sparks[1]) == 4  # one per point
    assert "(6 points to step 6)" in rows["curve loss"]
    assert "(4 points to step 4)" in rows["curve loss"]
    assert rows["curve eval_loss"].split()[-1] == "-"  # v004 was never evaluated
    # The columns line up: B's figures start at the same place on every line.
    assert out[0].index("v004") == rows["run"].index("exp2") == rows["steps"].rindex("4")


def test_show_compare_json_is_both_shows(project: Path) -> None:
    repo = project / ".vault"
    got = json.loads(ok(run_vault(repo, "show", "v001", "--compare", "latest~1", "--json")).stdout)
    assert set(got) == {"a", "b"}
    assert got["a"] == json.loads(ok(run_vault(repo, "show", "v001", "--json")).stdout)
    assert got["b"] == json.loads(ok(run_vault(repo, "show", "latest~1", "--json")).stdout)
    assert got["b"]["version"] == "v004" and got["b"]["curve"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["v001:model.safetensors", "--compare", "v002"], "--compare"),
        (["v001", "--compare", "v002", "--plot", "x.png"], "vault plot"),
        (["v001", "--compare", "v099"], "unknown revision: v099"),
    ],
)
def test_show_compare_refuses_in_one_line(project: Path, args: list[str], needle: str) -> None:
    proc = run_vault(project / ".vault", "show", *args)
    assert_clean_error(proc, needle)
    assert proc.stdout == ""


def test_a_real_trainer_runs_curve(tmp_path: Path) -> None:
    """The checkpoints of a real tiny Trainer run, committed one by one: the run's curve is
    the last checkpoint's whole log_history (one loss per step, an evaluation every 2)."""
    from tinytrain import tiny_trainer

    out = tmp_path / "runs" / "tiny"
    tiny_trainer(out, save_total_limit=None).train()
    repo = tmp_path / ".vault"
    ok(run_vault(repo, "init"))
    for step in (2, 4, 6):
        ok(run_vault(repo, "commit", str(out / f"checkpoint-{step}"), "-m", f"step {step}"))
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    losses = [e for e in state["log_history"] if "loss" in e]
    evals = [e for e in state["log_history"] if "eval_loss" in e]
    png = tmp_path / "tiny.png"
    for metric, logged in (("loss", losses), ("eval_loss", evals)):
        got = plot_json(repo, "--run", "tiny", "v001", "--metric", metric, "-o", str(png))
        assert [s["points"] for s in got["series"]] == [len(logged) // 3, len(logged)]
        assert got["series"][1]["label"] == "tiny v001..v003"
    runs = json.loads(ok(run_vault(repo, "runs", "--json")).stdout)
    assert [(r["run"], r["count"], r["last_step"]) for r in runs] == [("tiny", 3, 6)]
    assert runs[0]["last_loss"] == pytest.approx(losses[-1]["loss"])
    assert runs[0]["best_eval_loss"] == pytest.approx(min(e["eval_loss"] for e in evals))

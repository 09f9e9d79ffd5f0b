"""``vault runs``: two runs committed in turns from real checkpoint folders, summed up per run,
with the run's best pin; versions recording no run left out and counted; best_pin_name."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import ok, run_vault, vault_env
from runkit import trainer_checkpoint, two_runs

from vault import Repository
from vault.ops.runs import best_pin_name

RUN_KEYS = {
    "run", "versions", "count", "first_step", "last_step", "best_loss", "last_loss",
    "best_eval_loss", "last_eval_loss", "last_date", "best",
}  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`runkit.two_runs`, then v006: a folder committed by the library with an explicit
    parent, which records no run (as a version made before runs were recorded), and the pin
    ``best-exp1`` (type ``best``) on v003."""
    root = tmp_path_factory.mktemp("runs")
    repo = two_runs(root)
    loose = trainer_checkpoint(root / "loose" / "checkpoint-9", 9, 1.0)
    Repository.open(repo).commit(loose, "no run", parents=[])
    ok(run_vault(repo, "pin", "v003", "--name", "best-exp1", "--type", "best", "--reason", "b"))
    return root


def runs_json(repo: Path) -> list[dict]:
    return json.loads(ok(run_vault(repo, "runs", "--json")).stdout)


def log_by_name(repo: Path) -> dict[str, dict]:
    return {e["version"]: e for e in json.loads(ok(run_vault(repo, "log", "--json")).stdout)}


def test_runs_json_sums_up_each_run(project: Path) -> None:
    found = runs_json(project / ".vault")
    assert [r["run"] for r in found] == ["exp1", "exp2"]  # in the order they started
    exp1, exp2 = found
    assert all(set(r) == RUN_KEYS for r in found)
    assert exp1["versions"] == ["v001", "v003", "v005"] and exp1["count"] == 3
    assert exp2["versions"] == ["v002", "v004"] and exp2["count"] == 2
    assert (exp1["first_step"], exp1["last_step"]) == (2, 6)
    assert (exp2["first_step"], exp2["last_step"]) == (2, 4)
    # Each checkpoint's final loss is start/step: the best is the last one here.
    assert exp1["best_loss"] == pytest.approx(2.0 / 6) and exp1["last_loss"] == exp1["best_loss"]
    assert exp1["best_eval_loss"] == pytest.approx(2.0 / 6 + 0.1)
    assert exp2["best_loss"] == pytest.approx(3.0 / 4)
    assert exp2["best_eval_loss"] is None and exp2["last_eval_loss"] is None
    log = {
        e["version"]: e
        for e in json.loads(ok(run_vault(project / ".vault", "log", "--json")).stdout)
    }
    assert exp1["last_date"] == log["v005"]["created"]
    assert exp2["last_date"] == log["v004"]["created"]
    assert exp1["best"] == "v003"  # the pin best-exp1 keeps v003
    assert exp2["best"] is None


def test_versions_without_a_run_are_left_out_and_counted(project: Path) -> None:
    assert "v006" not in [v for r in runs_json(project / ".vault") for v in r["versions"]]
    out = ok(run_vault(project / ".vault", "runs")).stdout.splitlines()
    assert out[0].split() == [
        "RUN", "COUNT", "STEPS", "BEST_LOSS", "LAST_LOSS", "BEST_EVAL", "LAST_EVAL", "BEST",
        "LAST_DATE", "VERSIONS",
    ]  # fmt: skip
    assert out[1].split()[:4] == ["exp1", "3", "2..6", "0.3333"]
    assert out[1].split()[-1] == "v001,v003,v005" and " v003 " in out[1]
    assert out[2].split()[:3] == ["exp2", "2", "2..4"] and out[2].split()[-1] == "v002,v004"
    assert out[3] == "(1 named version records no run: 'vault log' lists them)"


def test_library_equals_the_command_line(project: Path) -> None:
    from vault.cli.common import json_value

    assert json_value(Repository.open(project / ".vault").runs()) == runs_json(project / ".vault")


def test_a_deleted_version_leaves_its_run(tmp_path: Path) -> None:
    repo = two_runs(tmp_path)
    ok(run_vault(repo, "delete", "v005", "--confirm"))
    exp1 = runs_json(repo)[0]
    assert exp1["versions"] == ["v001", "v003"] and exp1["last_step"] == 4


def test_no_runs(tmp_path: Path) -> None:
    repo = tmp_path / ".vault"
    ok(run_vault(repo, "init"))
    assert runs_json(repo) == []
    assert ok(run_vault(repo, "runs")).stdout == "no runs yet\n"


def test_runs_outside_a_repository_is_one_error_line(tmp_path: Path) -> None:
    from faultkit import assert_clean_error

    proc = run_vault(tmp_path / "nothing", "runs")
    assert_clean_error(proc, "not a vault repository")


@pytest.mark.parametrize(
    ("run", "pin"),
    [
        ("exp1", "best-exp1"),
        ("my run/2", "best-my-run-2"),
        ("lr=2e-4 (r=16)", "best-lr-2e-4--r-16"),  # one "-" per character
        ("..hidden.", "best-hidden"),
        ("--", "best-run"),
        ("", "best-run"),
        ("Über", "best-ber"),
        ("x" * 300, "best-" + "x" * 123),
    ],
)
def test_best_pin_name(run: str, pin: str) -> None:
    assert best_pin_name(run) == pin
    assert len(best_pin_name(run)) <= 128


def test_best_pin_names_are_pin_names(tmp_path: Path) -> None:
    """Every name best_pin_name makes is accepted by 'vault pin --name', even from a run name
    made of nothing it keeps (two such runs share the pin: --replace moves it)."""
    repo = two_runs(tmp_path)
    for run in ["exp 1", "a/b\\c", "\u00e9\u00e9", "." * 5, "y" * 200]:
        name = best_pin_name(run)
        args = ["--name", name, "--type", "best", "--reason", run, "--replace"]
        ok(run_vault(repo, "pin", "v001", *args))
    pins = json.loads(ok(run_vault(repo, "pin", "--json")).stdout)
    assert {p["name"] for p in pins} == {
        "best-exp-1", "best-a-b-c", "best-run", "best-" + "y" * 123,
    }  # fmt: skip


def readme_runs_block() -> str:
    """The shell block of the README's "Runs" subsection."""
    root = Path(__file__).resolve().parent.parent
    section = (root / "README.md").read_text().split("\n### Runs\n", 1)[1]
    m = re.search(r"```sh\n(.*?)```", section, re.S)
    assert m, "the Runs subsection has no sh block"
    return m.group(1)


def test_readme_runs_section_runs_as_written(tmp_path: Path) -> None:
    """The README's commands, run by bash in a project folder holding what it describes, with
    vault on the PATH: each succeeds, and they do what their comments say."""
    for run, step, start in [("exp1", 2, 2.0), ("exp1", 4, 2.0), ("exp2", 2, 3.0)]:
        trainer_checkpoint(tmp_path / "runs" / run / f"checkpoint-{step}", step, start)
    (tmp_path / "export" / "final").mkdir(parents=True)
    (tmp_path / "export" / "final" / "weights.bin").write_bytes(b"weights")
    ok(run_vault(tmp_path / ".vault", "init"))
    env = vault_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    script = "set -e\n" + readme_runs_block()
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    found = runs_json(tmp_path / ".vault")
    assert [(r["run"], r["versions"], r["best"]) for r in found] == [
        ("exp1", ["v001", "v003"], "v003"),
        ("exp2", ["v002", "v004"], None),
    ]
    log = log_by_name(tmp_path / ".vault")
    assert log["v003"]["parents"] == [log["v001"]["id"]] and log["v002"]["parents"] == []
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "eval.png").exists()
    assert "exp1 v001..v003" in proc.stdout and "curve loss" in proc.stdout

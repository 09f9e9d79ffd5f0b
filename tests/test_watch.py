"""``vault watch`` against real training runs and real faults.

The watcher always runs as its own process (``python -m vault --repo R watch ... --json``); a
thread reads its events with their arrival times. Training runs are real subprocesses
(``examples/watch_train.py``: a Hugging Face Trainer, and a plain PyTorch loop writing
``step_N/``); the fault tests write Trainer-like checkpoints by hand, which is faster and lets
them choose sizes and timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    README_MARKER,
    VAULT,
    assert_clean_error,
    assert_verify_ok,
    ok,
    readme_block,
    run_example_script,
    run_vault,
    snapshot,
    vault_env,
    write_checkpoint,
)

from vault import Repository

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "examples" / "watch_train.py"


# -- helpers ---------------------------------------------------------------------------------


class Watch:
    """A ``vault watch --json`` process and the events it printed, with their arrival times."""

    def __init__(self, repo: Path, folder: Path, *args: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [*VAULT, "--repo", str(repo), "watch", str(folder), "--json", *args],
            env=env or vault_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[tuple[float, dict]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append((time.monotonic(), json.loads(line)))

    def of(self, kind: str) -> list[dict]:
        """The events of one kind, in order."""
        return [e for _, e in list(self.events) if e["event"] == kind]

    def wait_for(self, kind: str, count: int, timeout: float = 90) -> list[dict]:
        """Wait until ``count`` events of ``kind`` arrived; return them."""
        deadline = time.monotonic() + timeout
        while len(self.of(kind)) < count:
            assert self.proc.poll() is None, f"watch exited {self.proc.returncode}: {self.stderr()}"
            assert time.monotonic() < deadline, f"{self.of(kind)} after {timeout}s"
            time.sleep(0.05)
        return self.of(kind)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait for the exit status."""
        self.proc.send_signal(sig)
        return self.finish(timeout)

    def finish(self, timeout: float = 60) -> int:
        """Wait for the process to exit and its output to be read."""
        rc = self.proc.wait(timeout)
        self._reader.join(10)
        return rc

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read() if self.proc.poll() is not None else ""


def trainer_checkpoint(
    folder: Path, step: int, *, max_steps: int = 6, eval_loss: float | None = None
) -> Path:
    """``folder/checkpoint-STEP``: weights, then ``trainer_state.json`` last, as the Trainer."""
    path = write_checkpoint(folder / f"checkpoint-{step}", step)
    write_state(path, step, max_steps=max_steps, eval_loss=eval_loss)
    return path


def write_state(path: Path, step: int, *, max_steps: int = 6, eval_loss: float | None = None):
    history: list[dict] = [{"step": s, "loss": 2.0 / s} for s in range(1, step + 1)]
    if eval_loss is not None:
        history.append({"step": step, "eval_loss": eval_loss})
    state = {"global_step": step, "max_steps": max_steps, "log_history": history}
    (path / "trainer_state.json").write_text(json.dumps(state))


def run_log(repo: Path, run: str) -> list[dict]:
    return json.loads(ok(run_vault(repo, "log", "--run", run, "--json")).stdout)


def assert_each_once(repo: Path, run: str, checkpoints: dict[str, int]) -> list[dict]:
    """The run's checkpoint versions are exactly one per checkpoint, with its steps (a merged
    model consolidated from the run's adapter belongs to the run too, with no checkpoint)."""
    entries = [e for e in run_log(repo, run) if "lineage" not in e["meta"]]
    got = sorted((e["checkpoint"], e["steps"]) for e in entries)
    assert got == sorted(checkpoints.items()), got
    return entries


def repo_bytes(repo: Path) -> int:
    total = 0
    for root, _, files in os.walk(repo):
        for name in files:
            with contextlib.suppress(OSError):  # a temporary file renamed meanwhile
                total += os.lstat(os.path.join(root, name)).st_size
    return total


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh repository's directory (the watcher and every check run as processes)."""
    return Repository.init(tmp_path / "repo").root


# -- the README section, and with it a real Trainer run ---------------------------------------


def test_readme_shows_exactly_the_script() -> None:
    script = (ROOT / "examples" / "watch.sh").read_text()
    assert README_MARKER in script
    block = readme_block(ROOT / "README.md", "## Training with vault watch")
    assert block == script.split(README_MARKER, 1)[1]


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run ``examples/watch.sh`` (the README's commands) once: a real Trainer trains a LoRA
    adapter on a tiny Llama while ``vault watch`` commits, pins and consolidates."""
    tmp = tmp_path_factory.mktemp("watch-readme")
    return run_example_script(ROOT / "examples" / "watch.sh", tmp, timeout=240)


def test_trainer_checkpoints_land_once_with_their_steps(readme_run: tuple[Path, str]) -> None:
    project, out = readme_run
    assert "Traceback" not in out
    repo = project / ".vault"
    entries = assert_each_once(
        repo, "exp1", {"checkpoint-2": 2, "checkpoint-4": 4, "checkpoint-6": 6}
    )
    assert all(e["loss"] is not None for e in entries)
    events = [json.loads(line) for line in (project / "watch.jsonl").read_text().splitlines()]
    commits = [e for e in events if e["event"] == "commit"]
    assert [e["steps"] for e in commits] == [2, 4, 6]
    assert {"version", "path", "steps", "loss"} <= set(commits[0])
    # The second watcher of the script (--once, after the first was stopped) found nothing
    # left: the repository's record says every checkpoint is in.
    assert "nothing left" in out
    assert_verify_ok(repo)


def test_pin_best_keeps_the_runs_best(readme_run: tuple[Path, str]) -> None:
    project, _ = readme_run
    repo = project / ".vault"
    evals = {}
    for step in (2, 4, 6):
        state = json.loads(
            (project / f"runs/exp1/checkpoint-{step}/trainer_state.json").read_text()
        )
        (evals[step],) = [
            e["eval_loss"]
            for e in state["log_history"]
            if e.get("step") == step and "eval_loss" in e
        ]
    best_step = min(evals, key=evals.__getitem__)
    pins = json.loads(ok(run_vault(repo, "backup", "list", "--json")).stdout)
    (best,) = [p for p in pins if p["name"] == "best-exp1"]
    by_id = {e["id"]: e for e in run_log(repo, "exp1")}
    assert by_id[best["id"]]["steps"] == best_step
    assert best["type"] == "best"
    assert best["reason"].startswith(f"eval_loss={evals[best_step]!r}")


def test_consolidate_best_equals_peft_merge(readme_run: tuple[Path, str], tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    project, _ = readme_run
    repo = project / ".vault"
    events = [json.loads(line) for line in (project / "watch.jsonl").read_text().splitlines()]
    (merged_event,) = [e for e in events if e["event"] == "consolidate"]
    pins = json.loads(ok(run_vault(repo, "backup", "list", "--json")).stdout)
    (best,) = [p for p in pins if p["name"] == "best-exp1"]
    assert merged_event["adapter"] == best["id"]
    show = json.loads(ok(run_vault(repo, "show", merged_event["version"], "--json")).stdout)
    assert show["meta"]["lineage"]["adapter"] == best["id"]

    merged_dir, adapter_dir = tmp_path / "merged", tmp_path / "adapter"
    ok(run_vault(repo, "checkout", merged_event["version"], str(merged_dir)))
    ok(run_vault(repo, "checkout", best["id"], str(adapter_dir)))
    base = LlamaForCausalLM.from_pretrained(project / "base_model", dtype=torch.float32)
    expected = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().state_dict()
    got = LlamaForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).state_dict()
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, atol=1e-6, rtol=1e-6, msg=name)
    plain = LlamaForCausalLM.from_pretrained(project / "base_model").state_dict()
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(plain[q], got[q])  # the adapter really changed the model


# -- a plain PyTorch loop ----------------------------------------------------------------------


def test_plain_loop_step_folders_land_once(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "plain"
    out.mkdir(parents=True)
    watch = Watch(repo, out, "--pattern", "step_*", "--settle", "1")
    train = subprocess.run(
        [sys.executable, str(TRAIN), "plain", str(out), "--steps", "6", "--every", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    commits = watch.wait_for("commit", 3)
    assert watch.stop() == 0
    assert [(e["checkpoint"], e["steps"]) for e in commits] == [
        ("step_2", 2),
        ("step_4", 4),
        ("step_6", 6),
    ]
    assert_each_once(repo, "plain", {"step_2": 2, "step_4": 4, "step_6": 6})
    for e in commits:  # what was committed is what the loop wrote, complete
        dest = tmp_path / "co" / e["checkpoint"]
        ok(run_vault(repo, "checkout", e["version"], str(dest)))
        assert snapshot(dest) == snapshot(out / e["checkpoint"])


# -- faults ----------------------------------------------------------------------------------


def test_sigterm_during_a_commit_finishes_it_and_exits_0(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "big"
    trainer_checkpoint(out, 2)
    big = write_checkpoint(out / "checkpoint-4", 4)
    with open(big / "optimizer.pt", "wb") as f:  # a commit of a few seconds
        for _ in range(30):
            f.write(os.urandom(10 << 20))
    write_state(big, 4)
    trainer_checkpoint(out, 6)
    watch = Watch(repo, out, "--settle", "0.5")
    watch.wait_for("commit", 1)
    start = repo_bytes(repo)
    deadline = time.monotonic() + 60
    while repo_bytes(repo) < start + (30 << 20):  # checkpoint-4's bytes are going in
        assert time.monotonic() < deadline and watch.proc.poll() is None
        time.sleep(0.02)
    sent = time.monotonic()
    assert len(watch.of("commit")) == 1  # checkpoint-4's commit is in progress
    assert watch.stop(signal.SIGTERM) == 0
    commits = [(t, e) for t, e in watch.events if e["event"] == "commit"]
    # The commit in progress finished (its event came after the signal); nothing new began.
    assert [e["checkpoint"] for _, e in commits] == ["checkpoint-2", "checkpoint-4"]
    assert commits[1][0] > sent
    assert_verify_ok(repo)
    assert_each_once(repo, "big", {"checkpoint-2": 2, "checkpoint-4": 4})

    again = Watch(repo, out, "--settle", "0.5", "--once")
    assert again.finish() == 0
    assert [e["checkpoint"] for e in again.of("commit")] == ["checkpoint-6"]
    assert_each_once(repo, "big", {"checkpoint-2": 2, "checkpoint-4": 4, "checkpoint-6": 6})
    assert_verify_ok(repo)


@pytest.mark.parametrize("point", ["version-written:2", "object-written:3"])
def test_kill_9_during_a_commit_then_restart(repo: Path, tmp_path: Path, point: str) -> None:
    out = tmp_path / "runs" / "killed"
    for step in (2, 4, 6):
        trainer_checkpoint(out, step)
    env = vault_env(VAULT_CRASHPOINT=point)
    watch = Watch(repo, out, "--settle", "0", env=env)
    assert watch.finish() == -signal.SIGKILL
    before = {e["checkpoint"] for e in run_log(repo, "killed")}
    assert before < {"checkpoint-2", "checkpoint-4", "checkpoint-6"}
    assert_verify_ok(repo)

    again = Watch(repo, out, "--settle", "0", "--once")
    assert again.finish() == 0
    landed = [e["checkpoint"] for e in again.of("commit")]
    assert not set(landed) & before  # nothing committed twice
    assert_each_once(repo, "killed", {"checkpoint-2": 2, "checkpoint-4": 4, "checkpoint-6": 6})
    assert_verify_ok(repo)
    third = Watch(repo, out, "--settle", "0", "--once")
    assert third.finish() == 0 and third.of("commit") == []


def test_a_checkpoint_still_being_written_is_committed_once_complete(
    repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs" / "slow"
    out.mkdir(parents=True)
    watch = Watch(repo, out, "--settle", "1")
    time.sleep(0.5)
    folder = out / "checkpoint-2"
    write_checkpoint(folder, 2)  # seen at once, incomplete: no trainer_state.json yet
    time.sleep(1.6)  # longer than --settle: quiet, but not complete
    rng = np.random.default_rng(7)
    with open(folder / "optimizer.pt", "wb") as f:
        for _ in range(4):
            f.write(rng.bytes(1 << 20))
            f.flush()
            time.sleep(0.4)
    time.sleep(1.6)
    assert watch.of("commit") == []
    write_state(folder, 2)
    written = time.monotonic()
    (commit,) = watch.wait_for("commit", 1, timeout=30)
    time.sleep(1.5)
    assert watch.stop() == 0
    assert len(watch.of("commit")) == 1
    assert [t for t, e in watch.events if e["event"] == "commit"][0] > written
    dest = tmp_path / "co"
    ok(run_vault(repo, "checkout", commit["version"], str(dest)))
    assert snapshot(dest) == snapshot(folder)  # every byte, trainer_state.json included
    assert_each_once(repo, "slow", {"checkpoint-2": 2})


def test_a_checkpoint_renamed_into_place_is_complete_at_once(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "moved"
    out.mkdir(parents=True)
    watch = Watch(repo, out, "--settle", "60")
    time.sleep(0.5)
    built = trainer_checkpoint(tmp_path / "staging", 2)  # outside the folder
    os.rename(built, out / "checkpoint-2")
    inside = trainer_checkpoint(out, 4)
    os.rename(inside, out / "checkpoint-4x")  # also matches checkpoint-*: a move within
    trainer_checkpoint(out, 6)  # written in place: waits for its 60 s
    commits = watch.wait_for("commit", 2, timeout=20)
    time.sleep(1)
    assert watch.stop() == 0
    assert sorted(e["checkpoint"] for e in watch.of("commit")) == ["checkpoint-2", "checkpoint-4x"]
    assert len(commits) == 2


def test_push_after_each_commit_retried_after_failure(repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.write_text("not a repository yet")  # the push fails until this is gone
    ok(run_vault(repo, "remote", "add", "origin", str(remote)))
    out = tmp_path / "runs" / "pushed"
    trainer_checkpoint(out, 2)
    watch = Watch(repo, out, "--settle", "0.2", "--push", "origin")
    watch.wait_for("commit", 1)
    (failed,) = watch.wait_for("push", 1)
    assert "error" in failed and failed["remote"] == "origin"
    remote.unlink()
    trainer_checkpoint(out, 4)  # never blocked by the failed push; its push is the retry
    watch.wait_for("commit", 2)
    pushes = watch.wait_for("push", 2)
    assert watch.stop() == 0
    assert "error" not in pushes[1] and pushes[1]["versions"] == ["v001", "v002"]
    remote_log = json.loads(ok(run_vault(remote, "log", "--json")).stdout)
    assert sorted(e["checkpoint"] for e in remote_log) == ["checkpoint-2", "checkpoint-4"]


def test_the_end_marker_ends_the_run_for_consolidate_last(repo: Path, tmp_path: Path) -> None:
    """--end-marker: the run ends when the file appears; consolidating a full-model checkpoint
    (not an adapter) is reported as an error event, once, and the watcher goes on."""
    out = tmp_path / "runs" / "marked"
    trainer_checkpoint(out, 2, max_steps=100)
    base = write_checkpoint(tmp_path / "base", 0)
    watch = Watch(
        repo, out, "--settle", "0", "--consolidate", "last", "--base", str(base),
        "--end-marker", "DONE",
    )  # fmt: skip
    watch.wait_for("commit", 1)
    time.sleep(1)
    assert watch.of("error") == []  # max_steps not reached, no marker: the run goes on
    (out / "DONE").write_text("")
    (error,) = watch.wait_for("error", 1)
    assert "config.json" in error["message"] or "adapter" in error["message"]
    trainer_checkpoint(out, 4, max_steps=100)
    watch.wait_for("commit", 2)
    assert watch.stop() == 0
    assert len(watch.of("error")) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--consolidate", "best"], "--base"),
        (["--consolidate", "best", "--base", "v001"], "--pin-best"),
        (["--settle", "-1"], "--settle"),
        (["--end-marker", "a/b"], "--end-marker"),
    ],
)
def test_bad_options_are_refused(repo: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    assert_clean_error(run_vault(repo, "watch", str(tmp_path), *args), needle)


def test_missing_folder_is_refused(repo: Path, tmp_path: Path) -> None:
    assert_clean_error(run_vault(repo, "watch", str(tmp_path / "nowhere"), "--once"), "nowhere")


def test_human_output_one_line_per_commit(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "human"
    trainer_checkpoint(out, 2)
    proc = ok(run_vault(repo, "watch", str(out), "--once", "--settle", "0"))
    assert proc.stdout == "v001 checkpoint-2 step 2 loss 1\n"

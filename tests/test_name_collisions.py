"""Tags and pins share one set of names: creating one under the other's name is refused with one
line and exit code 4, and nothing changes; ``vault tag`` lists ``latest`` and ``base`` too."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from faultkit import assert_clean_error, ok, run_vault, snapshot, write_checkpoint

from vault import Repository
from vault.errors import NameTaken, RefConflict
from vault.ops.pins import generate_name
from vault.refs import TAGS
from vault.revisions import claim_name

REFUSED = 4


@pytest.fixture
def two(tmp_path: Path, repo: Repository) -> Path:
    """A repository (its ``.vault`` path) with v001 and v002, real safetensors checkpoints."""
    for step in (1, 2):
        src = write_checkpoint(tmp_path / f"c{step}", step)
        ok(run_vault(repo.root, "commit", str(src), "-m", f"s{step}"))
    return repo.root


def js(proc: Any) -> Any:
    return json.loads(ok(proc).stdout)


def refused(root: Path, *args: str) -> str:
    """Run a command that must be refused as a name clash; return its error line and check that
    the repository did not change at all."""
    before = snapshot(root)
    proc = run_vault(root, *args)
    line = assert_clean_error(proc, "tags and pins share one set of names")
    assert proc.returncode == REFUSED, proc.returncode
    assert snapshot(root) == before
    return line


def test_a_tag_cannot_take_a_pins_name(two: Path) -> None:
    """The trial: 'vault tag best v004' was accepted while a pin best sat on v005, and 'show
    best' then meant v004."""
    ok(run_vault(two, "pin", "v002", "--reason", "the best", "--name", "best"))
    line = refused(two, "tag", "best", "v001")
    assert "tag named best" in line and "a pin has that name" in line
    refused(two, "tag", "best", "v001", "--force")  # --force moves tags, never a pin
    refused(two, "tag", "best", "no-such-revision")  # the name is checked first
    assert js(run_vault(two, "show", "best", "--json"))["version"] == "v002"


def test_a_pin_or_backup_cannot_take_a_tags_name(two: Path, tmp_path: Path) -> None:
    ok(run_vault(two, "tag", "best", "v001"))
    line = refused(two, "pin", "v002", "--reason", "r", "--name", "best")
    assert "pin named best" in line and "a tag has that name" in line
    refused(two, "pin", "v002", "--reason", "r", "--name", "best", "--replace")
    src = write_checkpoint(tmp_path / "other", 9)
    refused(two, "backup", str(src), "--reason", "r", "--name", "best")
    assert js(run_vault(two, "show", "best", "--json"))["version"] == "v001"


def test_generated_pin_names_step_around_tags(repo: Repository, two: Path) -> None:
    """A pin vault names itself (delete's pre_deletion pin) never takes a tag's name: it takes
    the next free one."""
    stamp = "20300101T000000"
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    ok(run_vault(two, "tag", f"pre_deletion-v001-{stamp}", "v001"))
    name = generate_name(repo.refs.read(), "pre_deletion", "v001", when)
    assert name == f"pre_deletion-v001-{stamp}-2"


def test_a_tag_and_a_pin_racing_for_one_name_do_not_both_win(repo: Repository, two: Path) -> None:
    """Each writer checks the name in its transaction, and the check is replayed when another
    writer published first: the second to publish fails and publishes nothing."""
    v1 = repo.resolve("v001")
    with pytest.raises(RefConflict), repo.refs.transaction("tag best") as txn:
        claim_name(txn, "best", "tag")
        txn.set(TAGS + "best", v1, expected=None)
        repo.pin("v002", type="manual", reason="meanwhile", name="best")  # published first
    refs = repo.refs.read().refs
    assert "pins/best" in refs and "tags/best" not in refs
    with pytest.raises(NameTaken):
        repo.tag("best", "v001")


def test_vault_tag_lists_latest_and_base(repo: Repository, two: Path) -> None:
    ok(run_vault(two, "tag", "rc1", "v001"))
    rows = ok(run_vault(two, "tag")).stdout.splitlines()
    assert rows[0].split("\t")[:2] == ["rc1", "v001"]
    assert rows[1].split("\t")[:2] == ["latest", "v002"] and rows[1].endswith("(reserved)")
    listed = js(run_vault(two, "tag", "--json"))
    assert [(t["name"], t["version"], t["reserved"]) for t in listed] == [
        ("rc1", "v001", False),
        ("latest", "v002", True),
    ]
    assert all({"name", "id", "version"} <= set(t) for t in listed)  # the keys it always had
    # base appears once set (consolidation sets it; here by hand, as refs.json allows)
    with repo.refs.transaction("test: set base") as txn:
        txn.set("base", repo.resolve("v001"))
    listed = js(run_vault(two, "tag", "--json"))
    assert [(t["name"], t["version"]) for t in listed if t["reserved"]] == [
        ("latest", "v002"),
        ("base", "v001"),
    ]


def test_pull_refuses_to_make_a_name_both_a_tag_and_a_pin(tmp_path: Path) -> None:
    """A remote tag arriving where a local pin has its name: the pull is refused with one line,
    and the local refs are as they were (nothing lost; the objects fetched are harmless)."""
    remote = str(tmp_path / "remote")
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        ok(run_vault(root, "init"))
        ok(run_vault(root, "remote", "add", "origin", remote))
    ok(run_vault(a, "commit", str(write_checkpoint(tmp_path / "c1", 1)), "-m", "one"))
    ok(run_vault(a, "push"))
    ok(run_vault(b, "pull"))
    ok(run_vault(a, "tag", "best", "v001"))
    ok(run_vault(a, "push"))
    ok(run_vault(b, "pin", "v001", "--reason", "mine", "--name", "best"))
    refs_before = (b / "refs.json").read_bytes()
    proc = run_vault(b, "pull")
    line = assert_clean_error(proc, "best", "remote origin", "both a tag and a pin")
    assert proc.returncode == REFUSED, line
    assert (b / "refs.json").read_bytes() == refs_before
    # and the other way: pushing the pin where the remote has the tag is refused too
    proc = run_vault(b, "push")
    assert_clean_error(proc, "best", "both a tag and a pin")
    assert proc.returncode == REFUSED
    assert "pins/best" not in json.loads((tmp_path / "remote" / "refs.json").read_text())["refs"]
    # once the local pin is renamed, the pull goes through
    ok(run_vault(b, "unpin", "best"))
    ok(run_vault(b, "pull"))
    assert js(run_vault(b, "show", "best", "--json"))["version"] == "v001"


def test_the_best_checkpoint_callback_warns_instead_of_stopping_training(
    repo: Repository, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """pin_best_metric pins 'best-<run>' itself: with a tag of that name, the pin is refused,
    and the callback says so and lets training go on (the checkpoint is still committed)."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from vault.integrations import VaultCallback

    repo.commit(write_checkpoint(tmp_path / "c0", 1), "before training")
    repo.tag("best-run", "v001")
    out = tmp_path / "run"
    ckpt = out / "checkpoint-1"
    write_checkpoint(ckpt, 2)
    history = [{"step": 1, "eval_loss": 0.5}]
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 1, "log_history": history}))
    args = TrainingArguments(output_dir=str(out), report_to=[], use_cpu=True)
    state = TrainerState()
    state.global_step, state.log_history = 1, history
    callback = VaultCallback(repo, pin_best_metric="eval_loss")
    with caplog.at_level("WARNING", logger="vault"):
        callback.on_save(args, state, TrainerControl())
    assert [v.version for v in repo.log(limit=1)] == ["v002"]
    assert repo.pins() == [] and repo.resolve("best-run") == repo.resolve("v001")
    assert "not pinned" in caplog.text and "best-run" in caplog.text


def test_commit_tag_under_a_pin_name_is_refused(tmp_path: Path) -> None:
    """``vault commit --tag NAME`` where a pin is named NAME: refused, no version made."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    model = tmp_path / "m"
    model.mkdir()
    (model / "a.txt").write_text("one")
    ok(run_vault(repo, "commit", str(model), "-m", "one"))
    ok(run_vault(repo, "pin", "v001", "--reason", "keep", "--name", "keeper"))
    (model / "a.txt").write_text("two")
    before = snapshot(repo)
    proc = run_vault(repo, "commit", str(model), "-m", "two", "--tag", "keeper")
    assert_clean_error(proc, "keeper")
    assert proc.returncode == 4
    assert snapshot(repo) == before

"""Training metadata through the API and the CLI: commit, log, show, gc and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest
from click.testing import Result
from test_meta import make_checkpoint, training_history

from vault import Repository
from vault.errors import BadValue, PathNotFound
from vault.objects import Version
from vault.ops.walk import reach

Vault = Callable[..., Result]

LOG_KEYS = {"steps", "loss", "base_model", "data", "snapshots", "pins", "description"}


def ok(res: Result) -> Result:
    assert res.exit_code == 0, (res.stdout, res.stderr, res.exception)
    return res


def error_line(res: Result) -> str:
    """The one line a failing command prints (no traceback)."""
    assert res.exit_code != 0, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vault: error: "), res.stderr
    return lines[0]


def attached_bytes(repo: Repository, rev: str, role: str) -> dict[str, bytes]:
    """``{path: content}`` of an attachment tree of ``rev``, read back from the store."""
    version = repo.store.get_version(repo.resolve(rev))
    tree = repo.store.get_tree(version.attachments[role])
    out = {}
    for entry in tree.entries:
        assert entry.file is not None
        chunks = repo.store.get_file(entry.file).chunks
        out[entry.path] = b"".join(repo.store.get(c.oid) for c in chunks)
    return out


def object_count(repo: Repository) -> int:
    return sum(1 for _ in repo.store.list())


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return make_checkpoint(tmp_path / "run" / "checkpoint-100", steps=100)


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "train.jsonl"
    path.parent.mkdir()
    path.write_bytes(b"".join(b'{"text": "sample %d"}\n' % i for i in range(2000)))
    return path


# -- API -----------------------------------------------------------------------------------


def test_checkpoint_commit_records_training_without_arguments(
    repo: Repository, checkpoint: Path
) -> None:
    res = repo.commit(checkpoint, "LoRA r=4, step 100")
    [entry] = repo.log()
    assert (entry.version, entry.id) == (res.version, res.id)
    assert entry.steps == 100 and entry.loss == 0.4 and entry.eval_loss == 0.5
    assert entry.base_model == "tiny-llama/base" and entry.base_model_id is None
    assert entry.description == entry.message == "LoRA r=4, step 100"
    assert (entry.data, entry.snapshots, entry.pins) == ([], None, [])
    assert entry.curve is None  # log does not read the curve
    info = repo.show("latest")
    assert info.curve == training_history(100)
    assert {f.path for f in info.files or []} == {
        "trainer_state.json",
        "adapter_config.json",
        "adapter_model.safetensors",
    }


def test_explicit_values_win_over_the_checkpoint(repo: Repository, checkpoint: Path) -> None:
    repo.commit(checkpoint, "first")
    repo.commit(checkpoint, "again", steps=7, loss=0.125, base_model="v001", allow_empty=True)
    info = repo.show("v002")
    assert (info.steps, info.loss, info.eval_loss) == (7, 0.125, 0.5)
    assert info.base_model == "v001" and info.base_model_id == repo.resolve("v001")
    assert info.curve == training_history(100)  # the curve still comes from the checkpoint


def test_plain_directory_records_only_what_is_given(repo: Repository, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"w" * 100)
    repo.commit(tmp_path / "model", "plain")
    info = repo.show("latest")
    assert (info.steps, info.loss, info.base_model, info.curve) == (None, None, None, None)
    repo.commit(
        tmp_path / "model", "named", steps=0, loss=3, base_model=" meta/Llama-3 ", allow_empty=True
    )
    info = repo.show("latest")
    assert (info.steps, info.loss, info.base_model, info.base_model_id) == (
        0,
        3.0,
        "meta/Llama-3",
        None,
    )


def test_a_version_without_training_keeps_the_format_one_bytes() -> None:
    plain = Version(tree="a" * 64, parents=(), message="m", created="2026-01-01T00:00:00+00:00")
    doc = json.loads(plain.to_bytes())
    assert "training" not in doc and "attachments" not in doc
    rich = Version(
        tree="a" * 64,
        parents=(),
        message="m",
        created="2026-01-01T00:00:00+00:00",
        training={"steps": 3},
        attachments={"data": "b" * 64},
    )
    again = Version.from_bytes(rich.to_bytes())
    assert again == rich and again.trees() == ("a" * 64, "b" * 64)


def test_data_recorded_but_not_stored(repo: Repository, checkpoint: Path, train_file: Path) -> None:
    before = object_count(repo)
    repo.commit(checkpoint, "with data", data=[train_file])
    [record] = repo.show("latest").data
    content = train_file.read_bytes()
    assert record == {
        "path": "data/train.jsonl",  # relative to the project folder, which holds .vault
        "size": len(content),
        "blake3": blake3.blake3(content).hexdigest(),
        "stored": False,
    }
    version = repo.store.get_version(repo.resolve("latest"))
    assert version.attachments == {}
    # No object holds the data: only the checkpoint's files were stored.
    repo2 = Repository.init(train_file.parent.parent / "other")
    repo2.commit(checkpoint, "no data")
    assert object_count(repo) - before == object_count(repo2)


def test_stored_data_survives_gc_after_the_source_is_gone(
    repo: Repository, checkpoint: Path, train_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "eval" / "train.jsonl"  # same base name, other folder
    other.parent.mkdir()
    other.write_bytes(b"eval data\n" * 10)
    content = train_file.read_bytes()
    repo.commit(checkpoint, "stored", data=[train_file, other, train_file], store_data=True)
    info = repo.show("latest")
    assert [d["path"] for d in info.data] == ["data/train.jsonl", "eval/train.jsonl"]
    assert all(d["stored"] for d in info.data)
    train_file.unlink()
    other.unlink()
    repo.gc(grace=0)
    stored = attached_bytes(repo, "latest", "data")
    assert stored == {
        "data/train.jsonl": content,
        "eval/train.jsonl": b"eval data\n" * 10,
    }
    assert repo.verify().ok


def test_snapshots_are_stored_and_counted(
    repo: Repository, checkpoint: Path, tmp_path: Path
) -> None:
    snaps = tmp_path / "snapshots"
    for step in (25, 50, 75):
        make_checkpoint(snaps / f"step-{step}", steps=step, seed=step, base_model=None)
    (snaps / "final.txt").write_text("loss 0.4")
    repo.commit(checkpoint, "with snapshots", snapshots=snaps)
    assert repo.log()[0].snapshots == 4
    version = repo.store.get_version(repo.resolve("latest"))
    r = reach(repo.store, {repo.resolve("latest")})
    assert version.attachments["snapshots"] in r.trees
    expected = {
        p.relative_to(snaps).as_posix(): p.read_bytes() for p in snaps.rglob("*") if p.is_file()
    }
    for p in snaps.rglob("*"):
        if p.is_file():
            p.unlink()
    repo.gc(grace=0)
    assert attached_bytes(repo, "latest", "snapshots") == expected


def test_empty_snapshots_directory_counts_zero(repo: Repository, checkpoint: Path, tmp_path: Path):
    (tmp_path / "none").mkdir()
    repo.commit(checkpoint, "no snapshots yet", snapshots=tmp_path / "none")
    assert repo.show("latest").snapshots == 0


def test_gc_drops_attachments_of_unreferenced_versions(
    repo: Repository, checkpoint: Path, train_file: Path
) -> None:
    repo.commit(checkpoint, "stored", data=[train_file], store_data=True)
    tree = repo.store.get_version(repo.resolve("latest")).attachments["data"]
    with repo.refs.transaction("test: drop") as txn:
        for ref, oid in list(txn.doc.refs.items()):
            txn.delete(ref, expected=oid)
    repo.gc(grace=0)
    assert repo.store.stat(tree) is None


def test_pins_appear_in_log_and_show(repo: Repository, checkpoint: Path) -> None:
    repo.commit(checkpoint, "one")
    repo.commit(checkpoint, "two", allow_empty=True)
    with repo.refs.transaction("test: pins") as txn:
        txn.set("pins/zeta", repo.resolve("v001"), expected=None)
        txn.set("pins/alpha", repo.resolve("v001"), expected=None)
    assert [e.pins for e in repo.log()] == [[], ["alpha", "zeta"]]
    assert repo.show("v001").pins == ["alpha", "zeta"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": -1}, BadValue, "negative"),
        ({"steps": 2.5}, BadValue, "whole number"),
        ({"loss": "low"}, BadValue, "number"),
        ({"loss": float("nan")}, BadValue, "finite"),
        ({"base_model": ""}, BadValue, "base model"),
        ({"data": ["missing.jsonl"]}, PathNotFound, "missing.jsonl"),
        ({"snapshots": "no-such-dir"}, PathNotFound, "no-such-dir"),
    ],
)
def test_bad_arguments_store_nothing(
    repo: Repository,
    checkpoint: Path,
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(checkpoint.parent)
    with pytest.raises(error, match=match):
        repo.commit(checkpoint, "bad", **kwargs)
    assert repo.log() == [] and object_count(repo) == 0


def test_data_directory_and_snapshot_file_are_refused(
    repo: Repository, checkpoint: Path, train_file: Path
) -> None:
    with pytest.raises(BadValue, match="not a regular file"):
        repo.commit(checkpoint, "bad", data=[train_file.parent])
    with pytest.raises(BadValue, match="not a directory"):
        repo.commit(checkpoint, "bad", snapshots=train_file)
    assert object_count(repo) == 0


# -- CLI -----------------------------------------------------------------------------------


def test_cli_commit_with_every_flag_then_log_json(
    vault_cli: Vault, checkpoint: Path, train_file: Path, tmp_path: Path
) -> None:
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    (snaps / "step-50.safetensors").write_bytes(b"s" * 64)
    ok(vault_cli("commit", str(checkpoint), "-m", "first"))
    out = ok(
        vault_cli(
            "commit",
            str(checkpoint),
            "--description",
            "second run",
            "--data",
            str(train_file),
            "--store-data",
            "--steps",
            "250",
            "--loss",
            "0.25",
            "--base-model",
            "v001",
            "--snapshots",
            str(snaps),
            "--tag",
            "good",
            "--allow-empty",  # the same files: only the metadata differs
            "--json",
        )  # fmt: skip
    )
    assert json.loads(out.stdout)["version"] == "v002"
    log = json.loads(ok(vault_cli("log", "--json")).stdout)
    assert set(log[0]) >= LOG_KEYS and "curve" not in log[0]
    newest, oldest = log
    assert newest["description"] == newest["message"] == "second run"
    assert (newest["steps"], newest["loss"], newest["base_model"]) == (250, 0.25, "v001")
    assert newest["base_model_id"] == oldest["id"]
    assert newest["snapshots"] == 1 and newest["pins"] == [] and newest["tags"] == ["good"]
    assert newest["data"] == [
        {
            "path": "data/train.jsonl",
            "size": train_file.stat().st_size,
            "blake3": blake3.blake3(train_file.read_bytes()).hexdigest(),
            "stored": True,
        }
    ]
    assert (oldest["steps"], oldest["loss"], oldest["base_model"]) == (100, 0.4, "tiny-llama/base")
    assert (oldest["data"], oldest["snapshots"]) == ([], None)


def test_cli_message_alias_and_required_description(vault_cli: Vault, checkpoint: Path) -> None:
    ok(vault_cli("commit", str(checkpoint), "--message", "old spelling"))
    assert json.loads(ok(vault_cli("log", "--json")).stdout)[0]["description"] == "old spelling"
    assert "-m" in error_line(vault_cli("commit", str(checkpoint)))


def test_cli_log_table_has_every_column_when_piped(
    vault_cli: Vault, repo: Repository, checkpoint: Path, tmp_path: Path
) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.bin").write_bytes(b"a")
    ok(vault_cli("commit", str(tmp_path / "plain"), "-m", "plain files"))
    ok(vault_cli("commit", str(checkpoint), "-m", "LoRA step 100", "--tag", "best"))
    with repo.refs.transaction("test: pin") as txn:
        txn.set("pins/keep-me", repo.resolve("v002"), expected=None)
    lines = ok(vault_cli("log")).stdout.splitlines()  # CliRunner output is not a terminal
    runs = {tmp_path.name, checkpoint.parent.name}  # the folders holding what was committed
    header = [
        "VERSION", "ID", "DATE", "RUN", "STEPS", "LOSS", "BASE_MODEL", "SIZE", "TAGS", "PINS",
        "DESCRIPTION",
    ]  # fmt: skip
    if len(runs) < 2:  # the RUN column shows only when there is more than one run to tell
        header.remove("RUN")
    assert lines[0].split() == header
    at = header.index("STEPS") + 1  # DATE is two cells
    cells = lines[1].split()
    assert cells[0] == "v002" and cells[at : at + 3] == ["100", "0.4", "tiny-llama/base"]
    assert cells[-5:] == ["best", "keep-me", "LoRA", "step", "100"]
    plain = lines[2].split()
    assert plain[0] == "v001" and plain[at : at + 3] == ["-", "-", "-"]
    assert lines[2].endswith("plain files")


def test_cli_show_prints_training_data_and_sparkline(
    vault_cli: Vault, checkpoint: Path, train_file: Path
) -> None:
    ok(vault_cli("commit", str(checkpoint), "-m", "run", "--data", str(train_file)))
    out = ok(vault_cli("show", "latest")).stdout
    assert "steps    100" in out
    assert "loss     0.4 (eval 0.5)" in out
    assert "base     tiny-llama/base" in out
    assert "data     data/train.jsonl" in out and "not stored" in out
    [curve] = [ln for ln in out.splitlines() if ln.startswith("curve    loss ")]
    assert curve.endswith("0.4 over 100 steps (10 points)")
    spark = curve.split()[3]
    assert spark[0] == "█" and spark[-1] == "▁" and len(spark) == 10
    assert "adapter_model.safetensors" in out
    info = json.loads(ok(vault_cli("show", "latest", "--json")).stdout)
    assert info["curve"] == training_history(100)
    assert info["files"] and info["data"][0]["stored"] is False


def test_cli_show_plot_writes_png(vault_cli: Vault, checkpoint: Path, tmp_path: Path) -> None:
    ok(vault_cli("commit", str(checkpoint), "-m", "run"))
    ok(vault_cli("show", "v001", "--plot", str(tmp_path / "curve.png")))
    assert (tmp_path / "curve.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("name", "needle"), [("curve.xyz", "not supported"), ("no/dir/c.png", "path not found")]
)
def test_cli_show_plot_bad_destination(
    vault_cli: Vault, checkpoint: Path, tmp_path: Path, name: str, needle: str
) -> None:
    ok(vault_cli("commit", str(checkpoint), "-m", "run"))
    assert needle in error_line(vault_cli("show", "v001", "--plot", str(tmp_path / name)))
    assert not any(p.name.startswith("curve") for p in tmp_path.iterdir())


def test_cli_show_plot_without_curve_is_one_line(vault_cli: Vault, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"w")
    ok(vault_cli("commit", str(tmp_path / "m"), "-m", "no curve"))
    assert "no learning curve" in error_line(
        vault_cli("show", "v001", "--plot", str(tmp_path / "c.png"))
    )
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--data", "nope.jsonl"], "path not found: nope.jsonl"),
        (["--steps", "-3"], "steps"),
        (["--steps", "many"], "--steps"),
        (["--loss", "abc"], "--loss"),
        (["--loss", "nan"], "finite"),
        (["--snapshots", "missing-dir"], "path not found"),
    ],
)
def test_cli_bad_values_are_one_line_and_store_nothing(
    vault_cli: Vault, repo: Repository, checkpoint: Path, args: list[str], needle: str
) -> None:
    line = error_line(vault_cli("commit", str(checkpoint), "-m", "bad", *args))
    assert needle in line
    assert repo.log() == [] and object_count(repo) == 0


def test_log_imports_no_numpy_or_matplotlib(repo: Repository, checkpoint: Path) -> None:
    repo.commit(checkpoint, "run")
    code = (
        "import sys\n"
        "from vault.cli.main import cli\n"
        "try:\n"
        f"    cli(['--repo', {str(repo.root)!r}, 'log'], prog_name='vault')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'matplotlib', 'torch', 'transformers', 'peft'))\n"
        "print('HEAVY', heavy)\n"
    )
    env = {**os.environ, "VAULT_DIR": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "tiny-llama/base" in out  # the table was printed
    assert out.strip().splitlines()[-1] == "HEAVY []"

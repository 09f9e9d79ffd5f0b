"""The ``vault`` command line: every command, its JSON, its errors, and repository discovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import make_model_dir, make_safetensors, random_tensors, tree_bytes

from vault import Repository
from vault.cli.main import cli
from vault.ids import hash_bytes
from vault.refs import TAGS
from vault.store import object_key

Vault = Callable[..., Result]

LOG_KEYS = {"version", "id", "message", "created", "tags", "meta", "parents", "bytes"}


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def as_json(result: Result) -> object:
    return json.loads(ok(result).stdout)


def assert_error(result: Result, *fragments: str) -> str:
    """One ``vault: error:`` line on stderr, non-zero exit, no traceback anywhere."""
    assert result.exit_code != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vault: error: "), result.stderr
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model_dir(tmp_path / "model")


# -- init and discovery ----------------------------------------------------------------------


def test_init_in_cwd(tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = ok(runner.invoke(cli, ["init"]))
    assert (tmp_path / ".vault" / "config.json").is_file()
    assert str((tmp_path / ".vault").resolve()) in res.stdout
    Repository.open(tmp_path / ".vault")
    assert_error(runner.invoke(cli, ["init"]), "already exists")


def test_init_with_repo_creates_dir(tmp_path: Path, runner: CliRunner) -> None:
    target = tmp_path / "deep" / "store"
    out = as_json(runner.invoke(cli, ["--repo", str(target), "init", "--json"]))
    assert out == {"repo": str(target.resolve())}
    assert (target / "config.json").is_file() and (target / "objects").is_dir()
    assert_error(runner.invoke(cli, ["--repo", str(target), "init"]), "already exists")


def test_missing_repository(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_error(runner.invoke(cli, ["log"]), "not a vault repository")
    assert_error(
        runner.invoke(cli, ["--repo", str(tmp_path / "nope"), "log"]), "not a vault repository"
    )
    monkeypatch.setenv("VAULT_DIR", str(tmp_path / "nope"))
    assert_error(runner.invoke(cli, ["stats"]), "not a vault repository")


def test_repo_found_walking_up(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, model: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    ok(runner.invoke(cli, ["init"]))
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    ok(runner.invoke(cli, ["commit", str(model), "-m", "from deep"]))
    assert Repository.open(tmp_path / ".vault").log()[0].message == "from deep"


def test_vault_dir_env_and_repo_option_precedence(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, model: Path
) -> None:
    env_repo = Repository.init(tmp_path / "env-repo")
    opt_repo = Repository.init(tmp_path / "opt-repo")
    cwd_repo = Repository.init(tmp_path / "cwd" / ".vault")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("VAULT_DIR", str(env_repo.root))
    ok(runner.invoke(cli, ["commit", str(model), "-m", "env"]))
    ok(runner.invoke(cli, ["--repo", str(opt_repo.root), "commit", str(model), "-m", "opt"]))
    assert [v.message for v in env_repo.log()] == ["env"]
    assert [v.message for v in opt_repo.log()] == ["opt"]
    assert cwd_repo.log() == []
    monkeypatch.delenv("VAULT_DIR")
    ok(runner.invoke(cli, ["commit", str(model), "-m", "cwd"]))
    assert [v.message for v in cwd_repo.log()] == ["cwd"]


# -- commit ----------------------------------------------------------------------------------


def test_commit_json(vault_cli: Vault, model: Path) -> None:
    out = as_json(vault_cli("commit", str(model), "-m", "first", "--json"))
    assert isinstance(out, dict)
    assert {"version", "id", "files", "bytes", "new_bytes", "stored_bytes"} <= set(out)
    assert out["version"] == "v001" and len(out["id"]) == 64
    assert out["files"] == 4
    assert out["bytes"] == sum(len(b) for b in tree_bytes(model).values())
    assert out["new_bytes"] == out["bytes"]
    # The same files again make a version only with --allow-empty (test_unchanged_commit.py).
    again = as_json(vault_cli("commit", str(model), "-m", "same", "--allow-empty", "--json"))
    assert again["version"] == "v002" and again["new_bytes"] == 0  # type: ignore[index]
    assert again["id"] != out["id"]  # type: ignore[index]
    assert again["tree"] == out["tree"]  # type: ignore[index]


def test_commit_human_output(vault_cli: Vault, model: Path) -> None:
    res = ok(vault_cli("commit", str(model), "-m", "first"))
    assert res.stdout.startswith("v001 ")
    assert "4 files" in res.stdout


def test_commit_single_file_tags_and_meta(vault_cli: Vault, tmp_path: Path) -> None:
    f = make_safetensors(tmp_path / "w.safetensors", random_tensors(1, {"w": (8, 8)}))
    args = ["commit", str(f), "-m", "single", "--tag", "best", "--tag", "rc1", "--json"]
    args += ["--meta", "lr=3e-4", "--meta", "note=a=b", "--meta", "empty="]
    out = as_json(vault_cli(*args))
    assert out["files"] == 1  # type: ignore[index]
    assert sorted(out["tags"]) == ["best", "rc1"]  # type: ignore[index]
    shown = as_json(vault_cli("show", "best", "--json"))
    assert shown["meta"] == {"lr": "3e-4", "note": "a=b", "empty": ""}  # type: ignore[index]
    assert [f["path"] for f in shown["files"]] == ["w.safetensors"]  # type: ignore[index]


def test_commit_repeated_tag_is_one_tag(vault_cli: Vault, model: Path, repo: Repository) -> None:
    """Regression: '--tag x --tag x' failed the commit with 'ref tags/x moved'."""
    out = as_json(vault_cli("commit", str(model), "-m", "m", "--tag", "x", "--tag", "x", "--json"))
    assert out["tags"] == ["x"]  # type: ignore[index]
    assert repo.resolve("x") == out["id"]  # type: ignore[index]


def test_commit_requires_message(vault_cli: Vault, model: Path, repo: Repository) -> None:
    assert_error(vault_cli("commit", str(model)), "--message")
    assert repo.log() == []


def test_commit_errors(vault_cli: Vault, model: Path, tmp_path: Path, repo: Repository) -> None:
    assert_error(vault_cli("commit", str(tmp_path / "missing"), "-m", "x"), "path not found")
    assert_error(vault_cli("commit", str(model), "-m", "x", "--meta", "novalue"), "--meta")
    assert_error(vault_cli("commit", str(model), "-m", "x", "--meta", "=v"), "--meta")
    assert_error(vault_cli("commit", str(model), "-m", "x", "--tag", "latest"), "latest")
    assert_error(vault_cli("commit", str(model), "-m", "x", "--tag", "v002"), "v002")
    assert repo.log() == []
    ok(vault_cli("commit", str(model), "-m", "x", "--tag", "best"))
    assert_error(vault_cli("commit", str(model), "-m", "y", "--tag", "best"), "best")
    assert len(repo.log()) == 1


# -- log and show ----------------------------------------------------------------------------


@pytest.fixture
def three(vault_cli: Vault, model: Path) -> list[dict]:
    out = []
    for i in range(3):
        (model / "config.json").write_text(json.dumps({"i": i}))
        out.append(as_json(vault_cli("commit", str(model), "-m", f"msg {i}", "--json")))
    return out  # type: ignore[return-value]


def test_log_json(vault_cli: Vault, three: list[dict]) -> None:
    log = as_json(vault_cli("log", "--json"))
    assert isinstance(log, list) and len(log) == 3
    assert [e["version"] for e in log] == ["v003", "v002", "v001"]
    assert [e["id"] for e in log] == [c["id"] for c in reversed(three)]
    for entry in log:
        assert set(entry) >= LOG_KEYS
        created = datetime.fromisoformat(entry["created"])
        assert created.tzinfo is not None
        assert abs(created.timestamp() - time.time()) < 600
        assert entry["bytes"] > 0 and entry["tags"] == [] and entry["meta"] == {}
    assert log[0]["parents"] == [log[1]["id"]] and log[2]["parents"] == []
    assert log[0]["message"] == "msg 2"


def test_log_rev_and_limit(vault_cli: Vault, three: list[dict]) -> None:
    assert [e["version"] for e in as_json(vault_cli("log", "-n", "2", "--json"))] == [  # type: ignore[union-attr]
        "v003",
        "v002",
    ]
    assert [e["version"] for e in as_json(vault_cli("log", "v002", "--json"))] == [  # type: ignore[union-attr]
        "v002",
        "v001",
    ]
    assert [e["version"] for e in as_json(vault_cli("log", "latest~2", "--json"))] == [  # type: ignore[union-attr]
        "v001"
    ]
    assert as_json(vault_cli("log", "-n", "0", "--json")) == []


def test_log_human(vault_cli: Vault, three: list[dict]) -> None:
    lines = ok(vault_cli("log")).stdout.splitlines()
    assert lines[0].split()[:2] == ["VERSION", "ID"]
    assert [ln.split()[0] for ln in lines[1:]] == ["v003", "v002", "v001"]
    assert lines[1].rstrip().endswith("msg 2")
    assert three[2]["id"][:12] in lines[1]


def test_log_empty(vault_cli: Vault) -> None:
    assert as_json(vault_cli("log", "--json")) == []
    assert "no versions" in ok(vault_cli("log")).stdout


def test_show_json(vault_cli: Vault, three: list[dict], model: Path) -> None:
    shown = as_json(vault_cli("show", "v002", "--json"))
    assert isinstance(shown, dict)
    assert set(shown) >= LOG_KEYS and "files" in shown
    assert shown["id"] == three[1]["id"] and shown["message"] == "msg 1"
    datetime.fromisoformat(shown["created"])
    files = {f["path"]: f for f in shown["files"]}
    assert set(files) == set(tree_bytes(model))
    for f in files.values():
        assert {"path", "size", "id"} <= set(f)
        assert len(f["id"]) == 64
    assert files["config.json"]["size"] == len(json.dumps({"i": 1}))
    assert sum(f["size"] for f in files.values()) == shown["bytes"]


def test_show_human(vault_cli: Vault, three: list[dict]) -> None:
    out = ok(vault_cli("show", three[0]["id"][:8])).stdout
    assert "v001" in out and three[0]["id"] in out and "config.json" in out and "msg 0" in out


def test_unknown_revision(vault_cli: Vault, three: list[dict], tmp_path: Path) -> None:
    assert_error(vault_cli("show", "v042"), "unknown revision", "v042")
    assert_error(vault_cli("log", "nosuch"), "unknown revision")
    assert_error(vault_cli("checkout", "latest~9", str(tmp_path / "d")), "unknown revision")
    assert not (tmp_path / "d").exists()
    assert_error(vault_cli("verify", "zzz"), "unknown revision")


def test_show_latest_in_empty_repo(vault_cli: Vault) -> None:
    assert_error(vault_cli("show", "latest"), "latest")


def test_ambiguous_prefix_lists_candidates(vault_cli: Vault, repo: Repository) -> None:
    a = ("abcd" + hash_bytes(b"1"))[:64]
    b = ("abcd" + hash_bytes(b"2"))[:64]
    with repo.refs.transaction("test") as txn:
        txn.set(TAGS + "one", a)
        txn.set(TAGS + "two", b)
    line = assert_error(vault_cli("show", "abcd"), "ambiguous")
    assert a[:12] in line and b[:12] in line


def test_id_of_a_tree_is_not_a_revision(vault_cli: Vault, three: list[dict]) -> None:
    """Regression: a full tree id resolved to the tree; verify then called an intact store
    corrupt ("not a version manifest") and exited 1."""
    tree = three[0]["tree"]
    assert_error(vault_cli("verify", tree), "unknown revision")
    assert_error(vault_cli("show", tree), "unknown revision")


# -- checkout --------------------------------------------------------------------------------


def test_checkout(vault_cli: Vault, three: list[dict], model: Path, tmp_path: Path) -> None:
    dest = tmp_path / "x" / "y" / "dest"
    res = ok(vault_cli("checkout", "v003", str(dest)))
    assert str(dest) in res.stdout
    assert tree_bytes(dest) == tree_bytes(model)
    out = as_json(vault_cli("checkout", "v001", str(tmp_path / "d1"), "--json"))
    assert out["files"] == 4  # type: ignore[index]
    assert json.loads((tmp_path / "d1" / "config.json").read_text()) == {"i": 0}


def test_checkout_refuses_non_empty_without_force(
    vault_cli: Vault, three: list[dict], tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "config.json").write_text("local")
    (dest / "notes.txt").write_text("mine")
    assert_error(vault_cli("checkout", "v001", str(dest)), "not empty", "--force")
    assert (dest / "config.json").read_text() == "local"
    # notes.txt is not in v001: --force alone would leave a mix, so it writes nothing.
    assert_error(vault_cli("checkout", "v001", str(dest), "--force"), "notes.txt", "--clean")
    assert (dest / "config.json").read_text() == "local"
    ok(vault_cli("checkout", "v001", str(dest), "--clean"))
    assert json.loads((dest / "config.json").read_text()) == {"i": 0}
    assert not (dest / "notes.txt").exists()
    assert len(list(dest.iterdir())) == 4


# -- tag -------------------------------------------------------------------------------------


def test_tag_lifecycle(vault_cli: Vault, three: list[dict], repo: Repository) -> None:
    ok(vault_cli("tag", "best", "v002"))
    assert repo.resolve("best") == three[1]["id"]
    listed = ok(vault_cli("tag")).stdout
    assert "best" in listed and "v002" in listed
    tags = as_json(vault_cli("tag", "--json"))
    assert tags == [  # the tags, then the reserved refs vault moves itself
        {"name": "best", "id": three[1]["id"], "version": "v002", "reserved": False},
        {"name": "latest", "id": three[2]["id"], "version": "v003", "reserved": True},
    ]
    assert_error(vault_cli("tag", "best", "v003"), "best", "exists")
    assert repo.resolve("best") == three[1]["id"]
    ok(vault_cli("tag", "best", "v003", "--force"))
    assert repo.resolve("best") == three[2]["id"]
    shown = as_json(vault_cli("show", "v003", "--json"))
    assert shown["tags"] == ["best"]  # type: ignore[index]
    assert as_json(vault_cli("tag", "-d", "best", "--json"))["name"] == "best"  # type: ignore[index]
    assert [t["name"] for t in as_json(vault_cli("tag", "--json"))] == ["latest"]
    made = as_json(vault_cli("tag", "good", three[0]["id"][:10], "--json"))
    assert made == {"name": "good", "id": three[0]["id"], "version": "v001", "reserved": False}
    assert_error(vault_cli("tag", "-d", "best"), "best")
    assert_error(vault_cli("show", "best"), "unknown revision")


@pytest.mark.parametrize("name", ["v003", "v1", "latest", "base", "abcd1234", "ABCDEF", "a/b"])
def test_tag_refuses_confusing_names(
    vault_cli: Vault, three: list[dict], name: str, repo: Repository
) -> None:
    assert_error(vault_cli("tag", name, "v001"))
    assert repo.tags() == []


def test_tag_unknown_revision(vault_cli: Vault, three: list[dict], repo: Repository) -> None:
    assert_error(vault_cli("tag", "good", "v099"), "unknown revision")
    assert repo.tags() == []


def test_usage_errors_are_one_line(vault_cli: Vault, three: list[dict]) -> None:
    assert_error(vault_cli("tag", "lonely"), "NAME REV")
    assert_error(vault_cli("tag", "-d"), "-d NAME")
    assert_error(vault_cli("log", "-n", "-1"), "-n")
    assert_error(vault_cli("no-such-command"), "no-such-command")


def test_commit_tag_then_move(vault_cli: Vault, model: Path, repo: Repository) -> None:
    ok(vault_cli("commit", str(model), "-m", "a", "--tag", "prod"))
    (model / "config.json").write_text("{}")
    ok(vault_cli("commit", str(model), "-m", "b"))
    ok(vault_cli("tag", "prod", "latest", "--force"))
    assert repo.resolve("prod") == repo.resolve("v002")


# -- gc --------------------------------------------------------------------------------------


def test_gc_help_states_default(runner: CliRunner) -> None:
    out = ok(runner.invoke(cli, ["gc", "--help"])).stdout
    assert "--grace" in out and "--dry-run" in out
    assert "1h" in out


def test_gc_json_dry_run_and_grace(vault_cli: Vault, three: list[dict], repo: Repository) -> None:
    before = {oid for oid, _ in repo.store.list()}
    junk = repo.store.put(b"unreachable junk " * 100).oid
    out = as_json(vault_cli("gc", "--json"))
    assert {"objects", "bytes", "dry_run"} <= set(out)  # type: ignore[arg-type]
    assert out["objects"] == 0 and out["dry_run"] is False  # type: ignore[index]
    assert repo.store.has(junk)  # younger than the default grace
    dry = as_json(vault_cli("gc", "--dry-run", "--grace", "0s", "--json"))
    assert dry["dry_run"] is True and dry["objects"] == 1 and dry["bytes"] > 0  # type: ignore[index]
    assert repo.store.has(junk)
    assert "would remove 1 object (" in ok(vault_cli("gc", "--dry-run", "--grace", "0s")).stdout
    assert repo.store.has(junk)
    for grace in ("30m", "2h", "14d"):
        assert as_json(vault_cli("gc", "--grace", grace, "--json"))["objects"] == 0  # type: ignore[index]
    real = as_json(vault_cli("gc", "--grace", "0s", "--json"))
    assert real["objects"] == 1 and real["bytes"] == dry["bytes"]  # type: ignore[index]
    assert not repo.store.has(junk)
    assert {oid for oid, _ in repo.store.list()} == before
    ok(vault_cli("verify"))


def test_gc_old_junk_and_grace(vault_cli: Vault, three: list[dict], repo: Repository) -> None:
    junk = repo.store.put(b"old junk").oid
    t = time.time() - 3 * 3600
    os.utime(repo.root / object_key(junk), (t, t))
    assert as_json(vault_cli("gc", "--grace", "14d", "--json"))["objects"] == 0  # type: ignore[index]
    assert "removed 1 object (" in ok(vault_cli("gc", "--grace", "2h")).stdout
    assert not repo.store.has(junk)


@pytest.mark.parametrize("grace", ["forever", "-1h", "2y", ""])
def test_gc_bad_grace(vault_cli: Vault, grace: str) -> None:
    assert_error(vault_cli("gc", "--grace", grace), "duration")


# -- verify ----------------------------------------------------------------------------------


def test_verify_clean(vault_cli: Vault, three: list[dict]) -> None:
    res = ok(vault_cli("verify"))
    assert res.stdout.startswith("ok:")
    out = as_json(vault_cli("verify", "--json"))
    assert out["ok"] is True and out["damaged"] == [] and out["versions"] == 3  # type: ignore[index]
    assert " in 1 version (" in ok(vault_cli("verify", "v002")).stdout


def test_verify_damage_names_versions(
    vault_cli: Vault, three: list[dict], repo: Repository
) -> None:
    # config.json differs in every version; break v002's.
    tree = repo.store.get_tree(repo.show("v002").tree)
    entry = next(e for e in tree.entries if e.path == "config.json")
    chunk = repo.store.get_file(entry.file).chunks[0].oid  # type: ignore[arg-type]
    path = repo.root / object_key(chunk)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    res = vault_cli("verify")
    assert res.exit_code == 1
    assert chunk in res.stdout and "v002" in res.stdout
    assert "v001" not in res.stdout and "v003" not in res.stdout
    assert res.stderr.strip() == "vault: error: 1 damaged object"  # one, not "1 ... objects"
    assert "Traceback" not in res.output
    out = json.loads(vault_cli("verify", "--json").stdout)
    assert out["ok"] is False
    assert [(d["oid"], d["versions"]) for d in out["damaged"]] == [(chunk, ["v002"])]
    assert vault_cli("verify", "v003").exit_code == 0
    assert vault_cli("verify", "v002").exit_code == 1


def test_verify_missing_chunk_shared_by_all(
    vault_cli: Vault, three: list[dict], repo: Repository
) -> None:
    tree = repo.store.get_tree(repo.show("v001").tree)
    entry = next(e for e in tree.entries if e.path == "tokenizer.json")
    chunk = repo.store.get_file(entry.file).chunks[0].oid  # type: ignore[arg-type]
    repo.store.delete(chunk)
    res = vault_cli("verify")
    assert res.exit_code == 1
    line = next(ln for ln in res.stdout.splitlines() if chunk in ln)
    assert "missing" in line and "v001" in line and "v002" in line and "v003" in line


# -- stats -----------------------------------------------------------------------------------


def test_stats(vault_cli: Vault, three: list[dict]) -> None:
    out = as_json(vault_cli("stats", "--json"))
    keys = {"versions", "logical_bytes", "stored_bytes", "chunks", "dedup_ratio"}
    assert keys | {"compression_ratio"} <= set(out)  # type: ignore[arg-type]
    assert out["versions"] == 3  # type: ignore[index]
    assert out["logical_bytes"] == sum(c["bytes"] for c in three)  # type: ignore[index]
    assert out["dedup_ratio"] > 2  # type: ignore[index]
    assert out["chunks"] > 0 and out["stored_bytes"] > 0  # type: ignore[index]
    human = ok(vault_cli("stats")).stdout
    assert "dedup ratio" in human and "versions" in human


# -- errors and entry points -----------------------------------------------------------------


def test_os_errors_are_one_line(
    vault_cli: Vault, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from vault.ops import commit as commit_op

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(model / "secret"))

    monkeypatch.setattr(commit_op, "scan", denied)
    assert_error(vault_cli("commit", str(model), "-m", "x"), "Permission denied", "secret")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/somewhere")

    monkeypatch.setattr(commit_op, "scan", full)
    assert_error(vault_cli("commit", str(model), "-m", "x"), "no space left")


def test_interrupt_is_one_line(
    vault_cli: Vault, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault.ops import commit as commit_op

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(commit_op, "scan", interrupted)
    res = vault_cli("commit", str(model), "-m", "x")
    assert res.exit_code == 130
    assert_error(res, "interrupted")


def test_debug_raises_instead_of_one_line(tmp_path: Path, runner: CliRunner) -> None:
    from vault.errors import RepoNotFound

    res = runner.invoke(cli, ["--debug", "--repo", str(tmp_path / "nope"), "log"])
    assert res.exit_code != 0
    assert isinstance(res.exception, RepoNotFound)
    assert "vault: error:" not in res.stderr


def run_vault(*args: str, cwd: Path, module: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VAULT_DIR"}
    exe = [sys.executable, "-m", "vault"] if module else [_console_script()]
    return subprocess.run(
        [*exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def _console_script() -> str:
    import shutil

    found = shutil.which("vault") or str(Path(sys.executable).parent / "vault")
    assert Path(found).exists(), "the vault console script is not installed"
    return found


def test_python_dash_m_vault_help(tmp_path: Path) -> None:
    res = run_vault("--help", cwd=tmp_path, module=True)
    assert res.returncode == 0, res.stderr
    for command in ("init", "commit", "log", "show", "checkout", "tag", "gc", "verify", "stats"):
        assert command in res.stdout


def test_console_script_end_to_end(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "model")
    assert run_vault("init", cwd=tmp_path).returncode == 0
    res = run_vault("commit", "model", "-m", "hello", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["version"] == "v001"
    res = run_vault("checkout", "latest", "out", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert tree_bytes(tmp_path / "out") == tree_bytes(model)
    bad = run_vault("show", "v042", cwd=tmp_path)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert bad.stderr.startswith("vault: error: unknown revision")
    assert "Traceback" not in bad.stderr + bad.stdout
    debug = run_vault("--debug", "show", "v042", cwd=tmp_path)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "UnknownRevision" in debug.stderr


def test_bare_vault_prints_plain_help(runner: CliRunner) -> None:
    """Regression: bare ``vault`` printed the whole help as one 'vault: error: Usage: ...'."""
    res = runner.invoke(cli, [])
    assert res.output.startswith("Usage: ")
    assert "vault: error:" not in res.output
    assert "commit" in res.output and "checkout" in res.output


def test_version_option(runner: CliRunner) -> None:
    from vault import __version__

    res = ok(runner.invoke(cli, ["--version"]))
    assert __version__ in res.stdout

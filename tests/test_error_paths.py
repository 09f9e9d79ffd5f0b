"""Every way a command can fail ends in one line ``vault: error: ...`` and a non-zero exit: bad
environment variables, absurd durations and counts, hand-edited refs, hostile objects, names
with control characters. An exception vault did not expect is one line too, with exit status
70; ``--debug`` shows its traceback.

Commands run as real processes (``python -m vault``); hostile objects are written with
``store.put`` following docs/format.md, refs by editing ``refs.json`` as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faultkit import assert_clean_error, log_json, ok, run_vault, snapshot, vault_env
from safetensors.numpy import save_file

from vault import Repository
from vault.errors import BrokenParent, VaultError
from vault.objects import KIND_FILE, ChunkRef, FileManifest
from vault.refs import LATEST, VERSIONS, now_iso

INTERNAL_ERROR = 70
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000  # nested past any parser's recursion limit


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository (CLI-made) with one version ``v001`` of ``model/``."""
    root = tmp_path / "repo"
    ok(run_vault(root, "init"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "a.txt").write_text("hello\n")
    ok(run_vault(root, "commit", str(model), "-m", "one"))
    return root


def _refs(repo: Path) -> dict:
    return json.loads((repo / "refs.json").read_bytes())


def _set_refs(repo: Path, doc: dict) -> None:
    """Rewrite refs.json by hand, as a user with an editor would."""
    (repo / "refs.json").write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")


def _state(repo: Path) -> tuple[bytes, bytes]:
    """What a refused command must leave as it was: refs.json and the reflog."""
    reflog = repo / "logs" / "reflog.jsonl"
    return (repo / "refs.json").read_bytes(), reflog.read_bytes() if reflog.exists() else b""


def _plant_version(repo: Path, paths: list[str], **fields: object) -> str:
    """Store a tree listing ``paths`` (each a one-byte file) and a version on top of latest,
    with ``fields`` overriding the version's JSON; name it and return its name."""
    r = Repository.open(repo)
    chunk = r.store.put(b"x").oid
    manifest = r.store.put(FileManifest((ChunkRef(chunk, 1),)).to_bytes()).oid
    entries = [
        {"path": p, "kind": KIND_FILE, "size": 1, "mode": 0o644, "file": manifest} for p in paths
    ]
    tree = r.store.put(
        json.dumps({"type": "tree", "entries": entries}, separators=(",", ":")).encode()
    ).oid
    with r.refs.transaction("plant") as txn:
        parent = txn.get(LATEST)
        name = txn.allocate_version_name()
        doc = {
            "type": "version",
            "tree": tree,
            "parents": [parent] if parent else [],
            "message": "planted",
            "created": now_iso(),
            "name": name,
            "bytes": len(paths),
            "files": len(paths),
            **fields,
        }
        vid = r.store.put(json.dumps(doc, sort_keys=True).encode(), compress=False).oid
        txn.set(VERSIONS + name, vid, expected=None)
        txn.set(LATEST, vid, expected=parent)
    return name


# -- environment variables -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", " ", "-1", "nan", "inf", "1e400"])
def test_a_bad_lock_timeout_is_one_line_and_changes_nothing(
    repo: Path, tmp_path: Path, value: str
) -> None:
    """VAULT_LOCK_TIMEOUT was parsed by float() at import: 'abc' was a traceback before any
    command ran, and NaN or inf waited forever for a held lock."""
    before = _state(repo)
    proc = run_vault(
        repo,
        "commit",
        str(tmp_path / "model"),
        "-m",
        "two",
        env=vault_env(VAULT_LOCK_TIMEOUT=value),
    )
    assert_clean_error(proc, "VAULT_LOCK_TIMEOUT", repr(value))
    assert _state(repo) == before


def test_an_empty_lock_timeout_means_the_default(repo: Path, tmp_path: Path) -> None:
    proc = run_vault(
        repo, "commit", str(tmp_path / "model"), "-m", "two", env=vault_env(VAULT_LOCK_TIMEOUT="")
    )
    ok(proc)


def test_a_bad_crashpoint_is_one_line(repo: Path, tmp_path: Path) -> None:
    proc = run_vault(
        repo, "commit", str(tmp_path / "model"), "-m", "two", env=vault_env(VAULT_CRASHPOINT="x:y")
    )
    assert_clean_error(proc, "VAULT_CRASHPOINT")


# -- absurd durations and counts -------------------------------------------------------------


@pytest.mark.parametrize("expires", ["999999999999d", "99999999999w", "9" * 40])
def test_an_expiry_past_year_9999_is_refused(repo: Path, tmp_path: Path, expires: str) -> None:
    before = _state(repo)
    assert_clean_error(
        run_vault(repo, "pin", "v001", "--reason", "x", "--expires", expires), "expiry", "9999"
    )
    assert_clean_error(
        run_vault(repo, "backup", str(tmp_path / "model"), "--reason", "x", "--expires", expires),
        "expiry",
    )
    assert _state(repo) == before


def test_a_duration_too_long_to_compute_is_refused(repo: Path) -> None:
    """400 digits made gc's grace infinite and its --json print 'Infinity', which no JSON
    parser reads."""
    assert_clean_error(run_vault(repo, "gc", "--json", "--grace", "9" * 400 + "w"), "duration")
    assert_clean_error(run_vault(repo, "gc", "--grace", "1e400d"), "duration")
    huge = json.loads(ok(run_vault(repo, "gc", "--dry-run", "--json", "--grace", "9" * 300)).stdout)
    assert huge["grace_seconds"] == float("9" * 300) and huge["objects"] == 0


@pytest.mark.parametrize("days", ["1e999", "inf", "nan"])
def test_retention_days_must_be_finite(repo: Path, days: str) -> None:
    ok(run_vault(repo, "pin", "v001", "--reason", "x", "--name", "kept"))
    before = _state(repo)
    proc = run_vault(repo, "backup", "cleanup", "--retention-days", days, "--execute")
    assert_clean_error(proc, "retention days", "finite")
    assert _state(repo) == before


def test_a_huge_keep_last_keeps_every_pin(repo: Path) -> None:
    ok(run_vault(repo, "pin", "v001", "--reason", "x", "--name", "kept"))
    plan = json.loads(
        ok(run_vault(repo, "backup", "cleanup", "--keep-last", "9" * 400, "--json")).stdout
    )
    assert plan["unpin"] == [] and [p["name"] for p in plan["keep"]] == ["kept"]


# -- hand-edited refs.json -------------------------------------------------------------------


@pytest.mark.parametrize("when", [9, "soon", ["2020-01-01"]])
def test_a_pin_whose_dates_cannot_be_read_is_listed_and_kept(repo: Path, when: object) -> None:
    """A pin's created or expires edited to something that is no date: backup list used to
    end in a traceback (a number has no .replace), and cleanup took the pin for expired in
    1970 and unpinned it."""
    ok(run_vault(repo, "pin", "v001", "--reason", "x", "--name", "odd"))
    doc = _refs(repo)
    doc["pins"]["odd"].update(created=when, expires=when)
    _set_refs(repo, doc)
    listed = ok(run_vault(repo, "backup", "list")).stdout.splitlines()
    assert [row.split()[0] for row in listed] == ["NAME", "odd"]
    for args in ([], ["--retention-days", "0"], ["--keep-last", "1"]):
        plan = json.loads(ok(run_vault(repo, "backup", "cleanup", "--json", *args)).stdout)
        assert plan["unpin"] == [], args
    ok(run_vault(repo, "backup", "cleanup", "--retention-days", "0", "--execute"))
    assert "pins/odd" in _refs(repo)["refs"]


# -- init ------------------------------------------------------------------------------------


def test_init_over_a_regular_file_says_it_is_not_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    line = assert_clean_error(run_vault(target, "init"), "exists and is not a directory")
    assert "repository" not in line
    assert target.read_text() == "mine\n"


# -- a broken latest -------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["missing", "tree"])
def test_commit_refuses_a_latest_that_is_not_a_readable_version(
    repo: Path, tmp_path: Path, what: str
) -> None:
    """Before, commit wrote the bad id as the parent of a new immutable version, and from then
    on log and gc failed."""
    doc = _refs(repo)
    r = Repository.open(repo)
    bad = "ab" * 32 if what == "missing" else r.store.get_version(doc["refs"][LATEST]).tree
    doc["refs"][LATEST] = bad
    _set_refs(repo, doc)
    before = _state(repo)
    versions_before = _versions_in_store(r)
    line = assert_clean_error(
        run_vault(repo, "commit", str(tmp_path / "model"), "-m", "two"),
        f"latest ({bad[:12]}",
        "is not a readable version",
        "run 'vault verify'",
    )
    assert ("missing" if what == "missing" else "not a version") in line
    assert _state(repo) == before
    assert _versions_in_store(r) == versions_before  # no version names the bad parent
    # Repaired by hand, the repository takes the next commit as if nothing happened.
    doc["refs"][LATEST] = doc["refs"]["versions/v001"]
    _set_refs(repo, doc)
    ok(run_vault(repo, "commit", str(tmp_path / "model"), "-m", "two", "--allow-empty"))
    assert [e["version"] for e in log_json(repo)] == ["v002", "v001"]
    ok(run_vault(repo, "gc", "--grace", "0s"))


def _versions_in_store(r: Repository) -> set[str]:
    found = set()
    for oid, _ in r.store.list():
        try:
            r.store.get_version(oid)
        except VaultError:  # a tree, a chunk: not a version
            continue
        found.add(oid)
    return found


def test_the_api_refuses_a_parent_that_is_not_a_version(repo: Path, tmp_path: Path) -> None:
    r = Repository.open(repo)
    tree = r.store.get_version(r.resolve("v001")).tree
    with pytest.raises(BrokenParent) as info:
        r.commit(tmp_path / "model", "x", parents=[tree])
    assert info.value.ref == "parent" and info.value.oid == tree
    assert [e["version"] for e in log_json(repo)] == ["v001"]


# -- hostile objects -------------------------------------------------------------------------


def test_a_version_with_an_out_of_range_number_is_corrupt(repo: Path) -> None:
    """JSON's 1e400 reads as infinity; int() of it raised OverflowError, a traceback."""
    _plant_version(repo, ["a"], files=1e400)
    assert_clean_error(run_vault(repo, "log"), "corrupt object", "bad version")


def test_a_version_nested_too_deeply_is_corrupt(repo: Path) -> None:
    r = Repository.open(repo)
    oid = r.store.put(DEEP_JSON, compress=False).oid
    doc = _refs(repo)
    doc["refs"][LATEST] = oid
    _set_refs(repo, doc)
    assert_clean_error(run_vault(repo, "log", "latest"), "corrupt object", oid[:12], "not JSON")


# -- a user's files whose JSON is nested too deeply ------------------------------------------


def test_commit_stores_files_whose_json_is_nested_too_deeply(repo: Path, tmp_path: Path) -> None:
    """A .safetensors file whose header, or a trainer_state.json whose content, nests past
    the parser's limit made commit fail with RecursionError: such files are just bytes."""
    ckpt = tmp_path / "checkpoint-1"
    ckpt.mkdir()
    head = b"[" * 5000 + b"]" * 5000
    (ckpt / "model.safetensors").write_bytes(len(head).to_bytes(8, "little") + head)
    (ckpt / "trainer_state.json").write_bytes(DEEP_JSON)
    save_file({"w": np.ones(4, dtype=np.float32)}, str(ckpt / "good.safetensors"))
    ok(run_vault(repo, "commit", str(ckpt), "-m", "deep"))
    out = tmp_path / "out"
    ok(run_vault(repo, "checkout", "v002", str(out)))
    assert snapshot(out) == snapshot(ckpt)
    # A real safetensors file where the last version had the nested one: looking for delta
    # bases reads the old header, and diff reads both.
    save_file({"w": np.ones(4, dtype=np.float32)}, str(ckpt / "model.safetensors"))
    ok(run_vault(repo, "commit", str(ckpt), "-m", "real"))
    diffed = ok(run_vault(repo, "diff", "v002", "v003")).stdout.splitlines()
    assert diffed[0] == "M model.safetensors"


def test_consolidate_refuses_an_adapter_config_nested_too_deeply(
    repo: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_bytes(DEEP_JSON)
    save_file({"w": np.ones(4, dtype=np.float32)}, str(adapter / "adapter_model.safetensors"))
    before = _state(repo)
    proc = run_vault(
        repo, "consolidate", "--base", str(tmp_path / "model"), "--adapter", str(adapter), "-m", "x"
    )
    assert_clean_error(proc, "adapter_config.json is not valid JSON")
    assert _state(repo) == before


# -- log -n ----------------------------------------------------------------------------------


def test_log_n_zero_prints_nothing_and_negative_n_is_a_usage_error(repo: Path) -> None:
    proc = ok(run_vault(repo, "log", "-n", "0"))
    assert proc.stdout == "" and proc.stderr == ""
    assert json.loads(ok(run_vault(repo, "log", "-n", "0", "--json")).stdout) == []
    assert proc.returncode == 0
    usage = run_vault(repo, "log", "-n", "-1")
    assert_clean_error(usage, "-n")
    assert usage.returncode == 2


# -- names with control characters -----------------------------------------------------------


def test_show_and_diff_escape_control_characters_in_file_names(repo: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "a\nb.txt").write_text("1")
    (model / "tab\there").write_text("2")
    (model / "plain name.txt").write_text("3")
    os.symlink("x\ny", model / "link")
    ok(run_vault(repo, "commit", str(model), "-m", "two"))
    shown = ok(run_vault(repo, "show", "v002")).stdout.splitlines()
    files = [line.strip() for line in shown if line.startswith("  ")]
    assert '1 B  "a\\nb.txt"' in files
    assert '1 B  "tab\\there"' in files
    assert "1 B  plain name.txt" in files
    assert 'link  link -> "x\\ny"' in files
    assert "\t" not in "".join(shown)
    diffed = ok(run_vault(repo, "diff", "v001", "v002")).stdout.splitlines()
    assert sorted(diffed) == sorted(
        ['A "a\\nb.txt"', 'A "tab\\there"', "A plain name.txt", "A link"]
    )
    # JSON keeps the names as they are.
    paths = {
        f["path"] for f in json.loads(ok(run_vault(repo, "show", "v002", "--json")).stdout)["files"]
    }
    assert {"a\nb.txt", "tab\there"} <= paths


@pytest.mark.parametrize(
    ("path", "printed"),
    [("a\x00b", '"a\\x00b"'), ("\udcffname", '"\\udcffname"'), ('q"\\', '"q\\"\\\\"')],
)
def test_a_hostile_stored_path_prints_escaped(repo: Path, path: str, printed: str) -> None:
    """A NUL or a lone surrogate in a stored path (no commit makes one) used to reach the
    terminal raw, or to end ``show`` with a UnicodeEncodeError traceback."""
    name = _plant_version(repo, [path])
    shown = ok(run_vault(repo, "show", name))
    assert f"1 B  {printed}" in shown.stdout
    assert "\x00" not in shown.stdout
    assert (
        json.loads(ok(run_vault(repo, "show", name, "--json")).stdout)["files"][0]["path"] == path
    )
    diffed = ok(run_vault(repo, "diff", "v001", name))
    assert f"A {printed}" in diffed.stdout.splitlines()
    assert json.loads(ok(run_vault(repo, "diff", "v001", name, "--json")).stdout)
    ok(run_vault(repo, "log"))
    ok(run_vault(repo, "log", "--json"))


def test_an_error_message_is_one_line_whatever_the_path(repo: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no\nsuch"
    line = assert_clean_error(run_vault(repo, "commit", str(missing), "-m", "x"), "path not found")
    assert line.endswith("no\\nsuch")


# -- JSON output -----------------------------------------------------------------------------


def test_json_output_carries_no_nan(repo: Path) -> None:
    """A stored NaN (JSON readers accept the literal; Python's too) is printed as null, never
    as NaN, which no strict JSON parser reads."""
    name = _plant_version(repo, ["a"], training={"loss": float("nan"), "eval_loss": 1e400})
    out = ok(run_vault(repo, "show", name, "--json")).stdout
    info = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))
    assert info["loss"] is None and info["eval_loss"] is None


# -- unexpected exceptions -------------------------------------------------------------------


def test_an_unexpected_exception_is_one_line_with_status_70(repo: Path) -> None:
    """A refs.json nested too deeply raises RecursionError, which no layer expects."""
    (repo / "refs.json").write_bytes(DEEP_JSON)
    proc = run_vault(repo, "log")
    line = assert_clean_error(proc, "internal error: RecursionError:", "(run with --debug)")
    assert proc.returncode == INTERNAL_ERROR, line
    debug = run_vault(repo, "--debug", "log")
    assert "Traceback" in debug.stderr and "RecursionError" in debug.stderr
    assert debug.returncode != 0


MEMORY_LIMITED_RUNNER = r"""
import resource, sys
from vault.cli.main import main
with open("/proc/self/status") as f:
    vm = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
sys.argv = ["vault", *sys.argv[1:]]
main()
"""


def test_memory_error_is_one_line_with_status_70(repo: Path) -> None:
    """Address space limited to 256 MiB more than vault needs once imported; a refs.json of
    4 GiB (sparse: no disk used) cannot be read into it."""
    with open(repo / "refs.json", "r+b") as f:
        f.truncate(4 << 30)
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_LIMITED_RUNNER, "--repo", str(repo), "log"],
        env=vault_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_clean_error(proc, "internal error: MemoryError")
    assert proc.returncode == INTERNAL_ERROR


# -- empty paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["restore", "v001", ""],
        ["checkout", "v001", "", "--force"],
        ["commit", "", "-m", "x"],
        ["commit", "{model}", "-m", "x", "--data", ""],
        ["backup", "", "--reason", "x"],
        ["backup", "restore", "{pin}", ""],
        ["consolidate", "--base", "", "--adapter", "{model}", "-m", "x"],
        ["show", "v001", "--plot", ""],
    ],
    ids=lambda a: "-".join(x for x in a if x and not x.startswith("{"))[:40],
)
def test_an_empty_path_is_a_usage_error_not_the_current_directory(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """ "" meant the current directory: 'vault restore v001 "$DEST"' with DEST unset replaced
    everything in it."""
    ok(run_vault(repo, "pin", "v001", "--reason", "x", "--name", "kept"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "precious.txt").write_text("mine\n")
    monkeypatch.chdir(cwd)
    before, files = _state(repo), snapshot(cwd)
    names = {"{model}": str(tmp_path / "model"), "{pin}": "kept"}
    proc = run_vault(repo, *[names.get(a, a) for a in args])
    assert_clean_error(proc, "must not be empty")
    assert proc.returncode == 2
    assert _state(repo) == before and snapshot(cwd) == files

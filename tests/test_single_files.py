"""Single files of a version without a checkout: ``vault ls``, ``vault cat REV:PATH`` and
``vault show REV:PATH``, and their Python API (``Repository.ls``, ``open_file``,
``file_detail``).

Every command runs as a real ``vault`` process on a model folder of real safetensors shards; a
path the version does not hold exits 3 with one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    VAULT,
    assert_clean_error,
    flip_byte,
    object_files,
    ok,
    run_vault,
    vault_env,
    write_model_dir,
)
from safetensors import safe_open
from safetensors.numpy import save_file

from vault import Repository
from vault.errors import PathNotInVersion

NOT_FOUND = 3
SHARD = "model-00001-of-00003.safetensors"


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose v001 is a model folder (shards, a nested state folder, a link)."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    model = write_model_dir(tmp_path / "model", 1)
    ok(run_vault(repo, "commit", str(model), "-m", "one"))
    return repo, model


def ls_json(repo: Path, *args: str) -> list[dict]:
    return json.loads(ok(run_vault(repo, "ls", *args, "--json")).stdout)


def test_ls_lists_path_size_and_id_of_every_file(stored: tuple[Path, Path]) -> None:
    repo, model = stored
    listed = ls_json(repo, "v001")
    shown = json.loads(ok(run_vault(repo, "show", "v001", "--json")).stdout)["files"]
    assert listed == [{"path": f["path"], "size": f["size"], "id": f["id"]} for f in shown]
    by_path = {e["path"]: e for e in listed}
    assert by_path[SHARD]["size"] == (model / SHARD).stat().st_size
    assert by_path["latest.safetensors"]["id"] is None  # a link
    human = ok(run_vault(repo, "ls", "v001")).stdout.splitlines()
    assert len(human) == len(listed)
    line = next(x for x in human if x.endswith(f"  {SHARD}"))
    assert by_path[SHARD]["id"][:12] in line


@pytest.mark.parametrize("spelling", ["state", "state/", "./state"])
def test_ls_of_a_folder_lists_what_is_under_it(stored: tuple[Path, Path], spelling: str) -> None:
    repo, _ = stored
    assert [e["path"] for e in ls_json(repo, "v001", spelling)] == [
        "state/optimizer.bin",
        "state/rng.pt",
    ]


def test_ls_of_one_file(stored: tuple[Path, Path]) -> None:
    repo, model = stored
    [entry] = ls_json(repo, "v001", "config.json")
    assert entry["size"] == (model / "config.json").stat().st_size


@pytest.mark.parametrize(
    "args",
    [
        ("ls", "v001", "nope"),
        ("ls", "v001", "stat"),  # a prefix of a folder's name is not the folder
        ("cat", "v001:nope.bin"),
        ("cat", "v001:state"),
        ("cat", "v001:latest.safetensors"),
        ("show", "v001:nope.bin"),
    ],
)
def test_a_path_the_version_lacks_exits_3_with_one_line(
    stored: tuple[Path, Path], args: tuple[str, ...]
) -> None:
    repo, _ = stored
    proc = run_vault(repo, *args)
    assert proc.returncode == NOT_FOUND
    assert_clean_error(proc, "v001:")
    assert proc.stdout == ""


def test_cat_writes_the_stored_bytes(stored: tuple[Path, Path]) -> None:
    repo, model = stored
    for rel in (SHARD, "state/optimizer.bin", "empty.txt", "config.json"):
        out = subprocess.run(
            [*VAULT, "--repo", str(repo), "cat", f"v001:{rel}"],
            env=vault_env(),
            capture_output=True,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout == (model / rel).read_bytes(), rel


def test_cat_needs_rev_colon_path(stored: tuple[Path, Path]) -> None:
    repo, _ = stored
    proc = run_vault(repo, "cat", "v001")
    assert_clean_error(proc, "REV:PATH")
    assert proc.returncode == 2


def test_cat_of_an_unknown_revision_is_one_line(stored: tuple[Path, Path]) -> None:
    repo, _ = stored
    assert_clean_error(run_vault(repo, "cat", "v009:config.json"), "v009")


def test_cat_stops_at_a_damaged_chunk_having_written_only_verified_bytes(
    tmp_path: Path,
) -> None:
    repo_dir = tmp_path / "repo"
    repo = Repository.init(repo_dir)
    big = tmp_path / "m" / "blob.bin"
    big.parent.mkdir()
    big.write_bytes(np.random.default_rng(0).bytes(12 << 20))
    repo.commit(big.parent, "one")
    [entry] = repo.ls("v001")
    chunks = repo.store.get_file(entry.id).chunks
    assert len(chunks) > 3
    flip_byte(object_files(repo_dir)[chunks[2].oid], 200)
    out = subprocess.run(
        [*VAULT, "--repo", str(repo_dir), "cat", "v001:blob.bin"],
        env=vault_env(),
        capture_output=True,
    )
    assert out.returncode != 0
    assert_clean_error(
        subprocess.CompletedProcess(out.args, out.returncode, "", out.stderr.decode()), "corrupt"
    )
    good = chunks[0].size + chunks[1].size
    assert out.stdout == big.read_bytes()[:good]


def test_cat_streams_in_bounded_memory(tmp_path: Path) -> None:
    """The peak RSS of ``cat`` of a 96 MiB file is within 40 MiB of that of a tiny file."""
    repo = tmp_path / "repo"
    ok(run_vault(repo, "init"))
    src = tmp_path / "m"
    src.mkdir()
    (src / "big.bin").write_bytes(np.random.default_rng(1).bytes(96 << 20))
    (src / "tiny.txt").write_text("t")
    ok(run_vault(repo, "commit", str(src), "-m", "big"))

    def peak(rel: str) -> int:
        code = (
            "import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        )
        args = [*VAULT, "--repo", str(repo), "cat", f"v001:{rel}"]
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], env=vault_env(), capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        return int(proc.stdout) * 1024

    assert peak("big.bin") - peak("tiny.txt") < 40 << 20


def test_show_of_a_safetensors_file_lists_its_tensors(stored: tuple[Path, Path]) -> None:
    repo, model = stored
    info = json.loads(ok(run_vault(repo, "show", f"v001:{SHARD}", "--json")).stdout)
    with safe_open(str(model / SHARD), "np") as f:
        expected = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    assert {t["name"]: t["shape"] for t in info["tensors"]} == expected
    assert {t["dtype"] for t in info["tensors"]} == {"F32", "F16"}
    assert info["path"] == SHARD
    assert info["size"] == (model / SHARD).stat().st_size
    assert info["id"] == next(e["id"] for e in ls_json(repo, "v001", SHARD))
    human = ok(run_vault(repo, "show", f"v001:{SHARD}")).stdout
    assert "layers.0.weight" in human and "[512, 256]" in human and info["id"] in human


def test_show_of_another_file_has_no_tensors(stored: tuple[Path, Path]) -> None:
    repo, _ = stored
    info = json.loads(ok(run_vault(repo, "show", "v001:./config.json", "--json")).stdout)
    assert info["tensors"] is None and info["path"] == "config.json"
    proc = run_vault(repo, "show", "v001:config.json", "--plot", "x.png")
    assert_clean_error(proc, "--plot")


def test_the_python_api_reads_files_verified(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    weights = {"w": np.arange(4096, dtype=np.float32).reshape(64, 64)}
    save_file(weights, str(src / "sub" / "model.safetensors"))
    repo.commit(src, "one")
    data = (src / "sub" / "model.safetensors").read_bytes()
    with repo.open_file("v001", "sub/model.safetensors") as f:
        assert f.read() == data
        f.seek(100)
        assert f.read(50) == data[100:150]
        assert f.seek(-10, 2) == len(data) - 10
        assert f.read() == data[-10:]
    assert [e.path for e in repo.ls("v001", "sub")] == ["sub/model.safetensors"]
    detail = repo.file_detail("v001", "sub/model.safetensors")
    assert detail.tensors is not None and detail.tensors[0].shape == [64, 64]
    with pytest.raises(PathNotInVersion):
        repo.open_file("v001", "sub")


def test_help_documents_the_commands(tmp_path: Path) -> None:
    for command, needle in (("ls", "--json"), ("cat", "REV:PATH"), ("show", "REV:PATH")):
        assert needle in ok(run_vault(tmp_path, command, "--help")).stdout

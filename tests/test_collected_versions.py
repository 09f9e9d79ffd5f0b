"""A version that was deleted, unpinned and collected by gc reads the same from every verb.

Only its record is left (history runs through it). Every verb that reads its tree says so with
:class:`FilesCollected` and one line, and the same exit status; none reports
:class:`ObjectMissing`, which reads as damage to a repository that ``verify`` finds intact.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_model_dir
from faultkit import assert_clean_error, run_vault

from vault import Repository
from vault.errors import FilesCollected


@pytest.fixture
def collected(repo: Repository, tmp_path: Path) -> str:
    """``repo`` with v001, v003 and the id of v002, which stored data and snapshots too and
    has been deleted, unpinned and collected (``gc --grace 0s``)."""
    make_model_dir(tmp_path / "m1", seed=1)
    make_model_dir(tmp_path / "m2", seed=2)
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "hello"}\n')
    (tmp_path / "snaps").mkdir()
    (tmp_path / "snaps" / "step-10.txt").write_text("sample at step 10")
    repo.commit(tmp_path / "m1", "one")
    gone = repo.commit(
        tmp_path / "m2", "two", data=[data], store_data=True, snapshots=tmp_path / "snaps"
    ).id
    repo.commit(tmp_path / "m1", "three")
    repo.unpin(repo.delete("v002", confirm=True).pin.name)
    assert run_vault(repo.root, "gc", "--grace", "0s").returncode == 0
    assert not repo.store.has(repo.store.get_version(gone).tree)
    assert repo.verify().ok
    return gone


def test_checkout_of_a_collected_version_fails_as_show_diff_and_restore_do(
    repo: Repository, collected: str, tmp_path: Path
) -> None:
    gone = collected
    dest = tmp_path / "dest"
    message = (
        f"vault: error: version v002 ({gone[:12]}) was deleted and gc has removed its files;"
        " only its record remains"
    )
    shown = run_vault(repo.root, "show", gone)
    assert_clean_error(shown)
    assert shown.stderr.strip() == message
    for args in (
        ("diff", "v001", gone),
        ("restore", gone, str(dest)),
        ("checkout", gone, str(dest)),
        ("checkout", gone, str(dest), "--data"),
        ("checkout", gone, str(dest), "--snapshots"),
    ):
        proc = run_vault(repo.root, *args)
        assert_clean_error(proc)
        assert (proc.returncode, proc.stderr.strip()) == (shown.returncode, message), args
    assert not dest.exists()


def test_every_reader_of_a_collected_version_raises_files_collected(
    repo: Repository, collected: str, tmp_path: Path
) -> None:
    gone = collected
    dest = tmp_path / "dest"
    readers = {
        "show": lambda: repo.show(gone),
        "diff": lambda: repo.diff("v001", gone),
        "restore": lambda: repo.restore(gone, dest),
        "checkout": lambda: repo.checkout(gone, dest),
        "checkout data": lambda: repo.checkout_attachment(gone, "data", dest),
        "checkout snapshots": lambda: repo.checkout_attachment(gone, "snapshots", dest),
        "load_state_dict": lambda: repo.load_state_dict(
            gone, "model-00001-of-00002.safetensors", "numpy"
        ),
        "consolidate": lambda: repo.consolidate(gone, "v001", message="merged"),
    }
    for what, read in readers.items():
        with pytest.raises(FilesCollected) as caught:
            read()
        assert (caught.value.oid, caught.value.name) == (gone, "v002"), what
    assert not dest.exists()

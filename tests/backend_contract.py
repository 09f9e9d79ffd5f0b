"""The backend contract: one suite every backend must pass (restic's internal/backend/test).

A backend's test module subclasses :class:`BackendContract` and provides the ``backend``
fixture. The S3 backend joins by doing the same, without changing a line here.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from vault.errors import PreconditionFailed


class BackendContract:
    """Tests of keys and bytes, conditional writes and debris, for any backend."""

    def test_put_get_stat_list_delete(self, backend: Any) -> None:
        backend.put("objects/ab/cdef", b"hello")
        backend.put("objects/ab/0123", b"xy")
        backend.put("objectsX/not-under", b"z")
        backend.put("other/x", b"z")
        assert backend.get("objects/ab/cdef") == b"hello"
        st = backend.stat("objects/ab/cdef")
        assert st is not None and st.size == 5 and abs(st.mtime - time.time()) < 60
        assert backend.stat("objects/zz/none") is None
        assert sorted(k for k, _ in backend.list("objects")) == [
            "objects/ab/0123",
            "objects/ab/cdef",
        ]
        assert dict(backend.list("objects"))["objects/ab/0123"].size == 2
        backend.delete("objects/ab/cdef")
        backend.delete("objects/ab/cdef")  # absent keys are ignored
        assert backend.stat("objects/ab/cdef") is None
        with pytest.raises(FileNotFoundError):
            backend.get("objects/ab/cdef")
        assert list(backend.list("nothing-here")) == []

    def test_get_head_and_missing_keys(self, backend: Any) -> None:
        backend.put("a/b", b"0123456789")
        assert backend.get_head("a/b", 4) == b"0123"
        assert backend.get_head("a/b", 100) == b"0123456789"
        for call in (backend.get, backend.get_versioned):
            with pytest.raises(FileNotFoundError):
                call("a/missing")
        with pytest.raises(FileNotFoundError):
            backend.get_head("a/missing", 4)

    def test_get_range_reads_a_slice(self, backend: Any) -> None:
        backend.put("packs/ab/cd", b"0123456789")
        assert backend.get_range("packs/ab/cd", 0, 4) == b"0123"
        assert backend.get_range("packs/ab/cd", 3, 4) == b"3456"
        assert backend.get_range("packs/ab/cd", 8, 100) == b"89"  # the file ends first
        assert backend.get_range("packs/ab/cd", 10, 5) == b""
        assert backend.get_range("packs/ab/cd", 50, 5) == b""
        assert backend.get_range("packs/ab/cd", 2, 0) == b""
        with pytest.raises(FileNotFoundError):
            backend.get_range("packs/ab/missing", 0, 4)
        with pytest.raises(FileNotFoundError):
            backend.get_range("packs/ab/missing", 0, 0)
        with pytest.raises(ValueError):
            backend.get_range("packs/ab/cd", -1, 4)
        backend.put("packs/ab/ef", b"deferred", defer=True)
        assert backend.get_range("packs/ab/ef", 2, 3) == b"fer"
        backend.sync()
        assert backend.get_range("packs/ab/ef", 2, 3) == b"fer"

    def test_put_replaces_whole_file(self, backend: Any) -> None:
        backend.put("doc", b"first version, long")
        backend.put("doc", b"second")
        assert backend.get("doc") == b"second"
        assert backend.stat("doc").size == 6

    def test_deferred_put_is_readable_and_published_by_sync(self, backend: Any) -> None:
        backend.put("objects/aa/bb", b"data", defer=True)
        assert backend.get("objects/aa/bb") == b"data"
        assert "objects/aa/bb" not in dict(backend.list("objects"))
        backend.sync()
        assert dict(backend.list("objects"))["objects/aa/bb"].size == 4
        assert backend.get("objects/aa/bb") == b"data"

    def test_discard_drops_deferred_puts(self, backend: Any) -> None:
        backend.put("objects/aa/cc", b"data", defer=True)
        backend.discard()
        backend.sync()
        assert backend.stat("objects/aa/cc") is None
        with pytest.raises(FileNotFoundError):
            backend.get("objects/aa/cc")

    def test_put_if_absent_creates_once(self, backend: Any) -> None:
        tag = backend.put_if_absent("refs.json", b"one")
        assert isinstance(tag, str) and tag
        with pytest.raises(PreconditionFailed):
            backend.put_if_absent("refs.json", b"two")
        assert backend.get("refs.json") == b"one"
        assert backend.get_versioned("refs.json") == (b"one", tag)

    def test_put_if_match_replaces_only_the_version_read(self, backend: Any) -> None:
        backend.put_if_absent("refs.json", b"v1")
        data, tag1 = backend.get_versioned("refs.json")
        tag2 = backend.put_if_match("refs.json", b"v2", tag1)
        assert backend.get_versioned("refs.json") == (b"v2", tag2)
        assert tag2 != tag1
        with pytest.raises(PreconditionFailed):
            backend.put_if_match("refs.json", b"v3", tag1)  # stale tag: refused
        assert backend.get("refs.json") == b"v2"
        with pytest.raises(PreconditionFailed):
            backend.put_if_match("absent.json", b"x", tag2)
        assert backend.stat("absent.json") is None

    def test_racing_compare_and_swap_loses_no_update(self, backend: Any) -> None:
        backend.put_if_absent("counter", b"0")
        workers, rounds = 4, 25
        conflicts = []

        def bump() -> None:
            for _ in range(rounds):
                while True:
                    data, tag = backend.get_versioned("counter")
                    try:
                        backend.put_if_match("counter", str(int(data) + 1).encode(), tag)
                        break
                    except PreconditionFailed:
                        conflicts.append(1)

        threads = [threading.Thread(target=bump) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert int(backend.get("counter")) == workers * rounds

    def test_scratch_debris_is_listed_and_removable(self, backend: Any) -> None:
        scratch = backend.scratch_dir()
        assert scratch.is_dir()
        work = scratch / "work-1"
        work.mkdir()
        (work / "merged.bin").write_bytes(b"x" * 10)
        names = [n for n, _ in backend.temp_files()]
        assert len(names) == 1
        backend.remove_temp(names[0])
        assert not work.exists()
        assert backend.temp_files() == []

    def test_keys_are_bytes_exact(self, backend: Any) -> None:
        blob = bytes(range(256)) * 1000
        backend.put("objects/bl/ob", blob)
        assert backend.get("objects/bl/ob") == blob
        backend.put("empty", b"")
        assert backend.get("empty") == b"" and backend.stat("empty").size == 0

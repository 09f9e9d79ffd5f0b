"""The stat cache: the file manifest a file had when its inode, size, mtime and ctime last matched.

Re-committing an unchanged model directory then costs a ``stat`` per file instead of a read of
every byte, as in git's index or borg's files cache. An entry is trusted only when every field
matches, and a file modified within :data:`RACY_NS` of the commit that recorded it is not
recorded at all: a write in the same clock tick as the recording could otherwise go unseen.
``vault commit --rehash`` ignores the cache.

The cache is an optimisation, never a source of truth: it lives in ``cache/stat.json``, is
rewritten atomically after each commit, and a missing or damaged file is simply an empty cache.
A hit is used only if the manifest it names is stored, intact and of the right size, and every
chunk it lists looks intact from its header (see ``ObjectStore.looks_intact``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

from .fsutil import temp_name
from .ids import Oid, is_oid

CACHE_FORMAT = 1
RACY_NS = 2_000_000_000
MAX_ENTRIES = 200_000
"""Entries kept; the least recently used go first."""

Stamp = tuple[int, int, int, int, int]
"""(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)."""

log = logging.getLogger(__name__)


def stamp_of(st: os.stat_result) -> Stamp:
    """The fields of a stat result the cache compares."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class StatCache:
    """Absolute path to (stamp, file manifest id), loaded from and saved to ``path``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, list] = {}  # path -> [*stamp, oid]
        self._dirty = False

    @classmethod
    def load(cls, path: Path) -> StatCache:
        """Read the cache; an absent or unreadable file gives an empty cache."""
        cache = cls(path)
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return cache
        if isinstance(doc, dict) and doc.get("format") == CACHE_FORMAT:
            entries = doc.get("entries")
            if isinstance(entries, dict):
                cache._entries = {
                    k: v
                    for k, v in entries.items()
                    if isinstance(v, list) and len(v) == 6 and isinstance(v[5], str)
                }
        return cache

    @classmethod
    def memory(cls) -> StatCache:
        """An empty cache that is never saved (a repository not on this machine has no place
        for one)."""
        return cls(None)

    def lookup(self, abspath: str, stamp: Stamp) -> Oid | None:
        """The manifest id recorded for ``abspath`` if its stamp is unchanged."""
        entry = self._entries.get(abspath)
        if entry is None or tuple(entry[:5]) != stamp or not is_oid(entry[5]):
            return None
        # Touch: move to the end, so pruning drops the least recently used.
        del self._entries[abspath]
        self._entries[abspath] = entry
        self._dirty = True
        return Oid(entry[5])

    def record(self, abspath: str, stamp: Stamp, oid: Oid, *, now_ns: int | None = None) -> None:
        """Remember that ``abspath`` with ``stamp`` holds the file manifest ``oid``."""
        now = time.time_ns() if now_ns is None else now_ns
        self._entries.pop(abspath, None)
        if max(stamp[3], stamp[4]) >= now - RACY_NS:
            self._dirty = True  # too recent to trust: forget it rather than record it
            return
        self._entries[abspath] = [*stamp, oid]
        self._dirty = True

    def forget(self, abspath: str) -> None:
        """Drop the entry of ``abspath``."""
        if self._entries.pop(abspath, None) is not None:
            self._dirty = True

    def save(self) -> None:
        """Write the cache if it changed. Failure only costs speed, so it is logged, not raised."""
        if not self._dirty or self.path is None:
            return
        excess = len(self._entries) - MAX_ENTRIES
        if excess > 0:
            for key in list(self._entries)[:excess]:
                del self._entries[key]
        doc = {"format": CACHE_FORMAT, "entries": self._entries}
        # Temp and rename but no fsync: after a power cut the cache may be lost or empty, which
        # only makes the next commit read every file.
        tmp = temp_name(self.path)
        try:
            self.path.parent.mkdir(exist_ok=True)
            tmp.write_bytes(json.dumps(doc, separators=(",", ":")).encode())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            log.debug("stat cache not saved: %s", exc)
            return
        self._dirty = False

    def __len__(self) -> int:
        return len(self._entries)

"""The staging directory of a checkout, and the swap that moves its content into DEST.

A checkout writes the whole version into ``DEST/.vault-tmp-checkout-PID-RANDOM/new/`` first. The
swap then moves every DEST path that is in the way (a file the version replaces; for a restore,
also what the version does not have) into the staging directory's ``old/``, and every staged
path into DEST. Both are renames, one per path, so each path is at any instant in exactly one of
its two places.

Before the first rename a journal (``journal.json``: the two lists of paths, and the identity of
the staging directory it belongs to) is written into the staging directory, and it is removed
once every rename is done: that removal is the swap's commit. Until then the swap can be rolled
back by renaming back whatever moved, the new paths first: in the process itself when a rename
fails, and, after a crash, by :func:`recover` at the start of the next checkout or restore into
DEST. The staging directory is locked (``flock``) by its process for its lifetime, so recovery
never touches the directory of a live checkout.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VaultError
from ..faults import crashpoint
from ..fsutil import TMP_PREFIX, fsync_dir, process_alive

STAGING_PREFIX = TMP_PREFIX + "checkout-"
JOURNAL = "journal.json"
NEW = "new"
OLD = "old"


@dataclass
class SwapPlan:
    """What a swap moves, as ``/``-separated paths relative to DEST.

    Attributes:
        aside: DEST paths moved into ``old/`` (files, links, or whole directories).
        new: staged paths moved from ``new/`` into DEST (files, links, or whole directories
            that DEST does not have). No path of either list lies under another of the same list.
    """

    aside: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)


class SwapFailed(VaultError):
    """A DEST path could not be moved; DEST was put back as it was, unless ``kept`` says where
    its replaced files wait for the next checkout or restore to put them back."""

    def __init__(self, dest: str, path: str, why: str, kept: str | None = None) -> None:
        if kept is None:
            tail = f"{dest} is unchanged"
        else:
            tail = (
                f"putting back what was moved failed too; the replaced files are in {kept},"
                f" and the next checkout or restore into {dest} puts them back"
            )
        super().__init__(f"cannot replace {path} in {dest}: {why}; {tail}")
        self.dest = dest
        self.path = path
        self.why = why
        self.kept = kept


class RecoveryFailed(VaultError):
    """What a killed checkout left in DEST cannot be put back safely."""

    def __init__(self, staging: str, why: str) -> None:
        super().__init__(
            f"cannot put back what an interrupted checkout moved into {staging}: {why}"
            " (move the files under its old/ back by hand, then remove it)"
        )
        self.staging = staging
        self.why = why


class Staging:
    """A checkout's staging directory inside ``dest``, locked while this process uses it.

    Write the version under :attr:`new`, then call :meth:`swap`, then :meth:`commit`; always
    :meth:`close` (it removes the directory, unless a failed rollback left files in it).
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.path = dest / f"{STAGING_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
        self.new = self.path / NEW
        self._keep = False
        os.mkdir(self.path, 0o700)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _lock(self._fd, wait=True)
            os.mkdir(self.new)
        except BaseException:
            self.close()
            raise

    def swap(self, plan: SwapPlan, *, sync_journal: bool) -> None:
        """Move ``plan.aside`` into ``old/`` and ``plan.new`` into DEST, all or nothing.

        Args:
            sync_journal: fsync the journal before the first rename (needed when a power cut
                could otherwise leave files of the user's in ``old/`` with no record of them).

        Raises:
            SwapFailed: a rename failed; everything was moved back (or, if that failed too,
                the journal stays for :func:`recover`).
        """
        _write_journal(self.path, self._fd, plan, sync_journal)
        crashpoint("checkout-staged")
        current = ""
        try:
            made: set[str] = set()
            for current in plan.aside:
                parent = os.path.dirname(current)
                if parent not in made:
                    os.makedirs(self.path / OLD / parent, exist_ok=True)
                    made.add(parent)
                os.rename(self.dest / current, self.path / OLD / current)
                crashpoint("checkout-swap")
            for current in plan.new:
                os.rename(self.new / current, self.dest / current)
                crashpoint("checkout-swap")
        except BaseException as exc:
            try:
                roll_back(self.dest, self.path, plan)
            except OSError as again:
                self._keep = True
                raise SwapFailed(str(self.dest), current, _why(exc), str(self.path)) from again
            os.unlink(self.path / JOURNAL)
            if isinstance(exc, OSError):
                raise SwapFailed(str(self.dest), current, _why(exc)) from exc
            raise

    def commit(self) -> None:
        """Make the swap final: what it moved aside is garbage from now on."""
        os.unlink(self.path / JOURNAL)

    def close(self) -> None:
        """Remove the staging directory (unless a failed rollback left files in it) and unlock."""
        try:
            if not self._keep:
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            fd, self._fd = self._fd, -1
            if fd >= 0:
                os.close(fd)


def _why(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__


def _write_journal(staging: Path, fd: int, plan: SwapPlan, sync: bool) -> None:
    st = os.fstat(fd)
    doc = {"format": 1, "staging": [st.st_dev, st.st_ino], "aside": plan.aside, "new": plan.new}
    data = json.dumps(doc).encode()
    tmp = staging / (JOURNAL + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, staging / JOURNAL)
    if sync:
        fsync_dir(staging)


def roll_back(dest: Path, staging: Path, plan: SwapPlan) -> None:
    """Undo whatever part of ``plan`` was done: new paths back into ``new/``, then the old ones
    back into DEST. Safe to repeat, and to interrupt and repeat."""
    for rel in reversed(plan.new):
        if not os.path.lexists(staging / NEW / rel) and os.path.lexists(dest / rel):
            os.rename(dest / rel, staging / NEW / rel)
    for rel in reversed(plan.aside):
        if os.path.lexists(staging / OLD / rel):
            if os.path.lexists(dest / rel):
                raise FileExistsError(errno.EEXIST, "something new is in the way", str(dest / rel))
            os.rename(staging / OLD / rel, dest / rel)


def recover(dest: Path) -> int:
    """Put DEST back as it was before every checkout into it that was killed, and remove their
    staging directories; return how many there were.

    A staging directory is stale when its process is gone: its pid (in its name) is not running
    and nobody holds its lock. Without a journal nothing in DEST had moved yet (or the swap had
    committed), so the directory is simply removed; with one, the swap is rolled back first.

    Raises:
        RecoveryFailed: a journal does not parse, names an unsafe path, or its rollback fails;
            the staging directory is left as it is.
    """
    try:
        with os.scandir(dest) as it:
            found = [e for e in it if e.name.startswith(STAGING_PREFIX)]
    except (FileNotFoundError, NotADirectoryError):
        return 0
    done = 0
    for entry in found:
        if not entry.is_dir(follow_symlinks=False) or _owner_alive(entry.name):
            continue
        fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            if not _lock(fd, wait=False):
                continue  # its process lives (in another pid namespace, say)
            staging = Path(entry.path)
            plan = _read_journal(dest, staging, fd)
            if plan is not None:
                try:
                    roll_back(dest, staging, plan)
                except OSError as exc:
                    raise RecoveryFailed(str(staging), _why(exc)) from exc
                os.unlink(staging / JOURNAL)
            # DEST is as it was: what cannot be removed now is only debris.
            shutil.rmtree(staging, ignore_errors=True)
            done += 1
        finally:
            os.close(fd)
    if done:
        fsync_dir(dest)
    return done


def _lock(fd: int, *, wait: bool) -> bool:
    """Lock a staging directory; ``False`` when another process holds it. Where the file system
    has no ``flock`` (some network file systems), the process id alone tells a live owner."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    return True


def _owner_alive(name: str) -> bool:
    pid_text = name[len(STAGING_PREFIX) :].split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return pid == os.getpid() or process_alive(pid)


def _read_journal(dest: Path, staging: Path, fd: int) -> SwapPlan | None:
    """The journal's plan; ``None`` when there is none (no swap began, or it committed).

    A journal must name the identity of the directory it is in, which only the checkout that
    made the directory knew: a journal planted by hand, or by a version an older release
    checked out, is refused rather than obeyed. And no journal can make recovery move anything
    outside DEST: every path must be relative and clean, in real directories.
    """
    try:
        raw = (staging / JOURNAL).read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        plan = SwapPlan(list(doc["aside"]), list(doc["new"]))
        owner = doc["staging"]
        fmt = doc["format"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RecoveryFailed(str(staging), f"its journal does not parse ({exc})") from None
    st = os.fstat(fd)
    if fmt != 1 or owner != [st.st_dev, st.st_ino]:
        raise RecoveryFailed(str(staging), "its journal was not written for this directory")
    for rel in [*plan.aside, *plan.new]:
        if not _safe_in(dest, rel):
            raise RecoveryFailed(str(staging), f"its journal names an unsafe path {rel!r}")
    return plan


def _safe_in(dest: Path, rel: object) -> bool:
    """Whether ``dest/rel`` is a clean relative path whose parents are real directories."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or rel.startswith("/"):
        return False
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return False
    cur = dest
    for part in parts[:-1]:
        cur = cur / part
        try:
            if not stat.S_ISDIR(os.lstat(cur).st_mode):
                return False
        except FileNotFoundError:
            return False
    return True

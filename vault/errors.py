"""The error hierarchy: every failure vault reports is a :class:`VaultError`.

Errors carry the data that explains them as attributes; the message is built from those fields.
Only the command line turns an error into text on stderr and an exit code.
"""

from __future__ import annotations

EXIT_CODES = {
    "check": 1,
    "usage": 2,
    "not_found": 3,
    "refused": 4,
    "damaged": 5,
    "io": 6,
}
"""The exit status of each kind of error (the README's table): ``check`` a check found something
(verify found damage, ``diff --exit-code`` found differences); ``usage`` a malformed request;
``not_found`` a revision, pin, path, remote or repository that does not exist; ``refused`` what
exists already, is not empty, needs ``--confirm`` or conflicts; ``damaged`` a damaged repository;
``io`` out of space or another I/O failure."""


class VaultError(Exception):
    """Root of every error vault raises on purpose.

    Each class has a :attr:`kind`, one of :data:`EXIT_CODES`; an instance may name another (a
    ``TagError`` for a missing tag is ``not_found``, for an existing one ``refused``).
    """

    kind = "usage"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            if kind not in EXIT_CODES:
                raise ValueError(f"unknown error kind {kind!r}")
            self.kind = kind

    @property
    def exit_code(self) -> int:
        """The command line's exit status for this error."""
        return EXIT_CODES[self.kind]


class RepoNotFound(VaultError):
    """No repository at the given place, or none found walking up from the current directory."""

    kind = "not_found"

    def __init__(self, where: str) -> None:
        super().__init__(f"not a vault repository: {where} (run 'vault init' first)")
        self.where = where


class RepoExists(VaultError):
    """``init`` was asked to create a repository where one already exists."""

    kind = "refused"

    def __init__(self, where: str) -> None:
        super().__init__(f"a vault repository already exists at {where}")
        self.where = where


class NotADirectory(VaultError):
    """A path that must be a directory (where ``init`` creates a repository) is something else."""

    kind = "refused"

    def __init__(self, where: str) -> None:
        super().__init__(f"{where} exists and is not a directory")
        self.where = where


class UnsupportedFormat(VaultError):
    """The repository was written by a format this release cannot read."""

    kind = "damaged"

    def __init__(self, where: str, found: object, supported: int) -> None:
        super().__init__(
            f"repository {where} has format {found!r}; this vault reads format {supported}"
        )
        self.where = where
        self.found = found
        self.supported = supported


class BrokenParent(VaultError):
    """A commit would name as its parent an id that is not a readable version (``latest``
    points at a missing object, a tree, damaged bytes): a version must never name one."""

    kind = "damaged"

    def __init__(self, ref: str, oid: str, why: str) -> None:
        super().__init__(
            f"{ref} ({oid[:12]}…) is not a readable version: {why}; run 'vault verify'"
        )
        self.ref = ref
        self.oid = oid
        self.why = why


class UnknownRevision(VaultError):
    """A revision string names no version."""

    kind = "not_found"

    def __init__(self, rev: str, why: str = "") -> None:
        super().__init__(f"unknown revision: {rev}" + (f" ({why})" if why else ""))
        self.rev = rev


class AmbiguousRevision(VaultError):
    """An id prefix matches more than one version."""

    def __init__(self, rev: str, candidates: list[str]) -> None:
        shown = ", ".join(candidates[:10]) + (" ..." if len(candidates) > 10 else "")
        super().__init__(f"ambiguous revision {rev}: matches {shown}")
        self.rev = rev
        self.candidates = candidates


class ObjectMissing(VaultError):
    """An object that something refers to is not in the store."""

    kind = "damaged"

    def __init__(self, oid: str) -> None:
        super().__init__(f"object {oid} is missing from the store")
        self.oid = oid


class CorruptObject(VaultError):
    """An object's bytes do not hash to its id, or cannot be decoded."""

    kind = "damaged"

    def __init__(self, oid: str, actual: str | None = None, why: str = "") -> None:
        detail = why or (f"content hashes to {actual}" if actual else "damaged")
        super().__init__(f"corrupt object {oid}: {detail}")
        self.oid = oid
        self.expected = oid
        self.actual = actual


class PathNotFound(VaultError):
    """A path given by the user does not exist."""

    kind = "not_found"

    def __init__(self, path: str) -> None:
        super().__init__(f"path not found: {path}")
        self.path = path


class UnsupportedFile(VaultError):
    """A file type vault does not store (fifo, socket, device)."""

    kind = "refused"

    def __init__(self, path: str, file_type: str) -> None:
        super().__init__(f"cannot store {path}: {file_type} files are not supported")
        self.path = path
        self.file_type = file_type


class UnsafePath(VaultError):
    """A manifest path that is absolute, climbs out of the destination, or crosses a symlink."""

    kind = "damaged"

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"refusing unsafe path {path!r}: {why}")
        self.path = path
        self.why = why


class DestinationNotEmpty(VaultError):
    """Checkout into a non-empty directory without ``--force``."""

    kind = "refused"

    def __init__(self, dest: str) -> None:
        super().__init__(f"destination {dest} is not empty (use --force to overwrite)")
        self.dest = dest


class LockTimeout(VaultError):
    """Another process held a repository lock for longer than we were willing to wait."""

    kind = "refused"

    def __init__(self, lock: str, timeout: float) -> None:
        super().__init__(f"timed out after {timeout:g}s waiting for lock {lock}")
        self.lock = lock
        self.timeout = timeout


class RefConflict(VaultError):
    """A ref did not hold the value a compare-and-swap expected."""

    kind = "refused"

    def __init__(self, ref: str, expected: str | None, actual: str | None) -> None:
        super().__init__(f"ref {ref} moved: expected {expected}, found {actual}")
        self.ref = ref
        self.expected = expected
        self.actual = actual


class PreconditionFailed(VaultError):
    """A conditional write found the file other than the caller expected (created, replaced or
    removed by someone else); the backend changed nothing."""

    kind = "refused"

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key} was not written: {why}")
        self.key = key
        self.why = why


class LockLost(VaultError):
    """A writer's lease on the repository expired before it finished; it published nothing."""

    kind = "refused"

    def __init__(self, lock: str, age: float) -> None:
        super().__init__(
            f"the repository lock {lock} was not renewed for {age:.0f}s, so a garbage collection"
            " may have run: nothing was published, try again"
        )
        self.lock = lock
        self.age = age


class TagError(VaultError):
    """A tag name is invalid, exists already, or does not exist."""


class DiskFull(VaultError):
    """The file system ran out of space while writing."""

    kind = "io"

    def __init__(self, where: str) -> None:
        super().__init__(
            f"no space left on device while writing {where}; earlier versions are intact"
            " and what was half written is garbage for 'vault gc'"
        )
        self.where = where


class BadValue(VaultError):
    """A value given by the user (a duration, a metadata pair, a count) is malformed."""

    def __init__(self, what: str, value: object, why: str) -> None:
        super().__init__(f"bad {what} {value!r}: {why}")
        self.what = what
        self.value = value
        self.why = why


class VerifyFailed(VaultError):
    """``verify`` found damaged or missing objects."""

    kind = "check"


class FilesCollected(VaultError):
    """A version whose files gc has removed: it was deleted and nothing kept it, so only its
    small record is left (history still runs through it)."""

    kind = "not_found"

    def __init__(self, rev: str, name: str | None = None, oid: str | None = None) -> None:
        label = f"{name} ({oid[:12]})" if name and oid else rev
        super().__init__(
            f"version {label} was deleted and gc has removed its files; only its record remains"
        )
        self.rev = rev
        self.name = name
        self.oid = oid


class NoAttachment(VaultError):
    """A version that stores no training data (or no snapshots) besides its files."""

    kind = "not_found"

    def __init__(self, rev: str, role: str) -> None:
        flag = "--store-data" if role == "data" else f"--{role}"
        super().__init__(f"{rev} stores no {role} (commit it with {flag})")
        self.rev = rev
        self.role = role


class PinError(VaultError):
    """A pin name is invalid, exists already, or does not exist."""


class NotConfirmed(VaultError):
    """A destructive command was run without its confirmation flag."""

    kind = "refused"

    def __init__(self, what: str, flag: str = "--confirm") -> None:
        super().__init__(f"refusing to {what} without confirmation: add {flag}")
        self.what = what
        self.flag = flag


class FileNotInVersion(VaultError):
    """A path that the named version does not hold (or holds as a link, not a file)."""

    kind = "not_found"

    def __init__(self, rev: str, path: str, why: str = "no such file") -> None:
        super().__init__(f"{rev} has no file {path}: {why}")
        self.rev = rev
        self.path = path


class NotSafetensors(VaultError):
    """A file that should be safetensors is not a well-formed one."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} is not a readable safetensors file: {why}")
        self.path = path
        self.why = why


class ConsolidateError(VaultError):
    """Consolidation cannot start: a base or adapter that is not a model, or a bad request."""


class AdapterMismatch(ConsolidateError):
    """A LoRA adapter that cannot be merged into the given base (missing module, wrong shape)."""


class MissingExtra(VaultError):
    """A command needs optional packages that are not installed."""

    def __init__(self, what: str, packages: str, extra: str = "ml") -> None:
        super().__init__(
            f"{what} needs {packages}: install vault with the '{extra}' extra (pip install"
            f" 'vault[{extra}]')"
        )
        self.what = what
        self.packages = packages


class RemoteUnavailable(VaultError):
    """A remote store could not serve a request: it stayed unreachable (or kept failing) until
    the deadline, or it refused the request for good (no credentials, access denied, no such
    bucket). Nothing is half-published: objects appear whole or not at all."""

    kind = "io"

    def __init__(self, where: str, why: str, seconds: float | None = None) -> None:
        tail = f" (gave up after {seconds:.0f}s; VAULT_S3_TIMEOUT sets how long)" if seconds else ""
        super().__init__(f"{where} is unavailable: {' '.join(why.split())}{tail}")
        self.where = where
        self.why = why
        self.seconds = seconds


class RemoteError(VaultError):
    """A remote cannot be used as asked: unknown name, a name taken, no default remote, a
    remote that has moved on (pull first), or one that is not a vault repository."""


# Reading and status (issue 11, items 8, 9, 10)


class StrayFiles(VaultError):
    """``checkout --force`` into a folder holding files the version does not have: writing
    would leave a folder that is neither the version nor what was there. Nothing was written;
    ``--clean`` removes them."""

    kind = "refused"
    SHOWN = 3
    """Paths the message names; the rest are counted."""

    def __init__(self, dest: str, paths: list[str]) -> None:
        shown = ", ".join(paths[: self.SHOWN])
        more = f" and {len(paths) - self.SHOWN} more" if len(paths) > self.SHOWN else ""
        noun = "file" if len(paths) == 1 else "files"
        super().__init__(
            f"{dest} holds {len(paths)} {noun} the version does not have ({shown}{more});"
            " nothing was written: add --clean to remove them, or check out into an empty folder"
        )
        self.dest = dest
        self.paths = paths


class PathNotInVersion(FileNotInVersion):
    """A path (a file, or a folder for ``ls``) that the named version does not hold, or holds
    as something else than asked (a folder or a link where ``cat`` needs a file)."""

    kind = "not_found"

    def __init__(
        self, rev: str, path: str, why: str = "no such file or folder in the version"
    ) -> None:
        VaultError.__init__(self, f"{rev}:{path}: {why}")
        self.rev = rev
        self.path = path
        self.why = why


# Refs and prune (issue 11, items 2, 5)


class NameTaken(VaultError):
    """A tag or pin name the other kind already uses: tags and pins share one set of names, so
    that a name always means one version.

    Attributes:
        name: the name.
        wanted: what was to be made (``tag`` or ``pin``); for a clash with a remote, what the
            remote has.
        existing: what already has the name here (``tag`` or ``pin``).
        remote: the remote whose refs would bring the clash (push or pull), else ``None``.
    """

    kind = "refused"

    def __init__(self, name: str, wanted: str, existing: str, remote: str | None = None) -> None:
        if remote is None:
            message = (
                f"cannot make a {wanted} named {name}: a {existing} has that name (tags and pins"
                " share one set of names)"
            )
        else:
            message = (
                f"{name} would be both a tag and a pin (the remote {remote} has a {wanted} {name},"
                f" this repository a {existing}): remove or rename one, then try again"
            )
        super().__init__(message)
        self.name = name
        self.wanted = wanted
        self.existing = existing
        self.remote = remote


# Commit selection (issue 11, items 1, 4, 7)


class EmptyCommit(VaultError):
    """A commit found no file to store: the directory is empty, or every path in it was left
    out by rule. ``--allow-empty`` (``allow_empty=True``) commits it anyway."""

    kind = "refused"

    def __init__(self, path: str, excluded: int = 0) -> None:
        left = f" ({excluded} left out by rule)" if excluded else ""
        super().__init__(
            f"nothing to commit in {path}: no files{left}; add --allow-empty to commit it anyway"
        )
        self.path = path
        self.excluded = excluded


# Runs and curves (issue 12: runs, plot)


class UnknownRun(VaultError):
    """A run name that no named version records (``plot --run``).

    Attributes:
        run: the name asked for.
        known: the runs there are.
    """

    kind = "not_found"

    def __init__(self, run: str, known: list[str]) -> None:
        shown = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
        super().__init__(
            f"no run named {run!r}" + (f" (runs: {shown})" if known else " (no runs yet)")
        )
        self.run = run
        self.known = known


class NoMetric(VaultError):
    """None of the versions or runs to plot logged the metric asked for.

    Attributes:
        metric: the metric asked for.
        labels: what was to be plotted.
        logged: the keys their curves do log (``loss``, ``learning_rate``, ...).
    """

    kind = "not_found"

    def __init__(self, metric: str, labels: list[str], logged: list[str]) -> None:
        what = ", ".join(labels[:5]) + (" ..." if len(labels) > 5 else "")
        have = f"they log {', '.join(logged)}" if logged else "they record no learning curve"
        super().__init__(f"no {metric} to plot in {what}: {have}")
        self.metric = metric
        self.labels = labels
        self.logged = logged

"""Refs: names for versions, moved only by compare-and-swap, every move written to a reflog.

All refs live in one document, ``refs.json``, so a transaction that moves several refs (a new
version's name and ``latest``) is all-or-nothing. A transaction reads the document with its
version tag, records each move with the value its caller expects the ref to hold, and publishes
the new document with the backend's conditional write (``put_if_match``): on any machine and any
backend, a document that changed in between is never overwritten. The transaction is then
replayed on the new document: each move whose expected value still holds is applied again, and
one whose ref moved meanwhile fails the transaction with :class:`~vault.errors.RefConflict`.
Two writers racing for the same ref therefore never both win, and writers of different refs
both do. After the document is published, the moves are written to the reflog, one file per
transaction under ``logs/reflog/``.

Ref names: ``latest``, ``base``, ``versions/v001``, ``tags/NAME``, ``pins/NAME`` (later releases
may add more namespaces). A pin's type, reason, creation time and expiry live in the same
document, beside the refs, so a pin and its description are published together.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .backend import Backend
from .errors import CorruptObject, PreconditionFailed, RefConflict, VaultError
from .faults import crashpoint
from .ids import Oid, is_oid

log = logging.getLogger("vault")

REFS_FORMAT = 1
REFS_KEY = "refs.json"
REFLOG_DIR = "logs/reflog"
LEGACY_REFLOG = "logs/reflog.jsonl"
"""Format 2 appended every move to this one file; it is still read, never written."""
CAS_RETRIES = 50
LATEST = "latest"
BASE = "base"
VERSIONS = "versions/"
TAGS = "tags/"
PINS = "pins/"
REMOTES = "remotes/"
"""Remote-tracking refs: ``remotes/NAME/<ref>`` is what ``NAME``'s ``<ref>`` held when this
repository last fetched from or pushed to it (see :mod:`vault.remotes`)."""
SYNCED = "synced/"
"""``synced/NAME/<ref>``: what this repository and the remote ``NAME`` both held at their last
push, pull or clone; the base of the three-way merges of push and pull."""
VERSION_NAME_RE = re.compile(r"v(\d+)\Z")


def version_name(number: int) -> str:
    """The name of the ``number``-th version: ``v001``, ..., ``v999``, ``v1000``."""
    return f"v{number:03d}"


def version_number(name: str) -> int | None:
    """The number in a version name, or ``None`` when ``name`` is not one."""
    m = VERSION_NAME_RE.match(name)
    return int(m.group(1)) if m else None


@dataclass
class RefsDoc:
    """The content of ``refs.json``."""

    refs: dict[str, Oid] = field(default_factory=dict)
    next_version: int = 1
    pins: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Pin name (without ``pins/``) to its description: ``type``, ``reason``, ``created``,
    ``expires``."""

    def names_for(self, prefix: str) -> dict[str, Oid]:
        """Refs under a namespace, with the namespace stripped from their names."""
        n = len(prefix)
        return {k[n:]: v for k, v in self.refs.items() if k.startswith(prefix)}

    def to_bytes(self) -> bytes:
        """Serialise (sorted, one ref per line for readable diffs); ``pins`` only when any."""
        doc: dict[str, Any] = {
            "format": REFS_FORMAT,
            "next_version": self.next_version,
            "refs": self.refs,
        }
        if self.pins:
            doc["pins"] = self.pins
        return json.dumps(doc, sort_keys=True, indent=0).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> RefsDoc:
        """Parse ``refs.json``."""
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        if doc.get("format") != REFS_FORMAT:
            raise ValueError(f"unsupported refs format {doc.get('format')!r}")
        refs = doc["refs"]
        if not isinstance(refs, dict):
            raise ValueError("refs is not a JSON object")
        if not all(
            isinstance(k, str) and isinstance(v, str) and is_oid(v) for k, v in refs.items()
        ):
            raise ValueError("malformed ref")
        pins = doc.get("pins", {})  # absent in documents written before pins existed
        if not isinstance(pins, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in pins.items()
        ):
            raise ValueError("malformed pins")
        return cls({k: Oid(v) for k, v in refs.items()}, int(doc["next_version"]), pins)


@dataclass(frozen=True)
class ReflogEntry:
    """One move of one ref."""

    time: str
    ref: str
    old: Oid | None
    new: Oid | None
    reason: str

    def epoch(self) -> float:
        """The entry's time in seconds since the epoch."""
        return datetime.fromisoformat(self.time).timestamp()


_ANY = True
"""``expected=True``: the move applies whatever the ref holds (no compare)."""


@dataclass(frozen=True)
class _Op:
    kind: str  # "set", "delete", "pin" or "name"
    ref: str
    expected: Oid | None | bool
    new: Oid | None = None
    info: dict[str, Any] | None = None


class Transaction:
    """Ref moves to apply together; created by :meth:`RefStore.transaction`."""

    def __init__(self, doc: RefsDoc, reason: str) -> None:
        self.doc = doc
        self.reason = reason
        self.moves: list[tuple[str, Oid | None, Oid | None]] = []
        self.ops: list[_Op] = []
        self.pins_changed = False

    def get(self, ref: str) -> Oid | None:
        """The current value of ``ref`` in this transaction."""
        return self.doc.refs.get(ref)

    def set(self, ref: str, new: Oid, *, expected: Oid | None | bool = _ANY) -> None:
        """Point ``ref`` at ``new``.

        Args:
            ref: the ref name.
            new: the id it will hold.
            expected: the id the caller saw in it (``None``: it must not exist); ``True``
                moves it whatever it holds. Checked now and again when the transaction is
                published, so a ref another writer moved in between is never overwritten.
        """
        self._set(_Op("set", ref, expected, new))

    def _set(self, op: _Op) -> None:
        old = self.doc.refs.get(op.ref)
        _check(op, old)
        assert op.new is not None
        self.doc.refs[op.ref] = op.new
        self.moves.append((op.ref, old, op.new))
        self.ops.append(op)

    def delete(self, ref: str, *, expected: Oid | None | bool = _ANY) -> None:
        """Remove ``ref``; with ``expected`` it must hold that id. A pin's description goes
        with its ref."""
        self._delete(_Op("delete", ref, expected))

    def _delete(self, op: _Op) -> None:
        old = self.doc.refs.get(op.ref)
        _check(op, old)
        if old is not None:
            del self.doc.refs[op.ref]
            self.moves.append((op.ref, old, None))
        if op.ref.startswith(PINS):
            self.pins_changed |= self.doc.pins.pop(op.ref[len(PINS) :], None) is not None
        self.ops.append(op)

    def set_pin(
        self, name: str, new: Oid, info: dict[str, Any], *, expected: Oid | None | bool = _ANY
    ) -> None:
        """Point the pin ``pins/NAME`` at ``new`` and record its description ``info``."""
        self._set_pin(_Op("pin", PINS + name, expected, new, dict(info)))

    def _set_pin(self, op: _Op) -> None:
        assert op.info is not None
        self._set(op)
        self.doc.pins[op.ref[len(PINS) :]] = dict(op.info)
        self.pins_changed = True

    def allocate_version_name(self) -> str:
        """Reserve the next version name; names are never reused."""
        taken = [
            version_number(k[len(VERSIONS) :]) for k in self.doc.refs if k.startswith(VERSIONS)
        ]
        number = max([self.doc.next_version - 1, *[t for t in taken if t is not None]]) + 1
        self.doc.next_version = number + 1
        name = version_name(number)
        self.ops.append(_Op("name", VERSIONS + name, None))
        return name

    @property
    def changed(self) -> bool:
        """Whether publishing would change the document."""
        return bool(self.moves) or self.pins_changed or any(o.kind == "name" for o in self.ops)

    def replay(self, doc: RefsDoc) -> Transaction:
        """This transaction's moves applied to ``doc`` (a newer document), with their checks.

        Raises:
            RefConflict: a ref the transaction moves no longer holds what it expected, or a
                version name it allocated was given meanwhile.
        """
        again = Transaction(doc, self.reason)
        for op in self.ops:
            if op.kind == "set":
                again._set(op)
            elif op.kind == "delete":
                again._delete(op)
            elif op.kind == "pin":
                again._set_pin(op)
            else:  # the name must still be free and not yet given
                number = version_number(op.ref[len(VERSIONS) :])
                assert number is not None
                if op.ref in doc.refs or doc.next_version > number:
                    raise RefConflict(op.ref, None, doc.refs.get(op.ref))
                doc.next_version = number + 1
                again.ops.append(op)
        return again


def _check(op: _Op, old: Oid | None) -> None:
    if op.expected is not _ANY and old != op.expected:
        raise RefConflict(op.ref, op.expected if isinstance(op.expected, str) else None, old)


class RefStore:
    """The refs of one repository, on its backend.

    Args:
        backend: where ``refs.json`` and the reflog live.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def exists(self) -> bool:
        """Whether the refs document exists (``init`` writes it before the config)."""
        return self.backend.stat(REFS_KEY) is not None

    def read(self) -> RefsDoc:
        """The current refs."""
        return self._read()[0]

    def _read(self) -> tuple[RefsDoc, str | None]:
        try:
            data, etag = self.backend.get_versioned(REFS_KEY)
        except FileNotFoundError:
            return RefsDoc(), None
        try:
            return RefsDoc.from_bytes(data), etag
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptObject("refs.json", why=str(exc)) from None

    def initialise(self) -> None:
        """Write an empty refs document, unless one exists."""
        with contextlib.suppress(PreconditionFailed):
            self.backend.put_if_absent(REFS_KEY, RefsDoc().to_bytes())

    @contextmanager
    def transaction(
        self, reason: str, *, before_publish: Callable[[], None] | None = None
    ) -> Iterator[Transaction]:
        """Yield a :class:`Transaction` on the current refs; publish it when the block succeeds.

        Publication is a conditional write of the whole document. When another writer
        published first, the moves are replayed on its document (see :meth:`Transaction.replay`)
        and written again, so unrelated moves never conflict.

        Args:
            before_publish: called once the block succeeded, before anything is written (a
                writer checks there that its lease still holds).

        Raises:
            RefConflict: a ref this transaction moves was moved by another writer.
        """
        doc, etag = self._read()
        txn = Transaction(doc, reason)
        yield txn
        if not txn.changed:
            return
        if before_publish is not None:
            before_publish()
        for _ in range(CAS_RETRIES):
            try:
                if etag is None:
                    self.backend.put_if_absent(REFS_KEY, txn.doc.to_bytes())
                else:
                    self.backend.put_if_match(REFS_KEY, txn.doc.to_bytes(), etag)
                break
            except PreconditionFailed:
                fresh, etag = self._read()
                txn = txn.replay(fresh)
        else:
            raise RefConflict(REFS_KEY, None, None)
        crashpoint("refs-published")
        self._log(txn)
        crashpoint("reflog-appended")

    def set_if_equals(self, ref: str, old: Oid | None, new: Oid | None, reason: str) -> None:
        """Move ``ref`` from ``old`` (the value the caller saw; ``None``: absent) to ``new``
        (``None`` removes it), as dulwich's ``set_if_equals``.

        Raises:
            RefConflict: ``ref`` does not hold ``old``.
        """
        with self.transaction(reason) as txn:
            if new is None:
                txn.delete(ref, expected=old)
            else:
                txn.set(ref, new, expected=old)

    def _log(self, txn: Transaction) -> None:
        if not txn.moves:
            return
        now = datetime.now(timezone.utc)
        body = b"".join(
            json.dumps(
                {
                    "time": now.isoformat(),
                    "ref": ref,
                    "old": old,
                    "new": new,
                    "reason": txn.reason,
                    "pid": os.getpid(),
                },
                sort_keys=True,
            ).encode()
            + b"\n"
            for ref, old, new in txn.moves
        )
        key = f"{REFLOG_DIR}/{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{os.urandom(4).hex()}.jsonl"
        try:
            self.backend.put(key, body)
            self.backend.sync()  # its directory entry too: gc reads the reflog for roots
        except (OSError, VaultError) as exc:
            # The refs are published: the transaction happened, and reporting it as failed
            # would invite a retry that records it twice. Warn instead.
            log.warning("ref moves are done but the reflog could not be written: %s", exc)

    def reflog(self, since: float | None = None) -> list[ReflogEntry]:
        """Recorded ref moves, oldest first; with ``since`` (epoch seconds), only those at or
        after it. Lines that do not parse (a torn legacy line) are skipped."""
        keys = []
        for key, _ in self.backend.list(REFLOG_DIR):
            stamp = _stamp(key)
            if stamp is not None and (since is None or stamp >= since - 1):
                keys.append(key)
        raw = []
        with contextlib.suppress(FileNotFoundError):
            raw.append(self.backend.get(LEGACY_REFLOG))
        for key in sorted(keys):
            with contextlib.suppress(FileNotFoundError):
                raw.append(self.backend.get(key))
        out = []
        for line in b"\n".join(raw).splitlines():
            try:
                d: dict[str, Any] = json.loads(line)
                entry = ReflogEntry(
                    d["time"], d["ref"], d.get("old"), d.get("new"), d.get("reason", "")
                )
                if since is not None and entry.epoch() < since:
                    continue
                out.append(entry)
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def recent_ids(self, since: float) -> set[Oid]:
        """Ids that any ref held at or after ``since`` (epoch seconds), from the reflog."""
        out: set[Oid] = set()
        for e in self.reflog(since):
            for oid in (e.old, e.new):
                if oid and is_oid(oid):
                    out.add(oid)
        return out


def _stamp(key: str) -> float | None:
    """The time in a reflog file's name, in epoch seconds."""
    name = key.rsplit("/", 1)[-1].split("-", 1)[0]
    try:
        return datetime.strptime(name, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def now_iso() -> str:
    """The current time as ISO 8601 with the local UTC offset, to the second."""
    return (
        datetime.fromtimestamp(time.time(), timezone.utc).astimezone().isoformat(timespec="seconds")
    )

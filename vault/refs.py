"""Refs: names for versions, moved only by compare-and-swap, every move written to a reflog.

All refs live in one document, ``refs.json``, rewritten atomically under the refs lock, so a
transaction that moves several refs (a new version's name and ``latest``) is all-or-nothing. After
the document is published, each move is appended to ``logs/reflog.jsonl``.

Ref names: ``latest``, ``base``, ``versions/v001``, ``tags/NAME``, ``pins/NAME`` (later releases
may add more namespaces). A pin's type, reason, creation time and expiry live in the same
document, beside the refs, so a pin and its description are published together.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import CorruptObject, DiskFull, RefConflict
from .faults import crashpoint
from .fsutil import append_durably, atomic_write
from .ids import Oid, is_oid
from .lock import file_lock

log = logging.getLogger("vault")

REFS_FORMAT = 1
LATEST = "latest"
BASE = "base"
VERSIONS = "versions/"
TAGS = "tags/"
PINS = "pins/"
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


class Transaction:
    """Ref moves to apply together; created by :meth:`RefStore.transaction`."""

    def __init__(self, doc: RefsDoc, reason: str) -> None:
        self.doc = doc
        self.reason = reason
        self.moves: list[tuple[str, Oid | None, Oid | None]] = []

    def get(self, ref: str) -> Oid | None:
        """The current value of ``ref`` in this transaction."""
        return self.doc.refs.get(ref)

    def set(self, ref: str, new: Oid, *, expected: Oid | None | bool = True) -> None:
        """Point ``ref`` at ``new``.

        Args:
            ref: the ref name.
            new: the id it will hold.
            expected: the id it must hold now (``None``: must not exist); ``True`` skips the check.
        """
        old = self.doc.refs.get(ref)
        if expected is not True and old != expected:
            raise RefConflict(ref, expected if isinstance(expected, str) else None, old)
        self.doc.refs[ref] = new
        self.moves.append((ref, old, new))

    def delete(self, ref: str, *, expected: Oid | None | bool = True) -> None:
        """Remove ``ref``; with ``expected`` it must hold that id now. A pin's description goes
        with its ref."""
        old = self.doc.refs.get(ref)
        if expected is not True and old != expected:
            raise RefConflict(ref, expected if isinstance(expected, str) else None, old)
        if old is not None:
            del self.doc.refs[ref]
            self.moves.append((ref, old, None))
        if ref.startswith(PINS):
            self.doc.pins.pop(ref[len(PINS) :], None)

    def set_pin(
        self, name: str, new: Oid, info: dict[str, Any], *, expected: Oid | None | bool = True
    ) -> None:
        """Point the pin ``pins/NAME`` at ``new`` and record its description ``info``."""
        self.set(PINS + name, new, expected=expected)
        self.doc.pins[name] = dict(info)

    def allocate_version_name(self) -> str:
        """Reserve the next version name; names are never reused."""
        taken = [
            version_number(k[len(VERSIONS) :]) for k in self.doc.refs if k.startswith(VERSIONS)
        ]
        number = max([self.doc.next_version - 1, *[t for t in taken if t is not None]]) + 1
        self.doc.next_version = number + 1
        return version_name(number)


class RefStore:
    """The refs of one repository directory.

    Args:
        root: the repository directory.
        lock_timeout: seconds to wait for another writer's transaction.
    """

    def __init__(self, root: Path, *, lock_timeout: float | None = None) -> None:
        self.root = root
        self.path = root / "refs.json"
        self.reflog_path = root / "logs" / "reflog.jsonl"
        self.lock_path = root / "locks" / "refs.lock"
        self.lock_timeout = lock_timeout

    def read(self) -> RefsDoc:
        """The current refs."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return RefsDoc()
        try:
            return RefsDoc.from_bytes(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptObject("refs.json", why=str(exc)) from None

    def initialise(self) -> None:
        """Write an empty refs document."""
        atomic_write(self.path, RefsDoc().to_bytes())

    @contextmanager
    def transaction(self, reason: str) -> Iterator[Transaction]:
        """Lock the refs, yield a :class:`Transaction`, publish it when the block succeeds."""
        with file_lock(self.lock_path, timeout=self.lock_timeout):
            txn = Transaction(self.read(), reason)
            next_before = txn.doc.next_version
            pins_before = json.dumps(txn.doc.pins, sort_keys=True)
            yield txn
            if (
                not txn.moves
                and txn.doc.next_version == next_before
                and json.dumps(txn.doc.pins, sort_keys=True) == pins_before
            ):
                return
            atomic_write(self.path, txn.doc.to_bytes())
            crashpoint("refs-published")
            now = datetime.now(timezone.utc).isoformat()
            lines = b"".join(
                json.dumps(
                    {
                        "time": now,
                        "ref": ref,
                        "old": old,
                        "new": new,
                        "reason": reason,
                        "pid": os.getpid(),
                    },
                    sort_keys=True,
                ).encode()
                + b"\n"
                for ref, old, new in txn.moves
            )
            if lines:
                try:
                    append_durably(self.reflog_path, lines)
                except (OSError, DiskFull) as exc:
                    # The refs are published: the transaction happened, and reporting it as
                    # failed would invite a retry that records it twice. Warn instead.
                    log.warning("ref moves are done but the reflog could not be written: %s", exc)
            crashpoint("reflog-appended")

    def reflog(self) -> list[ReflogEntry]:
        """Every recorded ref move, oldest first; torn or malformed lines are skipped."""
        try:
            raw = self.reflog_path.read_bytes()
        except FileNotFoundError:
            return []
        out = []
        for line in raw.splitlines():
            try:
                d: dict[str, Any] = json.loads(line)
                out.append(
                    ReflogEntry(
                        d["time"], d["ref"], d.get("old"), d.get("new"), d.get("reason", "")
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def recent_ids(self, since: float) -> set[Oid]:
        """Ids that any ref held at or after ``since`` (epoch seconds), from the reflog."""
        out: set[Oid] = set()
        for e in self.reflog():
            try:
                if e.epoch() < since:
                    continue
            except ValueError:
                continue
            for oid in (e.old, e.new):
                if oid and is_oid(oid):
                    out.add(oid)
        return out


def now_iso() -> str:
    """The current time as ISO 8601 with the local UTC offset, to the second."""
    return (
        datetime.fromtimestamp(time.time(), timezone.utc).astimezone().isoformat(timespec="seconds")
    )

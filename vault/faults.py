"""Crash points: a test seam for the fault-injection tests, inert unless armed.

``VAULT_CRASHPOINT=NAME`` (or ``NAME:N``) makes the process kill itself with SIGKILL the N-th time
(default: the first) execution reaches ``crashpoint(NAME)``, which simulates ``kill -9`` or a power
cut at exactly that instant. The variable is read once, at import; when it is unset
:func:`crashpoint` does nothing, and when it is malformed the first :func:`crashpoint` reached
raises :class:`~vault.errors.BadValue`. This is not a feature: never set it outside tests.

Points, in the order a commit or a gc reaches them:

=================  ==========================================================================
before-rename      fsutil: a temporary file is written and fsynced, not yet renamed
after-rename       fsutil: the file is renamed onto its final name, its directory not fsynced
object-written     backend: an object is published under its key
version-written    commit: the version object is durable, the refs are not yet published
refs-published     refs: refs.json is replaced, the reflog is not yet appended
reflog-appended    refs: the reflog lines are durable, the refs lock is still held
gc-planned         gc: the plan is made, nothing is deleted yet
gc-repacked        gc: repacked objects are durable in new packs and indexes; no old index is
                   deleted yet
gc-deleted         gc: one more object, index, pack or temporary file is deleted
=================  ==========================================================================

Push (``vault/ops/transfer.py``):

=================  ==========================================================================
push-sent          one more object too large for a pack is sent to the remote
push-synced        every object is on the remote and durable; no remote ref has moved
=================  ==========================================================================

Checkout and restore (``vault/ops/checkout.py``, ``vault/ops/swap.py``):

=================  ==========================================================================
restore-pinned     restore: the ``pre_restore`` pin is published; nothing in DEST has changed
checkout-staged    the version is staged in full in DEST's staging directory and the swap's
                   journal written; nothing in DEST has moved
checkout-swap      one more path of the swap is renamed (set aside, or moved in); ``:N`` stops
                   the swap after its N-th rename
checkout-swapped   a checkout's swap is done, its journal not yet removed (not committed)
restore-written    the same instant for a restore: the version is in DEST and everything it
                   does not have is set aside in the staging directory, not yet committed
=================  ==========================================================================

Consolidation (``vault/ops/consolidate.py``), after each of its steps:

=====================  ======================================================================
consolidate-checked    the adapter fits the base; nothing is stored yet
consolidate-pinned     directories given are committed; no ref has moved (pins come in step 4)
consolidate-merged     the merged model is saved in the repository's ``tmp/``, not committed
consolidate-committed  version, ``latest``, ``base`` and pins are published; the adapter
                       directory is not yet removed
=====================  ======================================================================
"""

from __future__ import annotations

import os
import signal
import threading

from .errors import BadValue

_SPEC = os.environ.get("VAULT_CRASHPOINT", "")

if not _SPEC:

    def crashpoint(name: str) -> None:
        """Do nothing: no crash point is armed."""

else:
    _name, _, _count = _SPEC.partition(":")
    try:
        _at: int | None = int(_count) if _count else 1
    except ValueError:
        _at = None  # reported by the first crashpoint(): an error at import is a traceback
    _hits = 0
    _hits_lock = threading.Lock()

    def crashpoint(name: str) -> None:
        """Kill this process with SIGKILL on the armed point's N-th hit."""
        global _hits
        if _at is None:
            raise BadValue("VAULT_CRASHPOINT", _SPEC, "expected NAME or NAME:N")
        if name != _name:
            return
        with _hits_lock:
            _hits += 1
            if _hits != _at:
                return
        os.kill(os.getpid(), signal.SIGKILL)

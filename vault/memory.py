"""Keep large buffers in the process instead of returning them to the kernel after each chunk.

Commit, checkout and verify allocate and free several buffers of a few MiB per chunk (the piece
read, its planes, the compressed form). glibc serves allocations above ``M_MMAP_THRESHOLD``
(128 KiB at first, raised dynamically only on the thread that frees) with a fresh ``mmap``, so
each one costs ~1,000 page faults and the zeroing of every page: measured on the benchmark's
1 GiB base model, 1.4 s of system time out of 2.7 s of CPU. Raising the threshold to 32 MiB and
keeping freed memory (trim threshold 256 MiB) lets the allocator reuse the same pages: system
time fell to 0.6-0.8 s and the commit's wall time by 15-35 %. Peak memory grows by the working
set of the thread pool only.

Does nothing where glibc's ``mallopt`` is not available.
"""

from __future__ import annotations

import contextlib

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
TRANSFER_ARENAS = 2
"""malloc arenas for a transfer's threads: sixteen threads that each free multi-MiB buffers
would otherwise each keep an arena's worth (measured on a push of the benchmark series at
scale 0.5: peak RSS 328 MB with glibc's default arenas, 165 MB with 2, and 0.5 s less system
time)."""

_done = False


def keep_large_buffers() -> None:
    """Tune glibc malloc for streams of multi-MiB buffers (once per process)."""
    global _done
    if _done:
        return
    _done = True
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6")  # glibc; elsewhere this fails and nothing changes
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is None:
            return
        mallopt(M_MMAP_THRESHOLD, 32 << 20)
        mallopt(M_TRIM_THRESHOLD, 256 << 20)
        mallopt(M_TOP_PAD, 64 << 20)
        # Each arena keeps up to the trim threshold of freed buffers, and glibc gives each new
        # thread its own, up to 8 per core: a process that lives on (a training run with a
        # callback, vault watch, a loop over the API) gained an arena's worth with every commit
        # and push (73 -> 158 MB over three commits of merged models, 446 MB after committing
        # and pushing the series). Two arenas: 94 and 230 MB, at the same commit speed.
        mallopt(M_ARENA_MAX, TRANSFER_ARENAS)


def few_arenas(count: int = TRANSFER_ARENAS) -> None:
    """Let the process's threads share ``count`` malloc arenas (glibc; elsewhere nothing).
    Arenas are made as threads first contend, so this is called before a pool starts."""
    with contextlib.suppress(Exception):
        import ctypes

        mallopt = getattr(ctypes.CDLL("libc.so.6"), "mallopt", None)
        if mallopt is not None:
            mallopt(M_ARENA_MAX, count)

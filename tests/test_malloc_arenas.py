"""A process that commits, checks out or verifies keeps few malloc arenas (glibc), so a process
that lives on after many operations (a training run with a callback, ``vault watch``) does not
keep an arena's worth of freed buffers per worker thread it ever ran."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import ctypes, sys, threading
from vault.memory import keep_large_buffers
if sys.argv[1] == "tuned":
    keep_large_buffers()
barrier = threading.Barrier(8)
def work():
    barrier.wait()  # eight threads alive at once, each allocating from its arena
    for _ in range(20):
        buf = bytearray(4 << 20)
        del buf
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def arenas(mode: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return sum(line.startswith("Arena ") for line in proc.stderr.splitlines())


def test_the_tuned_allocator_keeps_two_arenas_however_many_threads_ran() -> None:
    assert arenas("tuned") <= 2
    assert arenas("default") > 2  # what the probe gives without the tuning

"""How long ``vault watch`` takes from a checkpoint's completion to its commit event.

A writer plays a training run: every ``--interval`` seconds it writes a Trainer-like checkpoint
(``model.safetensors`` of ``--mb`` MB that drifts a little from one checkpoint to the next, an
``optimizer.pt`` of random bytes, then ``trainer_state.json`` last, as the Trainer does). The
checkpoint is *complete* when ``trainer_state.json`` is closed (or, with ``--rename``, when the
folder built beside the run is renamed into it). ``vault watch --json`` runs as its own process;
the latency of a checkpoint is the arrival of its commit event minus its completion. Prints
the median (and min, max) over the run::

    python benchmarks/watch_latency.py                       # settle 5 s (the default)
    python benchmarks/watch_latency.py --settle 1
    python benchmarks/watch_latency.py --rename               # complete at once: no settle
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

VAULT = [sys.executable, "-m", "vault"]


def write_checkpoint(path: Path, step: int, mb: int, max_steps: int) -> None:
    """A Trainer-like checkpoint, ``trainer_state.json`` last."""
    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = mb * (1 << 20) // 4 // 1024
    start = rng.normal(0, 0.02, (n, 1024)).astype(np.float32)
    drift = np.random.default_rng(step).normal(0, 1e-4, (n, 1024)).astype(np.float32)
    save_file({"w": start + step * drift}, str(path / "model.safetensors"))
    (path / "optimizer.pt").write_bytes(os.urandom(mb << 18))
    state = {
        "global_step": step,
        "max_steps": max_steps,
        "log_history": [{"step": step, "loss": 1 / step}],
    }
    with open(path / "trainer_state.json", "w") as f:
        json.dump(state, f)


def main() -> None:
    """Run the benchmark and print the latencies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--mb", type=int, default=16, help="model.safetensors size in MB")
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--interval", type=float, help="seconds between checkpoints")
    parser.add_argument("--rename", action="store_true", help="build beside, rename into place")
    args = parser.parse_args()
    interval = args.interval if args.interval is not None else args.settle + 3
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run([*VAULT, "init"], cwd=root, check=True, capture_output=True)
        run = root / "runs" / "bench"
        run.mkdir(parents=True)
        watch = subprocess.Popen(
            [*VAULT, "--repo", str(root / ".vault"), "watch", str(run), "--json",
             "--settle", str(args.settle)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        arrived: dict[str, float] = {}

        def read() -> None:
            assert watch.stdout is not None
            for line in watch.stdout:
                event = json.loads(line)
                if event["event"] == "commit":
                    arrived[event["checkpoint"]] = time.monotonic()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(2)  # the watcher's start (imports, first scan)
        complete: dict[str, float] = {}
        for i in range(1, args.checkpoints + 1):
            name = f"checkpoint-{i * 100}"
            if args.rename:
                write_checkpoint(root / "staging" / name, i * 100, args.mb, args.checkpoints * 100)
                os.rename(root / "staging" / name, run / name)
            else:
                write_checkpoint(run / name, i * 100, args.mb, args.checkpoints * 100)
            complete[name] = time.monotonic()
            time.sleep(interval)
        deadline = time.monotonic() + 60
        while len(arrived) < len(complete) and time.monotonic() < deadline:
            time.sleep(0.1)
        watch.terminate()
        watch.wait(60)
        latencies = [arrived[n] - complete[n] for n in complete if n in arrived]
    missing = len(complete) - len(latencies)
    mode = "renamed into place" if args.rename else f"settle {args.settle:g} s"
    print(
        f"vault watch, {mode}, {len(latencies)} checkpoints of {args.mb} MB + {args.mb // 4} MB:"
        f" completion to commit event median {statistics.median(latencies):.2f} s"
        f" (min {min(latencies):.2f}, max {max(latencies):.2f})"
        + (f"; {missing} never committed" if missing else "")
    )


if __name__ == "__main__":
    main()

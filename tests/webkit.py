"""Helpers for the web view's tests and screenshots: an example repository made from a real tiny
Trainer run, and ``vault serve`` started as a subprocess on a free port."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from faultkit import popen_vault

from vault import Repository

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
"""A description that would run script if it were not escaped."""


def trainer_repo(root: Path) -> Path:
    """A repository at ``root/.vault`` made from a real tiny Trainer run, and returned.

    VaultCallback commits the checkpoints at steps 2, 4 and 6 (``v001``-``v003``, the loss
    logged at every step, evaluation every 2) and pins the best one (``best-run``). Then ``v004``:
    the last checkpoint again, tagged ``release``, with :data:`HOSTILE` in its description.
    """
    from tinytrain import tiny_trainer

    from vault.integrations import VaultCallback

    repo = Repository.init(root / ".vault")
    callback = VaultCallback(repo, pin_best_metric="eval_loss")
    tiny_trainer(root / "run", callback).train()
    last = root / "last"
    repo.checkout("v003", last)
    repo.commit(last, f"release candidate {HOSTILE}", tags=["release"], allow_empty=True)
    return root / ".vault"


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(
    repo: Path | str, *args: str, host: str = "127.0.0.1", env: dict[str, str] | None = None
) -> Iterator[tuple[str, str]]:
    """Run ``vault --repo REPO serve --port FREE ARGS`` while the block runs (REPO a directory
    or an ``s3://`` URL).

    Yields:
        The base URL (``http://127.0.0.1:PORT``, whatever the bound host) and the address
        ``vault serve`` printed (with ``?token=`` when it generated one).
    """
    port = free_port()
    proc = popen_vault(repo, "serve", "--host", host, "--port", str(port), *args, env=env)
    try:
        assert proc.stdout is not None
        printed = proc.stdout.readline().strip()
        assert " at http://" in printed, (printed, proc.stderr and proc.stderr.read())
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"vault serve did not start: {proc.stderr}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", printed.rsplit(" at ", 1)[1]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

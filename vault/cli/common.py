"""What every command shares: finding the repository, printing JSON, sizes, error handling."""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import VaultError
from ..progress import human_bytes

__all__ = ["Context", "emit_json", "fail", "human_bytes", "json_option", "pass_ctx"]

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """Per-invocation state stored on click's context object."""

    def __init__(self, repo_dir: str | None, debug: bool) -> None:
        self.repo_dir = repo_dir
        self.debug = debug

    def repo(self):  # type: ignore[no-untyped-def]
        """Open the repository named by ``--repo``, ``$VAULT_DIR`` or the nearest ``.vault``."""
        from ..repo import Repository

        if self.repo_dir:
            return Repository.open(self.repo_dir)
        return Repository.find()


pass_ctx = click.make_pass_decorator(Context)


def json_option(f: F) -> F:
    """Add ``--json``."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)  # type: ignore[return-value]


def emit_json(value: Any) -> None:
    """Print ``value`` (dataclasses included) as indented JSON on stdout."""

    def default(o: Any) -> Any:
        if is_dataclass(o) and not isinstance(o, type):
            return asdict(o)
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    click.echo(json.dumps(value, indent=2, default=default, ensure_ascii=False))


def fail(message: str, code: int = 2) -> None:
    """Print ``vault: error: MESSAGE`` on stderr and exit with ``code``."""
    click.echo(f"vault: error: {message}", err=True)
    sys.exit(code)


class VaultGroup(click.Group):
    """A click group that turns vault's errors into one line on stderr and an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run the CLI; usage errors, too, become one line on stderr."""
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            fail("aborted", 130)
        except click.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare 'vault' (click >= 8.2): help
                exc.show()
                sys.exit(exc.exit_code)
            hint = ""
            ctx = getattr(exc, "ctx", None)
            if isinstance(exc, click.UsageError) and ctx is not None:
                hint = f" (see '{ctx.command_path} --help')"
            fail(exc.format_message() + hint, exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; map errors to messages unless ``--debug`` was given."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except VaultError as exc:
            if _debug(ctx):
                raise
            fail(exc.message, exc.exit_code)
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            fail("interrupted", 130)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                _reader_gone()
            if _debug(ctx):
                raise
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                fail(f"no space left on device: {exc.filename or ''}".rstrip(": "))
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}")


def _reader_gone() -> None:
    """Exit quietly when whoever read our output stopped (``vault log | head``), as git does:
    status 141 (128 + SIGPIPE) and no message, with stdout sent to /dev/null so that flushing it
    at exit raises nothing more."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(141)


def _debug(ctx: click.Context) -> bool:
    obj = ctx.find_object(Context)
    return bool(obj and obj.debug)

"""What every command shares: finding the repository, printing JSON, sizes, error handling."""

from __future__ import annotations

import errno
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import EXIT_CODES, VaultError
from ..progress import counted, human_bytes

__all__ = [
    "INTERNAL_ERROR",
    "Context",
    "PathArg",
    "counted",
    "emit_json",
    "fail",
    "human_bytes",
    "json_option",
    "pass_ctx",
    "quote",
]

INTERNAL_ERROR = 70
"""The exit status of an unexpected exception (``EX_SOFTWARE`` of ``sysexits.h``)."""

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
_ESCAPES.update({"\v": "\\v", "\f": "\\f", "\r": "\\r"})

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """Per-invocation state stored on click's context object.

    ``--repo`` names a directory, a ``file://`` URL of one, or ``s3://BUCKET/PREFIX``: a
    repository on S3-compatible storage (the endpoint from ``$AWS_ENDPOINT_URL_S3`` or
    ``$AWS_ENDPOINT_URL``), which the command line only reads: a remote is written by push.
    """

    def __init__(self, repo_dir: str | None, debug: bool) -> None:
        self.repo_dir = repo_dir
        self.debug = debug

    @property
    def repo_url(self) -> str | None:
        """``--repo`` when it is an ``s3://`` URL, else ``None``."""
        if self.repo_dir and self.repo_dir.lower().startswith("s3://"):
            return self.repo_dir
        return None

    @property
    def repo_path(self) -> Path | None:
        """``--repo`` as a directory (a ``file://`` URL's path); ``None`` when not given.

        Raises:
            RemoteError: ``--repo`` is an ``s3://`` URL, which names no directory.
        """
        if not self.repo_dir:
            return None
        if self.repo_url is not None:
            self.refuse_s3()
        scheme, sep, rest = self.repo_dir.partition("://")
        if sep and scheme.lower() == "file":
            from ..remotes import normalise_url

            return Path(normalise_url(self.repo_dir))
        return Path(self.repo_dir)

    def refuse_s3(self) -> None:
        """Raise the error of a command that would write through ``--repo s3://``.

        Raises:
            RemoteError: always.
        """
        from ..errors import RemoteError

        command = click.get_current_context().command_path
        raise RemoteError(
            f"'{command}' writes, and {self.repo_url} is read-only through --repo s3://;"
            " push to it instead"
        )

    def repo(self, *, writes: bool = True):  # type: ignore[no-untyped-def]
        """Open the repository named by ``--repo``, ``$VAULT_DIR`` or the nearest ``.vault``.

        Args:
            writes: whether the command may write to it; such a command is refused on an
                ``s3://`` repository before anything is read.

        Raises:
            RemoteError: ``writes`` on an ``s3://`` repository.
        """
        from ..errors import RemoteError, RepoNotFound
        from ..repo import Repository

        if self.repo_url is not None:
            if writes:
                self.refuse_s3()
            from ..backend_s3 import S3Backend

            try:
                return Repository.open(S3Backend.from_url(self.repo_url))
            except RepoNotFound:
                raise RemoteError(
                    f"not a vault repository: {self.repo_url} (push or clone to create one)",
                    kind="not_found",
                ) from None
        path = self.repo_path
        if path is not None:
            return Repository.open(path)
        return Repository.find()


pass_ctx = click.make_pass_decorator(Context)


class PathArg(click.Path):
    """A path on the command line, never empty: ``""`` would mean the current directory, and an
    unset shell variable (``vault restore v3 "$DEST"``) must not make that choice silently."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Refuse ``""``; otherwise as :class:`click.Path`."""
        if value == "":
            self.fail("must not be empty (an unset variable?)", param, ctx)
        return super().convert(value, param, ctx)


def json_option(f: F) -> F:
    """Add ``--json``."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)  # type: ignore[return-value]


def emit_json(value: Any) -> None:
    """Print ``value`` (dataclasses included) as indented JSON on stdout.

    A NaN or an infinity (JSON has neither) is printed as ``null``, so the output always parses.
    """
    text = json.dumps(_plain(value), indent=2, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a damaged object: escape it
        text = json.dumps(_plain(value), indent=2, allow_nan=False)
    click.echo(text)


def json_value(o: Any) -> Any:
    """``o`` as the plain JSON values ``--json`` prints (see :func:`emit_json`): for other
    front ends (the web view's ``/api``) that must answer exactly as the command line does."""
    return _plain(o)


def _plain(o: Any) -> Any:
    """``o`` as JSON values: dataclasses as objects, paths as strings, non-finite floats as
    ``None``."""
    if is_dataclass(o) and not isinstance(o, type):
        o = asdict(o)
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, Path):
        return str(o)
    return o


def quote(name: str) -> str:
    """A file name as the human output prints it: as it is when plain, else in double quotes
    with C-style escapes (``"a\\nb"``), as git prints names.

    A name is plain when every character is printable and none is ``"`` or ``\\``; so a name
    with a newline or another control character reads on one line and cannot pass for another.
    """
    if name.isprintable() and '"' not in name and "\\" not in name:
        return name
    return '"' + "".join(_escape(ch) for ch in name) + '"'


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def one_line(text: str) -> str:
    """``text`` with every unprintable character (a newline, a NUL) escaped, so that it reads
    on one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


_KINDS = {code: kind for kind, code in EXIT_CODES.items()}
_KINDS.update({INTERNAL_ERROR: "internal", 130: "interrupted"})

GLOBAL_FLAGS = ("--debug",)
"""The group's options without a value, accepted after the subcommand as well."""
GLOBAL_OPTIONS = ("--repo",)
"""The group's options with a value, accepted after the subcommand as well."""


def fail(message: str, code: int = 2, kind: str | None = None) -> None:
    """Report an error and exit with ``code``: one line ``vault: error: MESSAGE`` on stderr, or
    under ``--json`` one JSON object ``{"error": {"code", "kind", "message"}}`` on stderr."""
    if VaultGroup.json_errors:
        error = {"code": code, "kind": kind or _KINDS.get(code, "error"), "message": message}
        click.echo(json.dumps({"error": error}, ensure_ascii=False), err=True)
    else:
        click.echo(f"vault: error: {one_line(message)}", err=True)
    sys.exit(code)


def internal_error(exc: BaseException) -> None:
    """Report an exception vault did not expect: one line, exit status :data:`INTERNAL_ERROR`."""
    fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug)", INTERNAL_ERROR)


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with the group's options that follow the subcommand (``vault log --repo DIR``)
    moved before it, where click expects them; ``--`` ends the search.

    An option given both before and after the subcommand takes the later value, as click does
    with an option given twice.
    """
    i = 0
    while i < len(args):  # the leading global options
        token = args[i]
        if token in GLOBAL_OPTIONS:
            i += 2
        elif token in GLOBAL_FLAGS or token.startswith(tuple(f"{o}=" for o in GLOBAL_OPTIONS)):
            i += 1
        else:
            break
    head, rest, moved = args[:i], [], []
    j = i
    while j < len(args):
        token = args[j]
        if token == "--":
            rest.extend(args[j:])
            break
        if token in GLOBAL_OPTIONS and j + 1 < len(args):
            moved.extend(args[j : j + 2])
            j += 2
            continue
        if token in GLOBAL_FLAGS or token.startswith(tuple(f"{o}=" for o in GLOBAL_OPTIONS)):
            moved.append(token)
        else:
            rest.append(token)
        j += 1
    return head + moved + rest


def _wants_json(args: list[str]) -> bool:
    """Whether ``--json`` is among the options (before any ``--``)."""
    for token in args:
        if token == "--":
            return False
        if token == "--json":
            return True
    return False


class VaultGroup(click.Group):
    """A click group that turns vault's errors into one line on stderr and an exit code."""

    debug = False
    """Whether ``--debug`` was given: errors then propagate with their tracebacks."""

    json_errors = False
    """Whether ``--json`` was given: errors are then reported as one JSON object."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run the CLI; usage errors, too, become one line on stderr."""
        kwargs["standalone_mode"] = False
        argv = list(sys.argv[1:] if args is None else args)
        argv = hoist_global_options(argv)
        VaultGroup.json_errors = _wants_json(argv)
        self.debug = False  # invoke sets it from --debug
        try:
            rv = super().main(argv, *rest, **kwargs)
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
            fail(exc.format_message() + hint, EXIT_CODES["usage"], "usage")
        except Exception as exc:  # MemoryError and RecursionError included
            if self.debug:  # re-raised by invoke for --debug: Python prints the traceback
                raise
            internal_error(exc)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; map errors to messages unless ``--debug`` was given."""
        self.debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except VaultError as exc:
            if self.debug:
                raise
            fail(exc.message, exc.exit_code, exc.kind)
        except KeyboardInterrupt:
            if self.debug:
                raise
            fail("interrupted", 130)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                _reader_gone()
            if self.debug:
                raise
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                fail(f"no space left on device: {exc.filename or ''}".rstrip(": "), 6, "io")
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}", 6, "io")
        except Exception as exc:
            if self.debug:
                raise
            internal_error(exc)


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

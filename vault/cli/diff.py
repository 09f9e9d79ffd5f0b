"""``vault diff``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .common import Context, emit_json, json_option, pass_ctx, quote
from .files import MARKS as _MARK
from .files import echo_changes

if TYPE_CHECKING:
    from ..ops.diff import DiffResult


def _rel(value: float | None) -> str:
    return "-" if value is None else f"{value:.3e}"


@click.command()
@click.argument("rev_a", metavar="A")
@click.argument("rev_b", metavar="B")
@click.option(
    "--exit-code", is_flag=True, help="Exit 1 when A and B differ, 0 when they do not (as git)."
)
@json_option
@pass_ctx
def diff(ctx: Context, rev_a: str, rev_b: str, exit_code: bool, as_json: bool) -> None:
    """What changed from A to B: files, and tensors of safetensors files.

    A and B are revisions, or one of them a folder: 'vault diff v003 model/' compares the
    version with the folder as 'vault status' does. An argument is a folder when it is a
    directory and is not a revision, or is written as a path (./best).

    For a changed tensor, rel_l2 is ||b - a|| / ||a||, computed from the stored chunks without
    a checkout (a folder's file is read from disk); tensors whose bytes did not change are not
    listed. Names with a control character, a double quote or a backslash are printed quoted
    and escaped, as in 'vault show'.
    """
    from ..errors import BadValue
    from ..ops.diff import folder_or_revision

    repo = ctx.repo(writes=False)
    folder_a, folder_b = (folder_or_revision(repo.parts, arg) for arg in (rev_a, rev_b))
    if folder_a and folder_b:
        raise BadValue("arguments", f"{rev_a} {rev_b}", "two folders: one side must be a version")
    if folder_a:
        result = repo.diff_folder(rev_b, rev_a, folder_first=True)
    elif folder_b:
        result = repo.diff_folder(rev_a, rev_b)
    else:
        result = repo.diff(rev_a, rev_b)
    f = result.files
    differ = bool(f.added or f.removed or f.changed)
    if as_json:
        emit_json(result)
    else:
        _print(result, differ)
    if exit_code and differ:
        sys.exit(1)


def _print(result: DiffResult, differ: bool) -> None:
    """The human output of ``diff``."""
    if not differ:
        click.echo("no differences")
        return
    echo_changes(result.files)
    if result.tensors:
        click.echo("")
        rows = [
            (
                _MARK[t.status],
                f"{quote(t.file)}:{quote(t.name)}",
                t.dtype,
                "[" + ", ".join(str(d) for d in t.shape) + "]",
                _rel(t.rel_l2),
            )
            for t in result.tensors
        ]
        header = (" ", "tensor", "dtype", "shape", "rel_l2")
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
        for r in (header, *rows):
            cells = [c.ljust(w) for c, w in zip(r[:4], widths, strict=True)]
            click.echo("  ".join([*cells, r[4]]))


COMMANDS = [diff]

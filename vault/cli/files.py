"""``vault ls``, ``vault cat`` and ``vault status``: single files of a version, and how a folder
differs from one."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .common import Context, PathArg, emit_json, human_bytes, json_option, pass_ctx, quote

MARKS = {"added": "A", "removed": "D", "changed": "M"}
"""The letter ``status`` and ``diff`` print before a path, as git's short formats do."""

if TYPE_CHECKING:
    from ..ops.diff import FileChanges


def echo_changes(changes: FileChanges) -> None:
    """Print ``A path``, ``D path`` and ``M path`` lines: added, then removed, then changed."""
    for key, mark in MARKS.items():
        for path in getattr(changes, key):
            click.echo(f"{mark} {quote(path)}")


@click.command(name="ls")
@click.argument("rev")
@click.argument("path", required=False)
@json_option
@pass_ctx
def ls(ctx: Context, rev: str, path: str | None, as_json: bool) -> None:
    """List the files of REV: size, id and path; only PATH, or the files under the folder PATH.

    --json prints a list of {"path", "size", "id"} (the id of a link is null). A PATH the
    version does not hold exits 3.
    """
    found = ctx.repo(writes=False).ls(rev, path)
    if as_json:
        emit_json([{"path": f.path, "size": f.size, "id": f.id} for f in found])
        return
    for f in found:
        if f.kind == "link":
            click.echo(f"{'link':>10}  {'-':12}  {quote(f.path)} -> {quote(f.target or '')}")
        else:
            click.echo(f"{human_bytes(f.size):>10}  {(f.id or '-')[:12]}  {quote(f.path)}")


@click.command()
@click.argument("spec", metavar="REV:PATH")
@pass_ctx
def cat(ctx: Context, spec: str) -> None:
    """Write the file PATH of REV to stdout, as stored: every chunk is verified against its id
    on the way out, one at a time, so memory stays small whatever the file's size.

    A PATH the version does not hold (or holds as a folder or a link) exits 3; a damaged chunk
    stops the output with an error, after the verified bytes before it.
    """
    from ..ops.files import split_rev_path

    rev, path = split_rev_path(spec)
    if path is None:
        raise click.BadParameter(f"expected REV:PATH, got {spec!r}", param_hint="REV:PATH")
    out = sys.stdout.buffer
    with ctx.repo(writes=False).open_file(rev, path) as f:
        for chunk in f.chunks():
            out.write(chunk)
    out.flush()


@click.command()
@click.argument("folder", metavar="[DIR]", required=False, type=PathArg(file_okay=False))
@click.option("--rev", metavar="REV", help="The version to compare with (default: latest).")
@json_option
@pass_ctx
def status(ctx: Context, folder: str | None, rev: str | None, as_json: bool) -> None:
    """Files added (A), removed (D) and changed (M) in DIR since REV.

    DIR defaults to the working directory recorded by 'vault init --workdir', else the current
    directory. Unchanged files are vouched for by the stat cache that commit keeps (size,
    mtime, ctime and inode), else hashed against the version's chunk ids; a file found
    unchanged is recorded there, the only thing status writes to the repository. --json prints
    {"added": [...], "removed": [...], "changed": [...]}, paths sorted.
    """
    changes = ctx.repo(writes=False).status(folder, rev=rev)
    if as_json:
        emit_json(changes)
        return
    if not (changes.added or changes.removed or changes.changed):
        click.echo(f"no changes against {rev or 'latest'}")
    echo_changes(changes)


COMMANDS = [ls, cat, status]

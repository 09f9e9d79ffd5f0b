"""``vault checkout``."""

from __future__ import annotations

import click

from .common import Context, PathArg, emit_json, human_bytes, json_option, pass_ctx


@click.command()
@click.argument("rev")
@click.argument("dest", type=PathArg())
@click.option(
    "--force",
    is_flag=True,
    help="Write into a non-empty DEST, replacing the version's paths; refused (exit 4) when DEST"
    " holds files REV does not have.",
)
@click.option(
    "--clean",
    is_flag=True,
    help="Make DEST hold exactly REV: also remove the files of DEST that REV does not have"
    " (implies --force; .vault and the repository are never touched).",
)
@click.option(
    "--fsync",
    "durable",
    is_flag=True,
    help="Flush every file to disk before returning (slower; survives a power cut).",
)
@click.option(
    "--data",
    "role",
    flag_value="data",
    help="Write the training data stored with REV (commit --store-data) instead of its files.",
)
@click.option(
    "--snapshots",
    "role",
    flag_value="snapshots",
    help="Write the snapshots stored with REV (commit --snapshots) instead of its files.",
)
@json_option
@pass_ctx
def checkout(
    ctx: Context,
    rev: str,
    dest: str,
    force: bool,
    clean: bool,
    durable: bool,
    role: str | None,
    as_json: bool,
) -> None:
    """Write the files of REV under DEST, verified, all or nothing.

    DEST must be empty or missing, unless --force is given. --force never leaves a folder mixing
    two versions: when DEST holds files that REV does not have, nothing is written and the
    command exits 4 naming them; --clean removes them in the same all-or-nothing swap.
    """
    from ..progress import for_terminal

    repo = ctx.repo(writes=False)
    progress = for_terminal()
    if role is not None:
        result = repo.checkout_attachment(
            rev, role, dest, force=force, clean=clean, progress=progress, durable=durable
        )
    else:
        result = repo.checkout(
            rev, dest, force=force, clean=clean, progress=progress, durable=durable
        )
    if as_json:
        emit_json({"dest": str(result.dest), "files": result.files, "bytes": result.bytes})
    else:
        size = human_bytes(result.bytes)
        click.echo(f"checked out {result.files} files ({size}) to {result.dest}")


COMMANDS = [checkout]

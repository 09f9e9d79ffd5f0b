"""``vault init``."""

from __future__ import annotations

from pathlib import Path

import click

from .common import Context, PathArg, emit_json, json_option, pass_ctx


@click.command()
@click.option(
    "--workdir",
    metavar="DIR",
    type=PathArg(file_okay=False),
    help="The working directory 'vault restore' writes into by default (e.g. current_model/).",
)
@json_option
@pass_ctx
def init(ctx: Context, workdir: str | None, as_json: bool) -> None:
    """Create a repository: .vault/ here, or DIR with 'vault --repo DIR init'."""
    from ..repo import REPO_DIRNAME, Repository

    root = ctx.repo_path or Path.cwd() / REPO_DIRNAME  # s3:// refused: push creates a remote
    repo = Repository.init(root, workdir=workdir)
    where = repo.workdir
    if as_json:
        out = {"repo": repo.describe_abs()}
        if where is not None:
            out["workdir"] = str(where)
        emit_json(out)
    else:
        click.echo(f"Initialised empty vault repository in {repo.describe_abs()}")
        if where is not None:
            click.echo(f"working directory: {where}")


COMMANDS = [init]

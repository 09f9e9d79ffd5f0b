"""``vault init``."""

from __future__ import annotations

from pathlib import Path

import click

from .common import Context, emit_json, json_option, pass_ctx


@click.command()
@json_option
@pass_ctx
def init(ctx: Context, as_json: bool) -> None:
    """Create a repository: .vault/ here, or DIR with 'vault --repo DIR init'."""
    from ..repo import REPO_DIRNAME, Repository

    root = Path(ctx.repo_dir) if ctx.repo_dir else Path.cwd() / REPO_DIRNAME
    repo = Repository.init(root)
    if as_json:
        emit_json({"repo": str(repo.root.resolve())})
    else:
        click.echo(f"Initialised empty vault repository in {repo.root.resolve()}")


COMMANDS = [init]

"""The ``vault`` group and its global options; each command lives in its own module."""

from __future__ import annotations

import logging

import click

from .. import __version__
from .common import Context, PathArg, VaultGroup


@click.group(cls=VaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--repo",
    "repo_dir",
    metavar="DIR|URL",
    type=PathArg(),
    envvar=None,
    help="The repository directory (default: $VAULT_DIR, else the nearest .vault/); or"
    " s3://BUCKET/PREFIX, read-only (log, show, checkout, diff, verify, stats).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="vault")
@click.pass_context
def cli(ctx: click.Context, repo_dir: str | None, debug: bool) -> None:
    """vault: never lose a trained model again, and never pay twice for the same bytes."""
    ctx.obj = Context(repo_dir, debug)


def _register() -> None:
    from . import (
        backup,
        checkout,
        commit,
        consolidate,
        diff,
        files,
        init,
        log,
        maintenance,
        pin,
        remote,
        runs,
        serve,
        tag,
        watch,
    )

    for module in (
        init,
        commit,
        log,
        runs,
        checkout,
        files,
        tag,
        maintenance,
        diff,
        pin,
        backup,
        consolidate,
        remote,
        serve,
        watch,
    ):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("vault: warning: %(message)s"))
    logger = logging.getLogger("vault")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    cli(prog_name="vault")

"""``vault remote``, ``vault push``, ``vault fetch``, ``vault pull`` and ``vault clone``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ..progress import counted, for_terminal, human_bytes
from .common import Context, PathArg, emit_json, json_option, pass_ctx


@click.group()
def remote() -> None:
    """Add, list and remove remotes (s3://BUCKET[/PREFIX] or a directory)."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--endpoint-url", metavar="URL", help="S3 endpoint (default: $AWS_ENDPOINT_URL).")
@click.option("--profile", metavar="NAME", help="AWS profile whose credentials to use.")
@click.option("--region", metavar="NAME", help="S3 region.")
@pass_ctx
def remote_add(
    ctx: Context,
    name: str,
    url: str,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
) -> None:
    """Record the remote NAME at URL; the first push creates the repository there."""
    added = ctx.repo().remote_add(
        name, url, endpoint_url=endpoint_url, profile=profile, region=region
    )
    click.echo(f"added remote {added.name}: {added.url}")


@remote.command("list")
@json_option
@pass_ctx
def remote_list(ctx: Context, as_json: bool) -> None:
    """List the remotes."""
    found = ctx.repo().remotes()
    if as_json:
        emit_json([r.to_json() for r in found])
        return
    for r in found:
        click.echo(f"{r.name}\t{r.url}" + (f"\t{r.endpoint_url}" if r.endpoint_url else ""))


@remote.command("remove")
@click.argument("name")
@pass_ctx
def remote_remove(ctx: Context, name: str) -> None:
    """Forget the remote NAME (the remote itself is untouched)."""
    gone = ctx.repo().remote_remove(name)
    click.echo(f"removed remote {gone.name} ({gone.url})")


def _summary(objects: int, size: int) -> str:
    return f"{counted(objects, 'object')} ({human_bytes(size)})"


TRANSFER_JSON = ("remote", "objects", "bytes", "versions")
"""The keys of fetch's and pull's ``--json``; push adds ``skipped``."""


def _emit(result: Any, keys: tuple[str, ...]) -> None:
    """Print the fields ``keys`` of a transfer's result as JSON, in that order."""
    emit_json({key: getattr(result, key) for key in keys})


@click.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@json_option
@pass_ctx
def push(ctx: Context, remote_name: str | None, as_json: bool) -> None:
    """Send versions, tags and pins to REMOTE (default: origin, or the only remote)."""
    result = ctx.repo().push(remote_name, progress=None if as_json else for_terminal())
    if as_json:
        _emit(result, ("remote", "objects", "bytes", "skipped", "versions"))
        return
    if not result.objects and not result.refs:
        click.echo(f"{result.remote} is up to date")
        return
    news = f"; new there: {', '.join(result.versions)}" if result.versions else ""
    moves = f", {result.refs} ref(s) moved" if result.refs else ""
    click.echo(f"pushed {_summary(result.objects, result.bytes)}{moves} to {result.remote}{news}")


@click.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@json_option
@pass_ctx
def fetch(ctx: Context, remote_name: str | None, as_json: bool) -> None:
    """Download what REMOTE has and this repository lacks; its refs become REMOTE/NAME."""
    result = ctx.repo().fetch(remote_name, progress=None if as_json else for_terminal())
    if as_json:
        _emit(result, TRANSFER_JSON)
        return
    news = ", ".join(f"{result.remote}/{v}" for v in result.versions) or "no new versions"
    click.echo(f"fetched {_summary(result.objects, result.bytes)} from {result.remote}: {news}")


@click.command()
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@json_option
@pass_ctx
def pull(ctx: Context, remote_name: str | None, as_json: bool) -> None:
    """Fetch from REMOTE and take in its versions; local versions never pushed are placed
    after them (and may get new names)."""
    result = ctx.repo().pull(remote_name, progress=None if as_json else for_terminal())
    if as_json:
        _emit(result, TRANSFER_JSON)
    else:
        news = ", ".join(result.versions) or "no new versions"
        click.echo(f"pulled {_summary(result.objects, result.bytes)} from {result.remote}: {news}")
    # The renames are news either way; with --json they go to stderr, keeping stdout JSON.
    for old, new in result.renamed.items():
        click.echo(f"renamed {old} -> {new} (placed after {result.remote}'s versions)", err=as_json)


@click.command()
@click.argument("url")
@click.argument("dest", required=False, type=PathArg())
@click.option("--endpoint-url", metavar="URL", help="S3 endpoint (default: $AWS_ENDPOINT_URL).")
@click.option("--profile", metavar="NAME", help="AWS profile whose credentials to use.")
@click.option("--region", metavar="NAME", help="S3 region.")
@json_option
@pass_ctx
def clone(
    ctx: Context,
    url: str,
    dest: str | None,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    """Copy the repository at URL into DEST/.vault (DEST is created, or must be empty); with
    --repo DIR and no DEST, DIR itself becomes the repository. URL becomes the remote origin."""
    from ..errors import VaultError
    from ..repo import REPO_DIRNAME, Repository

    if dest is not None and ctx.repo_dir:
        raise click.UsageError("give DEST or --repo, not both")
    given = ctx.repo_path  # --repo DIR (an s3:// --repo is refused: clone writes)
    if given is not None:
        root = given
    else:
        folder = Path(dest) if dest is not None else Path(_default_dest(url))
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise VaultError(
                f"destination {dest or folder} exists and is not empty", kind="refused"
            )
        root = folder / REPO_DIRNAME
    repo, result = Repository.clone(
        url,
        root,
        endpoint_url=endpoint_url,
        profile=profile,
        region=region,
        progress=None if as_json else for_terminal(),
    )
    where = os.path.abspath(repo.root) if repo.root is not None else repo.describe()
    if as_json:
        emit_json(
            {
                "repo": where,
                "versions": result.versions,
                "objects": result.objects,
                "bytes": result.bytes,
            }
        )
        return
    click.echo(
        f"cloned {counted(len(result.versions), 'version')},"
        f" {_summary(result.objects, result.bytes)}"
        f" into {where}"
    )


def _default_dest(url: str) -> str:
    """The folder ``vault clone URL`` creates without DEST: the URL's last component."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if not name or name in (".", "..") or name.endswith(":"):
        raise click.UsageError("give DEST: no folder name can be taken from the URL")
    return name


COMMANDS = [remote, push, fetch, pull, clone]

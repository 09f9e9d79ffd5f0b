"""``vault tag``."""

from __future__ import annotations

import click

from .common import Context, emit_json, json_option, pass_ctx


@click.command()
@click.argument("name", required=False)
@click.argument("rev", required=False)
@click.option("-d", "--delete", "delete", is_flag=True, help="Delete the tag NAME.")
@click.option("--force", is_flag=True, help="Move an existing tag.")
@json_option
@pass_ctx
def tag(
    ctx: Context, name: str | None, rev: str | None, delete: bool, force: bool, as_json: bool
) -> None:
    """List tags, tag REV as NAME, or delete NAME with -d.

    The list ends with the reserved refs vault moves itself, latest and base (where set),
    marked "reserved" (in --json: "reserved": true; tags have false). A tag cannot take a
    pin's name: tags and pins share one set of names.
    """
    repo = ctx.repo(writes=delete or name is not None)
    if delete:
        if not name or rev:
            raise click.UsageError("use 'vault tag -d NAME'")
        info = repo.untag(name)
        if as_json:
            emit_json(info)
        else:
            click.echo(f"deleted tag {name} (was {info.id[:12]})")
        return
    if name is None:
        tags = repo.tags(reserved=True)
        if as_json:
            emit_json(tags)
        else:
            for t in tags:
                mark = "\t(reserved)" if t.reserved else ""
                click.echo(f"{t.name}\t{t.version or '-'}\t{t.id[:12]}{mark}")
        return
    if rev is None:
        raise click.UsageError("use 'vault tag NAME REV'")
    info = repo.tag(name, rev, force=force)
    if as_json:
        emit_json(info)
    else:
        click.echo(f"tagged {info.version or info.id[:12]} as {name}")


COMMANDS = [tag]

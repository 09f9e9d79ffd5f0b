"""``vault commit``."""

from __future__ import annotations

import click

from ..errors import BadValue
from .common import Context, PathArg, emit_json, human_bytes, json_option, pass_ctx


def parse_meta(pairs: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` strings to a mapping."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadValue("--meta", pair, "expected KEY=VALUE")
        out[key.strip()] = value
    return out


@click.command()
@click.argument("path", type=PathArg())
@click.option(
    "-m", "--description", "--message", "message", required=True, help="What this version is."
)
@click.option("--tag", "tags", multiple=True, metavar="NAME", help="Tag the new version.")
@click.option("--meta", "metas", multiple=True, metavar="KEY=VALUE", help="Free-form metadata.")
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="FILE",
    type=PathArg(),
    help="A training data file (repeatable).",
)
@click.option("--store-data", is_flag=True, help="Store the --data files' bytes too.")
@click.option("--steps", type=int, metavar="N", help="Training steps.")
@click.option("--loss", type=float, metavar="X", help="Final training loss.")
@click.option("--base-model", metavar="NAME_OR_REV", help="The base model: a name or a revision.")
@click.option(
    "--snapshots",
    metavar="DIR",
    type=PathArg(),
    help="A directory of learning-progress snapshots, stored with the version.",
)
@click.option(
    "--rehash",
    is_flag=True,
    help="Read every file, even those whose size, mtime and inode say they are unchanged.",
)
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="PATTERN",
    help="Leave out paths matching PATTERN (gitignore syntax; repeatable).",
)
@click.option(
    "--include",
    "includes",
    multiple=True,
    metavar="PATTERN",
    help="Commit paths matching PATTERN even when .vaultignore or --exclude leave them out"
    " (repeatable).",
)
@click.option(
    "--run",
    metavar="NAME",
    help="The training run (default: the name of the folder holding PATH, e.g. the Trainer's"
    " output_dir); the version's parent is that run's previous version.",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Make a version even when the files equal latest's, or when there are none.",
)
@json_option
@pass_ctx
def commit(
    ctx: Context,
    path: str,
    message: str,
    tags: tuple[str, ...],
    metas: tuple[str, ...],
    data: tuple[str, ...],
    store_data: bool,
    steps: int | None,
    loss: float | None,
    base_model: str | None,
    snapshots: str | None,
    rehash: bool,
    excludes: tuple[str, ...],
    includes: tuple[str, ...],
    run: str | None,
    allow_empty: bool,
    as_json: bool,
) -> None:
    """Store PATH (a file or directory) as a new version, the next of its run.

    Every version records its run: --run NAME, else the name of the folder holding PATH (the
    Trainer's output_dir for runs/exp1/checkpoint-300). Its parent is the run's previous
    version; a new run's first version has none (--base-model links it to what it was
    trained from).

    A Trainer checkpoint directory (with trainer_state.json) records its steps, loss, learning
    curve and base model by itself; --steps, --loss and --base-model override them.

    \b
    What is committed from a directory: everything but .vault and what rules leave out, in
    gitignore syntax, the last matching rule deciding:
      .vaultignore in the project folder (the folder holding .vault/),
      .vaultignore at the top of PATH,
      --exclude PATTERN,
      --include PATTERN (commits what the rules above leave out; so --exclude '*'
      --include '*.safetensors' commits the safetensors files only).
    The version records what was left out (vault show lists it).

    When the files equal latest's, no version is made: "nothing changed since vNNN", exit 0
    (--tag tags that version). A directory with nothing to commit is refused (exit 4).
    --allow-empty makes a version in both cases.
    """
    from ..progress import for_terminal

    meta = parse_meta(metas)
    repo = ctx.repo()
    result = repo.commit(
        path,
        message,
        tags=list(tags),
        meta=meta,
        progress=for_terminal(),
        data=list(data),
        store_data=store_data,
        steps=steps,
        loss=loss,
        base_model=base_model,
        snapshots=snapshots,
        rehash=rehash,
        exclude=list(excludes),
        include=list(includes),
        allow_empty=allow_empty,
        run=run,
    )
    for warning in result.warnings:
        click.echo(f"vault: warning: {warning}", err=True)
    if as_json:
        emit_json(result)
        return
    if result.unchanged:
        click.echo(f"nothing changed since {result.version or result.id[:12]}")
        return
    click.echo(f"{result.version} {result.id}")
    click.echo(
        f"{result.files} files, {human_bytes(result.bytes)}; new {human_bytes(result.new_bytes)},"
        f" stored {human_bytes(result.stored_bytes)}"
    )
    if result.excluded:
        files = sum(e["files"] for e in result.excluded)
        size = sum(e["bytes"] for e in result.excluded)
        noun = "file" if files == 1 else "files"
        click.echo(f"excluded {files} {noun}, {human_bytes(size)} (vault show lists them)")


COMMANDS = [commit]

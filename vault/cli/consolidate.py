"""``vault consolidate``."""

from __future__ import annotations

import click

from .common import Context, PathArg, emit_json, human_bytes, json_option, pass_ctx


@click.command()
@click.option("--base", required=True, metavar="REV_OR_DIR", type=PathArg(), help="The base model.")
@click.option(
    "--adapter", required=True, metavar="REV_OR_DIR", type=PathArg(), help="The LoRA adapter."
)
@click.option(
    "-m", "--description", "--message", "message", required=True, help="What the merged version is."
)
@click.option(
    "--training-data",
    "training_data",
    multiple=True,
    metavar="FILE",
    type=PathArg(),
    help="A training data file to record (repeatable).",
)
@click.option(
    "--dtype",
    type=click.Choice(["bf16", "fp16", "fp32"]),
    help="The merged model's dtype (default: the base's).",
)
@click.option(
    "--remove-adapter-dir",
    is_flag=True,
    help="Delete the adapter's directory once the merged version is stored.",
)
@click.argument("more_data", nargs=-1, metavar="[FILE]...", type=PathArg())
@json_option
@pass_ctx
def consolidate(
    ctx: Context,
    base: str,
    adapter: str,
    message: str,
    training_data: tuple[str, ...],
    more_data: tuple[str, ...],
    dtype: str | None,
    remove_adapter_dir: bool,
    as_json: bool,
) -> None:
    """Merge a LoRA adapter into its base model and store the result as the next version.

    BASE and ADAPTER are directories, else revisions. Both are pinned as pre_consolidation;
    the merged version becomes latest and base. Any failure changes nothing.

    Several training data files may also follow a single --training-data.
    """
    if more_data and not training_data:
        raise click.UsageError(f"unexpected argument {more_data[0]!r}")
    result = ctx.repo().consolidate(
        base,
        adapter,
        message=message,
        training_data=[*training_data, *more_data],
        dtype=dtype,
        remove_adapter_dir=remove_adapter_dir,
    )
    if as_json:
        emit_json(result)
        return
    base_name = result.base_version or result.base[:12]
    adapter_name = result.adapter_version or result.adapter[:12]
    click.echo(f"{result.version} {result.id}")
    click.echo(
        f"merged adapter {adapter_name} into base {base_name}: {len(result.modules)} modules,"
        f" {result.dtype}, {result.files} files, {human_bytes(result.bytes)};"
        f" stored {human_bytes(result.stored_bytes)}"
    )
    click.echo(f"pinned: {', '.join(result.pins)}")
    if result.removed_adapter_dir:
        click.echo(f"removed {result.removed_adapter_dir}")


COMMANDS = [consolidate]

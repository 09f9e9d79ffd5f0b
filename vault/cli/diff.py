"""``vault diff``."""

from __future__ import annotations

import click

from .common import Context, emit_json, json_option, pass_ctx, quote

_MARK = {"added": "A", "removed": "D", "changed": "M"}


def _rel(value: float | None) -> str:
    return "-" if value is None else f"{value:.3e}"


@click.command()
@click.argument("rev_a")
@click.argument("rev_b")
@json_option
@pass_ctx
def diff(ctx: Context, rev_a: str, rev_b: str, as_json: bool) -> None:
    """What changed from REV_A to REV_B: files, and tensors of safetensors files.

    For a changed tensor, rel_l2 is ||b - a|| / ||a||, computed from the stored chunks without
    a checkout; tensors whose bytes did not change are not listed. Names with a control
    character, a double quote or a backslash are printed quoted and escaped, as in 'vault show'.
    """
    result = ctx.repo(writes=False).diff(rev_a, rev_b)
    if as_json:
        emit_json(result)
        return
    f = result.files
    if not (f.added or f.removed or f.changed):
        click.echo("no differences")
        return
    for status, paths in (("added", f.added), ("removed", f.removed), ("changed", f.changed)):
        for path in paths:
            click.echo(f"{_MARK[status]} {quote(path)}")
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

"""``vault gc``, ``vault verify`` and ``vault stats``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .common import Context, emit_json, human_bytes, json_option, pass_ctx

if TYPE_CHECKING:
    from ..ops.verify import VerifyReport

GRACE_HELP = "Keep unreachable objects younger than this (e.g. 0s, 30m, 2h, 14d)."


@click.command()
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option("--grace", default="1h", show_default=True, metavar="DURATION", help=GRACE_HELP)
@json_option
@pass_ctx
def gc(ctx: Context, dry_run: bool, grace: str, as_json: bool) -> None:
    """Remove objects that no version, tag or ref reaches."""
    from ..ops.gc import parse_duration
    from ..progress import for_terminal

    seconds = parse_duration(grace)
    result = ctx.repo().gc(grace=seconds, dry_run=dry_run, progress=for_terminal())
    if as_json:
        emit_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {result.objects} objects ({human_bytes(result.bytes)});"
        f" kept {result.reachable} reachable and {result.kept_young} younger than {grace}"
    )


@click.command()
@click.argument("rev", required=False)
@json_option
@pass_ctx
def verify(ctx: Context, rev: str | None, as_json: bool) -> None:
    """Re-read and re-hash every object reachable (or those of REV)."""
    from ..progress import for_terminal

    report = ctx.repo().verify(rev, progress=for_terminal())
    print_verify_report(report, as_json, "versions")


def print_verify_report(report: VerifyReport, as_json: bool, what: str) -> None:
    """Print a verify report (JSON or text) and exit 1 when anything is damaged.

    Args:
        what: how the text calls the versions checked ("versions", "pinned versions").
    """
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "versions": report.versions,
                "objects": report.objects,
                "bytes": report.bytes,
                "damaged": report.damaged,
                "packs": report.packs,
            }
        )
    else:
        for d in report.damaged:
            click.echo(f"{d.problem} object {d.oid}: {d.detail}; breaks {', '.join(d.versions)}")
        for p in report.packs:
            click.echo(f"damaged pack index {p.key}: {p.problem}")
        if report.ok:
            click.echo(
                f"ok: {report.objects} objects in {report.versions} {what}"
                f" ({human_bytes(report.bytes)}) verified"
            )
        else:
            packs = f" and {len(report.packs)} damaged pack indexes" if report.packs else ""
            click.echo(f"vault: error: {len(report.damaged)} damaged objects{packs}", err=True)
    if not report.ok:
        sys.exit(1)


@click.command()
@json_option
@pass_ctx
def stats(ctx: Context, as_json: bool) -> None:
    """Versions, logical and stored bytes, dedup and compression ratios."""
    s = ctx.repo().stats()
    if as_json:
        emit_json(s)
        return
    click.echo(f"versions           {s.versions}")
    click.echo(f"logical bytes      {human_bytes(s.logical_bytes)} ({s.logical_bytes})")
    click.echo(f"unique bytes       {human_bytes(s.unique_bytes)} ({s.unique_bytes})")
    click.echo(f"stored bytes       {human_bytes(s.stored_bytes)} ({s.stored_bytes})")
    click.echo(f"chunks             {s.chunks}")
    click.echo(f"objects            {s.objects}")
    click.echo(f"dedup ratio        {s.dedup_ratio:.2f}x")
    click.echo(f"compression ratio  {s.compression_ratio:.2f}x")


COMMANDS = [gc, verify, stats]

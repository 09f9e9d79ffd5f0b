"""``vault gc``, ``vault verify`` and ``vault stats``, of the repository or of a remote's
(``--remote NAME``), ``vault verify --repair`` from a remote, and ``vault prune``."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from .common import Context, counted, emit_json, human_bytes, json_option, pass_ctx
from .pin import print_unpinned

if TYPE_CHECKING:
    from ..ops.repair import RepairReport
    from ..ops.verify import VerifyReport

GRACE_HELP = "Keep unreachable objects younger than this (e.g. 0s, 30m, 2h, 14d)."


@click.command()
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option(
    "--grace",
    metavar="DURATION",
    help=GRACE_HELP + "  [default: 1h; 14d with --remote]",
)
@click.option("--remote", metavar="NAME", help="Collect the remote NAME's repository instead.")
@json_option
@pass_ctx
def gc(ctx: Context, dry_run: bool, grace: str | None, remote: str | None, as_json: bool) -> None:
    """Remove objects that no version, tag or ref reaches."""
    from ..ops.gc import DEFAULT_GRACE, parse_duration
    from ..progress import for_terminal
    from ..repo_remotes import REMOTE_GRACE

    if grace is None:
        grace = DEFAULT_GRACE if remote is None else REMOTE_GRACE
    seconds = parse_duration(grace)
    repo = ctx.repo(writes=remote is None)
    if remote is None:
        result = repo.gc(grace=seconds, dry_run=dry_run, progress=for_terminal())
    else:
        result = repo.gc_remote(remote, grace=seconds, dry_run=dry_run, progress=for_terminal())
    if as_json:
        emit_json(result if remote is None else {**asdict(result), "remote": remote})
        return
    verb = "would remove" if dry_run else "removed"
    where = "" if remote is None else f" from {remote}"
    click.echo(
        f"{verb} {counted(result.objects, 'object')} ({human_bytes(result.bytes)}){where};"
        f" kept {result.reachable} reachable and {result.kept_young} younger than {grace}"
    )


@click.command()
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    metavar="N",
    help="Keep the newest N pins of each type.",
)
@click.option(
    "--keep-within",
    metavar="DURATION",
    help="Keep pins made within DURATION (e.g. 12h, 14d, 2w).",
)
@click.option(
    "--type",
    "pin_types",
    metavar="TYPE",
    multiple=True,
    help="Pin types to prune (repeatable). Default: pre_deletion, pre_restore and"
    " pre_consolidation; pins someone made are kept unless their type is named.",
)
@click.option("--execute", is_flag=True, help="Unpin and collect; without it, a dry run.")
@json_option
@pass_ctx
def prune(
    ctx: Context,
    keep_last: int | None,
    keep_within: str | None,
    pin_types: tuple[str, ...],
    execute: bool,
    as_json: bool,
) -> None:
    """Unpin automatic backups the policy does not keep, then collect garbage: the space
    comes back in this one step (a dry run unless --execute).

    With neither --keep-last nor --keep-within, every pin of the chosen types goes, e.g. the
    pre_deletion pins 'vault delete' leaves. A dry run shows the pins it would drop and the
    bytes the same run with --execute would free.
    """
    from ..progress import for_terminal

    repo = ctx.repo(writes=execute)
    res = repo.prune(
        keep_last=keep_last,
        keep_within=keep_within,
        types=list(pin_types) or None,
        execute=execute,
        progress=for_terminal(),
    )
    if as_json:
        keys = ("unpinned", "objects", "bytes", "dry_run")
        emit_json({k: getattr(res, k) for k in keys})
        return
    verb = "would unpin" if res.dry_run else "unpinned"
    print_unpinned(verb, res.pins)
    freed = "would free" if res.dry_run else "freed"
    click.echo(
        f"{verb} {counted(len(res.unpinned), 'pin')}, kept {len(res.kept)};"
        f" {freed} {counted(res.objects, 'object')}"
        f" ({human_bytes(res.bytes)}, {res.bytes} bytes)"
    )
    if res.dry_run and (res.unpinned or res.objects):
        click.echo("run again with --execute to do it")


@click.command()
@click.argument("rev", required=False)
@click.option("--remote", metavar="NAME", help="Verify the remote NAME's repository instead.")
@click.option(
    "--read-data",
    is_flag=True,
    help="With --remote: download and re-hash every chunk (without it: only the structure).",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Replace damaged and missing objects with the remote's copies, then verify again.",
)
@click.option(
    "--from",
    "from_",
    metavar="NAME",
    help="With --repair: the remote to copy from (default: origin, or the only remote).",
)
@json_option
@pass_ctx
def verify(
    ctx: Context,
    rev: str | None,
    remote: str | None,
    read_data: bool,
    repair: bool,
    from_: str | None,
    as_json: bool,
) -> None:
    """Re-read and re-hash every object reachable (or those of REV)."""
    from ..progress import for_terminal

    if read_data and remote is None:
        raise click.UsageError("--read-data needs --remote (a local verify always reads data)")
    if from_ is not None and not repair:
        raise click.UsageError("--from needs --repair")
    if repair and (remote is not None or rev is not None):
        raise click.UsageError("--repair repairs the whole local repository: no --remote or REV")
    repo = ctx.repo(writes=repair)
    if repair:
        print_repair_report(repo.repair(from_, progress=for_terminal()), as_json)
    elif remote is not None:
        report = repo.verify_remote(remote, rev, read_data=read_data, progress=for_terminal())
        what = f"versions on {remote}" + ("" if read_data else ", structure only")
        print_verify_report(report, as_json, what, extra={"remote": remote})
    else:
        print_verify_report(repo.verify(rev, progress=for_terminal()), as_json, "versions")


def print_repair_report(result: RepairReport, as_json: bool) -> None:
    """Print a repair (JSON or text); exit 1 when the repository is still damaged."""
    if as_json:
        emit_json(
            {
                "ok": result.ok,
                "remote": result.remote,
                "repaired": result.repaired,
                "unrepairable": result.unrepairable,
                "verify": verify_json(result.verify),
            }
        )
    else:
        for oid in result.repaired:
            click.echo(f"repaired object {oid} from {result.remote}")
        for u in result.unrepairable:
            click.echo(f"unrepairable object {u.oid}: {u.why}")
        for d in result.verify.damaged:
            click.echo(f"{d.problem} object {d.oid}: {d.detail}; breaks {', '.join(d.versions)}")
        if result.ok:
            click.echo(
                f"ok: {counted(len(result.repaired), 'object')} repaired;"
                f" {counted(result.verify.objects, 'object')} in"
                f" {counted(result.verify.versions, 'version')}"
                f" ({human_bytes(result.verify.bytes)}) verified"
            )
    if not result.ok:
        click.echo(
            f"vault: error: {counted(len(result.verify.damaged), 'damaged object')}"
            f" {'remains' if len(result.verify.damaged) == 1 else 'remain'} after repair"
            f" ({len(result.unrepairable)} unrepairable)",
            err=True,
        )
        sys.exit(1)


def verify_json(report: VerifyReport) -> dict[str, Any]:
    """A verify report as ``verify --json`` prints it."""
    return {
        "ok": report.ok,
        "versions": report.versions,
        "named": report.named,
        "backups": report.backups,
        "history": report.history,
        "objects": report.objects,
        "bytes": report.bytes,
        "damaged": report.damaged,
        "packs": report.packs,
    }


def print_verify_report(
    report: VerifyReport, as_json: bool, what: str, extra: dict[str, Any] | None = None
) -> None:
    """Print a verify report (JSON or text) and exit 1 when anything is damaged.

    Args:
        what: how the text calls the versions checked ("versions", "pinned versions").
        extra: keys added to the JSON (``remote``).
    """
    if as_json:
        emit_json({**verify_json(report), **(extra or {})})
    else:
        for d in report.damaged:
            click.echo(f"{d.problem} object {d.oid}: {d.detail}; breaks {', '.join(d.versions)}")
        for p in report.packs:
            click.echo(f"damaged pack index {p.key}: {p.problem}")
        if report.ok:
            click.echo(
                f"ok: {counted(report.objects, 'object')} in"
                f" {counted(report.versions, what.removesuffix('s'), what)}"
                f" ({human_bytes(report.bytes)}) verified{_kinds(report)}"
            )
        else:
            packs = ""
            if report.packs:
                n = len(report.packs)
                packs = f" and {counted(n, 'damaged pack index', 'damaged pack indexes')}"
            click.echo(
                f"vault: error: {counted(len(report.damaged), 'damaged object')}{packs}", err=True
            )
    if not report.ok:
        sys.exit(1)


def _kinds(report: VerifyReport) -> str:
    """How the versions a whole-repository verify checked divide, as ``stats`` counts them:
    ``: 9 named, 5 backups, 3 history records``; empty for a verify of some versions only."""
    if not report.named and not report.backups:
        return ""
    parts = [f"{report.named} named", f"{report.backups} backups"]
    if report.history:
        parts.append(f"{report.history} history records")
    other = report.versions - report.named - report.backups - report.history
    if other:
        parts.append(f"{other} kept by other refs")
    return f": {', '.join(parts)}"


@click.command()
@json_option
@pass_ctx
def stats(ctx: Context, as_json: bool) -> None:
    """Versions, logical and stored bytes, dedup and compression ratios."""
    s = ctx.repo(writes=False).stats()
    if as_json:
        emit_json(s)
        return
    click.echo(f"versions           {s.versions} named, {s.backups} backups")
    click.echo(f"logical bytes      {human_bytes(s.logical_bytes)} ({s.logical_bytes})")
    click.echo(f"unique bytes       {human_bytes(s.unique_bytes)} ({s.unique_bytes})")
    click.echo(f"stored bytes       {human_bytes(s.stored_bytes)} ({s.stored_bytes})")
    click.echo(f"chunks             {s.chunks}")
    click.echo(f"objects            {s.objects}")
    click.echo(f"dedup ratio        {s.dedup_ratio:.2f}x")
    click.echo(f"compression ratio  {s.compression_ratio:.2f}x")


COMMANDS = [gc, prune, verify, stats]

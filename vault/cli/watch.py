"""``vault watch``: a thin shell over :class:`vault.watch.Watcher` (events to lines, signals
to a stop request)."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import click

from .common import (
    Context,
    PathArg,
    counted,
    human_bytes,
    json_option,
    json_value,
    one_line,
    pass_ctx,
)


def _line(event: dict[str, Any]) -> tuple[str, bool]:
    """The human line for ``event`` and whether it goes to stderr."""
    kind = event["event"]
    if kind == "commit":
        text = f"{event['version'] or event['id'][:12]} {event['checkpoint']}"
        if event["steps"] is not None:
            text += f" step {event['steps']}"
        if event["loss"] is not None:
            text += f" loss {event['loss']:.4g}"
        if event["unchanged"]:
            text += " (unchanged: the files equal that version's)"
        return text, False
    if kind == "consolidate":
        adapter = event["adapter_version"] or event["adapter"][:12]
        return f"{event['version']} merged {adapter} into {event['base']}", False
    if kind == "push":
        if "error" in event:
            return f"vault: warning: push to {event['remote']} failed, will retry: " + one_line(
                event["error"]
            ), True
        return (
            f"pushed to {event['remote']}: {counted(len(event['versions']), 'new version')},"
            f" {counted(event['objects'], 'object')}, {human_bytes(event['bytes'])}"
        ), False
    return f"vault: error: {one_line(event['path'])}: {one_line(event['message'])}", True


def _emitter(as_json: bool) -> Any:
    def emit(event: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(json_value(event), ensure_ascii=False, allow_nan=False))
            sys.stdout.flush()
            return
        text, to_stderr = _line(event)
        click.echo(text, err=to_stderr)
        (sys.stderr if to_stderr else sys.stdout).flush()

    return emit


@click.command()
@click.argument("folder", metavar="DIR", type=PathArg())
@click.option(
    "--pattern",
    default="checkpoint-*",
    show_default=True,
    metavar="GLOB",
    help="What a checkpoint's name in DIR looks like (e.g. 'step_*').",
)
@click.option(
    "--settle",
    type=float,
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long nothing in a checkpoint must change before it is committed.",
)
@click.option("--run", metavar="NAME", help="The run's name (default: DIR's name).")
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="PATTERN",
    help="Leave out paths matching PATTERN from every commit (gitignore syntax; repeatable).",
)
@click.option(
    "--pin-best",
    metavar="METRIC",
    help="Keep the run's checkpoint with the best METRIC (eval_loss, ...) pinned as best-<run>.",
)
@click.option(
    "--consolidate",
    type=click.Choice(["best", "last"]),
    help="When the run ends, merge its best (needs --pin-best) or last adapter into --base.",
)
@click.option("--base", metavar="REV", help="The base model --consolidate merges into.")
@click.option(
    "--end-marker",
    metavar="FILE",
    help="A file whose appearance in DIR ends the run (besides global_step == max_steps).",
)
@click.option(
    "--push", metavar="REMOTE", help="Push after each commit (a failed push is retried later)."
)
@click.option("--once", is_flag=True, help="Commit what is there, then exit (for cron).")
@json_option
@pass_ctx
def watch(
    ctx: Context,
    folder: str,
    pattern: str,
    settle: float,
    run: str | None,
    excludes: tuple[str, ...],
    pin_best: str | None,
    consolidate: str | None,
    base: str | None,
    end_marker: str | None,
    push: str | None,
    once: bool,
    as_json: bool,
) -> None:
    """Commit each checkpoint a training run writes into DIR, as soon as it is complete.

    \b
    A checkpoint is an item of DIR whose name matches --pattern. It is complete when
      - it was renamed into DIR: at once;
      - a folder named checkpoint-* (the Trainer's): its trainer_state.json is there and
        nothing in it changed for --settle seconds;
      - anything else (step_N/ of a plain loop): nothing changed for --settle seconds.

    Every version records its run (--run, default DIR's name) and the checkpoint's folder
    name, so a restarted watcher commits only what is missing: a checkpoint is never committed
    twice. SIGTERM or SIGINT lets the commit in progress finish, then exits 0.

    The run ends when a checkpoint's trainer_state.json says global_step == max_steps, or
    when --end-marker FILE appears in DIR; --consolidate then merges the adapter into --base
    as `vault consolidate` does, once.

    \b
    Output: one line per commit ("v012 checkpoint-300 step 300 loss 0.41"); with --json, one
    JSON object per line: {"event": "commit", "version", "path", "steps", "loss", ...},
    {"event": "consolidate", ...}, {"event": "push", ...}, {"event": "error", ...}.
    With --once, the exit status is that of the first error, if any.
    """
    from ..watch import Watcher, WatchOptions

    options = WatchOptions(
        pattern=pattern,
        settle=settle,
        run=run,
        exclude=excludes,
        pin_best=pin_best,
        consolidate=consolidate,
        base=base,
        end_marker=end_marker,
        push=push,
        once=once,
    )
    watcher = Watcher(ctx.repo(), folder, options, _emitter(as_json))

    def stop(signum: int, frame: Any) -> None:
        watcher.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watcher.run()
    if once and watcher.errors:
        ctx_exit = click.get_current_context()
        ctx_exit.exit(watcher.errors[0].exit_code)


COMMANDS = [watch]

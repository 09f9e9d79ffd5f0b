"""Training metadata: what a version says about how it was trained.

Reads a Hugging Face Trainer checkpoint directory (``trainer_state.json``: global step, last
training and evaluation loss, the ``log_history`` learning curve; ``adapter_config.json``: the
base model's name), records training data files by size and BLAKE3, and draws a learning curve
as a compact text sparkline or, with matplotlib, as an image.

Nothing here imports numpy or matplotlib at module level: ``vault log`` imports this module.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3

from .errors import BadValue, MissingExtra, PathNotFound, VaultError

TRAINER_STATE = "trainer_state.json"
ADAPTER_CONFIG = "adapter_config.json"

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24


class NoCurve(VaultError):
    """A version records no learning curve (``show --plot``)."""

    def __init__(self, rev: str) -> None:
        super().__init__(f"version {rev} has no learning curve (commit a Trainer checkpoint)")
        self.rev = rev


@dataclass
class CheckpointInfo:
    """What a Trainer checkpoint directory says about its training.

    Attributes:
        steps: ``global_step``.
        loss: the last logged training ``loss`` (``train_loss`` of the final summary when no
            step logged one).
        eval_loss: the last logged ``eval_loss``.
        base_model: ``base_model_name_or_path`` of ``adapter_config.json``.
        curve: the ``log_history`` entries.
    """

    steps: int | None = None
    loss: float | None = None
    eval_loss: float | None = None
    base_model: str | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)


def _number(value: Any) -> float | None:
    """A finite float, or ``None`` (a diverged run logs NaN, which JSON cannot carry)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _read_json(path: Path) -> Any:
    """The JSON document at ``path``, or ``None`` when it is missing or unreadable.

    A damaged ``trainer_state.json`` must not stop the checkpoint from being committed: the
    version then records no training metadata from it, and explicit values still apply.
    """
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deeply
        return None


def is_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Trainer checkpoint directory (it holds ``trainer_state.json``)."""
    return (Path(path) / TRAINER_STATE).is_file()


def read_checkpoint(path: str | os.PathLike[str]) -> CheckpointInfo | None:
    """Read the training metadata of the checkpoint directory ``path``.

    Returns ``None`` when ``path`` is not a checkpoint directory. Values a file does not hold
    (or a file that does not parse) are left ``None``.
    """
    root = Path(path)
    if not root.is_dir() or not is_checkpoint(root):
        return None
    state = _read_json(root / TRAINER_STATE)
    info = CheckpointInfo()
    if isinstance(state, dict):
        step = state.get("global_step")
        if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
            info.steps = step
        history = state.get("log_history")
        if isinstance(history, list):
            info.curve = [_clean(e) for e in history if isinstance(e, dict)]
    train_loss = None
    for entry in info.curve:
        if _number(entry.get("loss")) is not None:
            info.loss = entry["loss"]
        if _number(entry.get("eval_loss")) is not None:
            info.eval_loss = entry["eval_loss"]
        if _number(entry.get("train_loss")) is not None:
            train_loss = entry["train_loss"]
    if info.loss is None:
        info.loss = train_loss
    adapter = _read_json(root / ADAPTER_CONFIG)
    if isinstance(adapter, dict) and isinstance(adapter.get("base_model_name_or_path"), str):
        info.base_model = adapter["base_model_name_or_path"] or None
    return info


def curve_from_state(content: bytes) -> list[dict[str, Any]]:
    """The ``log_history`` entries of a ``trainer_state.json``'s bytes (``[]`` if unreadable)."""
    try:
        state = json.loads(content)
    except (ValueError, RecursionError):
        return []
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        return []
    return [_clean(e) for e in history if isinstance(e, dict)]


def _clean(entry: dict[str, Any]) -> dict[str, Any]:
    """A log entry with non-finite numbers as ``None``, so it stays valid JSON."""
    out: dict[str, Any] = {}
    for k, v in entry.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[str(k)] = v
    return out


def flatten(meta: dict[str, Any], prefix: str = "") -> list[tuple[str, object]]:
    """``meta`` as sorted ``(key, value)`` pairs, nested objects (a merged version's
    ``lineage``) as dotted keys and ``None`` as ``"-"``, so every value reads on a line of its
    own (``vault show``, the web view)."""
    out: list[tuple[str, object]] = []
    for k, v in sorted(meta.items()):
        if isinstance(v, dict) and v:
            out.extend(flatten(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", "-" if v is None else v))
    return out


def hash_file(path: str | os.PathLike[str]) -> str:
    """BLAKE3 of a whole file as 64 hex digits, read in pieces."""
    h = blake3.blake3()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


OUTSIDE = "_outside"
"""The folder of the ``data`` attachment that holds the data files recorded by an absolute path
(outside the project folder), so that checkout writes them under its destination too."""


def data_path(path: str | os.PathLike[str], project: str | os.PathLike[str] | None = None) -> str:
    """How a training data file's path is recorded: relative to the project folder ``project``
    (the folder holding the repository) when the file lies inside it, else absolute; normalised,
    ``/``-separated, symbolic links kept as the user named them.

    A relative path names the file wherever the project is moved or cloned to; an absolute one
    names a file outside the project unambiguously whatever the directory a later ``show`` runs
    in. A file reached through a link to the project folder (or one of its parents) still
    counts as inside it.
    """
    full = os.path.abspath(os.fspath(path))
    if project is not None:
        top = os.path.abspath(project)
        for base, target in (
            (top, full),
            (
                os.path.realpath(top),
                os.path.join(os.path.realpath(os.path.dirname(full)), os.path.basename(full)),
            ),
        ):
            rel = os.path.relpath(target, base)
            if rel != os.curdir and rel != os.pardir and not rel.startswith(os.pardir + os.sep):
                return Path(rel).as_posix()
    return full


def data_tree_path(recorded: str) -> str:
    """Where the ``data`` attachment holds a data file recorded as ``recorded``: a relative
    path as it is, an absolute one under :data:`OUTSIDE` (``/srv/d/train.jsonl`` is
    ``_outside/srv/d/train.jsonl``). Checkout writes the attachment under its destination by
    these paths, so a data file never lands outside it."""
    if recorded.startswith("/"):
        return f"{OUTSIDE}/{recorded.lstrip('/')}"
    return recorded


def data_record(
    path: str | os.PathLike[str],
    *,
    stored: bool,
    project: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """``{path, size, blake3, stored}`` of a training data file (``path`` as
    :func:`data_path` records it).

    Raises:
        PathNotFound: ``path`` does not exist.
        BadValue: ``path`` is not a regular file.
    """
    p = Path(path)
    if not p.exists():
        raise PathNotFound(str(path))
    if not p.is_file():
        raise BadValue("--data", str(path), "is not a regular file")
    return {
        "path": data_path(p, project),
        "size": p.stat().st_size,
        "blake3": hash_file(p),
        "stored": stored,
    }


def check_steps(steps: Any) -> int:
    """A step count: an integer, zero or more."""
    if isinstance(steps, bool) or not isinstance(steps, int):
        try:
            if isinstance(steps, bool) or float(steps) != int(steps):
                raise ValueError
            steps = int(steps)
        except (TypeError, ValueError):
            raise BadValue("steps", steps, "expected a whole number") from None
    if steps < 0:
        raise BadValue("steps", steps, "must not be negative")
    return steps


def check_loss(loss: Any) -> float:
    """A loss: a finite number."""
    try:
        if isinstance(loss, bool):
            raise ValueError
        value = float(loss)
    except (TypeError, ValueError):
        raise BadValue("loss", loss, "expected a number") from None
    if not math.isfinite(value):
        raise BadValue("loss", loss, "must be a finite number")
    return value


# -- the learning curve as text and as an image ---------------------------------------------


def series(curve: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    """``(step, value)`` of every curve entry that logged ``key`` (steps counted when missing)."""
    out: list[tuple[float, float]] = []
    for i, entry in enumerate(curve):
        value = _number(entry.get(key))
        if value is None:
            continue
        step = _number(entry.get("step"))
        out.append((step if step is not None else float(i), value))
    return out


def sparkline(values: list[float], width: int = SPARK_WIDTH) -> str:
    """``values`` as at most ``width`` block characters, each the mean of its share of values."""
    if not values:
        return ""
    if len(values) > width:
        buckets = []
        for b in range(width):
            part = values[b * len(values) // width : (b + 1) * len(values) // width]
            buckets.append(sum(part) / len(part))
        values = buckets
    lo, hi = min(values), max(values)
    if hi == lo:
        return SPARK[len(SPARK) // 2] * len(values)
    top = len(SPARK) - 1
    return "".join(SPARK[round((v - lo) / (hi - lo) * top)] for v in values)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def curve_lines(curve: list[dict[str, Any]], width: int = SPARK_WIDTH) -> list[str]:
    """One sparkline per logged loss, e.g. ``loss 2.31 ▇▆▅▃▂▁ 0.42 over 500 steps (50 points)``.

    The step count is the last logged step: the curve covers training up to there.
    """
    lines = []
    for key in ("loss", "eval_loss"):
        points = series(curve, key)
        if not points:
            continue
        values = [v for _, v in points]
        lines.append(
            f"{key} {_fmt(values[0])} {sparkline(values, width)} {_fmt(values[-1])}"
            f" over {int(points[-1][0])} steps ({len(values)} points)"
        )
    return lines


def plot_curve(curve: list[dict[str, Any]], dest: str | os.PathLike[str], *, title: str) -> Path:
    """Render the losses of ``curve`` against the step to the image file ``dest``.

    Raises:
        MissingExtra: matplotlib is not installed.
        NoCurve: the curve logged no loss.
        PathNotFound: the folder of ``dest`` does not exist.
        BadValue: ``dest`` names an image format matplotlib does not write.
    """
    losses = {k: series(curve, k) for k in ("loss", "eval_loss")}
    if not any(losses.values()):
        raise NoCurve(title)
    lines = {k: v for k, v in losses.items() if v}
    return plot_lines(lines, dest, title=title, y_label="loss", what="show --plot", option="--plot")


def plot_lines(
    lines: dict[str, list[tuple[float, float]]],
    dest: str | os.PathLike[str],
    *,
    title: str,
    y_label: str,
    what: str,
    option: str,
) -> Path:
    """Render ``lines`` (legend label to ``(step, value)`` points) on one chart to the image
    file ``dest``, its format from its suffix (PNG when it has none).

    matplotlib is imported here only, with the Agg backend (no display needed).

    Args:
        what: the command, for the message when matplotlib is missing.
        option: the option that named ``dest``, for the message of a format it does not know.

    Raises:
        MissingExtra: matplotlib is not installed.
        PathNotFound: the folder of ``dest`` does not exist.
        BadValue: ``dest`` names an image format matplotlib does not write.
    """
    out = Path(dest)
    if not out.parent.is_dir():
        raise PathNotFound(str(out.parent))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingExtra(what, "matplotlib") from None
    from .fsutil import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        for label, points in lines.items():
            ax.plot([s for s, _ in points], [v for _, v in points], label=label, marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel(y_label)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format=out.suffix.lstrip(".").lower() or "png")
    except ValueError as exc:  # an image format matplotlib does not know
        raise BadValue(option, str(dest), str(exc).splitlines()[0]) from None
    finally:
        plt.close(fig)
    atomic_write(out, buf.getvalue())
    return out

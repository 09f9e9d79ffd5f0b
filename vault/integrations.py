"""Integrations with training libraries: :class:`VaultCallback` for the Hugging Face ``Trainer``.

Importing this module imports neither torch nor transformers: ``VaultCallback`` is built on first
access (a module ``__getattr__``), as a subclass of ``transformers.TrainerCallback``::

    from vault import Repository
    from vault.integrations import VaultCallback

    repo = Repository.open(".vault")
    trainer = Trainer(..., callbacks=[VaultCallback(repo, pin_best_metric="eval_loss")])
    trainer.train()   # every checkpoint is a version; the run's best is pinned as "best-<run>"
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .repo import CommitResult, Repository

__all__ = ["VaultCallback"]  # noqa: F822 - built on first access, by __getattr__

from .ops.runs import best_pin_name

log = logging.getLogger("vault")

BEST = "best"
"""The type of the pins that keep best checkpoints, and the name of the repository-wide one."""


class _VaultCallbackMixin:
    """The behaviour of :class:`VaultCallback`, free of transformers so it imports lightly.

    Args:
        repo: the repository (or its directory) to commit checkpoints into.
        pin_best_metric: a metric the Trainer evaluates (``eval_loss``, or ``loss``, meaning the
            same, as transformers' ``metric_for_best_model`` does); the run's checkpoint with
            its best value is kept pinned as ``best-<run>`` (type ``best``). ``None``: no pin.
        run: the training run the versions belong to; default: the name of the Trainer's
            ``output_dir``. Each checkpoint's version chains onto the run's previous one.
        global_best: also keep the best checkpoint of every run so far pinned as ``best``
            (a repository-wide best, compared across runs on the same metric).
        greater_is_better: default: false for metrics whose name ends in ``loss``, else true.
        message: the version description; ``{step}`` and ``{checkpoint}`` are filled in.
        exclude: gitignore patterns of checkpoint files to leave out, e.g. ``["optimizer.pt",
            "scheduler.pt", "rng_state*.pth"]`` to keep the weights only. By default
            everything stays, so that training can resume from any version.
        verbose: print one line per checkpoint committed (``vault: v012 step 300 loss 0.41``).

    Every checkpoint the Trainer saves (``output_dir/checkpoint-N``) is committed as the next
    version on the main process; its step, losses and learning curve come from the checkpoint's
    ``trainer_state.json`` (see :meth:`vault.Repository.commit`). A checkpoint is compared on
    the metric of the evaluation at its own step (whether that evaluation runs before or after
    the save). A ``best-<run>`` pin left by an earlier process of the same run (``best`` for
    ``global_best``) counts as the value to beat when its reason records the same metric. A
    checkpoint whose files equal the latest version's (saved twice at one step) makes no new
    version: that version stands for it, and is pinned if best.
    """

    def __init__(
        self,
        repo: Repository | str | os.PathLike[str],
        *,
        pin_best_metric: str | None = None,
        greater_is_better: bool | None = None,
        message: str = "Trainer {checkpoint}",
        exclude: list[str] | tuple[str, ...] = (),
        verbose: bool = True,
        run: str | None = None,
        global_best: bool = False,
    ) -> None:
        from .repo import Repository

        self.repo = repo if isinstance(repo, Repository) else Repository.open(repo)
        self.metric = None
        if pin_best_metric:
            name = pin_best_metric
            self.metric = name if name.startswith("eval_") else f"eval_{name}"
        if greater_is_better is None:
            greater_is_better = not (self.metric or "").endswith("loss")
        self.greater_is_better = greater_is_better
        self.message = message
        self.exclude = list(exclude)
        self.verbose = verbose
        self.run = run
        self.global_best = global_best
        self.versions: dict[int, CommitResult] = {}
        """The versions committed by this callback, by training step."""
        self.metrics: dict[int, float] = {}
        """The metric's value at each evaluated step."""
        self.best: tuple[float, int] | None = None
        """The run's best value so far and its step (``-1``: an earlier process's)."""
        self.overall: tuple[float, int] | None = None
        """With ``global_best``: the best value of every run so far, and its step."""
        self._started = False

    # -- the Trainer's events ----------------------------------------------------------------

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Commit the checkpoint just written; pin it if it is the best so far."""
        if not state.is_world_process_zero:
            return
        step = int(state.global_step)
        checkpoint = Path(args.output_dir) / f"checkpoint-{step}"
        if not checkpoint.is_dir():
            log.warning("no checkpoint directory %s to commit", checkpoint)
            return
        if self.run is None:
            self.run = Path(args.output_dir).name
        if not self._started:
            self._started = True
            self.best = self._previous_best(best_pin_name(self.run))
            if self.global_best:
                self.overall = self._previous_best(BEST)
        text = self.message.format(step=step, checkpoint=checkpoint.name)
        result = self.repo.commit(checkpoint, text, exclude=self.exclude, run=self.run)
        self.versions[step] = result
        if self.verbose:
            print(_commit_line(result, step, checkpoint), flush=True)
        for entry in state.log_history:
            if self.metric and entry.get("step") == step and self.metric in entry:
                self.metrics[step] = float(entry[self.metric])
        self._consider(step)

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the metric; pin the checkpoint of this step if it is already committed."""
        if not state.is_world_process_zero or not self.metric or not metrics:
            return
        if self.metric in metrics:
            self.metrics[int(state.global_step)] = float(metrics[self.metric])
            self._consider(int(state.global_step))

    # -- the best checkpoint -----------------------------------------------------------------

    def _consider(self, step: int) -> None:
        if step not in self.versions or step not in self.metrics:
            return
        value = self.metrics[step]
        if value != value:  # NaN is never best
            return
        mine = best_pin_name(self.run or "run")
        if self._better(value, step, self.best) and self._pin(step, value, mine):
            self.best = (value, step)
        if (
            self.global_best
            and self._better(value, step, self.overall)
            and self._pin(step, value, BEST)
        ):
            self.overall = (value, step)

    def _better(self, value: float, step: int, best: tuple[float, int] | None) -> bool:
        if best is None:
            return True
        if best[1] == step:
            return False
        return value > best[0] if self.greater_is_better else value < best[0]

    def _pin(self, step: int, value: float, name: str) -> bool:
        from .errors import NameTaken

        try:
            self.repo.pin(
                self.versions[step].id,
                type=BEST,
                reason=f"{self.metric}={value!r} at step {step}",
                name=name,
                replace=True,
            )
        except NameTaken as exc:  # a tag of that name: training goes on, the pin does not
            log.warning("the best checkpoint is not pinned: %s", exc.message)
            return False
        return True

    def _previous_best(self, name: str) -> tuple[float, int] | None:
        """The value the pin ``name`` records for this metric, left by an earlier process."""
        if not self.metric:
            return None
        for pin in self.repo.pins(type=BEST):
            if pin.name == name:
                m = re.match(rf"{re.escape(self.metric)}=(\S+) at step", pin.reason)
                if m:
                    try:
                        return float(m.group(1)), -1
                    except ValueError:
                        return None
        return None


def _commit_line(result: CommitResult, step: int, checkpoint: Path) -> str:
    """``vault: v012 step 300 loss 0.41``: what the callback prints for a checkpoint."""
    from .meta import read_checkpoint

    info = read_checkpoint(checkpoint)
    line = f"vault: {result.version or result.id[:12]} step {step}"
    if info is not None and info.loss is not None:
        line += f" loss {info.loss:.4g}"
    if result.unchanged:
        line += " (unchanged)"
    return line


_built: dict[str, type] = {}


def _build() -> type:
    """``VaultCallback``: the mixin on ``transformers.TrainerCallback`` (imported here, once)."""
    if "VaultCallback" not in _built:
        from transformers import TrainerCallback

        class VaultCallback(_VaultCallbackMixin, TrainerCallback):  # type: ignore[misc]
            __doc__ = _VaultCallbackMixin.__doc__

        VaultCallback.__module__ = __name__
        _built["VaultCallback"] = VaultCallback
    return _built["VaultCallback"]


def __getattr__(name: str) -> Any:
    if name == "VaultCallback":
        return _build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

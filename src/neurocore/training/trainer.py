"""The trainer: epochs, optimizer, learning-rate schedule, hooks, metrics log, checkpoints.

Determinism: the model is initialised under ``seed``; at the start of epoch ``e`` the global torch
RNG is re-seeded from ``(seed, e)`` and the batch order is drawn from a generator seeded the same
way. Every epoch is therefore a pure function of the weights and optimizer state at its start,
which the checkpoint holds: a run killed at any point and resumed from its last checkpoint ends
with the same weights as an uninterrupted run (``tests/training/test_trainer.py`` checks this with
``torch.equal``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from neurocore.config import OptimizerConfig, TrainConfig
from neurocore.data import Split
from neurocore.data.augment import random_shift
from neurocore.errors import RunDirError
from neurocore.io import atomic_write_text
from neurocore.training.checkpoint import (
    CHECKPOINT,
    METRICS,
    load_checkpoint,
    read_history,
    save_checkpoint,
)
from neurocore.training.distill import distillation_loss
from neurocore.training.hooks import BatchInfo, Callback
from neurocore.training.schedule import learning_rate


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from a base seed and integers (epoch, stream), stable across runs."""
    h = seed & 0x7FFF_FFFF_FFFF_FFFF
    for p in parts:
        h = (h * 6364136223846793005 + 1442695040888963407 + p) & 0x7FFF_FFFF_FFFF_FFFF
    return h


def make_optimizer(cfg: OptimizerConfig, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, rho=cfg.rho, eps=cfg.eps,
                                    weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    count: int


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, max_value: int, batch_size: int = 1000,
             logit_scale: float = 1.0) -> Evaluation:
    """Mean cross-entropy (of the outputs times ``logit_scale``) and top-1 accuracy over a split,
    in eval mode (mode restored)."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for x, y in split.batches(batch_size, max_value):
        logits = model(x)  # (B, classes)
        total_loss += float(F.cross_entropy(logits * logit_scale, y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == y).sum())
    model.train(was_training)
    n = max(len(split), 1)
    return Evaluation(total_loss / n, correct / n, len(split))


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        train: Split,
        cfg: TrainConfig,
        *,
        max_value: int,
        batch_size: int,
        seed: int,
        run_dir: Path | None = None,
        val: Split | None = None,
        eval_batch_size: int = 1000,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        shift: int = 0,
        teacher: nn.Module | None = None,
    ) -> None:
        if (teacher is None) != (cfg.distill is None):
            raise ValueError("a teacher model is needed exactly when cfg.distill is set")
        self.model = model
        self.teacher = teacher.eval().requires_grad_(False) if teacher is not None else None
        self.train_split = train
        self.val_split = val if val is not None and len(val) > 0 else None
        self.cfg = cfg
        self.max_value = max_value
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.run_dir = run_dir
        self.callbacks = list(callbacks)
        self.show_progress = progress
        self.shift = shift
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(cfg.optimizer, trainable)
        # modules whose parameters must be put back in range after each optimizer step
        self._constrained: list[Callable[[], None]] = [
            constrain for m in model.modules()
            if callable(constrain := getattr(m, "neurocore_constrain", None))]
        self.batches_per_epoch = max(1, -(-len(train) // batch_size))
        self.history: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        # set by fit: the first epoch to train (the checkpoint's epochs when resuming) and the
        # callbacks' tensors read back from that checkpoint (Callback.state_tensors)
        self.start_epoch = 0
        self.resumed_state: dict[str, torch.Tensor] = {}

    def request_stop(self, reason: str) -> None:
        """Called by a callback in ``on_epoch_start``: end training before this epoch runs.

        The request must be a pure function of training state, so that a resumed run stops at
        the same epoch.
        """
        self.stop_reason = reason

    # -- state on disk -------------------------------------------------------------------------

    def _path(self, name: str) -> Path | None:
        return self.run_dir / name if self.run_dir is not None else None

    def resume(self) -> int:
        """Load the run folder's checkpoint; return the epochs already done."""
        ckpt = self._path(CHECKPOINT)
        if ckpt is None or not ckpt.exists():
            raise RunDirError(f"--resume: no checkpoint at {ckpt} to resume from")
        done = load_checkpoint(ckpt, self.model, self.optimizer, self.resumed_state)
        metrics = self._path(METRICS)
        if metrics is not None and metrics.exists():
            kept = read_history(metrics)
            self.history = [m for m in kept if m["epoch"] < done]
            atomic_write_text(metrics, "".join(json.dumps(m) + "\n" for m in self.history))
        return done

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        path = self._path(METRICS)
        if path is not None:
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    # -- the loop ------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        self.resumed_state = {}
        self.start_epoch = start = self.resume() if resume else 0
        if not resume and (m := self._path(METRICS)) is not None:
            m.unlink(missing_ok=True)
        try:
            for cb in self.callbacks:
                cb.on_train_start(self)
            self._fit(start)
        finally:  # also after an exception: callbacks detach what they attached to the model
            for cb in self.callbacks:
                cb.on_train_end(self)
        return self.history

    def _fit(self, start: int) -> None:
        progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]:.4f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not self.show_progress,
            transient=False,
        )
        with progress:
            for epoch in range(start, self.cfg.epochs):
                task = progress.add_task(
                    "train", total=self.batches_per_epoch, epoch=f"{epoch + 1}/{self.cfg.epochs}",
                    loss=0.0, acc=0.0,
                )
                torch.manual_seed(derive_seed(self.seed, epoch, 0))
                self.model.train()
                for cb in self.callbacks:
                    cb.on_epoch_start(self, epoch)
                if self.stop_reason is not None:
                    progress.remove_task(task)
                    break
                record = self._epoch(epoch, progress, task)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, record)
                self._log(record)
                if (ckpt := self._path(CHECKPOINT)) is not None:
                    state = {k: v for cb in self.callbacks for k, v in cb.state_tensors().items()}
                    save_checkpoint(ckpt, self.model, self.optimizer, epoch + 1,
                                    callback_state=state)

    def _epoch(self, epoch: int, progress: Progress, task: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        order = torch.Generator().manual_seed(derive_seed(self.seed, epoch, 1))
        loss_sum, correct, seen = 0.0, 0, 0
        base_lr = lr = self.cfg.optimizer.lr
        batches = self.train_split.batches(self.batch_size, self.max_value, order)
        if self.cfg.channels_last:  # back to standard order at the end of the epoch
            # (Module.to takes memory_format, as documented; torch's type stubs omit it)
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        for b, (x, y) in enumerate(batches):
            info = BatchInfo(epoch, b, epoch * self.batches_per_epoch + b, self.batches_per_epoch)
            lr = learning_rate(self.cfg.schedule, base_lr, info.progress, self.cfg.epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            for cb in self.callbacks:
                cb.on_batch_start(self, info)
            x = random_shift(x, self.shift, order)
            if self.cfg.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = self.model(x)  # (B, classes)
            scaled = logits * self.cfg.logit_scale if self.cfg.logit_scale != 1.0 else logits
            if self.teacher is not None and (d := self.cfg.distill) is not None:
                with torch.no_grad():
                    target = self.teacher(x)
                loss = distillation_loss(scaled, target, y, d.temperature, d.weight,
                                         self.cfg.label_smoothing)
            else:
                loss = F.cross_entropy(scaled, y, label_smoothing=self.cfg.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            if loss.requires_grad:  # a fully binarized network may have no gradient left
                loss.backward()
                self.optimizer.step()
                for constrain in self._constrained:  # e.g. trinary layers clip latent weights
                    constrain()
            batch_loss = float(loss.detach())
            for cb in self.callbacks:
                cb.on_batch_end(self, info, batch_loss)
            loss_sum += batch_loss * len(y)
            correct += int((logits.detach().argmax(dim=1) == y).sum())
            seen += len(y)
            progress.update(task, advance=1, loss=loss_sum / seen, acc=correct / seen)
        if self.cfg.channels_last:
            self.model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": (epoch + 1) * self.batches_per_epoch,
            "lr": lr,
            "train_loss": loss_sum / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
        }
        if self.val_split is not None:
            ev = evaluate(self.model, self.val_split, self.max_value, self.eval_batch_size,
                          self.cfg.logit_scale)
            record["val_loss"], record["val_accuracy"] = ev.loss, ev.accuracy
        record["seconds"] = time.perf_counter() - t0
        return record

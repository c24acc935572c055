"""Schedules that turn a network's activations binary during training.

Every schedule here is a pure function of training state — the epoch, the batch, and for the
adaptive schedule the per-epoch training losses already logged — so a resumed run sets exactly
the sharpness, noise and threshold flags an uninterrupted run would (`Binarize` recomputes them
from ``trainer.history`` at every epoch start).

Whetstone (Severa et al. 2019), layers sharpened bottom-up, one at a time:

* simple:    one step of 1/steps_per_layer for the current layer at each epoch end (or batch
             end) from ``start_epoch``; layer i's sharpness is clip(steps/n − i, 0, 1).
* scheduled: layer i goes linearly from 0 to 1 over its epoch window, per batch.
* adaptive:  a state machine on the epoch's mean training loss L against a reference R:
             improved ⟺ (L − R)/R ≤ −sig_decrease, degraded ⟺ (L − R)/R ≥ sig_increase.
             Before ``min_init_epochs`` epochs R follows L. Then, not sharpening: count epochs
             without improvement; after ``patience`` of them start sharpening (R ← L). While
             sharpening, a degraded epoch pauses it (R ← L) until the count runs out again.
             Sharpening adds rate/B per batch to the lowest unfinished layer (cz_rate/B once its
             sharpness ≥ critical; the first layer's rate times first_layer_relative_rate); a
             layer that completes waits for the epoch end before the next one starts.
             Differences from the Keras original: sharpening starts after ``patience``
             non-improving epochs (the original waits patience + 1), and nothing crashes in
             per-batch mode.

Noisy ReLU (Appuswamy et al. 2016): the uniform noise range grows linearly (per batch) from 0 at
``noise.start`` to ``noise.max`` at ``noise.stop``; layer i becomes a threshold neuron from epoch
``threshold_start + i · threshold_every`` on. The same noise ramp can precede Whetstone
sharpening (``binary.noise``), a combination of the two methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from neurocore.config import (
    AdaptiveSharpening,
    NoiseRamp,
    NoisyReLUConfig,
    ScheduledSharpening,
    SimpleSharpening,
    WhetstoneConfig,
)
from neurocore.data import Split
from neurocore.errors import NeurocoreError
from neurocore.neurons.binary import NoisyReLU, Whetstone, binary_activations, fully_binary
from neurocore.training.hooks import BatchInfo, Callback

if TYPE_CHECKING:
    from neurocore.training.trainer import Trainer


# ---- Whetstone schedules: pure functions ----------------------------------------------------


def simple_sharpness(
    cfg: SimpleSharpening, layers: int, epoch: int, batch: int, batches: int
) -> list[float]:
    """Sharpness of each layer during (epoch, batch)."""
    if cfg.per == "epoch":
        steps = max(0, epoch - cfg.start_epoch)  # steps taken at the ends of earlier epochs
    else:
        steps = max(0, (epoch - cfg.start_epoch) * batches + batch)
    n = cfg.steps_per_layer
    return [min(1.0, max(0.0, (steps - i * n) / n)) for i in range(layers)]


def schedule_windows(cfg: ScheduledSharpening, layers: int) -> list[tuple[float, float]]:
    if cfg.windows is not None:
        if len(cfg.windows) != layers:
            raise NeurocoreError(
                f"binary.schedule.windows has {len(cfg.windows)} windows, the model has "
                f"{layers} whetstone layers"
            )
        return [(w.start, w.stop) for w in cfg.windows]
    out, t = [], cfg.start
    for _ in range(layers):
        out.append((t, t + cfg.duration))
        t += cfg.duration + cfg.gap
    return out


def scheduled_sharpness(
    cfg: ScheduledSharpening, layers: int, epoch: int, batch: int, batches: int
) -> list[float]:
    t = epoch + batch / batches
    return [
        min(1.0, max(0.0, (t - start) / (stop - start)))
        for start, stop in schedule_windows(cfg, layers)
    ]


@dataclass(frozen=True)
class AdaptiveState:
    sharpness: tuple[float, ...]
    sharpening: bool = False
    reference_loss: float = 1e6
    no_improvement: int = 0
    waiting: bool = False  # a layer finished this epoch: no more sharpening until its end
    history: tuple[str, ...] = field(default=(), compare=False)  # transitions, for logs


def adaptive_batch(cfg: AdaptiveSharpening, state: AdaptiveState, batches: int) -> AdaptiveState:
    """The state after one more batch."""
    s = list(state.sharpness)
    unfinished = [i for i, v in enumerate(s) if v < 1.0]
    if not state.sharpening or state.waiting or not unfinished:
        return state
    i = unfinished[0]
    amount = cfg.rate if s[i] < cfg.critical else cfg.cz_rate
    if i == 0:
        amount *= cfg.first_layer_relative_rate
    s[i] = min(1.0, s[i] + amount / batches)
    if 1.0 - s[i] < 1e-3:
        s[i] = 1.0
    return replace(state, sharpness=tuple(s), waiting=s[i] == 1.0)


def adaptive_epoch_end(
    cfg: AdaptiveSharpening, state: AdaptiveState, epoch: int, loss: float
) -> AdaptiveState:
    """The transition at the end of ``epoch`` (0-based) whose mean training loss was ``loss``."""
    ref, count, sharpening = state.reference_loss, state.no_improvement, state.sharpening
    change = (loss - ref) / ref
    improved, degraded = change <= -cfg.sig_decrease, change >= cfg.sig_increase
    note = ""
    if epoch >= cfg.min_init_epochs - 1:
        if improved:
            ref, count = loss, 0
        else:
            count += 1
        if sharpening and degraded:
            ref, count, sharpening, note = loss, 0, False, "pause"
        elif not sharpening and count >= cfg.patience and any(v < 1.0 for v in state.sharpness):
            ref, count, sharpening, note = loss, 0, True, "start"
    else:
        ref = loss
    if all(v >= 1.0 for v in state.sharpness):
        sharpening = False
    history = state.history + ((f"{epoch}:{note}",) if note else ())
    return AdaptiveState(state.sharpness, sharpening, ref, count, False, history)


def adaptive_state_at(
    cfg: AdaptiveSharpening, layers: int, batches: int, losses: list[float]
) -> AdaptiveState:
    """The state at the start of epoch ``len(losses)``, replayed from the logged losses."""
    state = AdaptiveState(tuple(0.0 for _ in range(layers)))
    for epoch, loss in enumerate(losses):
        for _ in range(batches):
            state = adaptive_batch(cfg, state, batches)
        state = adaptive_epoch_end(cfg, state, epoch, loss)
    return state


# ---- noisy ReLU schedule: pure functions ----------------------------------------------------


def noise_range(cfg: NoiseRamp, epoch: int, batch: int, batches: int) -> float:
    t = epoch + batch / batches
    span = max(cfg.stop - cfg.start, 1e-12)
    return cfg.max * min(1.0, max(0.0, (t - cfg.start) / span))


def threshold_flags(cfg: NoisyReLUConfig, layers: int, epoch: int) -> list[bool]:
    return [epoch >= cfg.threshold_start + i * cfg.threshold_every for i in range(layers)]


# ---- the callback ---------------------------------------------------------------------------


class Binarize(Callback):
    """Applies a ``binary`` recipe section to the model's binary activations."""

    def __init__(self, cfg: WhetstoneConfig | NoisyReLUConfig) -> None:
        self.cfg = cfg
        self.layers: list[Any] = []  # the Whetstone or NoisyReLU modules, bottom-up
        self.adaptive: AdaptiveState | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        acts = [m for _, m in binary_activations(trainer.model)]
        want = Whetstone if isinstance(self.cfg, WhetstoneConfig) else NoisyReLU
        self.layers = [m for m in acts if isinstance(m, want)]
        if not self.layers:
            raise NeurocoreError(
                f"binary.method is {self.cfg.method!r} but the model has no "
                f"{'whetstone' if want is Whetstone else 'noisy_relu'} layers"
            )
        if len(self.layers) != len(acts):
            raise NeurocoreError(
                f"binary.method is {self.cfg.method!r}: the model mixes binary activation kinds"
            )

    def sharpness(self, epoch: int, batch: int, batches: int) -> list[float]:
        assert isinstance(self.cfg, WhetstoneConfig)
        sched, n = self.cfg.schedule, len(self.layers)
        if isinstance(sched, SimpleSharpening):
            return simple_sharpness(sched, n, epoch, batch, batches)
        if isinstance(sched, ScheduledSharpening):
            return scheduled_sharpness(sched, n, epoch, batch, batches)
        assert self.adaptive is not None
        return list(self.adaptive.sharpness)

    def _apply(self, epoch: int, batch: int, batches: int) -> None:
        if isinstance(self.cfg, WhetstoneConfig):
            noise = self.cfg.noise
            r = noise_range(noise, epoch, batch, batches) if noise is not None else 0.0
            for m, s in zip(self.layers, self.sharpness(epoch, batch, batches), strict=True):
                m.sharpness.fill_(s)
                m.noise_range.fill_(r)
        else:
            r = noise_range(self.cfg.noise, epoch, batch, batches)
            flags = threshold_flags(self.cfg, len(self.layers), epoch)
            for m, flag in zip(self.layers, flags, strict=True):
                m.noise_range.fill_(r)
                m.binary.fill_(flag)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if isinstance(self.cfg, WhetstoneConfig) and isinstance(
            self.cfg.schedule, AdaptiveSharpening
        ):
            losses = [float(h["train_loss"]) for h in trainer.history]
            assert len(losses) == epoch, "history must hold one record per finished epoch"
            self.adaptive = adaptive_state_at(
                self.cfg.schedule, len(self.layers), trainer.batches_per_epoch, losses
            )
        self._apply(epoch, 0, trainer.batches_per_epoch)
        if isinstance(self.cfg, WhetstoneConfig) and self.cfg.stop_when_sharp:
            if all(float(m.sharpness) >= 1.0 for m in self.layers):
                trainer.request_stop(f"every whetstone layer is fully sharp at epoch {epoch}")

    def on_batch_start(self, trainer: Trainer, info: BatchInfo) -> None:
        self._apply(info.epoch, info.batch, info.batches_per_epoch)

    def on_batch_end(self, trainer: Trainer, info: BatchInfo, loss: float) -> None:
        if self.adaptive is not None and isinstance(self.cfg, WhetstoneConfig):
            assert isinstance(self.cfg.schedule, AdaptiveSharpening)
            self.adaptive = adaptive_batch(self.cfg.schedule, self.adaptive, info.batches_per_epoch)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        if isinstance(self.cfg, WhetstoneConfig):
            metrics["sharpness"] = [float(m.sharpness) for m in self.layers]
            if self.adaptive is not None:
                metrics["sharpening"] = self.adaptive.sharpening
        else:
            metrics["noise_range"] = float(self.layers[0].noise_range)
            metrics["threshold_layers"] = [bool(m.binary) for m in self.layers]


class BinaryMetrics(Callback):
    """Each epoch: accuracy as the model stands and fully binarized, and the fraction of active
    neurons per binary layer (fully binarized, on the first split)."""

    def __init__(self, splits: dict[str, Split], max_value: int, batch_size: int = 1000) -> None:
        self.splits = splits
        self.max_value = max_value
        self.batch_size = batch_size

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        # the trainer has just measured its validation split as the model stands: not again
        known = {
            name: metrics["val_accuracy"] for name, split in self.splits.items()
            if split is trainer.val_split and trainer.eval_batch_size == self.batch_size
            and "val_accuracy" in metrics
        }
        metrics.update(binary_metrics(trainer.model, self.splits, self.max_value, self.batch_size,
                                      current=known))


class ActivityRecorder:
    """Counts the 1s each binary activation emits while it is installed (a context manager)."""

    def __init__(self, model: nn.Module) -> None:
        self.acts = binary_activations(model)
        self.ones = [0.0] * len(self.acts)
        self.total = [0] * len(self.acts)
        self.handles: list[Any] = []

    def __enter__(self) -> ActivityRecorder:
        for i, (_, m) in enumerate(self.acts):
            self.handles.append(m.register_forward_hook(self._hook(i)))
        return self

    def _hook(self, i: int) -> Any:
        def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            self.ones[i] += float(output.sum())
            self.total[i] += output.numel()

        return record

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def fractions(self) -> dict[str, float]:
        pairs = zip(self.acts, self.ones, self.total, strict=True)
        return {name: ones / max(total, 1) for (name, _), ones, total in pairs}


@torch.no_grad()
def binary_metrics(
    model: nn.Module, splits: dict[str, Split], max_value: int, batch_size: int = 1000,
    current: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Accuracy as the model stands and fully binarized per split; the active fraction per
    binary layer, fully binarized, on the first split. Once every binary activation already
    computes its step (``is_binary``), the two accuracies are one and each split is run once.
    ``current`` gives accuracies as the model stands that were already measured (by split
    name); those splits are then run only stepped."""
    from neurocore.training.trainer import evaluate

    already = all(m.is_binary() for _, m in binary_activations(model))
    out: dict[str, Any] = {}
    for i, (name, split) in enumerate(splits.items()):
        with fully_binary(model), ActivityRecorder(model) as activity:
            binary = evaluate(model, split, max_value, batch_size).accuracy
        if already:
            out[f"{name}_accuracy_current"] = binary
        elif current is not None and name in current:
            out[f"{name}_accuracy_current"] = current[name]
        else:
            out[f"{name}_accuracy_current"] = evaluate(model, split, max_value, batch_size).accuracy
        out[f"{name}_accuracy_binary"] = binary
        if i == 0:
            out["active_fraction"] = activity.fractions()
    return out


# ---- report -----------------------------------------------------------------------------------


def _phase(record: dict[str, Any]) -> str:
    if "sharpness" in record:
        s = record["sharpness"]
        started, done = any(v > 0.0 for v in s), all(v >= 1.0 for v in s)
    else:
        flags = record.get("threshold_layers", [])
        started, done = any(flags), all(flags)
    return "after" if done else "during" if started else "before"


def binary_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy before binarization began and the epochs and seconds spent in each phase."""
    phases: dict[str, dict[str, float]] = {}
    before_acc = None
    for h in history:
        p = _phase(h)
        ph = phases.setdefault(p, {"epochs": 0, "seconds": 0.0})
        ph["epochs"] += 1
        ph["seconds"] += float(h["seconds"])
        if p == "before" and "test_accuracy_current" in h:
            before_acc = h["test_accuracy_current"]
    return {"test_accuracy_before_binarization": before_acc, "phases": phases}

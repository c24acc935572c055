"""Trainer: determinism, hooks, metrics log, and kill-and-resume equality (torch.equal)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from neurocore.config import OptimizerConfig, ScheduleConfig, TrainConfig
from neurocore.data import Split
from neurocore.training import BatchInfo, Callback, Trainer
from support import KillAt, Killed, assert_same_state


def _data(n: int = 96) -> Split:
    g = torch.Generator().manual_seed(123)
    images = torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8)
    labels = (images.float().mean(dim=(1, 2, 3)) > 127).long()  # a learnable rule
    return Split(images, labels)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(12, 2),
    )


CFG = TrainConfig(
    epochs=4,
    optimizer=OptimizerConfig(name="adam", lr=0.01),
    schedule=ScheduleConfig(name="cosine", warmup_epochs=1.0),
)


def _trainer(run_dir: Path | None, callbacks: list[Callback] = (), seed: int = 5, init: int = 0,  # type: ignore[assignment]
             cfg: TrainConfig = CFG) -> Trainer:
    return Trainer(
        _model(init), _data(), cfg, max_value=255, batch_size=10, seed=seed, run_dir=run_dir,
        val=_data(20), callbacks=callbacks, progress=False,
    )


def test_same_seed_same_weights() -> None:
    a, b = _trainer(None), _trainer(None)
    a.fit()
    b.fit()
    assert_same_state(a.model, b.model)


def test_different_seed_different_weights() -> None:
    a, b = _trainer(None, seed=5), _trainer(None, seed=6)
    a.fit()
    b.fit()
    assert not torch.equal(a.model[1].weight, b.model[1].weight)


@pytest.mark.parametrize("kill_at", [(0, 3), (2, 0), (3, 9)])
def test_kill_and_resume_equals_uninterrupted(tmp_path: Path, kill_at: tuple[int, int]) -> None:
    full = _trainer(tmp_path / "full")
    (tmp_path / "full").mkdir()
    full.fit()

    run = tmp_path / "killed"
    run.mkdir()
    with pytest.raises(Killed):
        _trainer(run, [KillAt(*kill_at)]).fit()
    log = run / "metrics.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    assert len(lines) == kill_at[0]
    if kill_at[0] == 0:
        # killed before the first checkpoint: resuming is an error, starting over is the remedy
        return
    resumed = _trainer(run, init=99)  # a different init: the checkpoint must overwrite it
    resumed.fit(resume=True)
    assert_same_state(full.model, resumed.model)
    full_log = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    res_log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    drop = {"seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in res_log] == [
        {k: v for k, v in r.items() if k not in drop} for r in full_log
    ]


def test_adadelta_with_its_options_and_exact_resume(tmp_path: Path) -> None:
    cfg = CFG.model_copy(update={"optimizer": OptimizerConfig(name="adadelta", lr=4.0, rho=0.95,
                                                                eps=1e-8)})
    full = _trainer(None, cfg=cfg)
    opt = full.optimizer
    assert isinstance(opt, torch.optim.Adadelta)
    assert (opt.defaults["rho"], opt.defaults["eps"]) == (0.95, 1e-8)
    full.fit()
    run = tmp_path / "killed"
    run.mkdir()
    with pytest.raises(Killed):
        _trainer(run, [KillAt(2, 1)], cfg=cfg).fit()
    resumed = _trainer(run, init=99, cfg=cfg)
    resumed.fit(resume=True)
    assert_same_state(full.model, resumed.model)
    assert not torch.equal(full.model[1].weight, _model(0)[1].weight)  # it trained


def test_resume_without_checkpoint_is_clear(tmp_path: Path) -> None:
    from neurocore.errors import RunDirError

    with pytest.raises(RunDirError, match="--resume: no checkpoint at .*checkpoint.safetensors"):
        _trainer(tmp_path).fit(resume=True)


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_train_start(self, trainer: Trainer) -> None:
        self.events.append("train_start")

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.events.append(("epoch_start", epoch))

    def on_batch_start(self, trainer: Trainer, info: BatchInfo) -> None:
        self.events.append(("batch_start", info.epoch, info.batch, info.step))

    def on_batch_end(self, trainer: Trainer, info: BatchInfo, loss: float) -> None:
        assert loss > 0
        self.events.append(("batch_end", info.step))

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        metrics["custom"] = epoch * 10
        self.events.append(("epoch_end", epoch))

    def on_train_end(self, trainer: Trainer) -> None:
        self.events.append("train_end")


def test_hook_order_and_metrics(tmp_path: Path) -> None:
    rec = Recorder()
    t = _trainer(tmp_path, [rec])
    history = t.fit()
    # 96 examples / batch 10 = 10 batches per epoch, the last one of 6
    assert t.batches_per_epoch == 10
    assert rec.events[0] == "train_start" and rec.events[-1] == "train_end"
    assert rec.events[1:4] == [("epoch_start", 0), ("batch_start", 0, 0, 0), ("batch_end", 0)]
    assert rec.events.count(("epoch_start", 3)) == 1
    assert ("batch_start", 3, 9, 39) in rec.events
    assert [h["custom"] for h in history] == [0, 10, 20, 30]
    logged = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in logged] == [0, 1, 2, 3]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "custom"} <= logged[0].keys()
    # warmup of 1 epoch then cosine over the remaining 3: last batch of epoch 0 runs at 0.9 * lr
    assert logged[0]["lr"] == pytest.approx(0.01 * 0.9)


def test_learning_actually_happens() -> None:
    t = _trainer(None)
    history = t.fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_trinary_latent_weights_stay_in_range_and_keep_learning() -> None:
    """After every step the trainer clips trinary layers' latent weights to [−1, 1]: with a
    large learning rate, unclipped weights leave the range (and the straight-through estimator
    gives them no gradient again); clipped ones stay inside and still move."""
    from neurocore.layers.ternary import TernaryLinear

    def fit(clip: bool) -> TernaryLinear:
        torch.manual_seed(0)
        layer = TernaryLinear(16, 2)
        model = nn.Sequential(nn.Flatten(), layer)
        if not clip:  # the same layer without the protocol
            layer.neurocore_constrain = None  # type: ignore[assignment, method-assign]
        cfg = TrainConfig(epochs=3, optimizer=OptimizerConfig(name="sgd", lr=5.0))
        Trainer(model, _data(), cfg, max_value=255, batch_size=10, seed=5, progress=False).fit()
        return layer

    torch.manual_seed(0)
    start = TernaryLinear(16, 2)  # fit() builds this same layer
    free, clipped = fit(clip=False), fit(clip=True)
    assert float(free.weight.detach().abs().max()) > 1.0
    w = clipped.weight.detach()
    assert float(w.abs().max()) <= 1.0 and bool((w.abs() == 1.0).any())
    assert not torch.equal(w, start.weight.detach().clamp(-1, 1))


class _Scaled(nn.Module):
    """A model whose outputs are another's times a constant, the way logit_scale sees them."""

    def __init__(self, inner: nn.Module, scale: float) -> None:
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x) * self.scale
        return out


def test_logit_scale_is_the_loss_of_scaled_outputs() -> None:
    """Training with ``logit_scale: s`` gives exactly the weights, losses and accuracies of
    training a model whose outputs are multiplied by s (an independent place for the factor),
    and differs from s = 1."""
    cfg = CFG.model_copy(update={"logit_scale": 0.25})
    scaled = Trainer(_model(0), _data(), cfg, max_value=255, batch_size=10, seed=5,
                     val=_data(20), progress=False)
    wrapped = Trainer(_Scaled(_model(0), 0.25), _data(), CFG, max_value=255, batch_size=10,
                      seed=5, val=_data(20), progress=False)
    plain = _trainer(None)
    h_scaled, h_wrapped, h_plain = scaled.fit(), wrapped.fit(), plain.fit()
    assert_same_state(scaled.model, wrapped.model.inner)  # type: ignore[union-attr]
    for a, b in zip(h_scaled, h_wrapped, strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert a[key] == b[key], key
    assert not torch.equal(scaled.model[1].weight, plain.model[1].weight)
    assert h_scaled[0]["train_loss"] != h_plain[0]["train_loss"]


def _conv_data(n: int = 96) -> Split:
    g = torch.Generator().manual_seed(321)
    images = torch.randint(0, 256, (n, 2, 4, 4), generator=g, dtype=torch.uint8)
    labels = (images[:, 0].float().mean(dim=(1, 2)) > 127).long()
    return Split(images, labels)


def _conv_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
        nn.Linear(96, 2),
    )


class _Layout(Callback):
    """Records, at every batch, whether the conv weight is stored channels-last."""

    def __init__(self) -> None:
        self.seen: set[bool] = set()

    def on_batch_start(self, trainer: Trainer, info: BatchInfo) -> None:
        w = trainer.model[0].weight  # type: ignore[index]
        self.seen.add(bool(w.is_contiguous(memory_format=torch.channels_last))
                      and not w.is_contiguous())


def _conv_trainer(run_dir: Path | None, channels_last: bool, callbacks: Sequence[Callback] = (),
                  init: int = 0, cfg: TrainConfig = CFG) -> Trainer:
    cfg = cfg.model_copy(update={"channels_last": channels_last})
    return Trainer(_conv_model(init), _conv_data(), cfg, max_value=255, batch_size=10, seed=5,
                   run_dir=run_dir, val=_conv_data(20), callbacks=callbacks, progress=False)


def test_channels_last_trains_in_that_layout_and_hands_back_standard_weights() -> None:
    """With ``channels_last`` the conv weights are channels-last during every batch and standard
    after training; the result is the standard run's up to float rounding (another conv kernel
    order), and the weights did move. (SGD: Adam's normalised steps would magnify rounding in
    near-zero gradients.)"""
    sgd = CFG.model_copy(update={"optimizer": OptimizerConfig(name="sgd", lr=0.05)})
    fast, slow = _Layout(), _Layout()
    a = _conv_trainer(None, True, [fast], cfg=sgd)
    b = _conv_trainer(None, False, [slow], cfg=sgd)
    a.fit()
    b.fit()
    assert fast.seen == {True} and slow.seen == {False}
    for name, t in a.model.state_dict().items():
        assert t.is_contiguous(), name
        torch.testing.assert_close(t, b.model.state_dict()[name], rtol=1e-4, atol=1e-5)
    assert not torch.equal(a.model[0].weight, _conv_model(0)[0].weight)


def test_channels_last_kill_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    full = _conv_trainer(tmp_path / "full", True)
    full.fit()
    run = tmp_path / "killed"
    run.mkdir()
    with pytest.raises(Killed):
        _conv_trainer(run, True, [KillAt(2, 4)]).fit()
    resumed = _conv_trainer(run, True, init=99)
    resumed.fit(resume=True)
    assert_same_state(full.model, resumed.model)

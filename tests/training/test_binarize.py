"""Binarization schedules: pinned traces (computed by hand), the callback, resume mid-sharpening."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from neurocore.config import (
    AdaptiveSharpening,
    EpochWindow,
    NoiseRamp,
    NoisyReLUConfig,
    OptimizerConfig,
    ScheduledSharpening,
    SimpleSharpening,
    TrainConfig,
    WhetstoneConfig,
    validate_recipe,
)
from neurocore.data import Split
from neurocore.errors import NeurocoreError
from neurocore.layers import build_model
from neurocore.neurons.binary import NoisyReLU, Whetstone, binary_activations, fully_binary
from neurocore.training import BatchInfo, Callback, Trainer
from neurocore.training import trainer as trainer_module
from neurocore.training.binarize import (
    Binarize,
    BinaryMetrics,
    adaptive_batch,
    adaptive_state_at,
    binary_metrics,
    binary_summary,
    noise_range,
    scheduled_sharpness,
    simple_sharpness,
    threshold_flags,
)
from support import KillAt, Killed, assert_same_state


def test_simple_per_epoch_trace() -> None:
    cfg = SimpleSharpening(start_epoch=2, steps_per_layer=2)
    # steps taken before epoch e: max(0, e - 2); layer i: clip(steps/2 - i, 0, 1)
    trace = [simple_sharpness(cfg, 2, e, 0, 4) for e in range(8)]
    assert trace == [[0, 0], [0, 0], [0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1], [1, 1]]
    assert simple_sharpness(cfg, 2, 3, 3, 4) == [0.5, 0]  # constant within an epoch


def test_simple_per_batch_trace() -> None:
    cfg = SimpleSharpening(start_epoch=1, steps_per_layer=3, per="batch")
    # steps before (e, b) with 2 batches per epoch: max(0, (e - 1) * 2 + b)
    got = [simple_sharpness(cfg, 2, e, b, 2) for e in range(5) for b in range(2)]
    third = 1 / 3
    assert got == [
        [0, 0], [0, 0],                # epoch 0: before start (steps -2, -1)
        [0, 0], [third, 0],            # epoch 1: steps 0, 1
        [2 * third, 0], [1, 0],        # epoch 2: steps 2, 3
        [1, third], [1, 2 * third],    # epoch 3: steps 4, 5
        [1, 1], [1, 1],                # epoch 4
    ]


def test_scheduled_trace_and_generated_windows() -> None:
    cfg = ScheduledSharpening(start=1, duration=2, gap=1)  # windows (1, 3) and (4, 6)
    at = lambda e, b: scheduled_sharpness(cfg, 2, e, b, 4)  # noqa: E731
    assert at(0, 3) == [0, 0]
    assert at(1, 2) == [0.25, 0]   # t = 1.5: (1.5 - 1) / 2
    assert at(2, 2) == [0.75, 0]   # t = 2.5
    assert at(3, 0) == [1, 0]
    assert at(5, 0) == [1, 0.5]    # t = 5: (5 - 4) / 2
    assert at(6, 1) == [1, 1]
    explicit = ScheduledSharpening(windows=[EpochWindow(start=0, stop=1), EpochWindow(start=1, stop=5)])
    assert scheduled_sharpness(explicit, 2, 2, 0, 10) == [1, 0.25]
    with pytest.raises(NeurocoreError, match="has 2 windows, the model has 3 whetstone layers"):
        scheduled_sharpness(explicit, 3, 0, 0, 1)


ADAPTIVE = AdaptiveSharpening(min_init_epochs=2, rate=0.5, cz_rate=0.25, critical=0.75, patience=1)
LOSSES = [1.0, 0.9, 0.88, 0.87, 1.2, 1.0, 0.95, 0.94]


def test_adaptive_state_machine_trace() -> None:
    # Worked by hand, 2 layers, 2 batches per epoch (rate 0.5 -> +0.25 per batch, cz +0.125):
    # end e0: before min_init - 1 = 1, reference <- 1.0
    # end e1: change -0.10 (not significant) -> 1 epoch without improvement >= patience: start
    # e2: layer 0 0 -> 0.25 -> 0.5;  end e2: change vs 0.9 = -0.022, keep sharpening
    # e3: 0.5 -> 0.75 -> 0.875 (critical zone);  end e3: -0.033
    # e4: 0.875 -> 1.0, then wait;  end e4: change +0.333 >= 0.15 -> pause, reference <- 1.2
    # end e5: change -0.167 <= -0.15: improved, reference <- 1.0, count 0
    # end e6: change -0.05: count 1 -> start again, reference <- 0.95
    # e7: layer 1 0 -> 0.25 -> 0.5
    expected = [
        ((0, 0), False), ((0, 0), False), ((0, 0), True), ((0.5, 0), True), ((0.875, 0), True),
        ((1, 0), False), ((1, 0), False), ((1, 0), True), ((1, 0.5), True),
    ]
    for epoch, (sharpness, sharpening) in enumerate(expected):
        state = adaptive_state_at(ADAPTIVE, 2, 2, LOSSES[:epoch])
        assert (state.sharpness, state.sharpening) == (sharpness, sharpening), epoch
    assert adaptive_state_at(ADAPTIVE, 2, 2, LOSSES).history == ("1:start", "4:pause", "6:start")


def test_adaptive_waits_after_a_layer_completes() -> None:
    state = adaptive_state_at(ADAPTIVE, 2, 2, LOSSES[:4])  # (0.875, 0), sharpening
    state = adaptive_batch(ADAPTIVE, state, 2)
    assert state.sharpness == (1.0, 0.0) and state.waiting
    assert adaptive_batch(ADAPTIVE, state, 2).sharpness == (1.0, 0.0)  # no second layer yet


def test_noise_and_threshold_schedule() -> None:
    cfg = NoisyReLUConfig(noise=NoiseRamp(start=1, stop=3, max=0.8), threshold_start=4, threshold_every=2)
    assert noise_range(cfg.noise, 0, 5, 10) == 0.0
    assert noise_range(cfg.noise, 2, 0, 10) == pytest.approx(0.4)  # halfway
    assert noise_range(cfg.noise, 2, 5, 10) == pytest.approx(0.6)  # t = 2.5
    assert noise_range(cfg.noise, 7, 0, 10) == 0.8
    assert [threshold_flags(cfg, 3, e) for e in (3, 4, 6, 8)] == [
        [False, False, False], [True, False, False], [True, True, False], [True, True, True]
    ]


# ---- the callback on a real trainer ----------------------------------------------------------


def _data(n: int = 64, seed: int = 3) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8)
    labels = (images.float()[:, 0, 0, :2].sum(1) > 255).long()
    return Split(images, labels)


def _model(seed: int = 0) -> nn.Module:
    r = validate_recipe({"name": "t", "model": {"layers": [
        {"type": "flatten"}, {"type": "linear", "out_features": 12}, {"type": "batchnorm"},
        {"type": "whetstone"}, {"type": "linear", "out_features": 8}, {"type": "batchnorm"},
        {"type": "whetstone"}, {"type": "nhot_decode", "classes": 2, "hot": 4},
    ]}}, "t.yaml")
    torch.manual_seed(seed)
    return build_model(list(r.model.layers), (1, 4, 4), 2)


class SeenSharpness(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int, list[float]]] = []

    def on_batch_start(self, trainer: Trainer, info: BatchInfo) -> None:
        acts = [m for m in trainer.model.modules() if isinstance(m, Whetstone)]
        self.seen.append((info.epoch, info.batch, [float(m.sharpness) for m in acts]))


def _trainer(cfg: WhetstoneConfig | NoisyReLUConfig, run_dir: Path | None, extra: list[Callback],
             epochs: int = 6, init: int = 0) -> Trainer:
    return Trainer(
        _model(init), _data(), TrainConfig(epochs=epochs, optimizer=OptimizerConfig(lr=0.01)),
        max_value=255, batch_size=16, seed=1, run_dir=run_dir,
        callbacks=[Binarize(cfg), *extra], progress=False,
    )


def test_callback_applies_the_pure_schedule_per_batch() -> None:
    sched = ScheduledSharpening(start=1, duration=1.5, gap=0.5)
    rec = SeenSharpness()
    t = _trainer(WhetstoneConfig(schedule=sched, stop_when_sharp=False), None, [rec])
    history = t.fit()
    assert len(rec.seen) == 6 * 4
    for epoch, batch, seen in rec.seen:
        expected = scheduled_sharpness(sched, 2, epoch, batch, 4)
        assert seen == pytest.approx(expected, abs=1e-7), (epoch, batch)
    assert history[-1]["sharpness"] == [1.0, 1.0]


def test_stop_when_sharp_ends_training_before_the_epoch() -> None:
    cfg = WhetstoneConfig(schedule=SimpleSharpening(start_epoch=0, steps_per_layer=1))
    t = _trainer(cfg, None, [], epochs=10)
    history = t.fit()
    # steps before epoch e = e: layer 0 sharp from epoch 1, both from epoch 2 -> stop at 2
    assert len(history) == 2 and t.stop_reason is not None and "epoch 2" in t.stop_reason
    assert all(float(m.sharpness) == 1.0 for m in t.model.modules() if isinstance(m, Whetstone))


def test_resume_in_the_middle_of_adaptive_sharpening(tmp_path: Path) -> None:
    cfg = WhetstoneConfig(
        schedule=AdaptiveSharpening(min_init_epochs=1, patience=0, rate=0.5), stop_when_sharp=False
    )
    full_dir, run = tmp_path / "full", tmp_path / "run"
    full_dir.mkdir()
    run.mkdir()
    metrics = BinaryMetrics({"test": _data(32, seed=9)}, 255)
    full = _trainer(cfg, full_dir, [metrics], epochs=7)
    full.fit()
    sharp = [json.loads(x)["sharpness"] for x in (full_dir / "metrics.jsonl").read_text().splitlines()]
    assert 0 < sharp[3][0] < 1 or 0 < sharp[3][1] < 1 or sharp[2] != sharp[3], sharp  # mid-sharpening
    with pytest.raises(Killed):
        _trainer(cfg, run, [metrics, KillAt(4, 2)], epochs=7).fit()
    resumed = _trainer(cfg, run, [metrics], epochs=7, init=5)
    resumed.fit(resume=True)
    assert_same_state(full.model, resumed.model)
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["sharpness"] for r in logged] == sharp


def test_binary_metrics_logged_and_summary() -> None:
    cfg = WhetstoneConfig(schedule=SimpleSharpening(start_epoch=2, steps_per_layer=1))
    t = _trainer(cfg, None, [BinaryMetrics({"test": _data(32, seed=9)}, 255)], epochs=10)
    history = t.fit()
    first: dict[str, Any] = history[0]
    assert {"test_accuracy_current", "test_accuracy_binary", "active_fraction", "sharpness"} <= first.keys()
    assert set(first["active_fraction"]) == {"spike0", "spike1"}
    assert all(0.0 <= v <= 1.0 for v in first["active_fraction"].values())
    assert history[-1]["sharpness"] == [1.0, 0.0] and len(history) == 4  # stopped before epoch 4
    after = binary_metrics(t.model, {"test": _data(32, seed=9)}, 255)
    assert after["test_accuracy_current"] == after["test_accuracy_binary"]  # fully sharp now
    summary = binary_summary(history)
    # epochs 0-2 have all sharpness 0 (steps before epoch e: max(0, e - 2)), 3: layer 0 at 1
    assert summary["phases"]["before"]["epochs"] == 3
    assert summary["phases"]["during"]["epochs"] == 1
    assert summary["test_accuracy_before_binarization"] == history[2]["test_accuracy_current"]


@pytest.mark.parametrize("kind", ["whetstone", "noisy_relu"])
def test_binary_metrics_runs_a_fully_binary_model_once_per_split(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = validate_recipe({"name": "t", "model": {"layers": [
        {"type": "flatten"}, {"type": "linear", "out_features": 12}, {"type": "batchnorm"},
        {"type": kind}, {"type": "linear", "out_features": 8}, {"type": "batchnorm"},
        {"type": kind}, {"type": "nhot_decode", "classes": 2, "hot": 4},
    ]}}, "t.yaml")
    torch.manual_seed(0)
    model = build_model(list(r.model.layers), (1, 4, 4), 2).eval()
    splits = {"val": _data(40, seed=8), "test": _data(32, seed=9)}
    passes: list[int] = []
    real = trainer_module.evaluate
    monkeypatch.setattr(trainer_module, "evaluate",
                        lambda *a, **k: passes.append(1) or real(*a, **k))
    binary_metrics(model, splits, 255)
    assert len(passes) == 4  # not yet binary: as it stands, and stepped, per split
    passes.clear()
    known = binary_metrics(model, splits, 255, current={"val": 0.25})
    assert len(passes) == 3  # val as it stands was given
    assert known["val_accuracy_current"] == 0.25
    for _, m in binary_activations(model):
        if isinstance(m, Whetstone):
            m.sharpness.fill_(1.0)
        else:
            assert isinstance(m, NoisyReLU)
            m.binary.fill_(True)
    # the shortcut's premise: a model whose activations are all binary already computes its step
    x = next(iter(splits["val"].batches(40, 255)))[0]
    with torch.no_grad():
        as_is = model(x)
        with fully_binary(model):
            stepped = model(x)
    assert torch.equal(as_is, stepped)
    passes.clear()
    out = binary_metrics(model, splits, 255)
    assert len(passes) == 2  # one per split
    with fully_binary(model):
        expected = {n: real(model, s, 255, 1000).accuracy for n, s in splits.items()}
    for name, acc in expected.items():
        assert out[f"{name}_accuracy_current"] == out[f"{name}_accuracy_binary"] == acc


def test_binary_metrics_reuse_the_trainers_validation_pass(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per epoch: the trainer's validation pass, then only the stepped one (not the split as it
    stands again), and both passes of another split."""
    val, test = _data(40, seed=8), _data(32, seed=9)
    cfg = WhetstoneConfig(schedule=SimpleSharpening(start_epoch=5, steps_per_layer=1))
    t = _trainer(cfg, None, [BinaryMetrics({"val": val, "test": test}, 255)], epochs=1)
    t.val_split = val
    passes: list[int] = []
    real = trainer_module.evaluate
    monkeypatch.setattr(trainer_module, "evaluate",
                        lambda *a, **k: passes.append(1) or real(*a, **k))
    history = t.fit()
    assert len(passes) == 4  # trainer val; val stepped; test as it stands and stepped
    assert history[0]["val_accuracy_current"] == history[0]["val_accuracy"]
    assert history[0]["val_accuracy_current"] == real(t.model, val, 255, 1000).accuracy


def test_method_must_match_the_model() -> None:
    t = _trainer(NoisyReLUConfig(), None, [])
    with pytest.raises(NeurocoreError, match="binary.method is 'noisy_relu' but the model has no noisy_relu layers"):
        t.fit()

"""Symmetric-kernel training: the schedule (pinned trace, computed by hand), the projection of
grouped convolutions, frozen layers bit-identical under every optimizer, kill-and-resume
equality, and recipe errors that name the key."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from neurocore.config import (
    NoiseRamp,
    NoisyReLUConfig,
    OptimizerConfig,
    SymmetricConfig,
    TrainConfig,
    validate_recipe,
)
from neurocore.data import Split
from neurocore.errors import NeurocoreError, RecipeError
from neurocore.hardware.symmetric import (
    SymmetricError,
    SymmetricLayer,
    commuting_pairs,
    is_symmetric,
)
from neurocore.layers import build_model
from neurocore.layers.ternary import TernaryConv2d
from neurocore.training import Callback, Trainer
from neurocore.training.binarize import Binarize
from neurocore.training.symmetrize import (
    Symmetrize,
    check_symmetric,
    logged_patterns,
    mask_to_signs,
    project_conv,
    projection_epochs,
    saturated,
    symmetric_groups,
    symmetric_summary,
    tie_to_types,
    type_index,
)
from support import KillAt, Killed, assert_same_state

# ---- the schedule -----------------------------------------------------------------------------


def test_saturated() -> None:
    assert saturated([], 0, 0.0)  # patience 0: the fixed schedule
    assert not saturated([0.5, 0.6], 2, 0.0)  # too short: needs patience + 1 epochs
    assert saturated([0.5, 0.7, 0.69, 0.7], 2, 0.0)  # best of last 2 = 0.7 = best before
    assert not saturated([0.5, 0.7, 0.69, 0.71], 2, 0.0)
    assert saturated([0.5, 0.7, 0.69, 0.71], 2, 0.01)  # 0.71 ≤ 0.7 + 0.01


def test_fixed_schedule_trace() -> None:
    cfg = SymmetricConfig(start_epoch=2, every=2)
    assert projection_epochs(cfg, 3, [0.0] * 10) == (2, 4, 6)
    assert projection_epochs(cfg, 3, [0.0] * 3) == (2,)  # epoch 4 is not decided yet
    assert projection_epochs(cfg, 3, [0.0] * 4) == (2, 4)
    assert projection_epochs(SymmetricConfig(start_epoch=0), 2, []) == (0,)


# validation accuracy at the end of epochs 0..13
ACC = [0.50, 0.70, 0.80, 0.805, 0.806, 0.60, 0.70, 0.80, 0.90, 0.95, 0.99, 0.98, 0.985, 0.99]


def test_saturation_schedule_trace() -> None:
    cfg = SymmetricConfig(start_epoch=2, every=1, patience=2, min_delta=0.01, max_wait=4)
    # layer 0: earliest 2, window a[0:e]; e = 2: too short; e = 3: 0.8 vs 0.5 + 0.01; e = 4:
    #   0.805 vs 0.7 + 0.01; e = 5: max(0.805, 0.806) ≤ 0.8 + 0.01 → saturated: p0 = 5
    # layer 1: earliest 6, window a[5:e] keeps rising (0.6 … 0.9) → forced at 6 + 4: p1 = 10
    # layer 2: earliest 11, window a[10:e]; e = 13: max(0.98, 0.985) ≤ 0.99 + 0.01: p2 = 13
    assert projection_epochs(cfg, 3, ACC) == (5, 10, 13)
    assert projection_epochs(cfg, 3, ACC[:9]) == (5,)
    assert projection_epochs(cfg, 3, ACC[:10]) == (5, 10)  # the deadline needs no accuracy
    assert projection_epochs(cfg, 2, ACC) == (5, 10)
    # without min_delta: layer 0 waits until e = 7 (max(0.6, 0.7) ≤ 0.806); layer 1, window
    # a[7:e], until e = 13 (max(0.98, 0.985) ≤ 0.99); layer 2 (earliest 14) is not decided yet
    cfg0 = SymmetricConfig(start_epoch=2, every=1, patience=2, min_delta=0.0, max_wait=9)
    assert projection_epochs(cfg0, 3, ACC) == (7, 13)


def test_saturation_window_starts_at_previous_projection() -> None:
    cfg = SymmetricConfig(start_epoch=1, every=1, patience=1, max_wait=10)
    # p0: e = 2: a[1] = 0.9 ≤ a[0] = 0.9 → 2; p1 ≥ 3, window a[2:e]: e = 4: a[3] = 0.5 ≤ a[2] = 0.6
    # (the best before the projection, 0.9, does not count)
    acc = [0.9, 0.9, 0.6, 0.5, 0.4]
    assert projection_epochs(cfg, 2, acc) == (2, 4)


# ---- projection and the family check ----------------------------------------------------------


def _layer(pair: int, starts: tuple[int, ...], values: list[tuple[int, ...]]) -> SymmetricLayer:
    rho, sigma = commuting_pairs()[pair]
    return SymmetricLayer(rho=rho, sigma=sigma, starts=starts, values=tuple(values))


def test_scaled_symmetric_groups_come_back_exactly() -> None:
    # two groups with different (ρ, σ); latent weights 0.8 · K: clip keeps them, the projection
    # finds each group's layer and the latent weights become K itself
    a = _layer(7, (0, 2), [(1, 0, -1, 1), (0, 1, 1, -1), (-1, -1, 0, 1)])
    b = _layer(50, (3, 1), [(1, 1, 0, 0), (0, 0, 0, 0), (1, -1, 1, -1)])
    kernel = torch.cat([a.kernel(3), b.kernel(3)])  # (6, 2, 3, 3)
    conv = TernaryConv2d(4, 6, 3, groups=2)
    with torch.no_grad():
        conv.weight.copy_(0.8 * kernel.float())
    for target in ("latent", "ternary"):
        p = project_conv(conv, target)  # type: ignore[arg-type]
        assert torch.equal(p.kernel, kernel) and p.error == pytest.approx(0.0, abs=1e-12)
    assert torch.equal(symmetric_groups(kernel, 2, "conv")[1].kernel(3), b.kernel(3))


def test_projection_gives_symmetric_kernels_group_by_group() -> None:
    torch.manual_seed(0)
    conv = TernaryConv2d(6, 8, 3, groups=2)  # random latent weights: far from the family
    assert not check_symmetric(nn.Sequential(conv))["0"]
    with pytest.raises(SymmetricError, match="conv group 0: the kernel is not symmetric"):
        symmetric_groups(conv.to_int(), 2, "conv")
    p = project_conv(conv)
    assert 0.0 < p.relative_error < 1.0 and p.kernel.shape == (8, 3, 3, 3)
    with torch.no_grad():
        conv.weight.copy_(p.kernel.float())
    assert torch.equal(conv.to_int().to(torch.int64), p.kernel)  # the forward pass uses f itself
    assert check_symmetric(nn.Sequential(conv)) == {"0": True}
    for g, layer in enumerate(symmetric_groups(conv.to_int(), 2, "conv")):
        assert torch.equal(layer.kernel(3), p.kernel[4 * g:4 * (g + 1)])
    for k in p.kernel.reshape(-1, 3, 3):  # every 2-d kernel is in the family on its own too
        assert is_symmetric(k)
    # each group has its own (ρ, σ): the two groups read as one layer are not in the family
    assert p.groups[0].rho != p.groups[1].rho or p.groups[0].sigma != p.groups[1].sigma
    with pytest.raises(SymmetricError, match="conv group 0"):
        symmetric_groups(p.kernel.reshape(4, 6, 3, 3), 1, "conv")


def test_projection_is_deterministic() -> None:
    torch.manual_seed(1)
    conv = TernaryConv2d(8, 8, 3, groups=2)
    a, b = project_conv(conv), project_conv(conv)
    assert torch.equal(a.kernel, b.kernel) and a.error == b.error and a.groups == b.groups


# ---- the callback on a real trainer -----------------------------------------------------------


def _data(n: int = 48, seed: int = 3) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 6, 6), generator=g, dtype=torch.uint8)
    labels = (images.float()[:, 0, :3].mean((1, 2)) > images.float()[:, 0, 3:].mean((1, 2)))
    return Split(images, labels.long())


LAYERS: list[dict[str, Any]] = [
    {"type": "thermometer", "levels": 2},
    {"type": "ternary_conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "groups": 2},
    {"type": "batchnorm"}, {"type": "noisy_relu"},
    {"type": "ternary_conv2d", "out_channels": 8, "kernel_size": 3, "stride": 2, "groups": 4},
    {"type": "batchnorm"}, {"type": "noisy_relu"},
    {"type": "flatten"},
    {"type": "ternary_linear", "out_features": 8},
    {"type": "batchnorm"}, {"type": "noisy_relu"},
    {"type": "nhot_decode", "classes": 2, "hot": 4},
]


def _model(seed: int = 0, layers: list[dict[str, Any]] = LAYERS) -> nn.Module:
    r = validate_recipe({"name": "t", "model": {"layers": layers}}, "t.yaml")
    torch.manual_seed(seed)
    return build_model(list(r.model.layers), (1, 6, 6), 2)


ADAMW = OptimizerConfig(name="adamw", lr=0.05, weight_decay=0.5)


def _trainer(cfg: SymmetricConfig, run_dir: Path | None = None, extra: Sequence[Callback] = (),
             epochs: int = 5, init: int = 0, optimizer: OptimizerConfig = ADAMW,
             val: bool = True) -> Trainer:
    """Noisy ReLUs (noise, then thresholds from epoch 3) and the symmetric schedule ``cfg``."""
    binary = NoisyReLUConfig(noise=NoiseRamp(start=0, stop=2, max=0.5), threshold_start=3)
    return Trainer(
        _model(init), _data(), TrainConfig(epochs=epochs, optimizer=optimizer),
        max_value=255, batch_size=16, seed=1, run_dir=run_dir, val=_data(24, 9) if val else None,
        callbacks=[Binarize(binary), Symmetrize(cfg), *extra], progress=False,
    )


def _convs(model: nn.Module) -> list[TernaryConv2d]:
    return [m for m in model.modules() if isinstance(m, TernaryConv2d)]


class Snapshot(Callback):
    """The conv weights at the end of every epoch."""

    def __init__(self) -> None:
        self.weights: list[list[torch.Tensor]] = []

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        self.weights.append([c.weight.detach().clone() for c in _convs(trainer.model)])


@pytest.mark.parametrize("optimizer", [
    ADAMW,
    OptimizerConfig(name="adam", lr=0.05, weight_decay=0.1),
    OptimizerConfig(name="sgd", lr=0.5, momentum=0.9, nesterov=True, weight_decay=0.1),
])
def test_projected_layers_are_symmetric_and_frozen_bit_for_bit(
    optimizer: OptimizerConfig,
) -> None:
    snap = Snapshot()
    t = _trainer(SymmetricConfig(start_epoch=1, every=2), extra=[snap], optimizer=optimizer)
    history = t.fit()
    conv0, conv1 = _convs(t.model)
    assert [h["symmetric_layers"] for h in history] == [
        [], ["conv0"], ["conv0"], ["conv0", "conv1"], ["conv0", "conv1"]
    ]
    # conv0 projected at the start of epoch 1: unchanged from the end of epoch 1 on, although
    # the optimizer has momentum / Adam state and weight decay for it
    for w in snap.weights[1:]:
        assert torch.equal(w[0], snap.weights[1][0])
    assert not torch.equal(snap.weights[0][1], snap.weights[2][1])  # conv1 still trained
    for w in snap.weights[3:]:
        assert torch.equal(w[1], snap.weights[3][1])
    assert not conv0.weight.requires_grad and not conv1.weight.requires_grad
    assert check_symmetric(t.model) == {"conv0": True, "conv1": True}
    assert set(conv0.weight.unique().tolist()) <= {-1.0, 0.0, 1.0}  # latent = f itself
    rec = history[1]["symmetric_projection"]
    assert rec["layer"] == "conv0" and rec["epoch"] == 1 and rec["groups"] == 2
    assert 0.0 < rec["relative_error"] < 1.0
    assert rec["val_accuracy_before"] == history[0]["val_accuracy"]
    assert 0.0 <= rec["val_accuracy_after"] <= 1.0
    summary = symmetric_summary(history, t.model)
    assert [p["layer"] for p in summary["projections"]] == ["conv0", "conv1"]
    assert summary["projections"][1]["val_accuracy_after_epoch"] == history[3]["val_accuracy"]
    assert summary["check"] == {"conv0": True, "conv1": True}


def test_tie_to_types_is_the_mean_of_each_type_class() -> None:
    g = torch.Generator().manual_seed(3)
    w = torch.rand(5, 2, 3, 3, generator=g, dtype=torch.float64) * 2 - 1
    types = torch.randint(0, 4, (5, 2, 3, 3), generator=g)
    types[0] = 2  # one output whose entries are all of one type
    expected = w.clone()
    for o in range(5):  # independent reference: a loop over outputs and types
        for t in range(4):
            sel = types[o] == t
            if sel.any():
                expected[o][sel] = w[o][sel].mean()
    tie_to_types(w, types)
    assert torch.allclose(w, expected, rtol=0, atol=1e-15)
    assert bool((w[0] == w[0, 0, 0, 0]).all())  # one class: one value


def test_mask_to_signs_keeps_the_entries_of_each_class_sign() -> None:
    g = torch.Generator().manual_seed(4)
    w = torch.rand(6, 2, 3, 3, generator=g, dtype=torch.float64) * 2 - 1
    types = torch.randint(0, 4, (6, 2, 3, 3), generator=g)
    w[1][types[1] == 0] = 0.0  # a class whose sum is 0: it empties
    w[2][types[2] == 1] = 0.25  # a class of one sign: it stays whole
    expected = w.clone()
    for o in range(6):  # independent reference: a loop over outputs, types and entries
        for t in range(4):
            sel = types[o] == t
            total = float(w[o][sel].sum())
            for idx in sel.nonzero().tolist():
                v = float(w[o][tuple(idx)])
                expected[o][tuple(idx)] = v if v * total > 0 else 0.0
    mask_to_signs(w, types)
    assert torch.equal(w, expected)
    assert bool((w[2][types[2] == 1] == 0.25).all())
    assert 0 < int((w == 0).sum()) < w.numel()  # not vacuous: some entries zeroed, some kept


def test_masked_groups_accept_masked_kernels_and_refuse_mixed_signs() -> None:
    g = torch.Generator().manual_seed(5)
    a = _layer(7, (0, 2, 1), [(1, 0, -1, 1), (0, 1, 1, -1), (-1, -1, 0, 1), (1, 1, -1, -1)])
    kernel = a.kernel(3)
    masked = kernel * (torch.rand(kernel.shape, generator=g) < 0.6).to(torch.int64)
    assert not torch.equal(masked, kernel)
    with pytest.raises(SymmetricError, match="not symmetric"):  # outside the exact family
        symmetric_groups(masked, 1, "conv")
    (found,) = symmetric_groups(masked, 1, "conv", masked=True)
    types = type_index([found], 3, 4)
    f = torch.tensor(found.values)
    # every non-zero entry is its class's sign: masked == B ∘ f(T)
    assert torch.equal(masked, (masked != 0) * f.gather(1, types.reshape(4, -1)).view_as(masked))
    # a 1-channel kernel that no pattern splits into single-sign classes (checked exhaustively
    # over every commuting pair and start) is refused
    mixed = torch.tensor([[1, -1, 1], [-1, 1, -1], [1, -1, -1]]).view(1, 1, 3, 3)
    for rho, sigma in commuting_pairs():
        for q in range(4):
            t = SymmetricLayer(rho=rho, sigma=sigma, starts=(q,),
                               values=((0,) * 4,)).type_grid(3)[0]
            assert any(len({int(v) for v in mixed[0, 0][t == c]}) > 1 for c in range(4))
    with pytest.raises(SymmetricError, match="conv group 0: the kernel is not masked-symmetric"):
        symmetric_groups(mixed, 1, "conv", masked=True)


def test_type_index_follows_each_group_pattern() -> None:
    a = SymmetricLayer(rho=(1, 0, 3, 2), sigma=(2, 3, 0, 1), starts=(0, 3), values=((1, 0, 0, 0),))
    b = SymmetricLayer(rho=(1, 2, 3, 0), sigma=(0, 1, 2, 3), starts=(2, 1), values=((0, 1, 0, 0),))
    t = type_index([a, b], 3, outputs=4)
    assert t.shape == (4, 2, 3, 3)
    for o in range(4):
        layer = a if o < 2 else b
        assert torch.equal(t[o], layer.type_grid(3))
    assert torch.equal(t[2, 0, 1], torch.tensor([2, 3, 0]))  # q = 2, then ρ along j


def test_tied_layers_keep_their_pattern_and_train_their_tables() -> None:
    snap = Snapshot()
    t = _trainer(SymmetricConfig(start_epoch=1, every=2, after="tie"), extra=[snap])
    history = t.fit()
    assert [h["symmetric_layers"] for h in history] == [
        [], ["conv0"], ["conv0"], ["conv0", "conv1"], ["conv0", "conv1"]
    ]
    conv0, conv1 = _convs(t.model)
    assert conv0.weight.requires_grad and conv1.weight.requires_grad  # not frozen
    assert not torch.equal(snap.weights[1][0], snap.weights[4][0])  # conv0 went on training
    records = {h["symmetric_projection"]["layer"]: h["symmetric_projection"]
               for h in history if "symmetric_projection" in h}
    for conv, epoch in ((conv0, 1), (conv1, 3)):
        rec = records[f"conv{epoch // 2}"]
        patterns = [SymmetricLayer(rho=tuple(p["rho"]), sigma=tuple(p["sigma"]),
                                   starts=tuple(p["starts"]), values=((0, 0, 0, 0),))
                    for p in rec["patterns"]]
        types = type_index(patterns, 3, conv.out_channels)
        for w in [s[int(conv is conv1)] for s in snap.weights[epoch:]]:
            for o in range(conv.out_channels):  # every type class holds one value at epoch end
                for c in range(4):
                    v = w[o][types[o] == c]
                    assert bool((v == v[0]).all()) if v.numel() else True
        # the ternary kernel is f'_o(T) with the logged pattern: in the family
        k = conv.to_int().to(torch.int64)
        f = torch.zeros(conv.out_channels, 4, dtype=torch.int64).scatter_(
            1, types.reshape(conv.out_channels, -1), k.reshape(conv.out_channels, -1))
        assert torch.equal(f.gather(1, types.reshape(conv.out_channels, -1)).view_as(k), k)
    assert check_symmetric(t.model) == {"conv0": True, "conv1": True}


def test_masked_ties_keep_their_pattern_and_each_class_one_sign() -> None:
    snap = Snapshot()
    t = _trainer(SymmetricConfig(start_epoch=1, every=2, after="tie-masked"), extra=[snap])
    history = t.fit()
    conv0, conv1 = _convs(t.model)
    assert conv0.weight.requires_grad and conv1.weight.requires_grad  # not frozen
    assert not torch.equal(snap.weights[1][0], snap.weights[4][0])  # conv0 went on training
    records = {h["symmetric_projection"]["layer"]: h["symmetric_projection"]
               for h in history if "symmetric_projection" in h}
    assert set(records) == {"conv0", "conv1"}
    zeros_inside = 0
    for conv, epoch in ((conv0, 1), (conv1, 3)):
        patterns = [SymmetricLayer(rho=tuple(p["rho"]), sigma=tuple(p["sigma"]),
                                   starts=tuple(p["starts"]), values=((0, 0, 0, 0),))
                    for p in records[f"conv{epoch // 2}"]["patterns"]]
        types = type_index(patterns, 3, conv.out_channels)
        for w in [s[int(conv is conv1)] for s in snap.weights[epoch:]]:
            for o in range(conv.out_channels):  # at every epoch end each class has one sign
                for c in range(4):
                    v = w[o][types[o] == c]
                    assert not (bool((v > 0).any()) and bool((v < 0).any()))
        k = conv.to_int().to(torch.int64)
        for o in range(conv.out_channels):
            for c in range(4):
                v = k[o][types[o] == c]
                zeros_inside += int(bool((v == 0).any()) and bool((v != 0).any()))
    assert zeros_inside > 0  # not the exact family: classes mix zeros and their sign
    patterns = logged_patterns(history)
    assert set(patterns) == {"conv0", "conv1"}
    assert check_symmetric(t.model, masked=True, patterns=patterns) == {"conv0": True,
                                                                        "conv1": True}
    assert check_symmetric(t.model) == {"conv0": False, "conv1": False}
    assert symmetric_summary(history, t.model, masked=True)["check"] == {"conv0": True,
                                                                         "conv1": True}


@pytest.mark.parametrize("after", ["freeze", "tie", "tie-masked"])
@pytest.mark.parametrize("kill", [(2, 1), (3, 0)])  # mid-epoch after a projection; at the batch
def test_resume_equals_uninterrupted(tmp_path: Path, kill: tuple[int, int], after: str) -> None:
    cfg = SymmetricConfig(start_epoch=1, every=1, patience=1, max_wait=1, after=after)
    full_dir, run = tmp_path / "full", tmp_path / "run"
    full_dir.mkdir()
    run.mkdir()
    full = _trainer(cfg, full_dir, epochs=6)
    full.fit()
    with pytest.raises(Killed):
        _trainer(cfg, run, [KillAt(*kill)], epochs=6).fit()
    resumed = _trainer(cfg, run, epochs=6, init=5)  # another init: the checkpoint must win
    resumed.fit(resume=True)
    assert_same_state(full.model, resumed.model)

    def logged(d: Path) -> list[tuple[Any, ...]]:
        rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        return [(r["val_accuracy"], r["symmetric_layers"], r.get("symmetric_projection"))
                for r in rows]

    assert logged(run) == logged(full_dir)
    assert logged(full_dir)[-1][1] == ["conv0", "conv1"]


def test_tie_on_resume_needs_the_logged_pattern() -> None:
    """A run whose projection record predates the logged patterns cannot be tied on resume."""
    cb = Symmetrize(SymmetricConfig(start_epoch=0, every=5, after="tie"))
    trainer = SimpleNamespace(model=_model(), val_split=None, stop_reason=None, history=[
        {"val_accuracy": 0.5, "symmetric_projection": {"layer": "conv0", "epoch": 0}},
        {"val_accuracy": 0.6},
    ])
    cb.on_train_start(trainer)  # type: ignore[arg-type]
    with pytest.raises(NeurocoreError, match=r"symmetric.after is tie, but the logged projection "
                                             r"of conv0 \(epoch 0\) has no type patterns"):
        cb.on_epoch_start(trainer, 2)  # type: ignore[arg-type]


def test_excluded_layers_stay_unconstrained() -> None:
    t = _trainer(SymmetricConfig(start_epoch=0, exclude=["conv0"]), epochs=2)
    history = t.fit()
    assert history[-1]["symmetric_layers"] == ["conv1"]
    conv0, conv1 = _convs(t.model)
    assert conv0.weight.requires_grad and not conv1.weight.requires_grad


def test_callback_errors_name_the_key() -> None:
    with pytest.raises(NeurocoreError, match=r"symmetric.exclude: no ternary conv layer named "
                                             r"'conv9' \(the model has: conv0, conv1\)"):
        _trainer(SymmetricConfig(exclude=["conv9"])).fit()
    with pytest.raises(NeurocoreError, match=r"symmetric.patience is 2: .* \(set data.val_fraction\)"):
        _trainer(SymmetricConfig(patience=2), val=False).fit()
    floats = [dict(x) for x in LAYERS]
    floats[1] = {"type": "conv2d", "out_channels": 8, "padding": 1, "bias": False}
    t = _trainer(SymmetricConfig())
    t.model = _model(layers=floats)
    with pytest.raises(NeurocoreError, match="symmetric: layer conv0 is a float conv2d"):
        t.fit()


# ---- recipe -------------------------------------------------------------------------------------


def _recipe(symmetric: Any) -> dict[str, Any]:
    return {"name": "t", "model": {"layers": LAYERS}, "symmetric": symmetric}


def test_recipe_section() -> None:
    r = validate_recipe(_recipe({"start_epoch": 3, "patience": 2, "exclude": ["conv0"]}), "t.yaml")
    assert r.symmetric == SymmetricConfig(start_epoch=3, patience=2, exclude=["conv0"])
    assert validate_recipe(_recipe(None), "t.yaml").symmetric is None


@pytest.mark.parametrize(("section", "expected"), [
    ({"every": 0}, r"symmetric\.every: Input should be greater than or equal to 1 \(got 0\)"),
    ({"evry": 1}, r"symmetric\.evry: unknown key \(allowed: start_epoch, every, patience,"),
    ({"target": "float"}, r"symmetric\.target: Input should be 'latent' or 'ternary'"),
    ({"after": "thaw"}, r"symmetric\.after: Input should be 'freeze', 'tie' or 'tie-masked'"),
    ({"patience": "2"}, r"symmetric\.patience: Input should be a valid integer"),
    ({"min_delta": -0.1}, r"symmetric\.min_delta: Input should be greater than or equal to 0"),
])
def test_recipe_errors_name_the_key(section: dict[str, Any], expected: str) -> None:
    with pytest.raises(RecipeError, match=expected):
        validate_recipe(_recipe(section), "t.yaml")

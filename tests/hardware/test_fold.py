"""Folding a binary network into per-layer weights and thresholds must be EXACT.

The folded network's spikes (every binary layer) and outputs equal the fully binarized model's in
eval mode with ``torch.equal``, for any input: random binary inputs and float inputs, random
architectures, batch-norm statistics with negative and zero γ, and channels whose switching
point sits exactly on values the layer's ``pre`` takes (rounding ties).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neurocore.data import Split
from neurocore.errors import NeurocoreError
from neurocore.hardware.deploy import model_predictions
from neurocore.hardware.fold import (
    BinaryLayer,
    Chain,
    Decode,
    OrPool,
    Readout,
    Reshape,
    float_thresholds,
    fold,
    fold_check,
    integer_thresholds,
)
from neurocore.layers.batchnorm import BatchNorm1d
from neurocore.neurons.binary import Whetstone, binary_activations
from support import BN, build, model_spikes, randomise

FMAX = torch.finfo(torch.float32).max


ARCHS: dict[str, tuple[tuple[int, ...], list[dict]]] = {
    "dense_nhot": (
        (1, 4, 4),
        [
            {"type": "flatten"},
            {"type": "linear", "out_features": 24},
            BN,
            {"type": "whetstone"},
            {"type": "linear", "out_features": 16, "bias": False},
            {"type": "whetstone", "variant": "sigmoid"},
            {"type": "dropout", "p": 0.3},
            {"type": "linear", "out_features": 12},
            BN,
            {"type": "noisy_relu"},
            {"type": "nhot_decode", "classes": 3, "hot": 4},
        ],
    ),
    "dense_readout_bn": (
        (1, 4, 4),
        [
            {"type": "flatten"},
            {"type": "linear", "out_features": 20},
            BN,
            {"type": "whetstone", "variant": "sigmoid"},
            {"type": "linear", "out_features": 5},
            BN,
        ],
    ),
    "conv_pool_groups": (
        (2, 8, 8),
        [
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            BN,
            {"type": "whetstone"},
            {"type": "maxpool2d", "kernel_size": 2},
            {
                "type": "conv2d",
                "out_channels": 6,
                "kernel_size": 3,
                "stride": 2,
                "padding": 1,
                "groups": 2,
            },
            BN,
            {"type": "noisy_relu"},
            {"type": "flatten"},
            {"type": "linear", "out_features": 10},
        ],
    ),
    "conv_nobias_sigmoid_nhot": (
        (2, 8, 8),
        [
            {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "bias": False},
            {"type": "whetstone", "variant": "sigmoid"},
            {"type": "maxpool2d", "kernel_size": 2, "stride": 1},
            {"type": "maxpool2d", "kernel_size": 2},
            {"type": "conv2d", "out_channels": 4, "kernel_size": 1, "groups": 4},
            BN,
            {"type": "whetstone"},
            {"type": "flatten"},
            {"type": "linear", "out_features": 12},
            BN,
            {"type": "whetstone"},
            {"type": "nhot_decode", "classes": 3, "hot": 3, "overlapping": True, "seed": 1},
        ],
    ),
    "conv_stride_no_bn": (
        (2, 8, 8),
        [
            {"type": "conv2d", "out_channels": 3, "kernel_size": 2, "stride": 2, "padding": 1},
            {"type": "whetstone"},
            {"type": "dropout", "p": 0.2},
            {
                "type": "conv2d",
                "out_channels": 6,
                "kernel_size": 3,
                "padding": 1,
                "groups": 3,
                "bias": False,
            },
            BN,
            {"type": "whetstone", "variant": "sigmoid"},
            {"type": "maxpool2d", "kernel_size": 3, "stride": 2},
            {"type": "flatten"},
            {"type": "linear", "out_features": 4, "bias": False},
        ],
    ),
}


def _weights(grid: bool) -> dict:
    """randomise's options here: weights on a grid (ties at values ``pre`` takes) or floats."""
    return {"weights": "grid" if grid else "float", "ties": 0.5,
            "tie_step": 0.25 if grid else None, "var_floor": 0.0}


def _inputs(shape: tuple[int, ...], g: torch.Generator) -> dict[str, torch.Tensor]:
    n = 64
    return {
        "binary": torch.randint(0, 2, (n, *shape), generator=g).float(),
        "pixels": torch.randint(0, 17, (n, *shape), generator=g).float() / 16,
        "uniform": torch.rand((n, *shape), generator=g),
        "normal": torch.randn((n, *shape), generator=g) * 2,
    }


def _check_exact(model: nn.Sequential, x: torch.Tensor) -> list[float]:
    """Assert fold == fully binary model exactly; return each binary layer's firing rate."""
    ref, ref_spikes = model_spikes(model, x)
    net = fold(model)
    out, outs = net.forward(x)
    mine = [o for s, o in zip(net.stages, outs, strict=True) if isinstance(s, BinaryLayer)]
    assert len(mine) == len(ref_spikes) == len(binary_activations(model))
    assert torch.equal(out, ref)
    for layer, a, b in zip(net.binary_layers, mine, ref_spikes, strict=True):
        assert torch.equal(a, b), layer.name
        assert bool(((a == 0) | (a == 1)).all())
    return [float(s.mean()) for s in ref_spikes]


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("grid", [True, False], ids=["grid_weights", "float_weights"])
def test_fold_equals_fully_binary_model_exactly(arch: str, grid: bool) -> None:
    shape, layers = ARCHS[arch]
    rates: list[list[float]] = []
    for seed in range(3):
        g = torch.Generator().manual_seed(1000 * seed + len(arch) + grid)
        model = build(layers, shape)
        xs = _inputs(shape, g)
        randomise(model, g, torch.cat([xs["binary"], xs["uniform"]]), **_weights(grid))
        for x in xs.values():
            rates.append(_check_exact(model, x))
    # the comparison is not vacuous: every binary layer both fires and stays silent
    per_layer = torch.tensor(rates).mean(0)
    assert bool(((per_layer > 0.02) & (per_layer < 0.98)).all()), per_layer


def test_fold_switches_exactly_at_rounding_ties() -> None:
    """A layer ``x·w → BN → [· ≥ 0.5]`` with β = θ and μ on the values ``pre`` takes: in real
    arithmetic the neuron switches at pre = μ, in float32 at μ or one value either side. The fold
    must follow the float32 evaluation, and these inputs make the two disagree somewhere."""
    g = torch.Generator().manual_seed(0)
    c = 64
    lin = nn.Linear(1, c, bias=False)
    bn = BatchNorm1d(c)
    act = Whetstone()
    model = nn.Sequential(lin, bn, act).eval()
    with torch.no_grad():
        lin.weight.fill_(1.0)  # pre = x
        bn.weight.copy_(torch.rand(c, generator=g) * 3 + 0.1)
        bn.weight[::2] *= -1  # half the channels falling
        bn.running_var.copy_(torch.rand(c, generator=g) * 5 + 0.01)
        bn.running_mean.copy_(torch.randn(c, generator=g) * 7)
        bn.bias.fill_(0.5)
    mu = bn.running_mean
    # inputs: every channel's μ and its float32 neighbours, for every channel (so each channel
    # sees its own μ in some row)
    near = torch.stack([torch.nextafter(mu, mu + s) for s in (-1.0, 1.0)] + [mu])
    near2 = torch.stack(
        [torch.nextafter(n, n + s) for n, s in zip(near[:2], (-1.0, 1.0), strict=True)]
    )
    x = torch.cat([near, near2]).reshape(-1, 1)  # (5C, 1)
    ref, _ = model_spikes(model, x)
    out, _ = fold(model).forward(x)
    assert torch.equal(out, ref)
    # real arithmetic: (pre − μ)·scale + 0.5 ≥ 0.5 ⟺ scale·(pre − μ) ≥ 0
    scale, _ = bn.eval_affine()
    real = ((x.double() - mu.double()) * scale.double() >= 0).float()
    assert int((real != ref).sum()) > 0  # ties really are decided by rounding


@pytest.mark.parametrize("grid", [True, False])
def test_fold_structure(grid: bool) -> None:
    shape, layers = ARCHS["conv_nobias_sigmoid_nhot"]
    model = build(layers, shape)
    randomise(model, torch.Generator().manual_seed(3), torch.rand(32, *shape), **_weights(grid))
    net = fold(model)
    kinds = [type(s) for s in net.stages]
    assert kinds == [BinaryLayer, OrPool, OrPool, BinaryLayer, Reshape, BinaryLayer, Decode]
    assert [s.name for s in net.binary_layers] == ["conv0", "conv1", "fc0"]
    assert net.binary_layers[1].groups == 4 and net.binary_layers[0].bias is None
    # γ = 0 on channel 0 of every batch norm: a constant neuron, threshold ±inf, never flipped
    for layer in net.binary_layers[1:]:
        assert math.isinf(float(layer.threshold[0])) and not bool(layer.flip[0])
        assert bool(layer.flip[1])  # γ < 0: fires below its threshold
    shape, layers = ARCHS["dense_readout_bn"]
    net = fold(build(layers, shape))
    assert [type(s) for s in net.stages] == [Reshape, BinaryLayer, Readout]
    readout = net.stages[-1]
    assert isinstance(readout, Readout) and readout.scale is not None and readout.shift is not None


def test_folded_network_is_a_snapshot() -> None:
    """fold() returns the hardware form: later changes to the model (training mode, updated
    weights or statistics) must not change what the folded network computes."""
    torch.manual_seed(0)
    shape, layers = ARCHS["dense_readout_bn"]
    model = build(layers, shape)
    randomise(model, torch.Generator().manual_seed(5), torch.rand(64, *shape), **_weights(False))
    x = torch.randint(0, 2, (32, *shape)).float()
    net = fold(model)
    before, _ = net.forward(x)
    ref, _ = model_spikes(model, x)
    assert torch.equal(before, ref)
    running_mean = model.bn1.running_mean.clone()
    model.train()  # e.g. training resumes
    after, _ = net.forward(x)
    assert torch.equal(after, before)
    assert torch.equal(model.bn1.running_mean, running_mean)  # the fold must not touch the model


def _pool_model(pool: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Whetstone(), pool, nn.Flatten())


def _conv_model(padding_mode: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, padding_mode=padding_mode), Whetstone(), nn.Flatten()
    )


OPTION_MODELS = {
    "pool_padding": lambda: _pool_model(nn.MaxPool2d(3, 2, padding=1)),
    "pool_ceil_mode": lambda: _pool_model(nn.MaxPool2d(2, ceil_mode=True)),
    "pool_nonsquare": lambda: _pool_model(nn.MaxPool2d((2, 3))),
    "pool_dilation": lambda: _pool_model(nn.MaxPool2d(2, dilation=2)),
    "conv_circular": lambda: _conv_model("circular"),
    "conv_reflect": lambda: _conv_model("reflect"),
}


@pytest.mark.parametrize("option", sorted(OPTION_MODELS))
def test_options_fold_has_no_form_for_are_refused(option: str) -> None:
    """Hand-built models are foldable too: an option the folded stages do not implement must
    raise a NeurocoreError, never fold silently into a different network."""
    torch.manual_seed(0)
    model = OPTION_MODELS[option]().eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(model[0].weight.shape))
        model[0].bias.fill_(0.0)
    x = torch.rand(8, 1, 7, 7) * 2 - 0.5  # border pixels matter: padding changes the spikes
    ref, _ = model_spikes(model, x)
    try:
        net = fold(model)
    except NeurocoreError:
        return
    out, _ = net.forward(x)
    assert out.shape == ref.shape and torch.equal(out, ref)


# ---- thresholds --------------------------------------------------------------------------------


def _chain(
    gammas: list[float], betas: list[float], means: list[float], vars_: list[float], theta: float
) -> Chain:
    c = len(gammas)
    bn = BatchNorm1d(c)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gammas))
        bn.bias.copy_(torch.tensor(betas))
        bn.running_mean.copy_(torch.tensor(means))
        bn.running_var.copy_(torch.tensor(vars_))
    scale, shift = bn.eval_affine()
    return Chain(scale, shift, theta)


NEG_INF, POS_INF = torch.tensor(float("-inf")), torch.tensor(float("inf"))


def _assert_float_thresholds_exact(chain: Chain, c: int, probes: torch.Tensor) -> None:
    t, flip = float_thresholds(chain, c)
    assert t.dtype == torch.float32 and flip.dtype == torch.bool
    if chain.scale is not None:
        assert torch.equal(flip, chain.scale < 0)
    finite = torch.isfinite(t)
    # at t it fires; one float past t on the silent side it does not
    past = torch.where(flip, torch.nextafter(t, POS_INF), torch.nextafter(t, NEG_INF))
    at_t = torch.where(finite, t, 0.0)
    past = torch.where(finite, past, 0.0)
    assert bool(chain.fires(at_t)[finite].all())
    assert not bool(chain.fires(past)[finite].any())
    # t = ±inf: the extreme finite floats agree with "never" / "always"
    top = chain.fires(torch.full((c,), FMAX))
    bottom = chain.fires(torch.full((c,), -FMAX))
    want_top = torch.where(flip, t >= FMAX, t <= FMAX)
    want_bottom = torch.where(flip, t >= -FMAX, t <= -FMAX)
    assert torch.equal(top, want_top) and torch.equal(bottom, want_bottom)
    # and every probe: fires(pre) ⟺ pre ≥ t (rising) or pre ≤ t (falling)
    for p in probes:  # p: (c,)
        want = torch.where(flip, p <= t, p >= t)
        assert torch.equal(chain.fires(p), want)


def _probes(t: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    c = t.shape[0]
    base = torch.where(torch.isfinite(t), t, 0.0)
    rows = [base]
    for _ in range(4):
        rows.append(torch.nextafter(rows[-1], POS_INF))
    down = [base]
    for _ in range(4):
        down.append(torch.nextafter(down[-1], NEG_INF))
    rows += down[1:]
    rows += [torch.randn(c, generator=g) * 10 ** float(e) for e in range(-3, 8, 2)]
    rows += [torch.zeros(c), -torch.zeros(c), torch.full((c,), FMAX), torch.full((c,), -FMAX)]
    return torch.stack(rows)


floats = st.floats(-50, 50, width=32)


@settings(max_examples=60, deadline=None)
@given(
    params=st.lists(
        st.tuples(
            st.one_of(st.just(0.0), st.floats(-4, 4, width=32), st.floats(-1e-30, 1e-30)),
            floats,
            floats,
            st.floats(0, 100, width=32),
        ),
        min_size=1,
        max_size=8,
    ),
    theta=st.sampled_from([0.0, 0.5]),
    seed=st.integers(0, 1000),
)
def test_float_thresholds_are_exact(
    params: list[tuple[float, float, float, float]], theta: float, seed: int
) -> None:
    gammas, betas, means, vars_ = (list(v) for v in zip(*params, strict=True))
    chain = _chain(gammas, betas, means, vars_, theta)
    c = len(gammas)
    t, _ = float_thresholds(chain, c)
    _assert_float_thresholds_exact(chain, c, _probes(t, torch.Generator().manual_seed(seed)))


def test_float_thresholds_hand_cases() -> None:
    # no batch norm: [pre ≥ θ], t = θ
    t, flip = float_thresholds(Chain(None, None, 0.5), 3)
    assert torch.equal(t, torch.full((3,), 0.5)) and not bool(flip.any())
    # γ = (1, −1, 0, 0), var = 1 − ε so scale = ±1 (up to rounding), β = 0.5, μ = 2:
    # ch0 fires when pre ≥ 2, ch1 when pre ≤ 2; ch2 const 0.5 ≥ 0.5 → always (−inf);
    # ch3 (β = 0.25): const, never (+inf)
    chain = _chain([1, -1, 0, 0], [0.5, 0.5, 0.5, 0.25], [2, 2, 2, 2], [1 - 1e-5] * 4, 0.5)
    t, flip = float_thresholds(chain, 4)
    assert torch.equal(flip, torch.tensor([False, True, False, False]))
    assert float(t[2]) == -math.inf and float(t[3]) == math.inf
    torch.testing.assert_close(t[:2], torch.tensor([2.0, 2.0]), rtol=1e-6, atol=0)
    _assert_float_thresholds_exact(chain, 4, _probes(t, torch.Generator().manual_seed(0)))


@settings(max_examples=60, deadline=None)
@given(
    params=st.lists(
        st.tuples(
            st.one_of(st.just(0.0), st.floats(-4, 4, width=32)),
            floats,
            floats,
            st.floats(0, 100, width=32),
        ),
        min_size=1,
        max_size=6,
    ),
    theta=st.sampled_from([0.0, 0.5]),
)
def test_integer_thresholds_are_exact(
    params: list[tuple[float, float, float, float]], theta: float
) -> None:
    gammas, betas, means, vars_ = (list(v) for v in zip(*params, strict=True))
    chain = _chain(gammas, betas, means, vars_, theta)
    c = len(gammas)
    # exhaustively over a small bound
    bound = 300
    t, flip = integer_thresholds(chain, c, bound)
    assert t.dtype == torch.int64
    assert bool(((t >= -bound - 1) & (t <= bound + 1)).all())
    k = torch.arange(-bound, bound + 1)[:, None].expand(-1, c)  # (2·bound + 1, c)
    want = torch.where(flip, k <= t, k >= t)
    assert torch.equal(chain.fires(k.float()), want)
    # the default bound: every integer in a window around T (and the bound's ends)
    t, flip = integer_thresholds(chain, c)
    b = 2**24
    centre = t.clamp(-b + 40, b - 40)
    k = torch.cat([centre + torch.arange(-40, 41)[:, None], torch.tensor([[-b] * c, [b] * c])])
    want = torch.where(flip, k <= t, k >= t)
    assert torch.equal(chain.fires(k.float()), want)


def test_integer_thresholds_hand_cases() -> None:
    # no batch norm, θ = 0.5: the first integer with pre ≥ 0.5 is 1
    t, flip = integer_thresholds(Chain(None, None, 0.5), 2)
    assert torch.equal(t, torch.tensor([1, 1])) and not bool(flip.any())
    # θ = 0 (sigmoid): 0 fires, T = 0
    t, _ = integer_thresholds(Chain(None, None, 0.0), 1)
    assert torch.equal(t, torch.tensor([0]))
    # scale 0.5, shift −1.25 (γ = 0.5, var = 1 − ε, μ = 2.5 → shift = −μ·scale): pre·0.5 −
    # 1.25 ≥ 0.5 ⟺ pre ≥ 3.5 → T = 4; scale −0.5, shift 1.25: −pre/2 + 1.25 ≥ 0.5 ⟺ pre ≤ 1.5 →
    # T = 1 flipped; const channels: always → −bound, never → bound + 1
    chain = Chain(torch.tensor([0.5, -0.5, 0.0, 0.0]), torch.tensor([-1.25, 1.25, 0.5, 0.0]), 0.5)
    t, flip = integer_thresholds(chain, 4, bound=100)
    assert torch.equal(t, torch.tensor([4, 1, -100, 101]))
    assert torch.equal(flip, torch.tensor([False, True, False, False]))
    # out of range: never fires within the bound
    t, _ = integer_thresholds(
        Chain(torch.tensor([1.0]), torch.tensor([-1000.0]), 0.5), 1, bound=100
    )
    assert torch.equal(t, torch.tensor([101]))


# ---- errors and fold_check -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layers", "shape", "match"),
    [
        (  # conv not followed by an activation, not at the end
            [
                {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
                {"type": "flatten"},
                {"type": "linear", "out_features": 3},
            ],
            (1, 5, 5),
            r"layer conv0: a Conv2d must be followed by",
        ),
        (  # a linear with batch norm, then something else
            [
                {"type": "linear", "out_features": 4},
                {"type": "batchnorm"},
                {"type": "linear", "out_features": 3},
                {"type": "whetstone"},
            ],
            (6,),
            r"layer fc0: a Linear must be followed by",
        ),
        (  # a conv at the end is no read-out
            [
                {"type": "linear", "out_features": 4},
                {"type": "whetstone"},
                {"type": "conv2d", "out_channels": 2, "kernel_size": 1, "name": "tail"},
            ],
            None,
            None,
        ),
        (  # max-pooling before any binary layer
            [
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
                {"type": "whetstone"},
            ],
            (1, 6, 6),
            r"layer pool0: max-pooling must follow a binary activation",
        ),
        (  # an unsupported module
            [
                {"type": "linear", "out_features": 4},
                {"type": "whetstone"},
                {"type": "relu"},
                {"type": "linear", "out_features": 3},
            ],
            (6,),
            r"layer relu0: ReLU has no binary hardware form",
        ),
        (  # average pooling is not an OR
            [
                {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
                {"type": "whetstone"},
                {"type": "avgpool2d", "kernel_size": 2},
            ],
            (1, 6, 6),
            r"layer avgpool0: AvgPool2d has no binary hardware form",
        ),
    ],
)
def test_fold_errors_name_the_layer(
    layers: list[dict], shape: tuple[int, ...] | None, match: str | None
) -> None:
    if shape is None:  # conv2d cannot follow a flat layer in a recipe: build it by hand
        model = nn.Sequential()
        model.add_module("fc0", nn.Linear(6, 4))
        model.add_module("spike0", Whetstone())
        model.add_module("tail", nn.Conv2d(1, 2, 1))
        shape, match = (6,), r"layer tail: a Conv2d must be followed by"
    else:
        model = build(layers, shape)
    with pytest.raises(NeurocoreError, match=match):
        fold(model)


def test_fold_needs_a_sequential() -> None:
    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(NeurocoreError, match="nn.Sequential.*got Net"):
        fold(Net())


def test_fold_check_counts_no_mismatches() -> None:
    g = torch.Generator().manual_seed(7)
    shape, layers = ARCHS["dense_nhot"]
    model = build(layers, shape)
    images = torch.randint(0, 17, (50, *shape), generator=g).to(torch.uint8)
    split = Split(images, torch.randint(0, 3, (50,), generator=g))
    randomise(model, g, split.float_images(16), **_weights(True))
    model.train()
    preds: list[torch.Tensor] = []
    result = fold_check(model, split, 16, batch_size=16, predictions=preds)
    assert result == {"mismatches": 0, "spike_mismatches": 0, "frames": 50}
    # the pass hands out the fully binary model's predictions: those a later stage would compute
    assert torch.equal(torch.cat(preds), model_predictions(model, split, 16, batch_size=7))
    assert len(preds) == 4  # one per batch of 16
    assert model.training  # the model's mode is restored
    assert not any(m._forward_hooks for m in model.modules())  # its hooks are removed


def test_fold_check_sees_a_wrong_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    """fold_check can fail: a fold that is off by one float on a threshold is counted."""
    import neurocore.hardware.fold as fold_mod

    lin = nn.Linear(1, 1, bias=False)
    model = nn.Sequential(nn.Flatten(), lin, Whetstone(), nn.Linear(1, 2))
    with torch.no_grad():
        lin.weight.fill_(1.0)
    images = torch.full((10, 1, 1, 1), 8, dtype=torch.uint8)  # x = 8/16 = 0.5: exactly θ
    split = Split(images, torch.zeros(10, dtype=torch.int64))
    assert fold_check(model, split, 16)["spike_mismatches"] == 0
    real = fold_mod.float_thresholds
    monkeypatch.setattr(
        fold_mod,
        "float_thresholds",
        lambda chain, c: (torch.nextafter(real(chain, c)[0], POS_INF), real(chain, c)[1]),
    )
    assert fold_check(model, split, 16)["spike_mismatches"] == 10

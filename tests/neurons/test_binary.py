"""Binary-communication neurons: Whetstone (brelu, sigmoid), noisy bounded ReLU, threshold STE.

Golden values are computed by hand in the comments; gradients are compared with a NumPy
derivative written here from the formulas (not from the code), on inputs that include exact
ties (x = 0.5, the clip corners) and points in the clipped regions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from neurocore.config import validate_recipe
from neurocore.layers import build_model
from neurocore.neurons.binary import (
    NoisyReLU,
    Whetstone,
    binary_activations,
    fully_binary,
    noisy_bounded_relu,
    step,
    threshold_ste,
    whetstone_brelu,
    whetstone_sigmoid,
)

F64 = torch.float64
LN_2_SQRT3 = math.log(2.0 + math.sqrt(3.0))  # 1.3169578969248166, root of σ''' at z > 0

# The input grid of the golden tables: 0, 0.25, 0.5, 0.5 ± 1e-4, 0.75, 1, −1, 2.
GRID = [0.0, 0.25, 0.5, 0.5001, 0.4999, 0.75, 1.0, -1.0, 2.0]


def _model(layers: list[dict], shape: tuple[int, ...]) -> nn.Sequential:
    r = validate_recipe({"name": "t", "model": {"layers": layers}}, "t.yaml")
    return build_model(list(r.model.layers), shape)


# ---- golden values --------------------------------------------------------------------------

# y = clip((x − 0.5)/W + 0.5, 0, 1), W = 1 − s + 0.001.
BRELU_GOLDEN = {
    # W = 1.001
    0.0: [
        0.0004995004995005,  # 0:      0.5 − 0.5/1.001 = 0.5 − 0.4995004995005
        0.2502497502497502,  # 0.25:   0.5 − 0.25/1.001 = 0.5 − 0.2497502497502
        0.5,  # 0.5:    the centre is fixed at every sharpness
        0.5000999000999001,  # 0.5001: 0.5 + 0.0001/1.001 = 0.5 + 0.0000999000999
        0.4999000999000999,  # 0.4999: 0.5 − 0.0000999000999
        0.7497502497502498,  # 0.75:   0.5 + 0.2497502497502
        0.9995004995004995,  # 1:      0.5 + 0.4995004995005
        0.0,  # −1:     −1.5/1.001 + 0.5 = −0.9985 → clipped to 0
        1.0,  # 2:      1.5/1.001 + 0.5 = 1.9985 → clipped to 1
    ],
    # W = 0.501
    0.5: [
        0.0,  # 0:      −0.5/0.501 + 0.5 = −0.498 → 0
        0.000998003992016,  # 0.25:   0.5 − 0.25/0.501 = 0.5 − 0.499001996007984
        0.5,
        0.500199600798403,  # 0.5001: 0.5 + 0.0001/0.501 = 0.5 + 0.000199600798403
        0.499800399201597,  # 0.4999
        0.999001996007984,  # 0.75:   0.5 + 0.499001996007984
        1.0,  # 1:      0.5/0.501 + 0.5 = 1.498 → 1
        0.0,
        1.0,
    ],
    # W = 0.101
    0.9: [
        0.0,  # 0:      −0.5/0.101 + 0.5 = −4.45 → 0
        0.0,  # 0.25:   −0.25/0.101 + 0.5 = −1.975 → 0
        0.5,
        0.500990099009901,  # 0.5001: 0.5 + 0.0001/0.101 = 0.5 + 0.000990099009901
        0.499009900990099,  # 0.4999
        1.0,  # 0.75:   0.25/0.101 + 0.5 = 2.975 → 1
        1.0,
        0.0,
        1.0,
    ],
    # W = 0.002
    0.999: [
        0.0,
        0.0,  # 0.25:   −0.25/0.002 + 0.5 = −124.5 → 0
        0.5,
        0.55,  # 0.5001: 0.0001/0.002 + 0.5 = 0.05 + 0.5
        0.45,  # 0.4999: 0.5 − 0.05
        1.0,  # 0.75:   125.5 → 1
        1.0,
        0.0,
        1.0,
    ],
    # s = 1: the step [x ≥ 0.5]
    1.0: [0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0],
}


@pytest.mark.parametrize("s", sorted(BRELU_GOLDEN))
def test_brelu_golden(s: float) -> None:
    x = torch.tensor(GRID, dtype=F64)
    want = torch.tensor(BRELU_GOLDEN[s], dtype=F64)
    got = whetstone_brelu(x, s)
    if s == 1.0:
        assert torch.equal(got, want)
    else:
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_brelu_golden_extra_points() -> None:
    # s = 0.999, W = 0.002: x = 0.5005 → 0.0005/0.002 + 0.5 = 0.75; x = 0.5010 → 1.0 (corner)
    got = whetstone_brelu(torch.tensor([0.5005, 0.4995], dtype=F64), 0.999)
    torch.testing.assert_close(got, torch.tensor([0.75, 0.25], dtype=F64), rtol=0, atol=1e-12)
    # s = 0.001, W = 1 exactly: y = clip(x, 0, 1) exactly (x − 0.5 + 0.5 is exact on this grid)
    x = torch.tensor([-0.5, 0.0, 0.125, 0.5, 0.875, 1.0, 1.5], dtype=F64)
    assert torch.equal(whetstone_brelu(x, 0.001), x.clamp(0, 1))


def test_brelu_step_at_full_sharpness_exact_in_float32() -> None:
    half = torch.tensor(0.5)
    below = torch.nextafter(half, torch.tensor(0.0))  # 0.49999997
    x = torch.stack([half, below, torch.tensor(0.4999), torch.tensor(-0.0), torch.tensor(7.0)])
    assert torch.equal(whetstone_brelu(x, 1.0), torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0]))
    # sharpness above 1 is treated as 1
    assert torch.equal(whetstone_brelu(x, 1.5), torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0]))


def test_sigmoid_golden() -> None:
    # k = 4 ln(2 + √3) / W; at k·x = ±ln(2 + √3) (x = ±W/4) σ = (3 ± √3)/6, the roots of σ'''.
    w = 1.001  # s = 0
    x = torch.tensor([0.0, w / 4, -w / 4], dtype=F64)
    want = torch.tensor([0.5, 0.7886751345948129, 0.2113248654051871], dtype=F64)
    torch.testing.assert_close(whetstone_sigmoid(x, 0.0), want, rtol=0, atol=1e-12)
    # s = 0.5, W = 0.501: at k·x = ln 3, σ = 1/(1 + 1/3) = 3/4
    x = torch.tensor([0.501 * math.log(3.0) / (4 * LN_2_SQRT3)], dtype=F64)
    torch.testing.assert_close(whetstone_sigmoid(x, 0.5), torch.tensor([0.75], dtype=F64))
    # s = 0.9, W = 0.101, k = 5.26783/0.101 = 52.157: at x = ±1, k·x = ±52.16 is clamped to ±40,
    # so y = σ(−40) = e^−40/(1 + e^−40) = 4.248354255291589e−18 (not σ(−52.16) ≈ 2.2e−23)
    got = whetstone_sigmoid(torch.tensor([-1.0, 1.0], dtype=F64), 0.9)
    torch.testing.assert_close(
        got[0], torch.tensor(4.248354255291589e-18, dtype=F64), rtol=1e-12, atol=0
    )
    assert float(got[1]) == 1.0  # σ(40) = 1 − 4e−18 rounds to 1 in float64


def test_sigmoid_step_at_full_sharpness() -> None:
    # s = 1: [x ≥ 0] exactly, including x = 0 (and −0) → 1, the smallest negative → 0
    tiny = torch.nextafter(torch.tensor(0.0), torch.tensor(-1.0))
    x = torch.stack(
        [torch.tensor(0.0), torch.tensor(-0.0), tiny, torch.tensor(1e-30), torch.tensor(-2.0)]
    )
    assert torch.equal(whetstone_sigmoid(x, 1.0), torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0]))


@settings(max_examples=60, deadline=None)
@given(
    s=st.floats(0.0, 0.9995),
    xs=st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=2, max_size=20),
)
def test_brelu_sigmoid_bounded_and_monotone(s: float, xs: list[float]) -> None:
    x = torch.tensor(sorted(xs), dtype=F64)
    for fn in (whetstone_brelu, whetstone_sigmoid):
        y = fn(x, s)
        assert bool(((y >= 0) & (y <= 1)).all())
        assert bool((y[1:] >= y[:-1]).all())


# ---- gradients vs an independent NumPy derivative --------------------------------------------


def np_brelu_grad(x: np.ndarray, s: float) -> np.ndarray:
    """d/dx clip((x − 0.5)/W + 0.5, 0, 1) = 1/W where 0 ≤ inner ≤ 1 (corners included)."""
    w = 1.0 - s + 0.001
    inner = (x - 0.5) / w + 0.5
    return np.where((inner >= 0.0) & (inner <= 1.0), 1.0 / w, 0.0)


def np_sigmoid_grad(x: np.ndarray, s: float) -> np.ndarray:
    """d/dx σ(clamp(k·x, −40, 40)) = k σ(kx)(1 − σ(kx)) where |kx| ≤ 40 (ends included)."""
    k = 4.0 * math.log(2.0 + math.sqrt(3.0)) / (1.0 - s + 0.001)
    z = x * k
    sig = 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))
    return np.where(np.abs(z) <= 40.0, k * sig * (1.0 - sig), 0.0)


def _grad(fn, x: np.ndarray, s: float) -> torch.Tensor:  # type: ignore[no-untyped-def]
    t = torch.tensor(x, dtype=F64, requires_grad=True)
    # + 0·x keeps a graph even when fn's output is detached (the step at s = 1)
    (fn(t, s).sum() + (t * 0).sum()).backward()
    assert t.grad is not None
    return t.grad


BRELU_GRAD_X = np.array([0.5, 0.0, 1.0, 0.25, 0.75, 0.5001, 0.4999, -1.0, 2.0, -1e-7, 1 + 1e-7])


@pytest.mark.parametrize("s", [0.0, 0.001, 0.5, 0.9, 0.999])
def test_brelu_grad_matches_numpy(s: float) -> None:
    got = _grad(whetstone_brelu, BRELU_GRAD_X, s)
    torch.testing.assert_close(
        got, torch.tensor(np_brelu_grad(BRELU_GRAD_X, s)), rtol=1e-12, atol=0
    )


def test_brelu_grad_clip_corner_convention() -> None:
    # s = 0.001 gives W = 1 exactly, so x = 0 makes the inner value exactly 0 and x = 1 exactly
    # 1. Convention (torch.clamp): the gradient passes AT the corners, inclusive, and is 0 just
    # outside.
    x = np.array([0.0, 1.0, 0.5, -1e-7, 1 + 1e-7, -1.0, 2.0])
    assert torch.equal(
        _grad(whetstone_brelu, x, 0.001), torch.tensor([1.0, 1.0, 1.0, 0, 0, 0, 0], dtype=F64)
    )
    # s = 0.9: the slope inside is 1/0.101 = 9.90099..., also at the tie x = 0.5
    g = _grad(whetstone_brelu, np.array([0.5, 0.45, 0.75]), 0.9)
    torch.testing.assert_close(
        g, torch.tensor([1 / 0.101, 1 / 0.101, 0.0], dtype=F64), rtol=1e-12, atol=0
    )


@settings(max_examples=50, deadline=None)
@given(
    s=st.floats(0.0, 0.9995),
    xs=st.lists(st.floats(-2.0, 3.0, allow_nan=False), min_size=1, max_size=16),
)
@example(s=0.0, xs=[0.5, 0.0, 1.0])
@example(s=0.5, xs=[0.5, 0.2495, 0.7505])
def test_brelu_grad_property(s: float, xs: list[float]) -> None:
    x = np.array(xs)
    got = _grad(whetstone_brelu, x, s)
    torch.testing.assert_close(got, torch.tensor(np_brelu_grad(x, s)), rtol=1e-12, atol=0)


@pytest.mark.parametrize("s", [0.0, 0.5, 0.9, 0.999])
def test_sigmoid_grad_matches_numpy(s: float) -> None:
    x = np.array([0.0, 0.5, -0.5, 0.1, -0.1, 0.01, 1.0, -1.0, 2.0, 8.0, -8.0])
    got = _grad(whetstone_sigmoid, x, s)
    torch.testing.assert_close(got, torch.tensor(np_sigmoid_grad(x, s)), rtol=1e-10, atol=1e-300)
    # at x = 0: k σ(0)(1 − σ(0)) = k/4 = ln(2 + √3)/W
    assert math.isclose(float(got[0]), LN_2_SQRT3 / (1.0 - s + 0.001), rel_tol=1e-12)


def test_sigmoid_grad_clamp_end_convention() -> None:
    # s = 0: k = 5.262569018680586, and x = −40/k = −7.600850432177071 makes k·x = −40.0 exactly.
    # torch.clamp passes the gradient at the clamp end (inclusive): k σ(−40)(1 − σ(−40)) ≈
    # 5.2626 · 4.2484e−18 = 2.2357e−17; just outside (k·x = −40.00000000000001) it is exactly 0.
    k = 4.0 * LN_2_SQRT3 / 1.001
    x_end, x_out = -7.600850432177071, -7.600850432177073  # two floats apart
    assert x_end * k == -40.0 and x_out * k < -40.0
    x = np.array([x_end, x_out])
    got = _grad(whetstone_sigmoid, x, 0.0)
    torch.testing.assert_close(got[0], torch.tensor(2.2357e-17, dtype=F64), rtol=1e-4, atol=0)
    assert float(got[1]) == 0.0
    torch.testing.assert_close(got, torch.tensor(np_sigmoid_grad(x, 0.0)), rtol=1e-10, atol=0)


@pytest.mark.parametrize("fn", [whetstone_brelu, whetstone_sigmoid])
def test_full_sharpness_gradient_is_exactly_zero(fn) -> None:  # type: ignore[no-untyped-def]
    x = np.array([0.5, 0.0, -0.0, 1.0, 0.4999, -1.0, 2.0])
    assert torch.equal(_grad(fn, x, 1.0), torch.zeros(len(x), dtype=F64))


def test_threshold_ste_forward_and_backward() -> None:
    x = torch.tensor([0.0, 1.0, 0.5, -1e-7, 0.4999, 1.0000001, 3.0, -2.0], requires_grad=True)
    y = threshold_ste(x)
    # forward: [x ≥ 0.5]
    assert torch.equal(y.detach(), torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]))
    # backward: 1[0 ≤ x ≤ 1], both ends included, times the incoming gradient
    (y * torch.arange(1.0, 9.0)).sum().backward()
    assert torch.equal(x.grad, torch.tensor([1.0, 2.0, 3.0, 0.0, 5.0, 0.0, 0.0, 0.0]))


@settings(max_examples=50, deadline=None)
@given(xs=st.lists(st.floats(-2.0, 3.0, allow_nan=False, width=32), min_size=1, max_size=16))
@example(xs=[0.0, 0.5, 1.0, -1e-7])
def test_threshold_ste_property(xs: list[float]) -> None:
    x = torch.tensor(xs, requires_grad=True)
    y = threshold_ste(x)
    a = np.array(xs, dtype=np.float32)
    assert torch.equal(y.detach(), torch.tensor((a >= 0.5).astype(np.float32)))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor(((a >= 0) & (a <= 1)).astype(np.float32)))


# ---- noisy bounded ReLU -----------------------------------------------------------------------


def test_noisy_relu_noise_bounds_and_mean() -> None:
    torch.manual_seed(0)
    m = NoisyReLU().train()
    m.noise_range.fill_(0.4)
    x = torch.full((200_000,), 0.5)
    y = m(x)
    # n ∈ [−0.2, 0.2): y ∈ [0.3, 0.7], and the whole range is used
    assert float(y.min()) >= 0.3 - 1e-7 and float(y.max()) <= 0.7 + 1e-7
    assert float(y.min()) < 0.301 and float(y.max()) > 0.699
    # no clipping here, so E[y] = x; std of the mean = 0.4/√12/√2e5 ≈ 2.6e−4
    assert abs(float(y.mean()) - 0.5) < 2e-3
    assert len(torch.unique(y)) > 1000  # independent noise per element
    # clipping: x = 0.05 with r = 0.4 gives y ∈ [0, 0.25], never below 0
    y = m(torch.full((50_000,), 0.05))
    assert float(y.min()) == 0.0 and float(y.max()) <= 0.25 + 1e-7


def test_noisy_relu_eval_and_zero_range_are_plain_clip() -> None:
    x = torch.linspace(-1.5, 2.5, 401)
    m = NoisyReLU()
    m.noise_range.fill_(0.6)
    assert torch.equal(m.eval()(x), x.clamp(0.0, 1.0))
    m.noise_range.fill_(0.0)
    assert torch.equal(m.train()(x), x.clamp(0.0, 1.0))
    assert torch.equal(noisy_bounded_relu(x, 0.0), x.clamp(0.0, 1.0))


def test_noisy_relu_threshold_mode_is_the_ste() -> None:
    m = NoisyReLU().train()
    m.noise_range.fill_(0.5)
    m.binary.fill_(True)
    assert m.is_binary()
    x = torch.tensor([0.0, 0.5, 0.4999, 1.0, 1.5, -0.5], requires_grad=True)
    y = m(x)
    assert torch.equal(y.detach(), torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 0.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0]))


def test_noisy_relu_noise_is_made_on_the_input_device() -> None:
    # The noise must live where x lives (a CUDA model must not add a CPU tensor). The meta
    # device shows this without a GPU: the result must be a meta tensor of x's shape.
    x = torch.empty(3, 4, device="meta")
    y = noisy_bounded_relu(x, 0.5)
    assert y.device.type == "meta" and y.shape == (3, 4)


def test_noisy_relu_generator_makes_noise_reproducible() -> None:
    x = torch.full((64,), 0.5)
    a = noisy_bounded_relu(x, 0.3, torch.Generator().manual_seed(5))
    b = noisy_bounded_relu(x, 0.3, torch.Generator().manual_seed(5))
    c = noisy_bounded_relu(x, 0.3, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---- fully_binary -----------------------------------------------------------------------------


def _mixed_model() -> nn.Sequential:
    return _model(
        [
            {"type": "linear", "out_features": 16},
            {"type": "whetstone"},
            {"type": "linear", "out_features": 12},
            {"type": "noisy_relu"},
            {"type": "linear", "out_features": 8},
            {"type": "whetstone", "variant": "sigmoid"},
        ],
        (10,),
    )


def test_fully_binary_makes_every_activation_a_step() -> None:
    torch.manual_seed(1)
    model = _mixed_model().train()
    acts = binary_activations(model)
    assert [n for n, _ in acts] == ["spike0", "spike1", "spike2"]
    acts[1][1].noise_range.fill_(0.5)  # type: ignore[union-attr]
    seen: list[tuple[torch.Tensor, torch.Tensor, float]] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append((i[0], o, m.threshold)))
        for _, m in acts
    ]
    x = torch.randn(32, 10)
    with fully_binary(model):
        assert all(m.forced_binary and not m.is_binary() for _, m in acts)
        model(x)
    assert len(seen) == 3
    for pre, out, theta in seen:
        assert torch.equal(out, step(pre, theta))
        assert 0 < float(out.mean()) < 1
    assert [m.threshold for _, m in acts] == [0.5, 0.5, 0.0]
    # outside the block the soft activations are back
    seen.clear()
    model(x)
    assert not torch.equal(seen[0][1], step(seen[0][0], 0.5))
    for h in hooks:
        h.remove()


def test_fully_binary_restores_previous_state_even_on_exception() -> None:
    model = _mixed_model()
    acts = [m for _, m in binary_activations(model)]
    acts[2].forced_binary = True  # already forced before the block: stays forced after
    with pytest.raises(RuntimeError, match="boom"):
        with fully_binary(model):
            assert all(m.forced_binary for m in acts)
            raise RuntimeError("boom")
    assert [m.forced_binary for m in acts] == [False, False, True]
    with fully_binary(model):
        pass
    assert [m.forced_binary for m in acts] == [False, False, True]
    # forced_binary is not state: it never reaches the state dict
    assert not any("forced" in k for k in model.state_dict())


# ---- a fully sharpened Whetstone network ----------------------------------------------------


def test_sharpened_whetstone_network_is_binary_at_every_layer() -> None:
    torch.manual_seed(2)
    model = _model(
        [
            {"type": "linear", "out_features": 20},
            {"type": "whetstone"},
            {"type": "linear", "out_features": 16},
            {"type": "whetstone", "variant": "sigmoid"},
            {"type": "linear", "out_features": 8},
            {"type": "whetstone"},
        ],
        (12,),
    )
    acts = [m for _, m in binary_activations(model)]
    outs: list[torch.Tensor] = []
    for m in acts:
        m.register_forward_hook(lambda m, i, o: outs.append(o))
    x = torch.randn(256, 12) * 2

    def all_binary() -> bool:
        outs.clear()
        model(x)
        return len(outs) == 3 and all(bool(((o == 0) | (o == 1)).all()) for o in outs)

    for m in acts:
        m.sharpness.fill_(0.99)  # nearly sharp is not binary yet
    assert not all_binary()
    for m in acts:
        m.sharpness.fill_(1.0)
    assert all(m.is_binary() for m in acts)
    assert all_binary()
    assert all(0 < float(o.mean()) < 1 for o in outs)  # neither all silent nor all firing


def test_sharpness_is_saved_in_state_dict() -> None:
    model = _model([{"type": "linear", "out_features": 4}, {"type": "whetstone"}], (3,))
    model.spike0.sharpness.fill_(0.75)
    sd = model.state_dict()
    assert float(sd["spike0.sharpness"]) == 0.75
    other = _model([{"type": "linear", "out_features": 4}, {"type": "whetstone"}], (3,))
    assert float(other.spike0.sharpness) == 0.0
    other.load_state_dict(sd)
    assert float(other.spike0.sharpness) == 0.75
    noisy = NoisyReLU()
    assert set(noisy.state_dict()) == {"noise_range", "binary"}


def test_whetstone_module_follows_its_buffer() -> None:
    w = Whetstone()
    x = torch.tensor([0.25, 0.5, 0.5001, 0.75])
    w.sharpness.fill_(0.5)
    assert torch.equal(w(x), whetstone_brelu(x, float(w.sharpness)))
    w.sharpness.fill_(1.0)
    assert torch.equal(w(x), torch.tensor([0.0, 1.0, 1.0, 1.0]))
    sig = Whetstone("sigmoid")
    sig.sharpness.fill_(1.0)
    assert torch.equal(sig(torch.tensor([-1e-6, 0.0, 0.3])), torch.tensor([0.0, 1.0, 1.0]))

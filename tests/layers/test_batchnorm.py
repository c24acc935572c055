"""Batch norm with the explicit two-op inference formula ``x · scale + shift``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neurocore.config import validate_recipe
from neurocore.layers import build_model
from neurocore.layers.batchnorm import BatchNorm1d, BatchNorm2d

CASES = [
    (BatchNorm1d, nn.BatchNorm1d, (16, 5)),
    (BatchNorm1d, nn.BatchNorm1d, (16, 5, 7)),  # (N, C, L)
    (BatchNorm2d, nn.BatchNorm2d, (8, 5, 4, 6)),
]


def _randomise(bn: nn.modules.batchnorm._BatchNorm, g: torch.Generator) -> None:
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=g) * 3)
        bn.running_var.copy_(torch.rand(c, generator=g) * 4 + 1e-3)
        if bn.weight is not None:
            w = torch.randn(c, generator=g) * 2
            w[0] = 0.0  # γ exactly 0
            w[1] = -abs(float(w[1])) - 0.5  # γ negative
            bn.weight.copy_(w)
            bn.bias.copy_(torch.randn(c, generator=g))


def _two_ops(x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """The inference formula written out: scale = γ·rsqrt(var + ε), shift = β − μ·scale."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = bn.weight.detach() * scale
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach()
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return x * scale.view(shape) + shift.view(shape)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize(("mine", "ref", "shape"), CASES)
def test_eval_is_two_ops_and_close_to_torch(mine, ref, shape, affine: bool) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(0)
    bn = mine(5, affine=affine)
    _randomise(bn, g)
    bn.eval()
    x = torch.randn(shape, generator=g) * 4
    y = bn(x)
    # exactly the explicit formula ...
    assert torch.equal(y, _two_ops(x, bn))
    # ... which is torch's eval batch norm up to rounding (it fuses differently)
    want = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    torch.testing.assert_close(y, want, rtol=1e-6, atol=1e-6)
    # and element-wise: a value gives the same output wherever it sits in the tensor
    flipped = bn(x.flip(0)).flip(0)
    assert torch.equal(flipped, y)


@pytest.mark.parametrize(("mine", "ref", "shape"), CASES)
def test_training_mode_is_torch_batch_norm_exactly(mine, ref, shape) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(1)
    a, b = mine(5, momentum=0.3), ref(5, momentum=0.3)
    _randomise(a, g)
    b.load_state_dict(a.state_dict())
    a.train()
    b.train()
    for _ in range(3):
        x = torch.randn(shape, generator=g) * 2 + 1
        assert torch.equal(a(x), b(x))
    assert torch.equal(a.running_mean, b.running_mean)
    assert torch.equal(a.running_var, b.running_var)
    assert int(a.num_batches_tracked) == 3


def test_eval_affine_by_hand() -> None:
    bn = BatchNorm1d(2, eps=0.0)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, -1.0]))
        bn.bias.copy_(torch.tensor([0.5, 1.0]))
        bn.running_mean.copy_(torch.tensor([1.0, -2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25]))
    scale, shift = bn.eval_affine()
    # scale = γ/√var = (2/2, −1/0.5) = (1, −2); shift = β − μ·scale = (0.5 − 1, 1 − (−2)(−2))
    assert torch.equal(scale, torch.tensor([1.0, -2.0]))
    assert torch.equal(shift, torch.tensor([-0.5, -3.0]))
    # x = (3, 1): (3·1 − 0.5, 1·(−2) − 3) = (2.5, −5); x = (0, −2): (−0.5, 1)
    bn.eval()
    assert torch.equal(
        bn(torch.tensor([[3.0, 1.0], [0.0, -2.0]])), torch.tensor([[2.5, -5.0], [-0.5, 1.0]])
    )


def test_eval_affine_default_eps_and_zero_gamma() -> None:
    bn = BatchNorm2d(2)  # ε = 1e−5
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.0, 3.0]))
        bn.bias.copy_(torch.tensor([0.25, 0.0]))
        bn.running_mean.copy_(torch.tensor([5.0, 1.0]))
        bn.running_var.copy_(torch.tensor([1.0, 1.0 - 1e-5]))
    scale, shift = bn.eval_affine()
    # γ = 0: scale exactly 0 and shift exactly β; channel 1: 3/√(1 − 1e−5 + 1e−5) ≈ 3, shift ≈ −3
    assert float(scale[0]) == 0.0 and float(shift[0]) == 0.25
    torch.testing.assert_close(scale[1], torch.tensor(3.0), rtol=1e-6, atol=0)
    torch.testing.assert_close(shift[1], torch.tensor(-3.0), rtol=1e-6, atol=0)
    bn.eval()
    y = bn(torch.randn(2, 2, 3, 3))
    assert torch.equal(y[:, 0], torch.full((2, 3, 3), 0.25))


@settings(max_examples=40, deadline=None)
@given(
    gamma=st.floats(-8, 8, width=32),
    beta=st.floats(-8, 8, width=32),
    mean=st.floats(-8, 8, width=32),
    var=st.floats(0, 16, width=32),
    xs=st.lists(st.floats(-20, 20, width=32), min_size=1, max_size=8),
)
def test_eval_single_channel_property(gamma, beta, mean, var, xs) -> None:  # type: ignore[no-untyped-def]
    bn = BatchNorm1d(1)
    with torch.no_grad():
        bn.weight.fill_(gamma)
        bn.bias.fill_(beta)
        bn.running_mean.fill_(mean)
        bn.running_var.fill_(var)
    bn.eval()
    x = torch.tensor(xs)[:, None]
    scale = torch.tensor(gamma) * torch.rsqrt(torch.tensor(var) + 1e-5)
    shift = torch.tensor(beta) - torch.tensor(mean) * scale
    assert torch.equal(bn(x), x * scale + shift)


def test_recipe_batchnorm_uses_the_explicit_classes() -> None:
    r = validate_recipe(
        {
            "name": "t",
            "model": {
                "layers": [
                    {"type": "conv2d", "out_channels": 3, "kernel_size": 3},
                    {"type": "batchnorm", "eps": 1e-3, "momentum": 0.5},
                    {"type": "flatten"},
                    {"type": "linear", "out_features": 4},
                    {"type": "batchnorm", "affine": False},
                ]
            },
        },
        "t.yaml",
    )
    model = build_model(list(r.model.layers), (1, 5, 5))
    assert type(model.bn0) is BatchNorm2d and type(model.bn1) is BatchNorm1d
    assert model.bn0.eps == 1e-3 and model.bn0.momentum == 0.5
    assert model.bn1.weight is None and model.bn1.bias is None

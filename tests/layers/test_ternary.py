from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurocore.analysis.inspect import inspect_model
from neurocore.layers.ternary import TernaryConv2d, TernaryLinear, ternarize


def test_ternarize_golden_and_gradient() -> None:
    w = torch.tensor([-2.0, -1.0, -0.51, -0.5, -0.49, 0.0, 0.49, 0.5, 0.51, 1.0, 1.5], requires_grad=True)
    q = ternarize(w)
    # round half to even: ±0.5 -> 0 (torch.round), ±0.51 -> ±1
    assert q.tolist() == [-1, -1, -1, 0, 0, 0, 0, 0, 1, 1, 1]
    q.sum().backward()
    expected = (np.abs(w.detach().numpy()) <= 1.0).astype(np.float32)  # straight-through in [-1, 1]
    assert np.array_equal(w.grad.numpy(), expected)


def test_linear_groups_and_int_view() -> None:
    torch.manual_seed(0)
    m = TernaryLinear(6, 4, groups=2)
    ints = m.to_int()
    assert ints.dtype == torch.int8 and set(ints.unique().tolist()) <= {-1, 0, 1}
    assert torch.equal(ints[:2, 3:], torch.zeros(2, 3, dtype=torch.int8))  # off-block zero
    assert torch.equal(ints[2:, :3], torch.zeros(2, 3, dtype=torch.int8))
    x = torch.randn(5, 6)
    assert torch.equal(m(x), F.linear(x, ints.float()))
    with pytest.raises(ValueError, match="groups=4 must divide in_features=6"):
        TernaryLinear(6, 4, groups=4)


@pytest.mark.parametrize(
    ("ours", "torch_layer"),
    [
        (lambda: TernaryLinear(5, 3, quantize=False), lambda: nn.Linear(5, 3, bias=False)),
        (lambda: TernaryConv2d(2, 4, 3, stride=2, padding=1, quantize=False),
         lambda: nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False)),
    ],
)
def test_unquantized_equals_torch_layer(ours, torch_layer) -> None:  # type: ignore[no-untyped-def]
    a, b = ours(), torch_layer()
    b.weight.data.copy_(a.weight.data)
    x = torch.randn(2, 5) if isinstance(b, nn.Linear) else torch.randn(2, 2, 7, 7)
    assert torch.equal(a(x), b(x))


def test_conv_quantized_uses_ints() -> None:
    torch.manual_seed(1)
    m = TernaryConv2d(4, 6, 3, padding=1, groups=2)
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(m(x), F.conv2d(x, m.to_int().float(), None, 1, 1, 1, 2))


def test_inspect_sees_two_bit_weights_and_group_fan_in() -> None:
    model = nn.Sequential(TernaryLinear(8, 4, groups=2))
    insp = inspect_model(model, (8,))
    assert insp.params[0].bits == 2 and insp.total_param_bits == 64
    assert insp.total_macs == 4 * 4  # 4 outputs x fan-in 8/2

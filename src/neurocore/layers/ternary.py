"""Trinary-weight layers for neurosynaptic hardware (Esser et al. 2016, Eedn).

A latent float weight w is kept for training; the forward pass uses

    q(w) = round(clip(w, −1, 1)) ∈ {−1, 0, +1}      (|w| ≥ 0.5 ↦ ±1, else 0)

with the straight-through gradient ∂q/∂w = 1[|w| ≤ 1]. After every optimizer step the trainer
calls ``neurocore_constrain()``, which clips the latent weights back to [−1, 1] (BinaryConnect,
Courbariaux et al. 2015): a latent weight pushed past ±1 would otherwise get no gradient again
and stay frozen at ±1 for the rest of training. ``to_int()`` gives the integer weights
that the core compiler reads (the Brevitas habit: hardware code never re-derives rounding).
There is no bias: the batch norm that follows is folded into an integer threshold.

``groups`` splits inputs and outputs into blocks so that every neuron's fan-in fits what a core
takes (128 distinct inputs in the Eedn mapping): block-diagonal dense layers, grouped
convolutions. With the quantizer switched off (``quantize=False``) the layers equal nn.Linear /
nn.Conv2d without bias.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from neurocore.analysis.inspect import LayerCost
from neurocore.layers.registry import LayerSpec, register_layer
from neurocore.layers.standard import ConvOptions, features


class _TernarySTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return torch.round(torch.clamp(w, -1.0, 1.0))

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (w,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad * (w.abs() <= 1.0).to(grad.dtype)


def ternarize(w: torch.Tensor) -> torch.Tensor:
    """q(w) = round(clip(w, −1, 1)) with a straight-through gradient."""
    out: torch.Tensor = _TernarySTE.apply(w)
    return out


class TernaryLinear(nn.Linear):
    """nn.Linear's signature (no bias) plus ``groups`` (block-diagonal weights)."""

    mask: torch.Tensor

    def __init__(self, in_features: int, out_features: int, groups: int = 1,
                 quantize: bool = True) -> None:
        if in_features % groups or out_features % groups:
            raise ValueError(
                f"groups={groups} must divide in_features={in_features} and "
                f"out_features={out_features}"
            )
        super().__init__(in_features, out_features, bias=False)
        self.groups = groups
        self.quantize = quantize
        block = torch.ones(out_features // groups, in_features // groups)
        mask = torch.block_diag(*[block] * groups)  # (out, in)
        self.register_buffer("mask", mask)
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def effective_weight(self) -> torch.Tensor:
        w = ternarize(self.weight) if self.quantize else self.weight
        return w * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight())

    @torch.no_grad()
    def neurocore_constrain(self) -> None:
        """Clip the latent weights to [−1, 1] (called after every optimizer step)."""
        self.weight.clamp_(-1.0, 1.0)

    def to_int(self) -> torch.Tensor:
        """The trinary weights as int8, (out, in), zero outside the groups' blocks."""
        return (torch.round(torch.clamp(self.weight.detach(), -1, 1)) * self.mask).to(torch.int8)

    def neurocore_param_bits(self) -> dict[str, int]:
        return {"weight": 2 if self.quantize else 32}

    def neurocore_cost(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> LayerCost:
        rows = output.numel() // self.out_features
        fan_in = self.in_features // self.groups
        return LayerCost(macs=rows * self.out_features * fan_in)


class TernaryConv2d(nn.Conv2d):
    """nn.Conv2d's signature (no bias, no dilation) with trinary weights."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, quantize: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups=groups,
                         bias=False)
        self.quantize = quantize
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = ternarize(self.weight) if self.quantize else self.weight
        return self._conv_forward(x, w, None)

    @torch.no_grad()
    def neurocore_constrain(self) -> None:
        """Clip the latent weights to [−1, 1] (called after every optimizer step)."""
        self.weight.clamp_(-1.0, 1.0)

    def to_int(self) -> torch.Tensor:
        return torch.round(torch.clamp(self.weight.detach(), -1, 1)).to(torch.int8)

    def neurocore_param_bits(self) -> dict[str, int]:
        return {"weight": 2 if self.quantize else 32}


@register_layer
class TernaryLinearSpec(LayerSpec):
    type: Literal["ternary_linear"] = "ternary_linear"
    prefix = "fc"
    out_features: int = Field(gt=0)
    groups: int = Field(default=1, gt=0)

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return TernaryLinear(features(in_shape, self.type), self.out_features, self.groups)


@register_layer
class TernaryConv2dSpec(ConvOptions):
    type: Literal["ternary_conv2d"] = "ternary_conv2d"

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return TernaryConv2d(self.in_channels(in_shape), self.out_channels, self.kernel_size,
                             self.stride, self.padding, self.groups)

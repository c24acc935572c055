"""Batch norm with an explicit inference formula.

In eval mode ``y = x · scale + shift`` per channel, computed as two separate element-wise torch
operations, with

    scale = γ / √(running_var + ε),    shift = β − running_mean · scale.

Each operation is a single correctly rounded IEEE step, so the result for a given (value,
channel) is the same wherever it sits in a tensor. That makes ``BN → threshold`` a monotone
function of one float, whose exact switching point :mod:`neurocore.hardware.fold` can find:
folding is then exact, not merely close. Training mode is torch's own batch norm.
"""

from __future__ import annotations

import torch
from torch import nn


class _ExplicitEval:
    """Mixin over torch's batch norm classes."""

    def eval_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(scale, shift)`` of the inference formula, float32."""
        bn: nn.modules.batchnorm._BatchNorm = self  # type: ignore[assignment]
        assert bn.running_var is not None and bn.running_mean is not None
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = bn.weight.detach() * scale
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = bn.bias.detach() + shift
        return scale, shift

    def _explicit(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.eval_affine()
        shape = (1, -1) + (1,) * (x.dim() - 2)  # (1, C) or (1, C, 1, 1)
        return x * scale.view(shape) + shift.view(shape)


class BatchNorm1d(_ExplicitEval, nn.BatchNorm1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.running_mean is None:
            return super().forward(x)
        return self._explicit(x)


class BatchNorm2d(_ExplicitEval, nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.running_mean is None:
            return super().forward(x)
        return self._explicit(x)

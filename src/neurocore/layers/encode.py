"""Input transduction: pixels to spikes.

Thermometer coding turns each input channel with values in [0, 1] into ``levels`` binary
channels, channel k firing when the value reaches (k + 1)/(levels + 1):

    (C, H, W) ↦ (C · levels, H, W),  out[c · levels + k] = [x[c] ≥ (k + 1)/(levels + 1)]

The hardware's input spikes are made by this same function, so the model and the chip see the
same bits.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from neurocore.layers.registry import LayerSpec, register_layer


def thermometer(x: torch.Tensor, levels: int) -> torch.Tensor:
    """(B, C, H, W) floats in [0, 1] -> (B, C·levels, H, W) 0/1 floats."""
    t = torch.arange(1, levels + 1, dtype=x.dtype, device=x.device) / (levels + 1)
    bits = x.unsqueeze(2) >= t.view(1, 1, levels, 1, 1)  # (B, C, L, H, W)
    return bits.flatten(1, 2).to(x.dtype)


class Thermometer(nn.Module):
    def __init__(self, levels: int) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return thermometer(x, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


@register_layer
class ThermometerSpec(LayerSpec):
    type: Literal["thermometer"] = "thermometer"
    prefix = "therm"
    levels: int = Field(default=3, gt=0)

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        if len(in_shape) != 3:
            raise ValueError(f"thermometer needs a (C, H, W) input, got {in_shape}")
        return Thermometer(self.levels)

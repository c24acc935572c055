"""N-hot output coding (Whetstone): the last layer is binary too.

Each class c owns an N-hot key row K[c] ∈ {0, 1}^width. A binary output vector x is decoded to
class scores with

    logits = (2x − 1) · (2Kᵀ − 1)

(softmax of these is Whetstone's decode; the trainer's cross-entropy applies it). A class scores
+1 for each of its key units that fired and each non-key unit that stayed silent, −1 otherwise,
so on hardware the prediction is a count of agreeing spikes.

Keys are disjoint — in blocks (class c owns units [cN, (c+1)N)) or interleaved (class c owns
units c, c + classes, c + 2·classes, ...) — or overlapping (N units per class drawn without
replacement for each class by a seeded generator, so rows may share units). Interleaving matters
when the output layer is grouped: a group of consecutive units then holds units of every class,
so every class reads every group's inputs instead of the one or two groups its block falls in.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from neurocore.layers.registry import LayerSpec, register_layer


def nhot_key(
    classes: int, width: int, hot: int, overlapping: bool, seed: int = 0,
    interleaved: bool = False,
) -> torch.Tensor:
    """A (classes, width) 0/1 key with ``hot`` ones per row (module doc for the layouts)."""
    if hot < 1 or hot > width:
        raise ValueError(f"hot={hot} must be between 1 and the output width {width}")
    if overlapping and interleaved:
        raise ValueError("a key is either overlapping or interleaved, not both")
    key = torch.zeros(classes, width)
    if not overlapping:
        if classes * hot > width:
            raise ValueError(
                f"disjoint keys need classes × hot = {classes * hot} output units, "
                f"the layer has {width}"
            )
        for c in range(classes):
            if interleaved:
                key[c, c : classes * hot : classes] = 1.0
            else:
                key[c, c * hot : (c + 1) * hot] = 1.0
        return key
    g = torch.Generator().manual_seed(seed)
    for c in range(classes):
        key[c, torch.randperm(width, generator=g)[:hot]] = 1.0
    if len({tuple(r.tolist()) for r in key}) < classes:
        raise ValueError(f"overlapping key with seed {seed} gave two equal rows; pick another seed")
    return key


def nhot_decode(x: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """``(2x − 1) · (2Kᵀ − 1)``: (B, width) outputs to (B, classes) scores."""
    return (2.0 * x - 1.0) @ (2.0 * key.t() - 1.0)


class NHotDecode(nn.Module):
    key: torch.Tensor

    def __init__(self, key: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("key", key.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nhot_decode(x, self.key)  # (B, classes)


@register_layer
class NHotDecodeSpec(LayerSpec):
    type: Literal["nhot_decode"] = "nhot_decode"
    prefix = "decode"
    classes: int = Field(gt=1)
    hot: int = Field(gt=0)
    overlapping: bool = False
    interleaved: bool = False
    seed: int = 0

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        if len(in_shape) != 1:
            raise ValueError(f"nhot_decode needs a flat (width,) input, got {in_shape}")
        key = nhot_key(self.classes, in_shape[0], self.hot, self.overlapping, self.seed,
                       self.interleaved)
        return NHotDecode(key)

"""Ordinary torch layers as registered recipe layer types."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from neurocore.layers.batchnorm import BatchNorm1d, BatchNorm2d
from neurocore.layers.registry import LayerSpec, register_layer


def _channels(in_shape: tuple[int, ...], layer: str) -> int:
    if len(in_shape) != 3:
        raise ValueError(f"{layer} needs a (C, H, W) input, got {in_shape}")
    return in_shape[0]


def features(in_shape: tuple[int, ...], layer: str) -> int:
    if len(in_shape) != 1:
        raise ValueError(f"{layer} needs a flat (F,) input (add a flatten layer), got {in_shape}")
    return in_shape[0]


@register_layer
class LinearSpec(LayerSpec):
    type: Literal["linear"] = "linear"
    prefix = "fc"
    out_features: int = Field(gt=0)
    bias: bool = True

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return nn.Linear(features(in_shape, "linear"), self.out_features, bias=self.bias)


class ConvOptions(LayerSpec):
    """The options every 2-D convolution layer type shares (not a layer type itself)."""

    prefix = "conv"
    out_channels: int = Field(gt=0)
    kernel_size: int = Field(default=3, gt=0)
    stride: int = Field(default=1, gt=0)
    padding: int = Field(default=0, ge=0)
    groups: int = Field(default=1, gt=0)

    def in_channels(self, in_shape: tuple[int, ...]) -> int:
        """The input's channels, checked against ``groups``."""
        c = _channels(in_shape, self.type)
        if c % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide in_channels={c} and "
                f"out_channels={self.out_channels}"
            )
        return c


@register_layer
class Conv2dSpec(ConvOptions):
    type: Literal["conv2d"] = "conv2d"
    bias: bool = True

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        c = self.in_channels(in_shape)
        return nn.Conv2d(
            c, self.out_channels, self.kernel_size, self.stride, self.padding,
            groups=self.groups, bias=self.bias,
        )


@register_layer
class BatchNormSpec(LayerSpec):
    """Batch norm over channels (conv maps) or features (flat vectors), chosen by the input.

    Its inference formula is explicit (see :mod:`neurocore.layers.batchnorm`) so that folding it
    into thresholds is exact.
    """

    type: Literal["batchnorm"] = "batchnorm"
    prefix = "bn"
    eps: float = Field(default=1e-5, gt=0)
    momentum: float = Field(default=0.1, gt=0, le=1)
    affine: bool = True

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        if len(in_shape) == 3:
            return BatchNorm2d(in_shape[0], self.eps, self.momentum, self.affine)
        width = features(in_shape, "batchnorm")
        return BatchNorm1d(width, self.eps, self.momentum, self.affine)


@register_layer
class MaxPool2dSpec(LayerSpec):
    type: Literal["maxpool2d"] = "maxpool2d"
    prefix = "pool"
    kernel_size: int = Field(default=2, gt=0)
    stride: int | None = Field(default=None, gt=0)

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        _channels(in_shape, "maxpool2d")
        return nn.MaxPool2d(self.kernel_size, self.stride)


@register_layer
class AvgPool2dSpec(LayerSpec):
    type: Literal["avgpool2d"] = "avgpool2d"
    prefix = "avgpool"
    kernel_size: int = Field(default=2, gt=0)
    stride: int | None = Field(default=None, gt=0)

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        _channels(in_shape, "avgpool2d")
        return nn.AvgPool2d(self.kernel_size, self.stride)


@register_layer
class FlattenSpec(LayerSpec):
    type: Literal["flatten"] = "flatten"
    prefix = "flatten"

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return nn.Flatten()


@register_layer
class DropoutSpec(LayerSpec):
    type: Literal["dropout"] = "dropout"
    prefix = "drop"
    p: float = Field(default=0.5, ge=0, lt=1)

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return nn.Dropout2d(self.p) if len(in_shape) == 3 else nn.Dropout(self.p)

"""Rate (non-spiking) neuron nonlinearities as recipe layer types."""

from __future__ import annotations

from typing import Literal

from torch import nn

from neurocore.layers.registry import LayerSpec, register_layer


@register_layer
class ReLUSpec(LayerSpec):
    type: Literal["relu"] = "relu"
    prefix = "relu"

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return nn.ReLU()


@register_layer
class SigmoidSpec(LayerSpec):
    type: Literal["sigmoid"] = "sigmoid"
    prefix = "sigmoid"

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return nn.Sigmoid()


@register_layer
class TanhSpec(LayerSpec):
    type: Literal["tanh"] = "tanh"
    prefix = "tanh"

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return nn.Tanh()

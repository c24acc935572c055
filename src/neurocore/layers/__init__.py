"""Layers: the registry of recipe layer types and the model builder.

Importing this package registers every built-in layer type, including the neuron models of
:mod:`neurocore.neurons`.
"""

import neurocore.neurons.activations  # noqa: F401,E402  (registers relu, sigmoid, ...)
from neurocore.layers import standard  # noqa: F401  (registers linear, conv2d, ...)
from neurocore.layers.registry import LAYER_TYPES, LayerSpec, build_model, register_layer

__all__ = ["LAYER_TYPES", "LayerSpec", "build_model", "register_layer"]

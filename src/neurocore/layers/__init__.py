"""Layers: the registry of recipe layer types and the model builder.

Importing this package registers every built-in layer type, including the neuron models of
:mod:`neurocore.neurons`. A new layer module is added to the imports below.
"""

from neurocore.layers import (  # noqa: F401  (register layer types)
    batchnorm,
    circulant,
    encode,
    ldr,
    output,
    standard,
    ternary,
)
from neurocore.layers.circulant import (
    BlockCirculantConv2d,
    BlockCirculantLinear,
    nearest_block_circulant,
    relative_residual,
)
from neurocore.layers.ldr import LDRLinear, ToeplitzLikeLinear
from neurocore.layers.registry import LAYER_TYPES, LayerSpec, build_model, register_layer
from neurocore.neurons import activations, binary  # noqa: F401  (register neuron layer types)

__all__ = [
    "LAYER_TYPES",
    "BlockCirculantConv2d",
    "BlockCirculantLinear",
    "LDRLinear",
    "LayerSpec",
    "ToeplitzLikeLinear",
    "build_model",
    "nearest_block_circulant",
    "register_layer",
    "relative_residual",
]

"""The layer registry: recipe entries (``{type: conv2d, ...}``) to typed specs to modules.

A layer type is a pydantic model, subclass of :class:`LayerSpec`, with a ``type`` literal and the
layer's own options; it is registered next to its definition with :func:`register_layer` and knows
how to ``build`` its module from the input shape. Adding a layer type touches one file.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, TypeVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from neurocore.errors import RecipeError


class LayerSpec(BaseModel):
    """Base of every registered layer type. Unknown keys and wrong types are rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: str
    name: str | None = None  # module name in the model; default <type><k>

    # Short prefix for automatic names (conv0, fc1, ...); subclasses override.
    prefix: ClassVar[str] = "layer"

    @abstractmethod
    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        """The module for an input of ``in_shape`` (without the batch dimension)."""


LAYER_TYPES: dict[str, type[LayerSpec]] = {}

S = TypeVar("S", bound=type[LayerSpec])


def register_layer(cls: S) -> S:
    """Class decorator: make ``cls`` available to recipes under its ``type`` literal."""
    default = cls.__pydantic_fields__["type"].default
    if not isinstance(default, str):
        raise TypeError(f"{cls.__name__}.type needs a string default (its recipe name)")
    if default in LAYER_TYPES and LAYER_TYPES[default] is not cls:
        raise TypeError(f"layer type {default!r} registered twice")
    LAYER_TYPES[default] = cls
    return cls


def layer_class(type_name: Any, where: str) -> type[LayerSpec]:
    if not isinstance(type_name, str) or type_name not in LAYER_TYPES:
        known = ", ".join(sorted(LAYER_TYPES))
        raise RecipeError(f"{where}: unknown layer type {type_name!r} (known: {known})")
    return LAYER_TYPES[type_name]


def build_model(
    specs: list[LayerSpec], input_shape: tuple[int, ...], num_classes: int | None = None
) -> nn.Sequential:
    """Build the layers in order, checking each one's output shape on a zero example.

    A layer that cannot take its input (a kernel larger than the map, say) raises a RecipeError
    naming the layer and the shape it was given. When ``num_classes`` is given, the last output
    must be ``(num_classes,)``.
    """
    model = nn.Sequential()
    counts: dict[str, int] = {}
    shape = tuple(input_shape)
    x = torch.zeros(1, *shape)
    for i, spec in enumerate(specs):
        k = counts.get(spec.prefix, 0)
        counts[spec.prefix] = k + 1
        name = spec.name or f"{spec.prefix}{k}"
        if name in model._modules:
            raise RecipeError(f"model.layers.{i}: duplicate layer name {name!r}")
        try:
            module = spec.build(shape)
            module.eval()
            with torch.no_grad():
                x = module(x)
        except (RuntimeError, ValueError) as e:
            raise RecipeError(
                f"model.layers.{i} ({name}, {spec.type}): cannot take input of shape {shape}: {e}"
            ) from None
        module.train()
        model.add_module(name, module)
        shape = tuple(x.shape[1:])
    if num_classes is not None and shape != (num_classes,):
        raise RecipeError(
            f"model.layers: the last layer outputs shape {shape}, the data set has "
            f"{num_classes} classes: the output must be ({num_classes},)"
        )
    return model

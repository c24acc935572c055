from __future__ import annotations

import torch
from torch import nn

from neurocore.config import validate_recipe
from neurocore.layers import build_model


def test_activation_layers_equal_torch() -> None:
    x = torch.linspace(-3, 3, 13)
    for name, ref in (("relu", torch.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh)):
        recipe = validate_recipe({"name": "t", "model": {"layers": [{"type": name}]}}, "t.yaml")
        model = build_model(list(recipe.model.layers), (13,))
        assert isinstance(model[0], nn.Module)
        assert torch.equal(model(x[None])[0], ref(x))

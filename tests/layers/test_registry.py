from __future__ import annotations

import pytest
import torch
from torch import nn

from neurocore.config import validate_recipe
from neurocore.errors import RecipeError
from neurocore.layers import LAYER_TYPES, build_model


def _specs(*layers: dict) -> list:
    recipe = validate_recipe({"name": "t", "model": {"layers": list(layers)}}, "t.yaml")
    return list(recipe.model.layers)


def test_builtin_types_registered() -> None:
    assert {"linear", "conv2d", "batchnorm", "maxpool2d", "avgpool2d", "flatten", "dropout",
            "relu", "sigmoid", "tanh"} <= set(LAYER_TYPES)


def test_build_infers_input_sizes_and_names() -> None:
    specs = _specs(
        {"type": "conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1},
        {"type": "batchnorm"}, {"type": "relu"}, {"type": "maxpool2d"},
        {"type": "conv2d", "out_channels": 4, "groups": 2, "name": "grouped"},
        {"type": "flatten"}, {"type": "batchnorm"}, {"type": "dropout", "p": 0.2},
        {"type": "linear", "out_features": 10},
    )
    model = build_model(specs, (2, 8, 8), num_classes=10)
    assert list(model._modules) == [
        "conv0", "bn0", "relu0", "pool0", "grouped", "flatten0", "bn1", "drop0", "fc0"
    ]
    conv0 = model.conv0
    assert isinstance(conv0, nn.Conv2d) and conv0.in_channels == 2 and conv0.out_channels == 6
    assert isinstance(model.bn0, nn.BatchNorm2d) and isinstance(model.bn1, nn.BatchNorm1d)
    assert model.grouped.groups == 2 and model.grouped.in_channels == 6
    assert model.bn1.num_features == 4 * 2 * 2 and model.fc0.in_features == 16
    assert isinstance(model.drop0, nn.Dropout)
    assert model(torch.zeros(3, 2, 8, 8)).shape == (3, 10)
    assert model.training  # built in training mode


@pytest.mark.parametrize(
    ("layers", "shape", "message"),
    [
        ([{"type": "linear", "out_features": 10}], (1, 8, 8),
         r"model\.layers\.0 \(fc0, linear\): cannot take input of shape \(1, 8, 8\): linear needs a flat"),
        ([{"type": "conv2d", "out_channels": 4, "kernel_size": 9}], (1, 8, 8),
         r"model\.layers\.0 \(conv0, conv2d\): cannot take input of shape \(1, 8, 8\)"),
        ([{"type": "conv2d", "out_channels": 4, "groups": 3}], (6, 8, 8),
         r"groups=3 must divide in_channels=6 and out_channels=4"),
        ([{"type": "flatten"}, {"type": "linear", "out_features": 7}], (1, 2, 2),
         r"the last layer outputs shape \(7,\), the data set has 10 classes"),
        ([{"type": "relu", "name": "a"}, {"type": "relu", "name": "a"}], (4,),
         r"model\.layers\.1: duplicate layer name 'a'"),
    ],
)
def test_build_errors_name_the_layer(layers: list[dict], shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        build_model(_specs(*layers), shape, num_classes=10)

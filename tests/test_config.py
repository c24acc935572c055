"""Recipe validation: unknown keys, wrong types and bad overrides name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurocore.config import load_recipe, parse_override, recipe_to_yaml, validate_recipe
from neurocore.errors import RecipeError
from neurocore.layers.standard import Conv2dSpec

REPO = Path(__file__).resolve().parents[1]

GOOD = """
name: t
seed: 3
data: {dataset: digits, batch_size: 16}
model:
  layers:
    - {type: conv2d, out_channels: 4}
    - {type: flatten}
    - {type: linear, out_features: 10}
train:
  epochs: 2
  optimizer: {name: sgd, lr: 0.1}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_good_recipe_is_typed(tmp_path: Path) -> None:
    r = load_recipe(write(tmp_path, GOOD))
    assert r.seed == 3 and r.train.epochs == 2 and r.train.optimizer.name == "sgd"
    assert isinstance(r.model.layers[0], Conv2dSpec) and r.model.layers[0].out_channels == 4
    assert r.train.optimizer.lr == 0.1 and r.data.batch_size == 16


def test_yaml_round_trip(tmp_path: Path) -> None:
    r = load_recipe(write(tmp_path, GOOD))
    again = load_recipe(write(tmp_path, recipe_to_yaml(r)))
    assert again == r


def test_every_shipped_recipe_validates() -> None:
    recipes = sorted((REPO / "recipes").glob("*.yaml"))
    assert recipes, "no recipes found"
    for path in recipes:
        load_recipe(path)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("train:\n  epochs: 2", "train:\n  epochz: 2"), r"train\.epochz: unknown key \(allowed: epochs,"),
        (("epochs: 2", "epochs: '2'"), r"train\.epochs: Input should be a valid integer \(got '2'\)"),
        (("epochs: 2", "epochs: 2.5"), r"train\.epochs: Input should be a valid integer"),
        (("name: sgd", "name: rmsprop"), r"train\.optimizer\.name: Input should be 'sgd', 'adam', 'adamw' or 'adadelta'"),
        (("out_channels: 4", "out_channels: 4, kernal_size: 3"), r"model\.layers\.0\.kernal_size: unknown key \(allowed: name, out_channels, kernel_size"),
        (("type: flatten", "type: flaten"), r"model\.layers\.1: unknown layer type 'flaten' \(known: .*flatten"),
        (("batch_size: 16", "batch_size: 0"), r"data\.batch_size: Input should be greater than 0"),
        (("seed: 3", "seed: 3\nextra_section: {}"), r"extra_section: unknown key"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    assert edit[0] in GOOD
    path = write(tmp_path, GOOD.replace(edit[0], edit[1]))
    with pytest.raises(RecipeError, match=expected) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}: invalid recipe")


def test_all_problems_listed_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("type: flatten", "type: flaten").replace("epochs: 2", "epochs: x")
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, text))
    msg = str(info.value)
    assert "model.layers.1: unknown layer type" in msg and "train.epochs:" in msg


def test_overrides_are_applied_and_checked(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    r = load_recipe(path, ["train.epochs=7", "train.optimizer.lr=0.5", "model.layers.0.out_channels=8"])
    assert r.train.epochs == 7 and r.train.optimizer.lr == 0.5 and r.model.layers[0].out_channels == 8
    with pytest.raises(RecipeError, match=r"train\.epochs: Input should be a valid integer \(got 'many'\)  \[from --set\]"):
        load_recipe(path, ["train.epochs=many"])
    with pytest.raises(RecipeError, match=r"train\.epochz: unknown key.*\[from --set\]"):
        load_recipe(path, ["train.epochz=3"])
    with pytest.raises(RecipeError, match=r"--set model\.layers\.9\.x=1: model\.layers\.9: expected an index below 3"):
        load_recipe(path, ["model.layers.9.x=1"])
    with pytest.raises(RecipeError, match=r"--set train: expected KEY=VALUE"):
        load_recipe(path, ["train"])


def test_override_value_is_yaml() -> None:
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=x:y") == (["a"], "x:y")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"nope\.yaml: recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match=r"r\.yaml: not valid YAML"):
        load_recipe(write(tmp_path, "a: [1, 2"))
    with pytest.raises(RecipeError, match=r"r\.yaml: a recipe is a mapping of sections, got list"):
        load_recipe(write(tmp_path, "- 1\n- 2\n"))


def test_missing_required() -> None:
    with pytest.raises(RecipeError, match=r"x\.yaml: invalid recipe\n  name: Field required"):
        validate_recipe({"model": {"layers": [{"type": "flatten"}]}}, "x.yaml")


def test_hardware_strategy_is_one_the_compiler_knows(tmp_path: Path) -> None:
    """The recipe's Literal lists exactly the compiler's strategies; others are refused."""
    from typing import get_args

    from neurocore.config import HardwareConfig
    from neurocore.hardware.compiler import STRATEGIES

    assert get_args(HardwareConfig.model_fields["strategy"].annotation) == STRATEGIES
    path = write(tmp_path, GOOD + "hardware: {strategy: shared-types}\n")
    hardware = load_recipe(path).hardware
    assert hardware is not None and hardware.strategy == "shared-types"
    with pytest.raises(RecipeError, match=r"hardware\.strategy: Input should be 'duplicate-axons' "
                                          r"or 'shared-types'"):
        load_recipe(path, ["hardware.strategy=shared"])

"""Recipes: YAML files validated into typed config.

A recipe is plain data. Every section is a pydantic model that forbids unknown keys and checks
types strictly (``epochs: "10"`` is an error, not a silent conversion). ``--set a.b=value``
overrides are applied to the raw data before validation, so they are checked the same way; an
error names the file (or the override) and the dotted key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError

from neurocore.errors import RecipeError
from neurocore.layers import LayerSpec
from neurocore.layers.registry import layer_class


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataConfig(Section):
    dataset: str = "digits"  # digits | mnist | cifar10 | idx:<dir>
    batch_size: int = Field(default=64, gt=0)
    eval_batch_size: int = Field(default=1000, gt=0)
    val_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)


class OptimizerConfig(Section):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)  # sgd only
    nesterov: bool = False  # sgd only


class ScheduleConfig(Section):
    """Learning rate as a pure function of the (fractional) epoch."""

    name: Literal["constant", "cosine", "step"] = "constant"
    warmup_epochs: float = Field(default=0.0, ge=0)
    min_lr: float = Field(default=0.0, ge=0)  # cosine floor
    milestones: list[int] = Field(default_factory=list)  # step: epochs where lr *= gamma
    gamma: float = Field(default=0.1, gt=0)


class TrainConfig(Section):
    epochs: int = Field(default=10, ge=0)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)


class ModelConfig(Section):
    layers: list[SerializeAsAny[LayerSpec]] = Field(min_length=1)


class Recipe(Section):
    name: str
    description: str = ""
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig
    train: TrainConfig = TrainConfig()


# --------------------------------------------------------------------------------------------
# Loading


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found") from None
    except OSError as e:
        raise RecipeError(f"{path}: cannot read recipe: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.optimizer.lr=0.01"`` -> (["train", "optimizer", "lr"], 0.01); value read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {text}: expected KEY=VALUE, e.g. train.epochs=5")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip().split("."), parsed


def apply_override(data: dict[str, Any], path: list[str], value: Any, source: str) -> None:
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        where = ".".join(path[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, where, source)]
        elif isinstance(node, dict):
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        else:
            raise RecipeError(f"{source}: {where} is not a section (it is {node!r})")
    last = path[-1]
    if isinstance(node, list):
        node[_list_index(node, last, ".".join(path), source)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise RecipeError(f"{source}: {'.'.join(path[:-1])} is not a section")


def _list_index(node: list[Any], part: str, where: str, source: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise RecipeError(f"{source}: {where}: expected an index below {len(node)}")
    return int(part)


def _format_errors(
    e: ValidationError, prefix: tuple[Any, ...], model: type[BaseModel]
) -> list[str]:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in (*prefix, *err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            allowed = _allowed_keys(model, err["loc"][:-1])
            if allowed:
                msg += f" (allowed: {', '.join(allowed)})"
        elif "input" in err and err["type"] != "missing":
            msg += f" (got {err['input']!r})"
        lines.append(f"{loc}: {msg}")
    return lines


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: type[BaseModel] = model
    for part in loc:
        if isinstance(part, int):
            continue
        ann = getattr(current.__pydantic_fields__.get(str(part)), "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        current = ann
    return [k for k in current.__pydantic_fields__ if k != "type"]


def validate_recipe(
    data: dict[str, Any], source: str, overridden: set[str] | None = None
) -> Recipe:
    """Validate raw recipe data; every problem is listed in one RecipeError naming its key."""
    data = copy.deepcopy(data)
    problems: list[str] = []
    layers = data.get("model", {}).get("layers") if isinstance(data.get("model"), dict) else None
    if isinstance(layers, list):
        typed: list[Any] = []
        for i, raw in enumerate(layers):
            where = f"model.layers.{i}"
            if not isinstance(raw, dict):
                problems.append(f"{where}: a layer is a mapping with a 'type' key, got {raw!r}")
                continue
            try:
                cls = layer_class(raw.get("type"), where)
                typed.append(cls.model_validate(raw))
            except RecipeError as err:
                problems.append(str(err))
            except ValidationError as err:
                problems.extend(_format_errors(err, ("model", "layers", i), cls))
        data["model"]["layers"] = typed
    layer_problems = bool(problems)
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as err:
        for line in _format_errors(err, (), Recipe):
            # Layer problems were reported above, entry by entry.
            if not (layer_problems and line.startswith("model.layers")):
                problems.append(line)
    if problems:
        overridden = overridden or set()
        marked = [
            p + ("  [from --set]" if p.split(":")[0] in overridden else "") for p in problems
        ]
        raise RecipeError(f"{source}: invalid recipe\n  " + "\n  ".join(marked))
    assert recipe is not None
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file, apply ``--set`` overrides, validate."""
    path = Path(path)
    data = read_yaml(path)
    overridden = set()
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(data, keys, value, f"--set {text}")
        overridden.add(".".join(keys))
    return validate_recipe(data, str(path), overridden)


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)

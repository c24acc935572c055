"""Recipes: YAML files validated into typed config.

A recipe is plain data. Every section is a pydantic model that forbids unknown keys and checks
types strictly (``epochs: "10"`` is an error, not a silent conversion). ``--set a.b=value``
overrides are applied to the raw data before validation, so they are checked the same way; an
error names the file (or the override) and the dotted key.
"""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

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
    shift: int = Field(default=0, ge=0)  # training only: random translation of up to N pixels


class OptimizerConfig(Section):
    name: Literal["sgd", "adam", "adamw", "adadelta"] = "adam"
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)  # sgd only
    nesterov: bool = False  # sgd only
    # adadelta only; Whetstone's own examples use lr 4.0, rho 0.95, eps 1e-8 (Keras)
    rho: float = Field(default=0.9, gt=0, lt=1)
    eps: float = Field(default=1e-6, gt=0)


class ScheduleConfig(Section):
    """Learning rate as a pure function of the (fractional) epoch."""

    name: Literal["constant", "cosine", "step"] = "constant"
    warmup_epochs: float = Field(default=0.0, ge=0)
    min_lr: float = Field(default=0.0, ge=0)  # cosine floor
    milestones: list[int] = Field(default_factory=list)  # step: epochs where lr *= gamma
    gamma: float = Field(default=0.1, gt=0)


class DistillConfig(Section):
    """Learn from a finished run's outputs too (:mod:`neurocore.training.distill`)."""

    teacher: str  # the teacher's run folder (config.yaml + model.safetensors)
    temperature: float = Field(default=4.0, gt=0)
    weight: float = Field(default=0.9, ge=0, le=1)  # of the soft term; 1 − weight: the labels'


class TrainConfig(Section):
    epochs: int = Field(default=10, ge=0)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    # the loss (training and validation) is taken of the model's outputs times this; predictions
    # (argmax) do not change. N-hot decodes give scores in [−width, width]: a scale near 1/hot
    # makes the cross-entropy ask for a margin of several output spikes (docs/benchmarks.md)
    logit_scale: float = Field(default=1.0, gt=0)
    # train conv layers in channels-last memory order (faster convolutions on CPU); weights are
    # put back in standard order before every evaluation and checkpoint
    channels_last: bool = False
    distill: DistillConfig | None = None


# ---- symmetric kernels (neurocore.training.symmetrize) -------------------------------------


class SymmetricConfig(Section):
    """Replace the ternary conv layers' kernels by their nearest symmetric kernels, bottom-up,
    one layer at a time, and freeze each one (Appuswamy et al. 2016). Layer k is projected at
    the start of the first epoch e ≥ earliest_k (earliest_0 = ``start_epoch``, then the previous
    projection's epoch + ``every``) at which validation accuracy has saturated — the best of the
    last ``patience`` epochs since the previous projection beats the best before them by no more
    than ``min_delta`` — and at epoch earliest_k + ``max_wait`` at the latest. ``patience: 0``
    gives the fixed schedule start_epoch, start_epoch + every, ..."""

    start_epoch: int = Field(default=1, ge=0)  # earliest epoch for the first projection
    every: int = Field(default=1, ge=1)  # epochs trained between two projections, at least
    patience: int = Field(default=0, ge=0)  # epochs without improvement that mean "saturated"
    min_delta: float = Field(default=0.0, ge=0)  # smaller accuracy gains do not count
    max_wait: int = Field(default=3, ge=0)  # epochs a layer waits for saturation, at most
    target: Literal["latent", "ternary"] = "latent"  # project clip(w, −1, 1) or round(clip(w))
    exclude: list[str] = Field(default_factory=list)  # ternary conv layers left unconstrained
    beam: int = Field(default=32, ge=1)  # nearest_symmetric's search width
    # after its projection a layer is frozen (the paper), or keeps its type pattern (ρ, σ, q)
    # and trains its strength tables f (tie), or trains f's signs and each entry's crossbar bit
    # (tie-masked) (neurocore.training.symmetrize, "Tying")
    after: Literal["freeze", "tie", "tie-masked"] = "freeze"


# ---- ADMM toward block-circulant weights (neurocore.training.admm) --------------------------


class AdmmConfig(Section):
    """Fine-tune dense layers toward block-circulant matrices of block ``block_size`` with ADMM,
    ready for ``neurocore convert``: a penalty ρ/2·‖W − Z + U‖² on each chosen layer's weight,
    ρ = ``rho`` · ``growth``^epoch, Z and U moved at the end of every epoch
    (neurocore.training.admm)."""

    block_size: int = Field(ge=1)
    # the layers to pull (names in the model); default: those neurocore convert would convert,
    # every linear / conv2d (groups 1) whose input and output sizes both reach block_size
    layers: list[str] | None = Field(default=None, min_length=1)
    rho: float = Field(default=1e-3, gt=0)  # the penalty weight in the first epoch
    growth: float = Field(default=1.6, ge=1)  # ρ is multiplied by this after every epoch


# ---- binary communication (neurocore.training.binarize) ------------------------------------


class SimpleSharpening(Section):
    """One step of 1/(steps_per_layer · layers) of model sharpness per epoch (or batch) from
    ``start_epoch``, bottom-up."""

    name: Literal["simple"] = "simple"
    start_epoch: int = Field(default=0, ge=0)
    steps_per_layer: int = Field(default=4, gt=0)
    per: Literal["epoch", "batch"] = "epoch"


class EpochWindow(Section):
    start: float = Field(ge=0)
    stop: float

    def model_post_init(self, context: Any) -> None:
        if self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must be after start ({self.start})")


class ScheduledSharpening(Section):
    """Layer i sharpens linearly per batch over its epoch window; without ``windows`` they are
    generated: the first from ``start`` for ``duration`` epochs, the next after ``gap``, ..."""

    name: Literal["scheduled"] = "scheduled"
    windows: list[EpochWindow] | None = None
    start: float = Field(default=1.0, ge=0)
    duration: float = Field(default=1.0, gt=0)
    gap: float = Field(default=0.0, ge=0)


class AdaptiveSharpening(Section):
    """Whetstone's loss-driven state machine (see neurocore.training.binarize)."""

    name: Literal["adaptive"] = "adaptive"
    min_init_epochs: int = Field(default=10, ge=1)
    rate: float = Field(default=0.25, gt=0, le=1)
    cz_rate: float = Field(default=0.126, gt=0, le=1)
    critical: float = Field(default=0.75, ge=0, le=1)
    first_layer_relative_rate: float = Field(default=1.0, gt=0)
    patience: int = Field(default=1, ge=0)
    sig_increase: float = Field(default=0.15, gt=0)
    sig_decrease: float = Field(default=0.15, gt=0)


SharpeningSchedule = Annotated[
    SimpleSharpening | ScheduledSharpening | AdaptiveSharpening, Field(discriminator="name")
]


class NoiseRamp(Section):
    """Uniform noise range r growing linearly from 0 at epoch ``start`` to ``max`` at ``stop``
    (fractional epochs, set per batch)."""

    start: float = Field(default=0.0, ge=0)
    stop: float = Field(default=5.0, gt=0)
    max: float = Field(default=1.0, ge=0)


class WhetstoneConfig(Section):
    method: Literal["whetstone"] = "whetstone"
    schedule: SharpeningSchedule = AdaptiveSharpening()
    noise: NoiseRamp | None = None  # optional input noise while a layer is not yet sharp
    stop_when_sharp: bool = True  # end training once every layer is a step (no gradient left)


class NoisyReLUConfig(Section):
    """Noisy bounded ReLUs whose noise follows ``noise``; layer i becomes a threshold neuron at
    epoch ``threshold_start + i · threshold_every``."""

    method: Literal["noisy_relu"] = "noisy_relu"
    noise: NoiseRamp = NoiseRamp()
    threshold_start: int = Field(default=5, ge=0)
    threshold_every: int = Field(default=1, ge=1)


BinaryConfig = Annotated[WhetstoneConfig | NoisyReLUConfig, Field(discriminator="method")]


class HardwareConfig(Section):
    """Compile the trained binary network onto cores and simulate it (neurocore.hardware)."""

    # how input lines reach axons (neurocore.hardware.compiler): two ±1 axons per line, or one
    # type-coloured axon per line where a layer's blocks colour (else duplicate axons)
    strategy: Literal["duplicate-axons", "shared-types"] = "duplicate-axons"
    frames: int | None = Field(default=None, gt=0)  # test frames to simulate (default: all)


class ModelConfig(Section):
    layers: list[SerializeAsAny[LayerSpec]] = Field(min_length=1)
    # start training from these weights (a safetensors file such as a run's model.safetensors or
    # what `neurocore convert` writes) instead of a fresh initialisation; a relative path in a
    # recipe file is relative to that file, in a --set override to the working folder
    init: str | None = None


class Recipe(Section):
    name: str
    description: str = ""
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    binary: BinaryConfig | None = None
    symmetric: SymmetricConfig | None = None
    admm: AdmmConfig | None = None
    hardware: HardwareConfig | None = None


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
        loc, section = _walk(model, err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            if section is not None:
                allowed = [k for k in section.__pydantic_fields__ if k not in ("type", loc[-1])]
                msg += f" (allowed: {', '.join(allowed)})"
        elif "input" in err and err["type"] != "missing":
            msg += f" (got {err['input']!r})"
        lines.append(f"{'.'.join(str(p) for p in (*prefix, *loc))}: {msg}")
    return lines


def _union_members(annotation: Any) -> list[type[BaseModel]]:
    """The model classes of a (possibly Annotated / Optional) union annotation."""
    if isinstance(annotation, type):
        return [annotation] if issubclass(annotation, BaseModel) else []
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Annotated:
        args = args[:1]
    return [m for a in args for m in _union_members(a)]


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[Any], type[BaseModel] | None]:
    """Drop pydantic's union tags from ``loc``; return it and the section holding its last key."""
    clean: list[Any] = []
    current: type[BaseModel] | None = model
    holder: type[BaseModel] | None = model
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        clean.append(part)
        holder = current
        if current is None or isinstance(part, int):
            continue
        ann = getattr(current.__pydantic_fields__.get(str(part)), "annotation", None)
        members = _union_members(ann)
        if len(members) > 1 and parts:
            tag = parts.pop(0)  # a discriminated union: pydantic puts the tag in the path
            current = next((m for m in members if tag in _tags(m)), None)
        elif len(members) == 1:
            current = members[0]
        else:
            current = None
    return clean, holder


def _tags(model: type[BaseModel]) -> set[str]:
    return {
        f.default for f in model.__pydantic_fields__.values() if isinstance(f.default, str)
    }


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
    _resolve_init(data, path.parent)
    overridden = set()
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(data, keys, value, f"--set {text}")
        overridden.add(".".join(keys))
        if keys == ["model", "init"]:
            _resolve_init(data, Path.cwd())
    return validate_recipe(data, str(path), overridden)


def _resolve_init(data: dict[str, Any], base: Path) -> None:
    """Make a relative ``model.init`` path absolute against ``base`` (left alone if not a str)."""
    model = data.get("model")
    init = model.get("init") if isinstance(model, dict) else None
    if isinstance(init, str) and init and not Path(init).is_absolute():
        model["init"] = str((base / init).resolve())  # type: ignore[index]


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)

"""``neurocore convert``: make a trained run's dense layers block-circulant, ready to fine-tune.

    run folder (config.yaml, model.safetensors)
      ──choose layers──▶ every chosen ``linear`` / ``conv2d`` entry of the recipe becomes a
                          ``block_circulant_linear`` / ``block_circulant_conv2d`` entry with the
                          same name, options and block size b
      ──project──▶ each chosen layer's ``from_dense`` (the Frobenius-nearest block-circulant
                   weights); every other tensor copied unchanged
      ──bias correction──▶ on a calibration batch of training images, each projected layer's
                   bias is shifted by the mean of (dense − projected) output over that batch,
                   so every unit keeps its mean pre-activation
      ──▶ OUT/converted.safetensors, OUT/recipe.yaml (the source recipe with the new layers and
          ``model.init: converted.safetensors``)

Fine-tuning is an ordinary run of the written recipe: ``neurocore run OUT/recipe.yaml``. By
default every linear and conv2d layer (groups 1) whose input and output sizes (features or
channels) are both at least b is converted: a block larger than a layer's output or input
would only pad it, storing as many numbers as the dense layer or more.

Why the bias correction (the empirical form of Nagel et al. 2019's bias correction for
quantization): at large b a trained dense matrix is far from block-circulant, and its projection
keeps mainly each block's mean. On non-negative inputs (pixels, ReLU outputs) that mean term
dominates every pre-activation of a block: in mnist-conv-fc at b = 32 every unit of the 3136→256
layer became negative for every image, the ReLU passed no gradient and fine-tuning stayed at
chance. Shifting the bias restores each unit's mean over the calibration batch (its input is
taken from the dense model), so the units stay alive and fine-tuning starts from a working net.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from neurocore.config import Recipe, apply_override, parse_override, validate_recipe
from neurocore.data import load_dataset
from neurocore.errors import NeurocoreError, RunDirError
from neurocore.io import atomic_write_text
from neurocore.layers import (
    BlockCirculantConv2d,
    BlockCirculantLinear,
    build_model,
    relative_residual,
)
from neurocore.training.checkpoint import save_weights
from neurocore.training.trainer import evaluate

RECIPE = "recipe.yaml"
CONVERTED = "converted.safetensors"
TARGETS = ("block-circulant",)

__all__ = [
    "CONVERTED", "RECIPE", "TARGETS", "Conversion", "convert_model", "convert_run",
    "convertible_layers",
]


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _sizes(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) features or channels of a convertible module, else None."""
    if type(module) is nn.Linear:
        return module.in_features, module.out_features
    if type(module) is nn.Conv2d and module.groups == 1 and module.padding_mode == "zeros":
        return module.in_channels, module.out_channels
    return None


def convertible_layers(
    model: nn.Module, block_size: int, layers: list[str] | None = None,
    options: tuple[str, str] = ("--block-size", "--layers"),
) -> tuple[list[str], dict[str, str]]:
    """The names of the model's layers to make block-circulant, in forward order, and the reason
    each other linear / conv2d layer is left dense: ``layers`` when given (each must be a
    convertible layer), else every convertible layer whose input and output sizes both reach
    ``block_size``. ``options`` name the block size and the layer list in error messages."""
    block_option, layers_option = options
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise NeurocoreError(f"{block_option} must be an int >= 1, got {block_size!r}")
    modules = dict(model.named_children())
    if layers is not None:
        unknown = [n for n in layers if n not in modules]
        if unknown:
            raise NeurocoreError(
                f"{layers_option}: no layer named {', '.join(unknown)} "
                f"(layers: {', '.join(modules)})"
            )
        wrong = [n for n in layers if _sizes(modules[n]) is None]
        if wrong:
            raise NeurocoreError(
                f"{layers_option}: {', '.join(wrong)} cannot become block-circulant (only linear "
                "and conv2d layers with groups 1 can)"
            )
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    for name, module in modules.items():
        sizes = _sizes(module)
        if sizes is None:
            continue
        if layers is not None:
            if name not in layers:
                skipped[name] = f"not in {layers_option}"
                continue
        elif min(sizes) < block_size:
            skipped[name] = f"in/out sizes {sizes[0]}/{sizes[1]} below block size {block_size}"
            continue
        chosen.append(name)
    if not chosen:
        raise NeurocoreError(
            "no layer to convert: none is a linear or conv2d layer (groups 1) whose input and "
            f"output sizes reach block size {block_size} (skipped: "
            + (", ".join(f"{k}: {v}" for k, v in skipped.items()) or "none") + ")"
        )
    return chosen, skipped


@dataclass
class Conversion:
    """What ``convert_run`` did: the files written and one row per converted layer."""

    recipe_path: Path
    weights_path: Path
    recipe: Recipe
    layers: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # layer -> why it stays dense
    test_accuracy_before: float | None = None  # the source run's model
    test_accuracy_after: float | None = None  # right after projection, before fine-tuning

    @property
    def params_before(self) -> int:
        return sum(int(r["params_before"]) for r in self.layers)

    @property
    def params_after(self) -> int:
        return sum(int(r["params_after"]) for r in self.layers)


def _layer_inputs(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input each named child of ``model`` receives when ``model`` (eval mode) reads x."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(model, n).register_forward_pre_hook(
            lambda _m, args, n=n: seen.__setitem__(n, args[0].detach())
        )
        for n in names
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _mean_per_unit(y: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the feature/channel one (dim 1)."""
    return y.transpose(0, 1).reshape(y.shape[1], -1).mean(dim=1)


def convert_model(
    recipe: Recipe, model: nn.Module, input_shape: tuple[int, ...], num_classes: int,
    block_size: int, layers: list[str] | None = None, calibration: torch.Tensor | None = None,
) -> tuple[dict[str, Any], nn.Sequential, list[dict[str, Any]], dict[str, str]]:
    """The converted recipe data (with ``model.init`` unset), the converted model with projected
    weights, one row per converted layer and the reasons the others stay dense. With a
    ``calibration`` batch (model inputs), each projected layer that has a bias gets the bias
    correction of the module doc."""
    names = list(model._modules)
    specs = list(recipe.model.layers)
    if len(names) != len(specs):  # build_model adds one module per recipe entry
        raise RunDirError(f"the model has {len(names)} layers, its recipe {len(specs)}")
    modules = dict(model.named_children())
    chosen, skipped = convertible_layers(model, block_size, layers)
    data = recipe.model_dump(mode="json")
    for i, name in enumerate(names):
        if name not in chosen:
            continue
        entry = data["model"]["layers"][i]
        entry["type"] = (
            "block_circulant_linear" if isinstance(modules[name], nn.Linear)
            else "block_circulant_conv2d"
        )
        entry["block_size"] = block_size
        entry["name"] = name
    data["admm"] = None  # the ADMM section of a source run has done its work
    data["name"] = f"{recipe.name}-bc{block_size}"
    data["description"] = (
        f"{recipe.name} with {', '.join(chosen)} converted to block-circulant (block "
        f"{block_size}) by neurocore convert, fine-tuned from the projected weights"
    )
    data["model"]["init"] = None
    new_recipe = validate_recipe(copy.deepcopy(data), "converted recipe")
    converted = build_model(list(new_recipe.model.layers), input_shape, num_classes)
    dtypes = {p.dtype for p in model.parameters()}
    if len(dtypes) == 1:
        converted = converted.to(dtypes.pop())
    was_training = model.training
    model.eval()
    inputs = _layer_inputs(model, chosen, calibration) if calibration is not None else {}
    rows = []
    with torch.no_grad():
        for name in names:
            source, target = modules[name], converted._modules[name]
            assert target is not None
            if name not in chosen:
                target.load_state_dict(source.state_dict(), strict=True)
                continue
            projected: BlockCirculantLinear | BlockCirculantConv2d
            if isinstance(source, nn.Linear):
                projected = BlockCirculantLinear.from_dense(source, block_size)
            else:
                assert isinstance(source, nn.Conv2d)
                projected = BlockCirculantConv2d.from_dense(source, block_size)
            shift = None
            bias = projected.bias
            if name in inputs and bias is not None:
                x = inputs[name]
                shift = _mean_per_unit(source(x) - projected(x))
                bias.add_(shift)
            target.load_state_dict(projected.state_dict(), strict=True)
            rows.append({
                "layer": name,
                "from": type(source).__name__,
                "to": type(target).__name__,
                "block_size": block_size,
                "params_before": _params(source),
                "params_after": _params(target),
                "relative_residual": relative_residual(source.weight, block_size),
                "bias_shift": None if shift is None else float(shift.abs().mean()),
            })
    model.train(was_training)
    converted.train(was_training)
    return data, converted, rows, skipped


def convert_run(
    run_dir: Path, to: str, block_size: int, out: Path | None = None,
    layers: list[str] | None = None, overrides: list[str] | tuple[str, ...] = (),
    data_dir: str | None = None, overwrite: bool = False, evaluate_test: bool = False,
    calibrate: int = 1024,
) -> Conversion:
    """Convert a finished run (see the module doc); ``overrides`` (``--set`` strings) apply to
    the written recipe, e.g. ``train.epochs=5``. ``calibrate``: training images (drawn with the
    recipe's seed) for the bias correction, 0 for none. ``evaluate_test`` measures the test
    accuracy of the source model and of the converted one before any fine-tuning. Both read the
    recipe's data set."""
    from neurocore.pipeline import model_for_inspection  # pipeline imports this module's users

    if to not in TARGETS:
        raise NeurocoreError(f"--to {to!r}: unknown target (known: {', '.join(TARGETS)})")
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a run folder (no such folder)")
    if out is None:
        out = run_dir.resolve().with_name(f"{run_dir.resolve().name}-bc{block_size}")
    recipe_path, weights_path = out / RECIPE, out / CONVERTED
    in_the_way = [p for p in (recipe_path, weights_path) if p.exists()]
    if in_the_way and not overwrite:
        raise RunDirError(
            f"{in_the_way[0]} already exists: pass --overwrite to replace it or choose --out"
        )
    if isinstance(calibrate, bool) or not isinstance(calibrate, int) or calibrate < 0:
        raise NeurocoreError(f"--calibrate must be an int >= 0, got {calibrate!r}")
    recipe, model, shape = model_for_inspection(run_dir, [], data_dir)
    model.eval()
    num_classes = int(_last_size(model, shape))
    ds = load_dataset(recipe.data.dataset, data_dir) if calibrate or evaluate_test else None
    calibration = None
    if ds is not None and calibrate:
        g = torch.Generator().manual_seed(recipe.seed)
        idx = torch.randperm(len(ds.train), generator=g)[:calibrate]
        calibration = ds.train.take(idx).float_images(ds.info.max_value)
    data, converted, rows, skipped = convert_model(
        recipe, model, shape, num_classes, block_size, layers, calibration
    )
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(data, keys, value, f"--set {text}")
    data["model"]["init"] = CONVERTED  # relative to the recipe file
    checked = validate_recipe(
        copy.deepcopy({**data, "model": {**data["model"], "init": str(weights_path)}}),
        str(recipe_path), {".".join(parse_override(t)[0]) for t in overrides},
    )
    result = Conversion(recipe_path, weights_path, checked, rows, skipped)
    if evaluate_test:
        assert ds is not None
        batch = recipe.data.eval_batch_size
        result.test_accuracy_before = evaluate(model, ds.test, ds.info.max_value, batch).accuracy
        converted.eval()
        result.test_accuracy_after = evaluate(
            converted, ds.test, ds.info.max_value, batch
        ).accuracy
    out.mkdir(parents=True, exist_ok=True)
    meta = {"recipe": str(data["name"]), "converted_from": str(run_dir)}
    save_weights(weights_path, converted, meta)
    atomic_write_text(recipe_path, "# written by neurocore convert; fine-tune with: neurocore run "
                      f"{recipe_path}\n" + yaml.safe_dump(data, sort_keys=False))
    return result


def _last_size(model: nn.Module, shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(model(torch.zeros(1, *shape)).shape[-1])

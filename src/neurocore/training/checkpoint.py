"""Checkpoints in safetensors, written atomically; no pickle anywhere.

One file holds the model's state (``model.*``), the optimizer's tensors (``optim.<param>.<key>``),
the tensors that training callbacks need to resume (``callback.<key>``, e.g. ADMM's auxiliary
variables; :meth:`Callback.state_tensors`) and, as JSON in the safetensors metadata, the
optimizer's other state, the epoch completed and a format tag. Learning rates and every schedule
are pure functions of the epoch, so nothing else is needed to resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from neurocore.errors import RunDirError
from neurocore.io import atomic_write_bytes

FORMAT = "neurocore-checkpoint/1"
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
CHECKPOINT_FILES = (CHECKPOINT, METRICS)


def _tensors(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().contiguous().clone() for k, v in state.items()}


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, epoch: int,
    extra: dict[str, str] | None = None, callback_state: dict[str, torch.Tensor] | None = None,
) -> None:
    tensors = _tensors("model.", model.state_dict())
    tensors.update(_tensors("callback.", callback_state or {}))
    meta: dict[str, str] = {"format": FORMAT, "epoch": str(epoch), **(extra or {})}
    if optimizer is not None:
        osd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, pstate in osd["state"].items():
            for key, value in pstate.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{pid}.{key}"] = value.detach().contiguous().clone()
                else:
                    scalars.setdefault(str(pid), {})[key] = value
        meta["optim_param_groups"] = json.dumps(osd["param_groups"])
        meta["optim_scalars"] = json.dumps(scalars)
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise RunDirError(f"{path}: checkpoint not found") from None
    try:
        tensors = st_load(blob)
        header_len = int.from_bytes(blob[:8], "little")
        meta = json.loads(blob[8 : 8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: not a readable safetensors checkpoint ({e})") from None
    return tensors, meta


def load_model_state(path: Path) -> dict[str, torch.Tensor]:
    tensors, _ = _read(path)
    return {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
    callback_state: dict[str, torch.Tensor] | None = None,
) -> int:
    """Restore model (and optimizer) state in place; return the number of epochs completed. The
    callbacks' tensors go into ``callback_state`` (keys without the ``callback.`` prefix)."""
    tensors, meta = _read(path)
    if meta.get("format") != FORMAT:
        raise RunDirError(f"{path}: not a neurocore checkpoint (format {meta.get('format')!r})")
    if callback_state is not None:
        callback_state.update({k.removeprefix("callback."): v for k, v in tensors.items()
                               if k.startswith("callback.")})
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise RunDirError(f"{path}: checkpoint does not fit the recipe's model: {e}") from None
    if optimizer is not None:
        # JSON has no tuples: hyperparameters such as Adam's betas come back as tuples.
        groups = [
            {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
            for g in json.loads(meta["optim_param_groups"])
        ]
        scalars = json.loads(meta["optim_scalars"])
        ostate: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                ostate.setdefault(int(pid), {})[name] = value
        for pid, entries in scalars.items():
            ostate.setdefault(int(pid), {}).update(entries)
        optimizer.load_state_dict({"state": ostate, "param_groups": groups})
    return int(meta["epoch"])


def save_weights(path: Path, model: nn.Module, metadata: dict[str, str] | None = None) -> None:
    """Model state only (the trained network handed to later stages)."""
    meta = {"format": FORMAT, **(metadata or {})}
    atomic_write_bytes(path, st_save(_tensors("model.", model.state_dict()), metadata=meta))


def load_weights(model: nn.Module, path: Path, what: str = "weights") -> None:
    """Load a weights file (``save_weights``'s or a checkpoint's model state) into ``model``.

    A file that does not fit raises one RunDirError naming ``path`` and every missing,
    unexpected or mis-shaped tensor (the first few of each).
    """
    state = load_model_state(path)
    own = model.state_dict()
    problems = []
    missing = [k for k in own if k not in state]
    extra = sorted(k for k in state if k not in own)
    shapes = [f"{k} is {tuple(state[k].shape)}, the model's {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", shapes)):
        if keys:
            more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
            problems.append(f"{label}: {', '.join(keys[:4])}{more}")
    if problems:
        raise RunDirError(f"{path}: the {what} do not fit the model ({'; '.join(problems)})")
    model.load_state_dict(state, strict=True)


def read_history(path: Path) -> list[dict[str, Any]]:
    """The per-epoch records of a metrics.jsonl file, or of a run folder's (empty when there is
    none)."""
    if path.is_dir():
        path = path / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

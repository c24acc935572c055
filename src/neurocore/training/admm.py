"""ADMM toward block-circulant weights: fine-tune a trained dense network so that the layers
``neurocore convert`` will project lie close to block-circulant matrices by then.

Why. A trained dense layer is far from block-circulant (relative residual 0.97-0.985 for
LeNet-300-100 at b = 32, docs/benchmarks.md): its projection keeps little, and fine-tuning the
projected net is little better than training it from scratch. ADMM (the alternating direction
method of multipliers; its use for constraints on a DNN's weights: Zhang et al., "A Systematic
DNN Weight Pruning Framework using ADMM", ECCV 2018) instead solves

    min_W  loss(W)   subject to   W_l ∈ S_l  (block-circulant, block b, for each chosen layer l)

by training W with a penalty that pulls it toward an auxiliary block-circulant Z, moved once per
epoch. Per chosen layer, with the projection P (:func:`~neurocore.layers.nearest_block_circulant`,
the Frobenius-nearest block-circulant matrix) and ρ_e = ``rho`` · ``growth``^e in epoch e:

    start:            Z = P(W),  U = 0
    every batch:      ∇_W (loss + ρ_e/2 · ‖W − Z + U‖²) = ∇_W loss + ρ_e · (W − Z + U)
    end of epoch e:   Z ← P(W + U);   U ← U + W − Z

The penalty's gradient is added to each chosen weight's gradient by a tensor hook, so the
optimizer (its weight decay, its moments) sees the same gradient as if the penalty were part of
the loss; the logged training loss is the loss alone. As ρ grows, W − P(W) shrinks: logged per
epoch as ``admm_rho`` and ``admm_residual`` (layer -> ‖W − P(W)‖ / ‖W‖). The run's weights stay
dense; ``neurocore convert RUN --to block-circulant --block-size b`` then projects them, losing
little, and the converted recipe (without the ``admm`` section) fine-tunes them.

Resume. Z and U are not functions of the weights, so the callback writes them, with the epoch
they follow, to ``admm.safetensors`` in the run folder at the end of every epoch (before the
checkpoint); a resumed run reads them back and checks that they belong to the checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save
from torch import nn

from neurocore.config import AdmmConfig
from neurocore.errors import RunDirError
from neurocore.io import atomic_write_bytes
from neurocore.layers import nearest_block_circulant
from neurocore.training.hooks import Callback

if TYPE_CHECKING:
    from neurocore.training.trainer import Trainer

STATE = "admm.safetensors"


def relative_residual(weight: torch.Tensor, block_size: int) -> float:
    """‖W − P(W)‖ / ‖W‖: how far ``weight`` is from block-circulant (0 when it is)."""
    w = weight.detach()
    norm = float(torch.linalg.vector_norm(w))
    return float(torch.linalg.vector_norm(w - nearest_block_circulant(w, block_size))) / max(
        norm, 1e-30)


class BlockCirculantADMM(Callback):
    """Applies an ``admm`` recipe section (see the module doc)."""

    def __init__(self, cfg: AdmmConfig) -> None:
        self.cfg = cfg
        self.layers: dict[str, nn.Module] = {}
        self.z: dict[str, torch.Tensor] = {}
        self.u: dict[str, torch.Tensor] = {}
        self.rho = cfg.rho
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def on_train_start(self, trainer: Trainer) -> None:
        from neurocore.convert import convertible_layers  # convert imports the trainer

        names, _ = convertible_layers(trainer.model, self.cfg.block_size, self.cfg.layers,
                                      ("admm.block_size", "admm.layers"))
        modules = dict(trainer.model.named_children())
        self.layers = {n: modules[n] for n in names}
        done = len(trainer.history)
        if done:
            self._load(trainer, done)
        else:
            with torch.no_grad():
                for name, m in self.layers.items():
                    w = m.get_parameter("weight")
                    self.z[name] = nearest_block_circulant(w, self.cfg.block_size)
                    self.u[name] = torch.zeros_like(w)
        for name, m in self.layers.items():
            self._handles.append(m.get_parameter("weight").register_hook(self._hook(name, m)))

    def _hook(self, name: str, module: nn.Module) -> Any:
        def add_penalty(grad: torch.Tensor) -> torch.Tensor:
            w = module.get_parameter("weight").detach()
            return grad + self.rho * (w - self.z[name] + self.u[name])

        return add_penalty

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.rho = self.cfg.rho * self.cfg.growth**epoch

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        b = self.cfg.block_size
        with torch.no_grad():
            for name, m in self.layers.items():
                w = m.get_parameter("weight")
                self.z[name] = nearest_block_circulant(w + self.u[name], b)
                self.u[name] = self.u[name] + w - self.z[name]
        metrics["admm_rho"] = self.rho
        metrics["admm_residual"] = {
            name: relative_residual(m.get_parameter("weight"), b)
            for name, m in self.layers.items()
        }
        if trainer.run_dir is not None:
            tensors = {f"{k}.{name}": t.contiguous() for k, d in (("z", self.z), ("u", self.u))
                       for name, t in d.items()}
            atomic_write_bytes(trainer.run_dir / STATE,
                               st_save(tensors, metadata={"epoch": str(epoch)}))

    def on_train_end(self, trainer: Trainer) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _load(self, trainer: Trainer, done: int) -> None:
        path = trainer.run_dir / STATE if trainer.run_dir is not None else None
        if path is None or not path.exists():
            raise RunDirError(f"--resume: the run uses admm, but its state {path} is missing")
        try:
            with safe_open(str(path), framework="pt") as sf:
                meta = sf.metadata() or {}
                tensors = {k: sf.get_tensor(k) for k in sf.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as e:
            raise RunDirError(f"{path}: unreadable ADMM state ({e})") from None
        if meta.get("epoch") != str(done - 1):
            raise RunDirError(
                f"{path}: ADMM state after epoch {meta.get('epoch')}, but the checkpoint ends "
                f"after epoch {done - 1}: the run was stopped between the two writes; start it "
                "over"
            )
        for name, m in self.layers.items():
            shape = m.get_parameter("weight").shape
            for key, store in (("z", self.z), ("u", self.u)):
                t = tensors.get(f"{key}.{name}")
                if t is None or t.shape != shape:
                    raise RunDirError(f"{path}: no {key} of shape {tuple(shape)} for layer {name}")
                store[name] = t

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

    start:              Z = P(W),  U = 0
    start of epoch e>0: U ← U · ρ_{e−1}/ρ_e = U / growth
    every batch:        ∇_W (loss + ρ_e/2 · ‖W − Z + U‖²) = ∇_W loss + ρ_e · (W − Z + U)
    end of epoch e:     Z ← P(W + U);   U ← U + W − Z

The penalty's gradient is added to each chosen weight's gradient by a tensor hook, so the
optimizer (its weight decay, its moments) sees the same gradient as if the penalty were part of
the loss; the logged training loss is the loss alone. As ρ grows, W − P(W) shrinks: logged per
epoch as ``admm_rho`` and ``admm_residual`` (layer -> ‖W − P(W)‖ / ‖W‖). The run's weights stay
dense; ``neurocore convert RUN --to block-circulant --block-size b`` then projects them, losing
little, and the converted recipe (without the ``admm`` section) fine-tunes them.

U is the dual variable scaled by 1/ρ, so when ρ grows it is rescaled by ρ_old/ρ_new and the
unscaled dual ρ·U carries over (Boyd et al., "Distributed Optimization and Statistical Learning
via ADMM", 2011, §3.4.1).

Resume. Z and U are not functions of the weights: they go into every checkpoint
(:meth:`~neurocore.training.hooks.Callback.state_tensors`, as ``admm.z.<layer>`` and
``admm.u.<layer>``), so a resumed run continues exactly (tested against an uninterrupted run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from neurocore.config import AdmmConfig
from neurocore.errors import RunDirError
from neurocore.layers import nearest_block_circulant, relative_residual
from neurocore.training.hooks import Callback

if TYPE_CHECKING:
    from neurocore.training.trainer import Trainer


class BlockCirculantADMM(Callback):
    """Applies an ``admm`` recipe section (see the module doc)."""

    def __init__(self, cfg: AdmmConfig) -> None:
        self.cfg = cfg
        self.layers: dict[str, nn.Module] = {}
        self.z: dict[str, torch.Tensor] = {}
        self.u: dict[str, torch.Tensor] = {}
        self.rho = cfg.rho
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def choose_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        """The layers to pull, by name (``admm.layers``, or those ``convert`` would convert); a
        NeurocoreError naming the key when the choice is wrong."""
        from neurocore.convert import convertible_layers  # convert imports the trainer

        names, _ = convertible_layers(model, self.cfg.block_size, self.cfg.layers,
                                      ("admm.block_size", "admm.layers"))
        modules = dict(model.named_children())
        return {n: modules[n] for n in names}

    def on_train_start(self, trainer: Trainer) -> None:
        self.layers = self.choose_layers(trainer.model)
        with torch.no_grad():
            for name, m in self.layers.items():
                w = m.get_parameter("weight")
                if trainer.start_epoch:
                    self.z[name], self.u[name] = (
                        self._resumed(trainer, f"admm.{key}.{name}", w) for key in ("z", "u"))
                else:
                    self.z[name] = nearest_block_circulant(w, self.cfg.block_size)
                    self.u[name] = torch.zeros_like(w)
        self._remove_hooks()
        for name, m in self.layers.items():
            self._handles.append(m.get_parameter("weight").register_hook(self._hook(name, m)))

    @staticmethod
    def _resumed(trainer: Trainer, key: str, weight: torch.Tensor) -> torch.Tensor:
        t = trainer.resumed_state.get(key)
        if t is None or t.shape != weight.shape:
            raise RunDirError(
                f"--resume: the checkpoint holds no ADMM variable {key} of shape "
                f"{tuple(weight.shape)} (was the run started without this admm section?)"
            )
        return t.to(dtype=weight.dtype, device=weight.device)

    def _hook(self, name: str, module: nn.Module) -> Any:
        def add_penalty(grad: torch.Tensor) -> torch.Tensor:
            w = module.get_parameter("weight").detach()
            return grad + self.rho * (w - self.z[name] + self.u[name])

        return add_penalty

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.rho = self.cfg.rho * self.cfg.growth**epoch
        if epoch > 0 and self.cfg.growth != 1.0:  # U = dual / ρ: keep the dual, rescale U
            for name in self.u:
                self.u[name] = self.u[name] / self.cfg.growth

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

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"admm.{key}.{name}": t for key, d in (("z", self.z), ("u", self.u))
                for name, t in d.items()}

    def on_train_end(self, trainer: Trainer) -> None:
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

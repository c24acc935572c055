"""Symmetric kernels during training (Appuswamy et al. 2016, seed 000): train unconstrained; when
validation accuracy saturates, replace every kernel of one conv layer by its nearest symmetric
kernel, freeze that layer, train at least ``every`` epochs, then the next layer, bottom-up.
(``after: tie`` keeps the projected layer training inside the family instead; see below.)

Schedule — a pure function of the logged validation accuracies, ``a[e]`` at the end of epoch e
(``SymmetricConfig``; stated once, here):

    earliest_0 = start_epoch                  earliest_k = p_{k−1} + every
    window_k(e) = a[p_{k−1} : e]              (a[0 : e] for k = 0): the epochs trained since the
                                              previous projection
    saturated(e) ⟺ patience = 0, or  len(window) > patience  and
                   max(window[−patience:]) ≤ max(window[:−patience]) + min_delta
    p_k = the first e ≥ earliest_k with saturated(e), or e = earliest_k + max_wait

Layer k — the k-th ternary conv layer in forward order that ``exclude`` does not name — is
projected at the start of epoch p_k, before its first batch.

Projection. Each group of a grouped convolution is its own symmetric layer (its cores read
disjoint channels): its target ``T`` — the clipped latent weights ``clip(w, −1, 1)``
(``target: latent``, the paper's "unconstrained real-valued kernel") or the ternary weights
``round(clip(w, −1, 1))`` (``target: ternary``) — goes to
:func:`~neurocore.hardware.symmetric.nearest_symmetric`, which returns
``α_o · f_o(σ^i(ρ^j(q_c)))``. The latent weights become ``f_o(σ^i(ρ^j(q_c))) ∈ {−1, 0, +1}``
themselves, so the ternary forward pass uses exactly the symmetric kernel; the per-output scale
``α_o > 0`` is left to the batch norm that follows. The residual ``‖T − α f‖²`` is logged.

Freezing: ``requires_grad = False`` and the gradient dropped. The trainer zeroes gradients to
None, and every torch optimizer skips a parameter whose gradient is None — no step, no momentum,
no weight decay — so a frozen layer's weights stay bit-identical; the parameter stays in the
optimizer, so checkpoints keep their layout.

Tying (``after: tie``, an extension of the paper's method). The hardware fixes only the type
pattern — ``ρ, σ`` of each group and the start type ``q_c`` of each input channel, which decide
every input line's axon type — while ``f_o`` is neuron ``o``'s own 4-entry strength table. So
instead of freezing, a projected layer keeps its pattern ``T[o, c, i, j] = σ^i(ρ^j(q_c))`` and
goes on training ``f``: after every optimizer step (and the latents' clip) each output's latent
weights are replaced by their mean over the entries of one type (:func:`tie_to_types`, the
Frobenius-nearest kernel that depends only on (output, type)). All entries of one class are then
equal, so the ternary kernel ``round(clip(w))`` is ``f'_o(T)`` for some ternary ``f'`` — still in
the family, with the same pattern. The layers below a tied layer still receive gradient.

Resume: :class:`Symmetrize` recomputes the schedule from ``trainer.history`` at every epoch
start, freezes (or ties) the layers projected before — their projected weights are in the
checkpoint, their patterns in the logged projection records — and projects the layer due now
(the checkpoint was written before that projection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from neurocore.config import SymmetricConfig
from neurocore.errors import NeurocoreError
from neurocore.hardware.symmetric import (
    NUM_TYPES,
    SymmetricError,
    SymmetricLayer,
    nearest_symmetric,
    symmetric_mask,
)
from neurocore.layers.ternary import TernaryConv2d
from neurocore.training.hooks import BatchInfo, Callback

if TYPE_CHECKING:
    from neurocore.training.trainer import Trainer


# ---- the schedule: pure functions -----------------------------------------------------------


def saturated(window: Sequence[float], patience: int, min_delta: float) -> bool:
    """Whether the best of the last ``patience`` accuracies beats the best before them by no
    more than ``min_delta`` (always with ``patience`` 0; never with too short a window)."""
    if patience == 0:
        return True
    if len(window) <= patience:
        return False
    return max(window[-patience:]) <= max(window[:-patience]) + min_delta


def projection_epochs(
    cfg: SymmetricConfig, layers: int, accuracy: Sequence[float]
) -> tuple[int, ...]:
    """``(p_0, p_1, …)``: the epochs at whose start layers 0, 1, … are projected, for every
    projection decided by ``accuracy`` (one value per finished epoch): those at epochs
    ``≤ len(accuracy)``."""
    out: list[int] = []
    for e in range(len(accuracy) + 1):
        if len(out) == layers:
            break
        earliest = cfg.start_epoch if not out else out[-1] + cfg.every
        if e < earliest:
            continue
        since = out[-1] if out else 0
        if e >= earliest + cfg.max_wait or saturated(accuracy[since:e], cfg.patience,
                                                      cfg.min_delta):
            out.append(e)
    return tuple(out)


# ---- projection and check -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ConvProjection:
    """The nearest symmetric kernel of a (grouped) conv layer, one symmetric layer per group."""

    groups: tuple[SymmetricLayer, ...]
    kernel: torch.Tensor  # (O, C/groups, L, L) int64: f_o(σ^i(ρ^j(q_c))) of each output's group
    error: float  # Σ over groups of ‖T − α f‖²
    norm: float  # ‖T‖²

    @property
    def relative_error(self) -> float:
        """``‖T − α f‖² / ‖T‖²`` (0 for an all-zero target)."""
        return self.error / self.norm if self.norm > 0 else 0.0


def _groups_of(weight: torch.Tensor, groups: int) -> list[torch.Tensor]:
    og = weight.shape[0] // groups
    return [weight[g * og:(g + 1) * og] for g in range(groups)]  # each (O/groups, Cg, L, L)


def project_conv(
    conv: TernaryConv2d, target: Literal["latent", "ternary"] = "latent", beam: int = 32
) -> ConvProjection:
    """The nearest symmetric kernel of each group of ``conv`` (the module is not changed)."""
    t = conv.weight.detach().to(torch.float64).clamp(-1.0, 1.0)  # (O, Cg, L, L)
    if target == "ternary":
        t = torch.round(t)
    size = int(t.shape[-1])
    found, kernels, error = [], [], 0.0
    for part in _groups_of(t, conv.groups):
        p = nearest_symmetric(part, beam=beam)
        found.append(p.layer)
        kernels.append(p.layer.kernel(size))  # (O/groups, Cg, L, L) int64
        error += p.error
    return ConvProjection(tuple(found), torch.cat(kernels), error, float(t.square().sum()))


def symmetric_groups(kernel: torch.Tensor, groups: int, name: str, masked: bool = False,
                     patterns: Sequence[SymmetricLayer] | None = None
                     ) -> tuple[SymmetricLayer, ...]:
    """The parameters of each group of an integer conv kernel (O, C/groups, L, L) whose groups are
    all in the layer-form family ``f_o(σ^i(ρ^j(q_c)))`` with ternary ``f`` — or, with ``masked``,
    in the masked family ``B ∘ f_o(σ^i(ρ^j(q_c)))`` with a binary mask ``B`` (``after:
    tie-masked``; the returned ``f`` is then each class's sign); raises
    :class:`~neurocore.hardware.symmetric.SymmetricError` naming the layer and group otherwise.

    Exact: a group is accepted when the kernel that ``nearest_symmetric`` finds for it equals it
    entry for entry (it finds every scaled symmetric layer exactly); a group with a 2-d kernel
    outside the family (``symmetric_mask``, a quick necessary test) is refused at once. Masked:
    accepted when, under each group's pattern — the one given in ``patterns`` (as logged by
    training, :func:`logged_patterns`), else the one ``nearest_symmetric`` finds — every
    (output, type) class of the kernel holds one sign besides zeros. Given patterns make the
    test exact; a searched pattern can refuse a masked kernel falsely (the search is a local
    one, fitted to the kernel zeros included), never accept one falsely.
    """
    if masked:
        return _masked_groups(kernel, groups, name, patterns)
    if kernel.dtype.is_floating_point or kernel.dim() != 4:
        raise ValueError(f"{name}: expected an integer kernel (O, C, L, L), got {kernel.dtype} "
                         f"of shape {tuple(kernel.shape)}")
    if kernel.abs().max() > 1:
        raise SymmetricError(f"{name}: weights outside {{-1, 0, +1}} are not ternary")
    size = int(kernel.shape[-1])
    out = []
    for g, part in enumerate(_groups_of(kernel.to(torch.int64), groups)):
        found = None
        if bool(symmetric_mask(part.reshape(-1, size, size)).all()):
            found = nearest_symmetric(part.to(torch.float64)).layer
        if found is None or not torch.equal(found.kernel(size), part):
            raise SymmetricError(
                f"{name} group {g}: the kernel is not symmetric (no shared commuting ρ, σ, start "
                "per channel and ternary table per output reproduce it)"
            )
        out.append(found)
    return tuple(out)


def _masked_groups(kernel: torch.Tensor, groups: int, name: str,
                   patterns: Sequence[SymmetricLayer] | None) -> tuple[SymmetricLayer, ...]:
    if kernel.dtype.is_floating_point or kernel.dim() != 4:
        raise ValueError(f"{name}: expected an integer kernel (O, C, L, L), got {kernel.dtype} "
                         f"of shape {tuple(kernel.shape)}")
    if kernel.abs().max() > 1:
        raise SymmetricError(f"{name}: weights outside {{-1, 0, +1}} are not ternary")
    if patterns is not None and len(patterns) != groups:
        raise SymmetricError(f"{name}: {len(patterns)} type patterns for {groups} groups")
    size, out = int(kernel.shape[-1]), []
    for g, part in enumerate(_groups_of(kernel.to(torch.int64), groups)):
        pattern = patterns[g] if patterns is not None else nearest_symmetric(
            part.to(torch.float64)).layer
        types = type_index([pattern], size, int(part.shape[0])).reshape(part.shape[0], -1)
        flat = part.reshape(part.shape[0], -1)
        signs = [torch.zeros(part.shape[0], NUM_TYPES, dtype=torch.int64).scatter_reduce_(
            1, types, v, reduce="amax") for v in (flat.clamp(min=0), (-flat).clamp(min=0))]
        if bool((signs[0] * signs[1]).any()):
            raise SymmetricError(
                f"{name} group {g}: the kernel is not masked-symmetric (under the pattern found, "
                "some output holds both signs on lines of one type)")
        values = tuple(tuple(int(v) for v in row) for row in signs[0] - signs[1])
        out.append(SymmetricLayer(rho=pattern.rho, sigma=pattern.sigma, starts=pattern.starts,
                                  values=values))
    return tuple(out)


def ternary_convs(model: nn.Module, exclude: Sequence[str] = ()) -> list[tuple[str, TernaryConv2d]]:
    """The ternary conv layers of ``model`` in forward order, without those named in ``exclude``.

    Raises when ``exclude`` names no ternary conv layer, or when a float conv layer is not
    excluded (symmetric projection needs ternary weights).
    """
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    names = [n for n, m in convs if isinstance(m, TernaryConv2d)]
    unknown = [n for n in exclude if n not in names]
    if unknown:
        raise NeurocoreError(
            f"symmetric.exclude: no ternary conv layer named {', '.join(map(repr, unknown))} "
            f"(the model has: {', '.join(names) or 'none'})"
        )
    floats = [n for n, m in convs if not isinstance(m, TernaryConv2d) and n not in exclude]
    if floats:
        raise NeurocoreError(
            f"symmetric: layer {floats[0]} is a float conv2d; symmetric kernels are ternary "
            "(use ternary_conv2d)"
        )
    return [(n, m) for n, m in convs if isinstance(m, TernaryConv2d) and n not in exclude]


def check_symmetric(model: nn.Module, masked: bool = False,
                    patterns: dict[str, tuple[SymmetricLayer, ...]] | None = None
                    ) -> dict[str, bool]:
    """Every ternary conv layer of ``model``: whether all its groups' kernels (as the hardware
    reads them, ``to_int()``) are in the symmetric family (with ``masked``, the masked one,
    under the layer's logged ``patterns`` where given)."""
    out = {}
    for name, conv in ternary_convs(model):
        try:
            symmetric_groups(conv.to_int(), conv.groups, name, masked,
                             (patterns or {}).get(name))
            out[name] = True
        except SymmetricError:
            out[name] = False
    return out


def type_index(layers: Sequence[SymmetricLayer], size: int, outputs: int) -> torch.Tensor:
    """``T[o, c, i, j]``: the axon type of every kernel entry of every output, each output reading
    its group's pattern ``σ^i(ρ^j(q_c))``; shape (O, C/groups, L, L) int64."""
    per_group = outputs // len(layers)
    return torch.cat([
        layer.type_grid(size).unsqueeze(0).expand(per_group, -1, -1, -1) for layer in layers
    ])


@torch.no_grad()
def tie_to_types(weight: torch.Tensor, types: torch.Tensor) -> None:
    """Replace, in place, each output's weights by their mean over the entries of one type: the
    Frobenius-nearest kernel whose entries depend only on (output, type)."""
    rows = weight.shape[0]
    w, t = weight.view(rows, -1), types.reshape(rows, -1)
    sums = torch.zeros(rows, NUM_TYPES, dtype=w.dtype).scatter_add_(1, t, w)
    counts = torch.zeros(rows, NUM_TYPES, dtype=w.dtype).scatter_add_(1, t, torch.ones_like(w))
    w.copy_((sums / counts.clamp(min=1)).gather(1, t))


@torch.no_grad()
def mask_to_signs(weight: torch.Tensor, types: torch.Tensor) -> None:
    """Keep, in place, only the entries whose sign is their (output, type) class's: the class sign
    is that of the sum of its entries, and every other entry (all of them when the sum is 0)
    becomes 0. Afterwards each class holds entries of one sign or zero, so the ternary kernel is
    ``B ∘ f'_o(T)`` for a binary mask ``B`` and a ternary table ``f'`` (``after: tie-masked``)."""
    rows = weight.shape[0]
    w, t = weight.view(rows, -1), types.reshape(rows, -1)
    sums = torch.zeros(rows, NUM_TYPES, dtype=w.dtype).scatter_add_(1, t, w)
    sign = torch.sign(sums).gather(1, t)
    w.mul_((w * sign > 0).to(w.dtype))


def _pattern_record(layers: Sequence[SymmetricLayer]) -> list[dict[str, list[int]]]:
    return [{"rho": list(g.rho), "sigma": list(g.sigma), "starts": list(g.starts)}
            for g in layers]


def _pattern_layers(record: Sequence[dict[str, Any]]) -> tuple[SymmetricLayer, ...]:
    """The groups' patterns logged by :meth:`Symmetrize._project` (``f`` set to zero)."""
    return tuple(
        SymmetricLayer(rho=tuple(g["rho"]), sigma=tuple(g["sigma"]), starts=tuple(g["starts"]),
                       values=((0,) * NUM_TYPES,))
        for g in record
    )


def logged_patterns(history: Sequence[dict[str, Any]]) -> dict[str, tuple[SymmetricLayer, ...]]:
    """Per projected layer, its groups' type patterns ``ρ, σ, q`` as logged at the projection
    (``f`` set to zero): what the compiler tries first for shared types
    (:func:`~neurocore.hardware.compiler.compile_network`'s ``patterns``). Projections logged
    without patterns (older runs) are left out."""
    return {h["symmetric_projection"]["layer"]: _pattern_layers(
        h["symmetric_projection"]["patterns"]) for h in history
        if "patterns" in h.get("symmetric_projection", {})}


def freeze(conv: nn.Module) -> None:
    """No gradient, hence no optimizer update (step, momentum or weight decay) from now on."""
    for p in conv.parameters():
        p.requires_grad_(False)
        p.grad = None


# ---- the callback ---------------------------------------------------------------------------


class Symmetrize(Callback):
    """Applies a ``symmetric`` recipe section: projects the conv layers on schedule and freezes
    them (``after: freeze``) or ties them to their type patterns (``after: tie``).

    Logs per epoch ``symmetric_layers`` (the projected layers) and, in the epoch that starts
    with a projection, ``symmetric_projection`` (layer, groups, residual, each group's pattern
    ``ρ, σ, q``, validation accuracy before and right after it).
    """

    def __init__(self, cfg: SymmetricConfig) -> None:
        self.cfg = cfg
        self.layers: list[tuple[str, TernaryConv2d]] = []
        self.projected: list[str] = []
        self.pending: dict[str, Any] | None = None
        self.ties: dict[str, tuple[TernaryConv2d, torch.Tensor]] = {}  # name -> (conv, T)

    def on_train_start(self, trainer: Trainer) -> None:
        self.layers = ternary_convs(trainer.model, self.cfg.exclude)
        self.ties = {}
        if not self.layers:
            raise NeurocoreError("symmetric: the model has no ternary_conv2d layer to project")
        if self.cfg.patience > 0 and trainer.val_split is None:
            raise NeurocoreError(
                f"symmetric.patience is {self.cfg.patience}: saturation is measured on "
                "validation accuracy, but there is no validation split (set data.val_fraction)"
            )

    def schedule(self, trainer: Trainer) -> tuple[int, ...]:
        """Projection epochs decided by the history so far (see :func:`projection_epochs`)."""
        acc = [float(h.get("val_accuracy", float("nan"))) for h in trainer.history]
        return projection_epochs(self.cfg, len(self.layers), acc)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        assert len(trainer.history) == epoch, "history must hold one record per finished epoch"
        self.projected, self.pending = [], None
        if trainer.stop_reason is not None:  # another callback ended training before this epoch
            return
        for (name, conv), p in zip(self.layers, self.schedule(trainer), strict=False):
            if p == epoch:
                self.pending = self._project(trainer, epoch, name, conv)
            if self.cfg.after == "freeze":
                freeze(conv)
            elif name not in self.ties:  # tied from now on; on resume, from the logged pattern
                record = self.pending if p == epoch else next(
                    h["symmetric_projection"] for h in trainer.history
                    if h.get("symmetric_projection", {}).get("layer") == name)
                assert record is not None
                if "patterns" not in record:
                    raise NeurocoreError(
                        f"symmetric.after is {self.cfg.after}, but the logged projection of "
                        f"{name} (epoch {p}) has no type patterns: the run was started by an "
                        "older neurocore; resume it with symmetric.after: freeze"
                    )
                types = type_index(_pattern_layers(record["patterns"]), conv.kernel_size[0],
                                   conv.out_channels)
                self.ties[name] = (conv, types)
            self.projected.append(name)

    def on_batch_end(self, trainer: Trainer, info: BatchInfo, loss: float) -> None:
        tie = mask_to_signs if self.cfg.after == "tie-masked" else tie_to_types
        for conv, types in self.ties.values():
            tie(conv.weight, types)

    def _project(self, trainer: Trainer, epoch: int, name: str, conv: TernaryConv2d
                 ) -> dict[str, Any]:
        proj = project_conv(conv, self.cfg.target, self.cfg.beam)
        with torch.no_grad():
            if self.cfg.after == "tie-masked":  # the pattern only: each entry keeps its latent
                conv.weight.clamp_(-1.0, 1.0)
                mask_to_signs(conv.weight, type_index(proj.groups, conv.kernel_size[0],
                                                      conv.out_channels))
            else:
                conv.weight.copy_(proj.kernel.to(conv.weight.dtype))
        record: dict[str, Any] = {
            "layer": name, "epoch": epoch, "groups": conv.groups, "error": proj.error,
            "relative_error": proj.relative_error, "patterns": _pattern_record(proj.groups),
        }
        if trainer.history and "val_accuracy" in trainer.history[-1]:
            record["val_accuracy_before"] = trainer.history[-1]["val_accuracy"]
        if trainer.val_split is not None:
            from neurocore.training.trainer import evaluate

            record["val_accuracy_after"] = evaluate(
                trainer.model, trainer.val_split, trainer.max_value, trainer.eval_batch_size
            ).accuracy
        return record

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        metrics["symmetric_layers"] = list(self.projected)
        if self.pending is not None:
            metrics["symmetric_projection"] = self.pending


# ---- report -----------------------------------------------------------------------------------


def symmetric_summary(
    history: list[dict[str, Any]], model: nn.Module, exclude: Sequence[str] = (),
    masked: bool = False,
) -> dict[str, Any]:
    """Each projection (with the validation accuracy after the epoch it began) and, for every
    ternary conv layer of the trained model, whether its kernels are symmetric (with ``masked``:
    masked-symmetric, the family of ``after: tie-masked``)."""
    projections = [
        {**h["symmetric_projection"],
         **({"val_accuracy_after_epoch": h["val_accuracy"]} if "val_accuracy" in h else {})}
        for h in history if "symmetric_projection" in h
    ]
    checks = check_symmetric(model, masked, logged_patterns(history))
    return {
        "projections": projections,
        "symmetric_layers": list(history[-1]["symmetric_layers"]) if history else [],
        "excluded": list(exclude),
        "check": checks,
        "family": "masked" if masked else "exact",
    }

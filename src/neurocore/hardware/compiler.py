"""Compile a folded binary network onto neurosynaptic cores: strategies ``duplicate-axons`` and
``shared-types``.

Common to both (after Esser et al. 2016, Eedn):

* every logical neuron computes ``n = [Σ_i w_i x_i ≥ T]`` with trinary ``w_i ∈ {−1, 0, +1}``
  over binary inputs ``x_i`` (batch norm already folded into the integer threshold T);
* a core's effective weights are ``W = B ∘ S(G)`` (:mod:`~neurocore.hardware.program`): one type
  ``G_i`` per axon, shared by the core's neurons, and one strength table ``S_j`` per neuron;
* neurons are memoryless: α = 1, λ = T − 1, β = 0, absolute reset to 0 and negative reset to 0,
  so V is 0 after every tick (one frame may enter per tick);
* layers are pipelined one tick apart (every delay is 1): the host's input spikes enter at tick 0,
  layer k fires at tick k, the output layer at tick L − 1;
* a neuron has one destination, so a value is computed by one duplicate neuron per destination
  axon, all in the source neuron's core; the report counts them.

How a layer's input lines reach a core's axons, chosen per layer:

* ``duplicate-axons``: every input line reaches two axons, type 0 (strength +1) and type 1
  (strength −1), so a core takes ``axons / 2`` = 128 distinct inputs and a source neuron needs
  2 duplicates per reader core;
* ``shared-types`` (Appuswamy et al. 2016, ``docs/symmetric.md``): every input line reaches
  ONE axon, whose type ``G_i`` colours the core's block ``W`` (input lines × logical neurons)
  so that ``W = B ∘ S(G)`` with ``B = [W ≠ 0]``, at most ``axon_types`` types and every
  ``S_j[t]`` — the one non-zero weight of neuron j on lines of type t — within the strength
  range (:func:`~neurocore.hardware.colouring.colour_types`). A core then takes up to ``axons``
  = 256 distinct inputs and a source neuron needs 1 duplicate per reader core.

Strategy ``duplicate-axons`` maps every layer with duplicate axons. Strategy ``shared-types``
maps a layer with shared types when every core's block colours — packed at up to ``axons``,
else ``3/4 · axons``, else ``axons / 2`` distinct inputs per core — and otherwise with duplicate
axons, saying why in the layer table (symmetric convolutions and OR-pooling always colour;
dense layers of random ±1 weights rarely do).

A neuron with T ≤ 0 fires with no input at all. Read by a duplicate-axons layer, or as an output,
it is compiled as its complement ``n' = 1 − n = [Σ −w_i x_i ≥ 1 − T]``: its readers negate their
weight on it and lower their threshold by that weight (the ±1 axon pair is indifferent to the
sign), and the host flips complemented output ports back. Read by a shared-types layer, negating
a line's weights would change the block's colouring, so it is compiled as it is, with leak
λ = T − 1 < 0: it spikes at every tick whose input sum reaches T, ticks without input included.
That is exact per frame — a memoryless layer k at tick k sees only its own frame's layer k − 1 —
but such a neuron also spikes at the ticks between frames (in a one-frame simulation, the ticks
before and after the frame reaches its layer).

Packing is greedy in a spatially tiled neuron order (several tile sizes are tried per layer and
the fewest cores kept), compiled from the last layer to the first so that each layer knows how
many duplicates its neurons need. A shared-types core first tries the types of the nearest
symmetric layer of its convolution's kernel (exact for a symmetric kernel, whose types are one
vector over the whole image; OR-pooling: all type 0), checked on the core's block; otherwise
``colour_types`` colours the block (exact, with a deterministic time limit), cached by block
content.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from neurocore.errors import NeurocoreError
from neurocore.hardware.colouring import ColouringError, colour_types
from neurocore.hardware.corespec import (
    DEST_OUTPUT,
    DEST_UNUSED,
    TRUENORTH,
    CoreSpec,
    NegMode,
    ResetMode,
)
from neurocore.hardware.fold import (
    BinaryLayer,
    BinaryNetwork,
    Decode,
    Encode,
    OrPool,
    Readout,
    Reshape,
    integer_thresholds,
)
from neurocore.hardware.program import Program
from neurocore.hardware.symmetric import SymmetricLayer, nearest_symmetric

Strategy = Literal["duplicate-axons", "shared-types"]
STRATEGIES: tuple[str, ...] = typing.get_args(Strategy)
DUPLICATE: Strategy = "duplicate-axons"
SHARED: Strategy = "shared-types"
COLOUR_TIME_LIMIT = 2.0  # CP-SAT's deterministic seconds per distinct block (colour_types)


class CompileError(NeurocoreError):
    """A network cannot be mapped onto the cores: the message names the layer and the limit."""


class SharedTypesError(CompileError):
    """A layer has no shared-types packing; ``reason`` (a ColouringError reason, ``"fan-in"`` or
    ``"strengths"``), ``core`` and ``limit`` (inputs per core) describe the last attempt."""

    def __init__(self, layer: str, reason: str, core: int | None, limit: int, detail: str
                 ) -> None:
        where = f"core {core} " if core is not None else ""
        super().__init__(f"layer {layer}: no shared-types packing ({where}at {limit} inputs per "
                         f"core: {detail})")
        self.reason, self.core, self.limit = reason, core, limit

    @property
    def summary(self) -> str:
        """Short form for the layer table: reason, core and input limit."""
        where = f"core {self.core}, " if self.core is not None else ""
        return f"{self.reason}, {where}{self.limit} inputs"


@dataclass
class LogicalLayer:
    """One layer of threshold neurons over the previous layer's flat outputs (or the inputs)."""

    name: str
    kind: str  # "linear" | "conv2d" | "or_pool"
    shape: tuple[int, ...]  # output shape, (C, H, W) or (F,)
    rows: np.ndarray  # (E,) neuron index of each synapse
    cols: np.ndarray  # (E,) input index of each synapse
    vals: np.ndarray  # (E,) weight in {−1, +1} (zeros dropped)
    threshold: np.ndarray  # (N,) fire ⟺ Σ ≥ threshold, after normalisation ≥ 1
    complement: np.ndarray  # (N,) bool: the hardware neuron carries 1 − n
    in_units: int  # input features or channels (for the "groups would fit" hint)
    kernel_area: int  # k·k for convolutions and pooling, 1 for dense layers
    groups: int  # blocks of channels that read disjoint inputs
    # a type per input index to try first for shared types (a symmetric kernel's G; all 0 for
    # OR-pooling), checked core by core; None: colour every core's block
    line_types: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.threshold.shape[0])


@dataclass
class LayerPlacement:
    name: str
    cores: list[list[int]]  # neurons of each core (logical indices)
    inputs: list[np.ndarray]  # sorted distinct input indices of each core
    copies: np.ndarray  # (N,) duplicates per neuron
    first_core: int = 0  # global index of the layer's first core
    mapping: Strategy = DUPLICATE
    types: list[np.ndarray] = field(default_factory=list)  # shared-types: G of each core's inputs
    fallback: str = ""  # shared-types was tried and failed: why (SharedTypesError.summary)

    @property
    def axons_per_input(self) -> int:
        """Axons an input line takes in each reader core (and duplicates a source needs per
        reader core)."""
        return 1 if self.mapping == SHARED else 2


@dataclass
class CompiledNetwork:
    """The program plus what the host needs around it and how logical neurons were placed."""

    program: Program
    layers: list[LogicalLayer]
    placement: list[LayerPlacement]
    input_levels: int | None  # thermometer levels applied on the host, or None
    input_shape: tuple[int, ...]
    output_complement: torch.Tensor  # (P,) bool
    key: torch.Tensor | None  # (classes, P) N-hot decode key, or None
    slot_of: list[np.ndarray] = field(default_factory=list)  # per layer: (N, 2) first copy

    @property
    def latency_ticks(self) -> int:
        return len(self.layers)


# ---- logical network ------------------------------------------------------------------------


def _window_index(shape: tuple[int, int, int], kernel: int, stride: int, padding: int,
                  ) -> tuple[np.ndarray, int, int]:
    """(C·k·k, L) flat input index of every window element (−1 where padding), L positions."""
    c, h, w = shape
    ids = torch.arange(1, c * h * w + 1, dtype=torch.float64).view(1, c, h, w)
    cols = F.unfold(ids, kernel, padding=padding, stride=stride)[0]  # (C·k·k, L), 0 = padding
    ho = (h + 2 * padding - kernel) // stride + 1
    wo = (w + 2 * padding - kernel) // stride + 1
    return cols.to(torch.int64).numpy() - 1, ho, wo


def _tiled_order(channels: int, ho: int, wo: int, tile: int, groups: int) -> np.ndarray:
    """Neuron order: group, then tiles of tile×tile positions, positions, channels of the group."""
    cg = channels // groups
    order = []
    for g in range(groups):
        for ty in range(0, ho, tile):
            for tx in range(0, wo, tile):
                for y in range(ty, min(ty + tile, ho)):
                    for x in range(tx, min(tx + tile, wo)):
                        for c in range(g * cg, (g + 1) * cg):
                            order.append((c * ho + y) * wo + x)
    return np.asarray(order, dtype=np.int64)


def _symmetric_line_types(w: np.ndarray, shape: tuple[int, ...], groups: int, padding: int,
                          patterns: Sequence[SymmetricLayer] | None = None) -> np.ndarray:
    """(C·H·W,) int8: per input pixel the type ``σ^y(ρ^x(q_c))`` of each group's pattern — the
    one given in ``patterns`` (as trained, e.g. ``symmetric.after: tie-masked``), else that of
    the nearest symmetric layer of the group's kernel
    (:func:`~neurocore.hardware.symmetric.nearest_symmetric`) — in padded coordinates. When the
    kernel's non-zero entries follow that pattern, every block of the convolution factors with
    these types (``docs/symmetric.md`` §4–5); otherwise they are only a first guess."""
    c, h, wd = shape
    og, cg = w.shape[0] // groups, c // groups
    types = np.zeros((c, h, wd), dtype=np.int8)
    for gi in range(groups):
        kernel = torch.from_numpy(w[gi * og:(gi + 1) * og]).to(torch.float64)  # (Og, Cg, k, k)
        layer = patterns[gi] if patterns is not None else nearest_symmetric(kernel).layer
        grid = layer.line_types(h + 2 * padding, wd + 2 * padding).view(cg, h + 2 * padding, -1)
        types[gi * cg:(gi + 1) * cg] = grid[:, padding:padding + h, padding:padding + wd].numpy()
    return types.reshape(-1)


def _integer_weights(layer: BinaryLayer) -> np.ndarray:
    w = layer.weight.detach().to(torch.float64)
    if layer.bias is not None:
        raise CompileError(
            f"layer {layer.name}: hardware neurons need integer pre-activations; remove the bias "
            "(use ternary_conv2d / ternary_linear, whose batch norm absorbs it)"
        )
    if not torch.equal(w, torch.round(w)) or bool((w.abs() > 1).any()):
        raise CompileError(
            f"layer {layer.name}: weights must be trinary {{-1, 0, +1}} for the duplicate-axons "
            "mapping (use ternary_conv2d / ternary_linear)"
        )
    return w.to(torch.int64).numpy()


def _smallest_groups(layer: LogicalLayer, limit: int) -> str:
    out_units = layer.shape[0]
    for g in range(1, layer.in_units + 1):
        if layer.in_units % g == 0 and out_units % g == 0 and \
                (layer.in_units // g) * layer.kernel_area <= limit:
            return f"groups={g} is the smallest group count that fits"
    if layer.kernel_area == 1:
        return (f"no group count divides both the {layer.in_units} inputs and the {out_units} "
                f"outputs with at most {limit} inputs per group: change out_features or the "
                "input width")
    return "no group count fits: use a smaller kernel"


def logical_layers(net: BinaryNetwork, input_shape: tuple[int, ...], *,
                   line_types: bool = False,
                   patterns: Mapping[str, Sequence[SymmetricLayer]] | None = None,
                   ) -> tuple[list[LogicalLayer], int | None, tuple[int, ...], torch.Tensor | None]:
    """The network as threshold-neuron layers over flat indices; (layers, levels, in shape, key).
    With ``line_types``, conv and pooling layers carry candidate axon types (LogicalLayer), from
    ``patterns[layer]`` (one per group) where given."""
    shape = tuple(input_shape)
    levels: int | None = None
    key: torch.Tensor | None = None
    layers: list[LogicalLayer] = []
    for stage in net.stages:
        if isinstance(stage, Encode):
            levels = stage.levels
            shape = (shape[0] * stage.levels, *shape[1:])
        elif isinstance(stage, Reshape):
            shape = (int(np.prod(shape)),)
        elif isinstance(stage, Decode):
            key = stage.key
        elif isinstance(stage, Readout):
            raise CompileError(
                f"layer {stage.name}: a float read-out cannot run on cores; end the model with "
                "binary output neurons and nhot_decode"
            )
        elif isinstance(stage, OrPool):
            if len(shape) != 3:
                raise CompileError(f"layer {stage.name}: pooling needs a (C, H, W) input")
            c, h, wd = shape
            idx, ho, wo = _window_index((1, h, wd), stage.kernel_size, stage.stride, 0)
            k2, pos = idx.shape
            rows = (np.arange(c)[:, None, None] * pos + np.arange(pos)[None, None, :])
            rows = np.broadcast_to(rows, (c, k2, pos))
            cols = np.arange(c)[:, None, None] * (h * wd) + idx[None]
            n = c * pos
            layers.append(LogicalLayer(
                stage.name, "or_pool", (c, ho, wo), rows.reshape(-1), cols.reshape(-1),
                np.ones(rows.size, dtype=np.int64), np.ones(n, dtype=np.int64),
                np.zeros(n, dtype=bool), c, k2, c,
                np.zeros(c * h * wd, dtype=np.int8) if line_types else None,
            ))
            shape = (c, ho, wo)
        elif isinstance(stage, BinaryLayer):
            w = _integer_weights(stage)
            channels = w.shape[0]
            if stage.kind == "linear":
                if len(shape) != 1:
                    raise CompileError(f"layer {stage.name}: a dense layer needs a flat input")
                rows, cols = np.nonzero(w)
                vals = w[rows, cols]
                per_neuron = np.arange(channels)
                out_shape: tuple[int, ...] = (channels,)
                in_units, k2, groups = shape[0], 1, 1
                candidate = None
            else:
                if len(shape) != 3:
                    raise CompileError(f"layer {stage.name}: a conv layer needs a (C, H, W) input")
                c_in = shape[0]
                g, cg, k = stage.groups, c_in // stage.groups, w.shape[-1]
                idx, ho, wo = _window_index(shape, k, stage.stride, stage.padding)  # (C·k·k, L)
                pos = ho * wo
                og = channels // g
                wflat = w.reshape(channels, cg * k * k)  # (Co, Cg·k·k)
                r_list, c_list, v_list = [], [], []
                for gi in range(g):
                    gidx = idx[gi * cg * k * k:(gi + 1) * cg * k * k]  # (Cg·k·k, L)
                    wg = wflat[gi * og:(gi + 1) * og]  # (Og, Cg·k·k)
                    co, e = np.nonzero(wg)
                    ci = gidx[e]  # (nnz, L)
                    valid = ci >= 0
                    rr = (co[:, None] + gi * og) * pos + np.arange(pos)[None, :]
                    r_list.append(rr[valid])
                    c_list.append(ci[valid])
                    v_list.append(np.broadcast_to(wg[co, e][:, None], ci.shape)[valid])
                rows = np.concatenate(r_list) if r_list else np.zeros(0, np.int64)
                cols = np.concatenate(c_list) if c_list else np.zeros(0, np.int64)
                vals = np.concatenate(v_list) if v_list else np.zeros(0, np.int64)
                per_neuron = np.repeat(np.arange(channels), pos)
                out_shape = (channels, ho, wo)
                in_units, k2, groups = c_in, k * k, g
                given = (patterns or {}).get(stage.name)
                if given is not None and (len(given) != g or any(
                        p.channels != cg for p in given)):
                    raise CompileError(
                        f"layer {stage.name}: {len(given)} type patterns of "
                        f"{sorted({p.channels for p in given})} channels given for a convolution "
                        f"of {g} groups of {cg} input channels")
                candidate = _symmetric_line_types(w, shape, g, stage.padding, given) \
                    if line_types and w.any() else None
            fan_bound = int(np.abs(w).reshape(channels, -1).sum(1).max()) if w.size else 0
            t, flip = integer_thresholds(stage.chain, channels, bound=max(fan_bound, 1))
            t_n = t.numpy()[per_neuron].astype(np.int64)
            flip_n = flip.numpy()[per_neuron]
            vals = np.where(flip_n[rows], -vals, vals)  # fire ⟺ pre ≤ T  ⟺  −pre ≥ −T
            t_n = np.where(flip_n, -t_n, t_n)
            layers.append(LogicalLayer(
                stage.name, stage.kind, out_shape, rows.astype(np.int64), cols.astype(np.int64),
                vals.astype(np.int64), t_n, np.zeros(len(t_n), dtype=bool), in_units, k2, groups,
                candidate,
            ))
            shape = out_shape
    if not layers:
        raise CompileError("the network has no neuron layer to compile")
    return layers, levels, tuple(input_shape), key


def normalise(layers: list[LogicalLayer], num_inputs: int,
              complement: Sequence[bool] | None = None) -> None:
    """Rewrite weights and thresholds for complemented inputs; complement neurons with T ≤ 0
    in the layers where ``complement`` allows it (default: all), else keep them as they are
    (λ = T − 1 < 0: they fire with no input)."""
    allowed = [True] * len(layers) if complement is None else list(complement)
    comp_in = np.zeros(num_inputs, dtype=bool)
    for layer, may_complement in zip(layers, allowed, strict=True):
        n = layer.size
        flipped = comp_in[layer.cols]
        # Σ w x = Σ_plain w x + Σ_comp w (1 − x')  →  weight −w on x', threshold T − Σ_comp w
        shift = np.bincount(layer.rows[flipped], weights=layer.vals[flipped], minlength=n)
        vals = np.where(flipped, -layer.vals, layer.vals)
        t = layer.threshold - shift.astype(np.int64)
        comp = (t <= 0) & may_complement
        vals = np.where(comp[layer.rows], -vals, vals)
        t = np.where(comp, 1 - t, t)
        # never-firing neurons: clamp T to (Σ positive weights) + 1 so the leak stays small;
        # always-firing plain ones: clamp T to −(Σ |negative weights|), likewise
        pos_sum = np.bincount(layer.rows, weights=np.maximum(vals, 0), minlength=n)
        neg_sum = np.bincount(layer.rows, weights=np.maximum(-vals, 0), minlength=n)
        t = np.minimum(t, pos_sum.astype(np.int64) + 1)
        t = np.maximum(t, -neg_sum.astype(np.int64))
        layer.vals, layer.threshold, layer.complement = vals, t, comp
        comp_in = comp


# ---- packing --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Synapses:
    """A layer's synapses sorted by neuron: those of neuron j are ``bounds[j]:bounds[j + 1]``."""

    cols: np.ndarray  # (E,) input index
    vals: np.ndarray  # (E,) weight
    bounds: np.ndarray  # (N + 1,)

    @classmethod
    def of(cls, layer: LogicalLayer) -> _Synapses:
        order = np.argsort(layer.rows, kind="stable")
        bounds = np.searchsorted(layer.rows[order], np.arange(layer.size + 1))
        return cls(layer.cols[order], layer.vals[order], bounds)

    def inputs(self, j: int) -> np.ndarray:
        return np.unique(self.cols[self.bounds[j]:self.bounds[j + 1]])

    def block(self, core: list[int], lines: np.ndarray) -> np.ndarray:
        """The core's weights W (lines × neurons of ``core``), int64; ``lines`` sorted."""
        w = np.zeros((len(lines), len(core)), dtype=np.int64)
        for k, j in enumerate(core):
            a, b = int(self.bounds[j]), int(self.bounds[j + 1])
            w[np.searchsorted(lines, self.cols[a:b]), k] = self.vals[a:b]
        return w


def _inputs_per_neuron(layer: LogicalLayer) -> list[np.ndarray]:
    syn = _Synapses.of(layer)
    return [syn.inputs(j) for j in range(layer.size)]


def _greedy(order: np.ndarray, inputs: list[np.ndarray], copies: np.ndarray, max_inputs: int,
            max_neurons: int) -> list[list[int]]:
    cores: list[list[int]] = []
    current: list[int] = []
    seen: set[int] = set()
    used = 0
    for j in order.tolist():
        new = [i for i in inputs[j].tolist() if i not in seen]
        if current and (len(seen) + len(new) > max_inputs or used + copies[j] > max_neurons):
            cores.append(current)
            current, seen, used = [], set(), 0
            new = inputs[j].tolist()
        current.append(j)
        seen.update(new)
        used += int(copies[j])
    if current:
        cores.append(current)
    return cores


def _pack(layer: LogicalLayer, inputs: list[np.ndarray], copies: np.ndarray, max_inputs: int,
          max_neurons: int) -> tuple[list[list[int]], list[np.ndarray]]:
    """Fewest cores over the tiled neuron orders: (neurons of each core, inputs of each core)."""
    if layer.kind == "linear":
        candidates = [np.arange(layer.size)]
    else:
        c, ho, wo = layer.shape
        candidates = [_tiled_order(c, ho, wo, t, layer.groups)
                      for t in (1, 2, 3, 4, 6, 8) if t == 1 or t <= max(ho, wo)]
    best = min((_greedy(o, inputs, copies, max_inputs, max_neurons) for o in candidates), key=len)
    core_inputs = [np.unique(np.concatenate([inputs[j] for j in core])) if core else
                   np.zeros(0, np.int64) for core in best]
    return best, core_inputs


def pack_layer(layer: LogicalLayer, copies: np.ndarray, spec: CoreSpec) -> LayerPlacement:
    """Duplicate-axons packing: ≤ ``axons / 2`` distinct inputs and ≤ ``neurons`` copies a core."""
    max_inputs, max_neurons = spec.axons // 2, spec.neurons
    inputs = _inputs_per_neuron(layer)
    widest = max((len(x) for x in inputs), default=0)
    if widest > max_inputs:
        hint = _smallest_groups(layer, max_inputs)
        raise CompileError(
            f"layer {layer.name}: a neuron reads {widest} distinct inputs, a core takes "
            f"{max_inputs} ({spec.axons} axons, two per input in the duplicate-axons mapping); "
            f"{hint}"
        )
    _check_copies(layer, copies, spec)
    cores, core_inputs = _pack(layer, inputs, copies, max_inputs, max_neurons)
    return LayerPlacement(layer.name, cores, core_inputs, copies)


def _check_copies(layer: LogicalLayer, copies: np.ndarray, spec: CoreSpec) -> None:
    if int(copies.max(initial=0)) > spec.neurons:
        raise CompileError(
            f"layer {layer.name}: a neuron needs {int(copies.max())} duplicates (one per "
            f"destination axon), a core holds {spec.neurons} neurons"
        )


class BlockColourer:
    """Type colourings of blocks (:func:`~neurocore.hardware.colouring.colour_types`, exact
    with a deterministic time limit), cached by block content and number of types; failures
    are cached too."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, tuple[int, ...], bytes], np.ndarray | ColouringError] = {}

    def types(self, block: np.ndarray, num_types: int, name: str) -> np.ndarray:
        """G (lines,) int8 with ``block == B ∘ S(G)`` using ≤ ``num_types`` types; raises
        :class:`~neurocore.hardware.colouring.ColouringError` naming ``name``."""
        key = (num_types, block.shape, block.tobytes())
        if key not in self._cache:
            try:
                c = colour_types(torch.from_numpy(block), num_types, exact=True,
                                 time_limit=COLOUR_TIME_LIMIT, name=name)
                self._cache[key] = c.types.numpy().copy()
            except ColouringError as e:
                self._cache[key] = e
        got = self._cache[key]
        if isinstance(got, ColouringError):
            raise ColouringError(name, got.reason, str(got)[len(got.block) + 2:], got.clique)
        return got


def _strengths_of(block: np.ndarray, types: np.ndarray, num_types: int) -> np.ndarray | None:
    """S (neurons, T) with ``block == B ∘ S(G)`` for G = ``types``, S[j, t] the weight of neuron
    j on its lines of type t (0 if none); None if G does not factor the block."""
    g = types.astype(np.int64)
    if g.size and (int(g.min()) < 0 or int(g.max()) >= num_types):
        return None
    s = np.zeros((block.shape[1], num_types), dtype=np.int64)
    r, c = np.nonzero(block)
    s[c, g[r]] = block[r, c]
    return s if np.array_equal(s.T[g] * (block != 0), block) else None


def _strength_range_ok(block: np.ndarray, spec: CoreSpec) -> bool:
    m = np.abs(block)
    return bool((m <= min(-spec.strength_min, spec.strength_max)).all()) if m.size else True


def pack_shared(layer: LogicalLayer, copies: np.ndarray, spec: CoreSpec,
                colourer: BlockColourer) -> LayerPlacement:
    """Shared-types packing: one axon per distinct input, every core's block type-coloured.

    Input limits ``axons``, ``3/4 · axons``, ``axons / 2`` are tried in turn (a smaller tile has
    fewer lines to colour); raises :class:`SharedTypesError` (the last attempt) if none colours.
    """
    syn = _Synapses.of(layer)
    inputs = [syn.inputs(j) for j in range(layer.size)]
    widest = max((len(x) for x in inputs), default=0)
    if widest > spec.axons:
        raise SharedTypesError(layer.name, "fan-in", None, spec.axons,
                               f"a neuron reads {widest} distinct inputs")
    _check_copies(layer, copies, spec)
    limits = sorted({spec.axons, 3 * spec.axons // 4, spec.axons // 2} - {0}, reverse=True)
    failure: SharedTypesError | None = None
    for limit in [n for n in limits if n >= widest]:
        cores, core_inputs = _pack(layer, inputs, copies, limit, spec.neurons)
        types: list[np.ndarray] = []
        for k, (core, lines) in enumerate(zip(cores, core_inputs, strict=True)):
            block = syn.block(core, lines)
            if not _strength_range_ok(block, spec):
                raise SharedTypesError(
                    layer.name, "strengths", k, limit,
                    f"a weight of magnitude {int(np.abs(block).max())} is outside the strength "
                    f"range [{spec.strength_min}, {spec.strength_max}] for either sign")
            if layer.line_types is not None and _strengths_of(
                    block, layer.line_types[lines], spec.axon_types) is not None:
                types.append(layer.line_types[lines])
                continue
            try:
                types.append(colourer.types(block, spec.axon_types,
                                            f"layer {layer.name} core {k}"))
            except ColouringError as e:
                failure = SharedTypesError(layer.name, e.reason, k, limit,
                                           str(e)[len(e.block) + 2:])
                break
        else:
            return LayerPlacement(layer.name, cores, core_inputs, copies, mapping=SHARED,
                                  types=types)
    assert failure is not None
    raise failure


def _readers(placement: LayerPlacement, size: int) -> list[list[int]]:
    """For each input index of a layer, the layer's cores (local indices) that read it."""
    readers: list[list[int]] = [[] for _ in range(size)]
    for ci, ins in enumerate(placement.inputs):
        for i in ins.tolist():
            readers[i].append(ci)
    return readers


def _axon_maps(placement: LayerPlacement) -> list[dict[int, int]]:
    """Per core: input index -> its first axon (duplicate axons: the −1 axon is the next one)."""
    step = placement.axons_per_input
    return [{int(i): step * k for k, i in enumerate(ins.tolist())} for ins in placement.inputs]


# ---- program --------------------------------------------------------------------------------


def compile_network(net: BinaryNetwork, input_shape: tuple[int, ...],
                    spec: CoreSpec = TRUENORTH, *, binary_inputs: bool = False,
                    strategy: Strategy = DUPLICATE,
                    patterns: Mapping[str, Sequence[SymmetricLayer]] | None = None
                    ) -> CompiledNetwork:
    """Map ``net`` onto cores with ``strategy`` (module docstring). Without an input-coding stage
    (thermometer) the host can only send the inputs as they are: pass ``binary_inputs=True`` to
    assert they are already 0/1. ``patterns``: per conv layer name, the type pattern of each
    group as trained (``neurocore.training.symmetrize.logged_patterns``), tried first for shared
    types instead of a search (each core's block is still checked)."""
    if strategy not in STRATEGIES:
        raise CompileError(
            f"unknown compiler strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}"
        )
    layers, levels, in_shape, key = logical_layers(net, input_shape,
                                                   line_types=strategy == SHARED,
                                                   patterns=patterns)
    if levels is None and not binary_inputs:
        raise CompileError(
            f"layer {layers[0].name}: the first layer reads the raw inputs, but the chip receives "
            "spikes: add a thermometer layer (input coding) first, or compile with "
            "binary_inputs=True if the data are already 0/1"
        )
    num_inputs = int(np.prod(in_shape)) * (levels or 1)

    # last layer first: each layer's packing tells the one below how many copies it needs.
    # readers[l][i]: the cores of layer l (local indices) that read input i of layer l.
    # Shared-types blocks are coloured before normalise: its inputs stay plain (below), and
    # negating a neuron's column keeps a colouring.
    colourer = BlockColourer()
    placements: list[LayerPlacement] = []
    readers: list[list[list[int]]] = []
    for li in range(len(layers) - 1, -1, -1):
        layer = layers[li]
        if not readers:
            copies = np.ones(layer.size, dtype=np.int64)
        else:
            per = placements[0].axons_per_input
            copies = np.array([max(1, per * len(c)) for c in readers[0]], dtype=np.int64)
        placement, failure = None, None
        if strategy == SHARED:
            try:
                placement = pack_shared(layer, copies, spec, colourer)
            except SharedTypesError as e:
                failure = e
        if placement is None:
            try:
                placement = pack_layer(layer, copies, spec)
            except CompileError as e:
                if failure is None:
                    raise
                raise CompileError(f"{e}; and {str(failure)[len(f'layer {layer.name}: '):]}"
                                   ) from None
            placement.fallback = failure.summary if failure is not None else ""
        placements.insert(0, placement)
        readers.insert(0, _readers(placement, num_inputs if li == 0 else layers[li - 1].size))
    input_readers = readers[0]
    # a layer read by a shared-types layer keeps its T ≤ 0 neurons plain (module docstring)
    normalise(layers, num_inputs,
              [li + 1 == len(layers) or placements[li + 1].mapping == DUPLICATE
               for li in range(len(layers))])

    offset = 0
    for p in placements:
        p.first_core = offset
        offset += len(p.cores)
    program = Program.blank(offset, num_inputs, layers[-1].size, spec)
    crossbar = program.crossbar.numpy()
    axon_types = program.axon_types.numpy()
    strengths = program.strengths.numpy()
    leak = program.leak.numpy()
    dest_core = program.dest_core.numpy()
    dest_axon = program.dest_axon.numpy()
    reset_value = program.reset_value.numpy()
    neg_mode = program.neg_mode.numpy()
    strengths[:, :, 0] = 1
    strengths[:, :, 1] = -1
    neg_mode[:] = int(NegMode.RESET)
    reset_value[:] = 0

    # where each layer's inputs sit: (global core, axon) of input index i in reader core q
    slot_of: list[np.ndarray] = []
    for li, (layer, p) in enumerate(zip(layers, placements, strict=True)):
        shared = p.mapping == SHARED
        axon_of = _axon_maps(p)
        syn = _Synapses.of(layer)
        first = np.full((layer.size, 2), -1, dtype=np.int64)
        # readers of this layer's outputs, to aim each duplicate at its axon
        nxt = placements[li + 1] if li + 1 < len(layers) else None
        next_axon = _axon_maps(nxt) if nxt is not None else []
        out_readers = readers[li + 1] if nxt is not None else []
        for ci, core in enumerate(p.cores):
            g = p.first_core + ci
            table = np.zeros((0, spec.axon_types), dtype=np.int64)
            if shared:
                types = p.types[ci]
                axon_types[g, :len(types)] = types
                factors = _strengths_of(syn.block(core, p.inputs[ci]), types, spec.axon_types)
                if factors is None:  # normalise only negated whole columns: a bug
                    raise AssertionError(f"layer {layer.name} core {ci}: W ≠ B ∘ S(G)")
                table = factors
            else:
                for a in axon_of[ci].values():
                    axon_types[g, a] = 0  # +1 axon of the input
                    axon_types[g, a + 1] = 1  # −1 axon of the input
            slot = 0
            for k, j in enumerate(core):
                targets: list[tuple[int, int]]
                if nxt is None:
                    targets = [(DEST_OUTPUT, j)]
                else:
                    targets = [(nxt.first_core + q, next_axon[q][j] + d)
                               for q in out_readers[j] for d in range(nxt.axons_per_input)]
                    if not targets:
                        targets = [(DEST_UNUSED, 0)]
                a, b = int(syn.bounds[j]), int(syn.bounds[j + 1])
                axons = np.array([axon_of[ci][int(c)] for c in syn.cols[a:b].tolist()],
                                 dtype=np.int64)
                if not shared:
                    axons = axons + (syn.vals[a:b] < 0)
                first[j] = (g, slot)
                for dc, da in targets:
                    crossbar[g, axons, slot] = True
                    if shared:
                        strengths[g, slot] = table[k]
                    leak[g, slot] = int(layer.threshold[j]) - 1
                    dest_core[g, slot] = dc
                    dest_axon[g, slot] = da
                    slot += 1
        slot_of.append(first)
    # host input map: every input line to its axon(s) in every reader core
    lines, cores_, axons_ = [], [], []
    p0 = placements[0]
    axon0 = _axon_maps(p0)
    for i, reader_cores in enumerate(input_readers):
        for q in reader_cores:
            for d in range(p0.axons_per_input):
                lines.append(i)
                cores_.append(p0.first_core + q)
                axons_.append(axon0[q][i] + d)
    out_comp = torch.from_numpy(layers[-1].complement.copy())
    meta = {
        "strategy": strategy,
        "input_shape": json.dumps(list(in_shape)),
        "input_levels": json.dumps(levels),
        "latency_ticks": str(len(layers)),
        "output_complement": json.dumps(out_comp.to(torch.int64).tolist()),
        "decode_key": json.dumps(key.to(torch.int64).tolist() if key is not None else None),
        "layers": json.dumps(layer_table(layers, placements)),
    }
    program = program.replace(
        input_line=torch.tensor(lines, dtype=torch.int32),
        input_core=torch.tensor(cores_, dtype=torch.int32),
        input_axon=torch.tensor(axons_, dtype=torch.int32),
        reset_mode=torch.full_like(program.reset_mode, int(ResetMode.ABSOLUTE)),
        metadata=meta,
    )
    program.validate()
    return CompiledNetwork(program, layers, placements, levels, in_shape, out_comp, key, slot_of)


def layer_table(
    layers: list[LogicalLayer], placements: list[LayerPlacement]
) -> list[dict[str, object]]:
    """One row per layer: its mapping (with the fallback reason), cores, axons and neurons."""
    rows = []
    for tick, (layer, p) in enumerate(zip(layers, placements, strict=True)):
        fan_in = np.bincount(layer.rows, minlength=layer.size)
        mapping = f"{p.mapping} (fallback: {p.fallback})" if p.fallback else p.mapping
        rows.append({
            "layer": layer.name,
            "kind": layer.kind,
            "mapping": mapping,
            "tick": tick,
            "neurons": layer.size,
            "hardware_neurons": int(p.copies.sum()),
            "duplicates": int(p.copies.sum() - layer.size),
            "cores": len(p.cores),
            "axons_used": p.axons_per_input * sum(len(ins) for ins in p.inputs),
            "max_fan_in": int(fan_in.max(initial=0)),
            "complemented": int(layer.complement.sum()),
            "fire_at_rest": int(((layer.threshold <= 0) & ~layer.complement).sum()),
        })
    return rows

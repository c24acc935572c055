"""Compile a folded binary network onto neurosynaptic cores (strategy ``duplicate-axons``).

The first mapping strategy follows Esser et al. 2016 (Eedn):

* every logical neuron computes ``n = [Σ_i w_i x_i ≥ T]`` with trinary ``w_i ∈ {−1, 0, +1}``
  over binary inputs ``x_i`` (batch norm already folded into the integer threshold T);
* every input line of a core reaches two axons, type 0 (strength +1) and type 1 (strength −1),
  so a core takes ``axons / 2`` = 128 distinct inputs and holds up to ``neurons`` = 256 neurons;
* neurons are memoryless: α = 1, λ = T − 1 ≥ 0, β = 0, absolute reset to 0 and negative reset
  to 0, so V is 0 after every tick (one frame may enter per tick);
* layers are pipelined one tick apart (every delay is 1): the host's input spikes enter at tick 0,
  layer k fires at tick k, the output layer at tick L − 1;
* a neuron has one destination, so a value read by m cores is computed by 2m duplicate neurons
  (one per destination axon), all in the source neuron's core; the report counts them;
* a neuron with T ≤ 0 would fire with no input at all; it is compiled as its complement
  ``n' = 1 − n = [Σ −w_i x_i ≥ 1 − T]`` and its readers negate their weight on it and lower
  their threshold by that weight; the host flips complemented output ports back.

Packing is greedy in a spatially tiled neuron order (several tile sizes are tried per layer and
the fewest cores kept), compiled from the last layer to the first so that each layer knows how
many duplicates its neurons need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from neurocore.errors import NeurocoreError
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


class CompileError(NeurocoreError):
    """A network cannot be mapped onto the cores: the message names the layer and the limit."""


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


def logical_layers(net: BinaryNetwork, input_shape: tuple[int, ...]
                   ) -> tuple[list[LogicalLayer], int | None, tuple[int, ...], torch.Tensor | None]:
    """The network as threshold-neuron layers over flat indices; (layers, levels, in shape, key)."""
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
            fan_bound = int(np.abs(w).reshape(channels, -1).sum(1).max()) if w.size else 0
            t, flip = integer_thresholds(stage.chain, channels, bound=max(fan_bound, 1))
            t_n = t.numpy()[per_neuron].astype(np.int64)
            flip_n = flip.numpy()[per_neuron]
            vals = np.where(flip_n[rows], -vals, vals)  # fire ⟺ pre ≤ T  ⟺  −pre ≥ −T
            t_n = np.where(flip_n, -t_n, t_n)
            layers.append(LogicalLayer(
                stage.name, stage.kind, out_shape, rows.astype(np.int64), cols.astype(np.int64),
                vals.astype(np.int64), t_n, np.zeros(len(t_n), dtype=bool), in_units, k2, groups,
            ))
            shape = out_shape
    if not layers:
        raise CompileError("the network has no neuron layer to compile")
    return layers, levels, tuple(input_shape), key


def normalise(layers: list[LogicalLayer], num_inputs: int) -> None:
    """Rewrite weights and thresholds for complemented inputs; complement neurons with T ≤ 0."""
    comp_in = np.zeros(num_inputs, dtype=bool)
    for layer in layers:
        n = layer.size
        flipped = comp_in[layer.cols]
        # Σ w x = Σ_plain w x + Σ_comp w (1 − x')  →  weight −w on x', threshold T − Σ_comp w
        shift = np.bincount(layer.rows[flipped], weights=layer.vals[flipped], minlength=n)
        vals = np.where(flipped, -layer.vals, layer.vals)
        t = layer.threshold - shift.astype(np.int64)
        comp = t <= 0
        vals = np.where(comp[layer.rows], -vals, vals)
        t = np.where(comp, 1 - t, t)
        # never-firing neurons: clamp T to (Σ positive weights) + 1 so the leak stays small
        pos_sum = np.bincount(layer.rows, weights=(vals > 0).astype(np.int64), minlength=n)
        t = np.minimum(t, pos_sum.astype(np.int64) + 1)
        layer.vals, layer.threshold, layer.complement = vals, t, comp
        comp_in = comp


# ---- packing --------------------------------------------------------------------------------


def _inputs_per_neuron(layer: LogicalLayer) -> list[np.ndarray]:
    order = np.argsort(layer.rows, kind="stable")
    rows, cols = layer.rows[order], layer.cols[order]
    bounds = np.searchsorted(rows, np.arange(layer.size + 1))
    return [np.unique(cols[bounds[j]:bounds[j + 1]]) for j in range(layer.size)]


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


def pack_layer(layer: LogicalLayer, copies: np.ndarray, spec: CoreSpec) -> LayerPlacement:
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
    if int(copies.max(initial=0)) > max_neurons:
        raise CompileError(
            f"layer {layer.name}: a neuron is read by {int(copies.max()) // 2} cores and needs "
            f"{int(copies.max())} duplicates, a core holds {max_neurons} neurons"
        )
    if layer.kind == "linear":
        candidates = [np.arange(layer.size)]
    else:
        c, ho, wo = layer.shape
        candidates = [_tiled_order(c, ho, wo, t, layer.groups)
                      for t in (1, 2, 3, 4, 6, 8) if t == 1 or t <= max(ho, wo)]
    best = min((_greedy(o, inputs, copies, max_inputs, max_neurons) for o in candidates), key=len)
    core_inputs = [np.unique(np.concatenate([inputs[j] for j in core])) if core else
                   np.zeros(0, np.int64) for core in best]
    return LayerPlacement(layer.name, best, core_inputs, copies)


def _readers(placement: LayerPlacement, size: int) -> list[list[int]]:
    """For each input index of a layer, the layer's cores (local indices) that read it."""
    readers: list[list[int]] = [[] for _ in range(size)]
    for ci, ins in enumerate(placement.inputs):
        for i in ins.tolist():
            readers[i].append(ci)
    return readers


def _axon_maps(placement: LayerPlacement) -> list[dict[int, int]]:
    """Per core: input index -> its +1 axon (the −1 axon is the next one)."""
    return [{int(i): 2 * k for k, i in enumerate(ins.tolist())} for ins in placement.inputs]


# ---- program --------------------------------------------------------------------------------


def compile_network(net: BinaryNetwork, input_shape: tuple[int, ...],
                    spec: CoreSpec = TRUENORTH, *, binary_inputs: bool = False) -> CompiledNetwork:
    """Map ``net`` onto cores. Without an input-coding stage (thermometer) the host can only send
    the inputs as they are: pass ``binary_inputs=True`` to assert they are already 0/1."""
    layers, levels, in_shape, key = logical_layers(net, input_shape)
    if levels is None and not binary_inputs:
        raise CompileError(
            f"layer {layers[0].name}: the first layer reads the raw inputs, but the chip receives "
            "spikes: add a thermometer layer (input coding) first, or compile with "
            "binary_inputs=True if the data are already 0/1"
        )
    num_inputs = int(np.prod(in_shape)) * (levels or 1)
    normalise(layers, num_inputs)

    # last layer first: each layer's packing tells the one below how many copies it needs.
    # readers[l][i]: the cores of layer l (local indices) that read input i of layer l.
    packed: list[LayerPlacement] = []
    readers: list[list[list[int]]] = []
    for li in range(len(layers) - 1, -1, -1):
        layer = layers[li]
        if not readers:
            copies = np.ones(layer.size, dtype=np.int64)
        else:
            copies = np.array([max(1, 2 * len(c)) for c in readers[0]], dtype=np.int64)
        placement = pack_layer(layer, copies, spec)
        packed.insert(0, placement)
        readers.insert(0, _readers(placement, num_inputs if li == 0 else layers[li - 1].size))
    placements = packed
    input_readers = readers[0]

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
        axon_of = _axon_maps(p)
        order = np.argsort(layer.rows, kind="stable")
        rows, cols, vals = layer.rows[order], layer.cols[order], layer.vals[order]
        bounds = np.searchsorted(rows, np.arange(layer.size + 1))
        first = np.full((layer.size, 2), -1, dtype=np.int64)
        # readers of this layer's outputs, to aim each duplicate at its axon
        nxt = placements[li + 1] if li + 1 < len(layers) else None
        next_axon = _axon_maps(nxt) if nxt is not None else []
        out_readers = readers[li + 1] if nxt is not None else []
        for ci, core in enumerate(p.cores):
            g = p.first_core + ci
            for a in axon_of[ci].values():
                axon_types[g, a] = 0  # +1 axon of the input
                axon_types[g, a + 1] = 1  # −1 axon of the input
            slot = 0
            for j in core:
                targets: list[tuple[int, int]]
                if nxt is None:
                    targets = [(DEST_OUTPUT, j)]
                else:
                    targets = [(nxt.first_core + q, next_axon[q][j] + d)
                               for q in out_readers[j] for d in (0, 1)]
                    if not targets:
                        targets = [(DEST_UNUSED, 0)]
                syn_cols = cols[bounds[j]:bounds[j + 1]]
                syn_vals = vals[bounds[j]:bounds[j + 1]]
                axons = np.array([axon_of[ci][int(c)] for c in syn_cols.tolist()], dtype=np.int64)
                axons = axons + (syn_vals < 0)
                first[j] = (g, slot)
                for dc, da in targets:
                    crossbar[g, axons, slot] = True
                    leak[g, slot] = int(layer.threshold[j]) - 1
                    dest_core[g, slot] = dc
                    dest_axon[g, slot] = da
                    slot += 1
        slot_of.append(first)
    # host input map: every input line to both axons of every reader core
    lines, cores_, axons_ = [], [], []
    p0 = placements[0]
    axon0 = _axon_maps(p0)
    for i, reader_cores in enumerate(input_readers):
        for q in reader_cores:
            for d in (0, 1):
                lines.append(i)
                cores_.append(p0.first_core + q)
                axons_.append(axon0[q][i] + d)
    out_comp = torch.from_numpy(layers[-1].complement.copy())
    meta = {
        "strategy": "duplicate-axons",
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
    rows = []
    for tick, (layer, p) in enumerate(zip(layers, placements, strict=True)):
        fan_in = np.bincount(layer.rows, minlength=layer.size)
        rows.append({
            "layer": layer.name,
            "kind": layer.kind,
            "tick": tick,
            "neurons": layer.size,
            "hardware_neurons": int(p.copies.sum()),
            "duplicates": int(p.copies.sum() - layer.size),
            "cores": len(p.cores),
            "max_fan_in": int(fan_in.max(initial=0)),
            "complemented": int(layer.complement.sum()),
        })
    return rows

"""Fold a binary network into the form hardware consumes: per layer a weight and a threshold.

A binary layer of a trained model is ``synapses → [batch norm] → binary activation``, whose
neuron ``j`` fires when ``f_j(pre_j) = [bn_j(pre_j) ≥ θ]`` holds, ``pre = W·a + b``. Batch norm's
inference formula is monotone in ``pre`` (increasing when its scale is positive, decreasing when
negative, constant when zero), so there is a switching point t_j with

    f_j(pre) = [pre ≥ t_j]   (scale > 0)        f_j(pre) = [pre ≤ t_j]   (scale < 0).

:func:`fold` finds t_j by bisection over the float32 numbers, evaluating exactly the operations
the model evaluates (:mod:`neurocore.layers.batchnorm`). The folded network computes ``pre`` with
the same synaptic operation as the model and compares it with t_j, so its spikes equal the
model's fully binarized spikes *exactly*, for any input; :func:`integer_thresholds` gives the
integer switching points used when ``pre`` is an integer (integer weights, binary inputs).

Supported layer sequences (top-level children of an ``nn.Sequential``), dropout skipped:

    (Linear | Conv2d) [BatchNorm] BinaryActivation     a binary layer
    MaxPool2d after a binary layer                     OR over the window
    Thermometer (first layer only)                     input coding, done by the host
    Flatten
    NHotDecode                                         class scores from the last binary layer
    Linear [BatchNorm]  at the end                     a non-binary read-out
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from neurocore.errors import NeurocoreError
from neurocore.layers.batchnorm import _ExplicitEval
from neurocore.layers.encode import Thermometer, thermometer
from neurocore.layers.output import NHotDecode, nhot_decode
from neurocore.neurons.binary import BinaryActivation

_INF_KEY = 0x7F800000  # ordered key of +inf; -inf is its negation


def _key_to_float(k: torch.Tensor) -> torch.Tensor:
    """int64 keys ordered like the float32 numbers -> those numbers (key 0 is +0)."""
    bits = torch.where(k >= 0, k, (-k) | 0x80000000)  # sign-magnitude pattern, 32 bits
    wrapped = torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32)
    return wrapped.view(torch.float32)


@dataclass
class Chain:
    """The per-neuron function ``pre ↦ fires`` of one binary layer, evaluated as the model does."""

    scale: torch.Tensor | None  # (C,) batch-norm inference scale, or None without batch norm
    shift: torch.Tensor | None
    theta: float  # the activation's step threshold

    def fires(self, pre: torch.Tensor) -> torch.Tensor:
        """``pre`` of shape (..., C) -> bool of the same shape."""
        if self.scale is None or self.shift is None:
            return pre >= self.theta
        return pre * self.scale + self.shift >= self.theta

    def direction(self, channels: int) -> torch.Tensor:
        """+1 where firing grows with ``pre``, −1 where it falls, 0 where it is constant."""
        if self.scale is None:
            return torch.ones(channels, dtype=torch.int64)
        return torch.sign(self.scale).to(torch.int64).expand(channels)


def _first_true(
    test: Callable[[torch.Tensor], torch.Tensor], lo: torch.Tensor, hi: torch.Tensor
) -> torch.Tensor:
    """Per channel the smallest k in [lo, hi] with test(k), for tests monotone false→true.

    Returns ``hi`` where no k passes (callers make ``hi`` a sentinel that passes).
    """
    lo, hi = lo.clone(), hi.clone()
    while bool((hi - lo > 1).any()):
        mid = lo + (hi - lo) // 2
        ok = test(mid)
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    return torch.where(test(lo), lo, hi)


def float_thresholds(chain: Chain, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel (t, flip) with fires(pre) ⟺ pre ≥ t (flip False) or pre ≤ t (flip True),
    exactly, for every finite float32 ``pre``."""
    direction = chain.direction(channels)
    flip = direction < 0
    lo = torch.full((channels,), -_INF_KEY, dtype=torch.int64)
    hi = torch.full((channels,), _INF_KEY + 1, dtype=torch.int64)  # sentinel: passes

    def changed(k: torch.Tensor) -> torch.Tensor:  # rising: starts firing; falling: stops
        fires = chain.fires(_key_to_float(k.clamp(max=_INF_KEY)))
        return torch.where(flip, ~fires, fires) | (k > _INF_KEY)

    k = _first_true(changed, lo, hi)
    inf = torch.tensor(float("inf"))
    rising_t = torch.where(k > _INF_KEY, inf, _key_to_float(k.clamp(max=_INF_KEY)))
    # falling: firing stops at key k, so the last value that fires is the float just below it
    below = k - 1
    below_t = _key_to_float(below.clamp(-_INF_KEY, _INF_KEY))
    falling_t = torch.where(below < -_INF_KEY, -inf, below_t)
    t = torch.where(flip, falling_t, rising_t)
    const = direction == 0
    always = chain.fires(torch.zeros(channels))
    t = torch.where(const & always, -inf, torch.where(const & ~always, inf, t))
    return t, flip


def integer_thresholds(
    chain: Chain, channels: int, bound: int = 2**24
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel (T, flip) with fires(pre) ⟺ pre ≥ T (or pre ≤ T if flip) for every integer
    ``pre`` in [−bound, bound]; T = bound + 1 (or −bound − 1 if flip) means never."""
    direction = chain.direction(channels)
    flip = direction < 0
    lo = torch.full((channels,), -bound, dtype=torch.int64)
    hi = torch.full((channels,), bound + 1, dtype=torch.int64)

    def changed(k: torch.Tensor) -> torch.Tensor:
        fires = chain.fires(k.to(torch.float32))
        return torch.where(flip, ~fires, fires) | (k > bound)

    k = _first_true(changed, lo, hi)
    t = torch.where(flip, k - 1, k)
    const = direction == 0
    always = chain.fires(torch.zeros(channels))
    t = torch.where(const & always, -bound, torch.where(const & ~always, bound + 1, t))
    return t, flip


# ---- the folded network -------------------------------------------------------------------


@dataclass
class BinaryLayer:
    name: str
    kind: Literal["linear", "conv2d"]
    weight: torch.Tensor
    bias: torch.Tensor | None
    threshold: torch.Tensor  # (C,) float32
    flip: torch.Tensor  # (C,) bool
    chain: Chain
    stride: int = 1
    padding: int = 0
    groups: int = 1

    def pre(self, a: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            return F.linear(a, self.weight, self.bias)
        return F.conv2d(a, self.weight, self.bias, self.stride, self.padding, 1, self.groups)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        pre = self.pre(a)  # (B, C) or (B, C, H, W)
        shape = (1, -1) + (1,) * (pre.dim() - 2)
        t, flip = self.threshold.view(shape), self.flip.view(shape)
        return torch.where(flip, pre <= t, pre >= t).to(pre.dtype)


@dataclass
class OrPool:
    name: str
    kernel_size: int
    stride: int

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(a, self.kernel_size, self.stride)


@dataclass
class Encode:
    """Input transduction on the host: pixels to the spikes sent to the chip."""

    name: str
    levels: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return thermometer(x, self.levels)


@dataclass
class Reshape:
    name: str

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return a.flatten(1)


@dataclass
class Decode:
    name: str
    key: torch.Tensor

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return nhot_decode(a, self.key)


@dataclass
class Readout:
    name: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    scale: torch.Tensor | None = None  # the batch norm's inference formula, if one follows
    shift: torch.Tensor | None = None

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        y = F.linear(a, self.weight, self.bias)  # (B, classes)
        if self.scale is None or self.shift is None:
            return y
        return y * self.scale + self.shift


Stage = Encode | BinaryLayer | OrPool | Reshape | Decode | Readout


@dataclass
class BinaryNetwork:
    """A chain of folded stages; ``forward`` returns class scores and every stage's output."""

    stages: list[Stage] = field(default_factory=list)

    @property
    def binary_layers(self) -> list[BinaryLayer]:
        return [s for s in self.stages if isinstance(s, BinaryLayer)]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        outs = []
        for s in self.stages:
            x = s.forward(x)
            outs.append(x)
        return x, outs


def _chain(bn: nn.Module | None, act: BinaryActivation) -> Chain:
    if not isinstance(bn, _ExplicitEval):
        return Chain(None, None, act.threshold)
    scale, shift = bn.eval_affine()
    return Chain(scale, shift, act.threshold)


def synaptic_weight(m: nn.Linear | nn.Conv2d) -> torch.Tensor:
    """The weights the layer's forward pass uses: quantized layers' integer view as floats."""
    to_int = getattr(m, "to_int", None)
    if callable(to_int) and getattr(m, "quantize", True):
        return to_int().to(torch.float32)
    return m.weight.detach().clone()


def _binary_layer(name: str, m: nn.Linear | nn.Conv2d, bn: nn.Module | None,
                  act: BinaryActivation) -> BinaryLayer:
    chain = _chain(bn, act)
    channels = m.out_features if isinstance(m, nn.Linear) else m.out_channels
    t, flip = float_thresholds(chain, channels)
    w = synaptic_weight(m)
    b = m.bias.detach().clone() if m.bias is not None else None
    if isinstance(m, nn.Linear):
        return BinaryLayer(name, "linear", w, b, t, flip, chain)
    stride, padding = m.stride, m.padding
    if m.dilation != (1, 1) or isinstance(padding, str) or stride[0] != stride[1] \
            or padding[0] != padding[1] or m.padding_mode != "zeros":
        raise NeurocoreError(
            f"layer {name}: only square stride and zero padding without dilation can be folded"
        )
    return BinaryLayer(name, "conv2d", w, b, t, flip, chain, stride[0], padding[0], m.groups)


def fold(model: nn.Module) -> BinaryNetwork:
    """Fold a fully binary ``nn.Sequential`` (see the module docstring for what it accepts)."""
    if not isinstance(model, nn.Sequential):
        raise NeurocoreError(f"fold needs an nn.Sequential model, got {type(model).__name__}")
    items = [
        (n, m) for n, m in model.named_children() if not isinstance(m, nn.Dropout | nn.Dropout2d)
    ]
    net = BinaryNetwork()
    i = 0
    while i < len(items):
        name, m = items[i]
        nxt = i + 1
        if isinstance(m, nn.Linear | nn.Conv2d):
            bn = None
            if nxt < len(items) and isinstance(items[nxt][1], _ExplicitEval):
                bn = items[nxt][1]
                nxt += 1
            if nxt < len(items) and isinstance(items[nxt][1], BinaryActivation):
                act = items[nxt][1]
                assert isinstance(act, BinaryActivation)
                net.stages.append(_binary_layer(name, m, bn, act))
                nxt += 1
            elif isinstance(m, nn.Linear) and nxt == len(items):
                bias = m.bias.detach().clone() if m.bias is not None else None
                affine = bn.eval_affine() if isinstance(bn, _ExplicitEval) else (None, None)
                net.stages.append(Readout(name, synaptic_weight(m), bias, *affine))
            else:
                raise NeurocoreError(
                    f"layer {name}: a {type(m).__name__} must be followed by [batchnorm] and a "
                    "binary activation (whetstone, noisy_relu) to fold, or end the model as a "
                    "read-out"
                )
        elif isinstance(m, nn.MaxPool2d):
            if not net.stages or not isinstance(net.stages[-1], BinaryLayer | OrPool):
                raise NeurocoreError(
                    f"layer {name}: max-pooling must follow a binary activation (over binary "
                    "values it is an OR neuron)"
                )
            k, s = m.kernel_size, m.stride
            if not (isinstance(k, int) and isinstance(s, int)) or m.padding != 0 \
                    or m.dilation != 1 or m.ceil_mode:
                raise NeurocoreError(
                    f"layer {name}: only max-pooling with a square kernel and stride, no padding, "
                    "no dilation and no ceil mode can be folded"
                )
            net.stages.append(OrPool(name, k, s))
        elif isinstance(m, Thermometer):
            if net.stages:
                raise NeurocoreError(f"layer {name}: input coding must be the first layer")
            net.stages.append(Encode(name, m.levels))
        elif isinstance(m, nn.Flatten):
            net.stages.append(Reshape(name))
        elif isinstance(m, NHotDecode):
            net.stages.append(Decode(name, m.key.clone()))
        else:
            raise NeurocoreError(
                f"layer {name}: {type(m).__name__} has no binary hardware form (expected "
                "linear, conv2d, batchnorm, a binary activation, maxpool2d, flatten or "
                "nhot_decode)"
            )
        i = nxt
    return net


@torch.no_grad()
def fold_check(
    model: nn.Module, split: Any, max_value: int, batch_size: int = 1000,
    predictions: list[torch.Tensor] | None = None,
) -> dict[str, int]:
    """Run the folded network beside the fully binarized model; count what differs: class
    predictions, and spikes of every binary layer. The fully binary model's predicted classes,
    batch by batch, are appended to ``predictions`` when given (so that a later stage need not
    run the model over the split again)."""
    from neurocore.neurons.binary import binary_activations, fully_binary

    net = fold(model)
    captured: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: captured.append(out))
        for _, m in binary_activations(model)
    ]
    was_training = model.training
    model.eval()
    mismatches = spikes = frames = 0
    try:
        for x, _ in split.batches(batch_size, max_value):
            captured.clear()
            with fully_binary(model):
                ref = model(x)
            out, stage_outs = net.forward(x)
            mine = [o for st, o in zip(net.stages, stage_outs, strict=True)
                    if isinstance(st, BinaryLayer)]
            if predictions is not None:
                predictions.append(ref.argmax(1))
            mismatches += int((ref.argmax(1) != out.argmax(1)).sum())
            spikes += sum(int((a != b).sum()) for a, b in zip(captured, mine, strict=True))
            frames += len(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {"mismatches": mismatches, "spike_mismatches": spikes, "frames": frames}

"""Helpers shared by several test modules (on the test path through pyproject's pythonpath).

Training: a callback that stands for a killed process, and state equality. Hardware: small
binary networks with randomised batch norm, and the three-way parity check of a compiled
network (hardware spikes = folded network = fully binary model).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neurocore.config import validate_recipe
from neurocore.hardware.compiler import CompiledNetwork, Strategy, compile_network
from neurocore.hardware.corespec import TRUENORTH, CoreSpec
from neurocore.hardware.deploy import HostSide
from neurocore.hardware.fold import BinaryLayer, Encode, OrPool, fold
from neurocore.hardware.simulator import SimResult, simulate
from neurocore.layers import build_model
from neurocore.layers.batchnorm import BatchNorm1d, BatchNorm2d
from neurocore.neurons.binary import BinaryActivation, binary_activations, fully_binary
from neurocore.training import BatchInfo, Callback, Trainer


class Killed(Exception):
    """Stands for the process being killed in the middle of training."""


class KillAt(Callback):
    """Raises :class:`Killed` at the start of batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_batch_start(self, trainer: Trainer, info: BatchInfo) -> None:
        if (info.epoch, info.batch) == self.at:
            raise Killed


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    """Every parameter and buffer equal with torch.equal."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ---- hardware: small binary networks and three-way parity ------------------------------------

BN = {"type": "batchnorm", "momentum": 1.0}  # running stats = the calibration batch's stats


def build(layers: list[dict], shape: tuple[int, ...], classes: int | None = None
          ) -> nn.Sequential:
    """A model from recipe layer entries (validated as a recipe would be)."""
    r = validate_recipe({"name": "t", "model": {"layers": layers}}, "t.yaml")
    return build_model(list(r.model.layers), shape, classes)


def _threshold_after(model: nn.Sequential, i: int) -> float:
    """θ of the binary activation after layer i (dropout skipped), 0 if there is none."""
    mods = [m for m in model if not isinstance(m, nn.Dropout | nn.Dropout2d)]
    j = mods.index(model[i])
    nxt = mods[j + 1] if j + 1 < len(mods) else None
    return nxt.threshold if isinstance(nxt, BinaryActivation) else 0.0


def randomise(model: nn.Sequential, g: torch.Generator, calib: torch.Tensor,
              weights: str | None = "trinary", ties: float = 0.3, tie_step: float | None = 1.0,
              var_floor: float = 0.05) -> None:
    """Random weights, then batch norm calibrated on ``calib`` and perturbed.

    ``weights``: "trinary" (−1, 0, 1), "grid" (multiples of 0.5, biases of 0.25, so ``pre``
    takes few, exact values), "float" (normal, scaled by fan-in) or None (kept). Batch norm:
    channel 0 γ = 0 and always firing (β > θ), channel 2 γ = 0 and never firing (β < θ),
    channel 1 γ < 0; a ``ties`` fraction of the others with β = θ and μ rounded to
    ``tie_step`` (None: not rounded), so that they switch exactly at a value ``pre`` takes;
    running variances scaled by U(0.5, 1.5) plus ``var_floor``."""
    with torch.no_grad():
        for m in model:
            if not isinstance(m, nn.Linear | nn.Conv2d) or weights is None:
                continue
            if weights == "trinary":
                m.weight.copy_(torch.randint(-1, 2, m.weight.shape, generator=g).float())
            elif weights == "grid":
                m.weight.copy_(torch.randint(-2, 3, m.weight.shape, generator=g) * 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randint(-4, 5, m.bias.shape, generator=g) * 0.25)
            else:
                assert weights == "float", weights
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 2 / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.3)
        model.train()
        with fully_binary(model):
            model(calib)
        for i, m in enumerate(model):
            if not isinstance(m, BatchNorm1d | BatchNorm2d):
                continue
            c = m.num_features
            theta = _threshold_after(model, i)
            gamma = torch.randn(c, generator=g) * 1.5
            beta = theta + torch.randn(c, generator=g) * 0.5
            mean = m.running_mean.clone()
            tie = torch.rand(c, generator=g) < ties
            beta[tie] = theta
            if tie_step is not None:
                mean[tie] = torch.round(mean[tie] / tie_step) * tie_step
            gamma[0], beta[0] = 0.0, theta + 1.0
            if c > 1:
                gamma[1] = -abs(float(gamma[1])) - 0.25
            if c > 2:
                gamma[2], beta[2] = 0.0, theta - 1.0
            m.weight.copy_(gamma)
            m.bias.copy_(beta)
            m.running_mean.copy_(mean)
            m.running_var.copy_(m.running_var * (0.5 + torch.rand(c, generator=g)) + var_floor)
    model.eval()


def images(shape: tuple[int, ...], levels: int, n: int, g: torch.Generator) -> torch.Tensor:
    """Random floats in [0, 1), half of them exactly on the thermometer's steps k/(levels+1)."""
    x = torch.rand((n, *shape), generator=g)
    steps = torch.randint(0, levels + 2, (n // 2, *shape), generator=g).float() / (levels + 1)
    x[: n // 2] = steps
    return x


def model_spikes(model: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The fully binary model's output and the spikes of each of its binary activations."""
    spikes: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: spikes.append(o))
             for _, m in binary_activations(model)]
    try:
        with torch.no_grad(), fully_binary(model):
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
    return out, spikes


def check_parity(model: nn.Sequential, shape: tuple[int, ...], x: torch.Tensor,
                 spec: CoreSpec = TRUENORTH, strategy: Strategy = "duplicate-axons",
                 ) -> tuple[CompiledNetwork, SimResult]:
    """Compile ``model`` and check, layer by layer at its tick, that the fast simulator's spikes
    of every logical neuron's first copy (XOR its complement) equal the folded network's output,
    which equals the fully binary model's; that every duplicate carries the same spike; that the
    neurons are memoryless; and that the decoded predictions equal the model's. Without
    neurons that fire at rest, every layer's cores are also silent at every other tick."""
    net = fold(model)
    compiled = compile_network(net, shape, spec, binary_inputs=True, strategy=strategy)
    program, ticks = compiled.program, compiled.latency_ticks
    host = HostSide.of(program)
    inputs = host.encode(x)  # (B, 1, inputs)
    _, outs = net.forward(x)
    assert isinstance(net.stages[0], Encode)
    assert torch.equal(inputs[:, 0], outs[0].flatten(1).bool())  # host coding = model's coding
    res = simulate(program, inputs, ticks, record=True)
    assert res.spikes is not None and res.membrane is not None
    assert not bool(res.membrane.any())  # memoryless: V is 0 after every tick
    folded = [o for s, o in zip(net.stages, outs, strict=True)
              if isinstance(s, BinaryLayer | OrPool)]
    assert len(folded) == len(compiled.layers) == ticks
    # the folded network is the model (fold's own claim), so hardware = fold = model below
    ref, spikes = model_spikes(model, x)
    binary = [o for s, o in zip(net.stages, outs, strict=True) if isinstance(s, BinaryLayer)]
    for a, b in zip(binary, spikes, strict=True):
        assert torch.equal(a, b)
    at_rest = bool((program.leak < 0).any())
    for li, (layer, want) in enumerate(zip(compiled.layers, folded, strict=True)):
        first = torch.from_numpy(compiled.slot_of[li])  # (N, 2): (global core, slot)
        comp = torch.from_numpy(layer.complement)
        hw = res.spikes[:, li, first[:, 0], first[:, 1]] ^ comp  # (B, N)
        assert torch.equal(hw, want.flatten(1).bool()), layer.name
        # every duplicate carries the same spike as the first copy
        copies = compiled.placement[li].copies
        for k in range(1, int(copies.max())):
            has = torch.from_numpy(copies > k)
            dup = res.spikes[:, li, first[has, 0], first[has, 1] + k]
            assert torch.equal(dup, res.spikes[:, li, first[has, 0], first[has, 1]]), layer.name
        if not at_rest:  # pipelining: the layer's cores are silent at every other tick
            p = compiled.placement[li]
            cores = list(range(p.first_core, p.first_core + len(p.cores)))
            others = [t for t in range(ticks) if t != li]
            assert not bool(res.spikes[:, others][:, :, cores].any()), layer.name
    out_port = res.outputs[:, ticks - 1]  # (B, P)
    assert torch.equal(out_port.bool() ^ compiled.output_complement, folded[-1].flatten(1).bool())
    assert torch.equal(host.decode(out_port), ref.argmax(1))
    return compiled, res

"""Binary-communication neurons: each emits 0 or 1, the way a spiking chip communicates.

Two trainable approximations of the threshold neuron ``y = [x ≥ θ]``:

Whetstone (Severa et al. 2019), sharpness s ∈ [0, 1], width w = 1 − s, λ = 0.001:
    brelu:    y = clip((x − 0.5) / (w + λ) + 0.5, 0, 1)       s = 1:  y = [x ≥ 0.5]
    sigmoid:  y = σ(k · x), k = 4 ln(2 + √3) / (w + λ)          s = 1:  y = [x ≥ 0]
              (k puts the sigmoid's knees, the roots of its third derivative, at ±(w + λ)/4)

Noisy bounded ReLU (Appuswamy et al. 2016):
    training: y = clip(x + n, 0, 1),  n ~ U(−r/2, r/2), the range r grows during training
    eval:     y = clip(x, 0, 1)
    threshold mode: y = [x ≥ 0.5] forward, the bounded ReLU's gradient 1[0 ≤ x ≤ 1] backward

Sharpness, noise range and threshold mode are named buffers (saved in checkpoints) that the
schedules in :mod:`neurocore.training.binarize` set. Every binary activation has a ``threshold``
θ; :func:`fully_binary` switches all of a model's binary activations to their step for a while,
which is how "accuracy as fully binarized" is measured.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

from neurocore.layers.registry import LayerSpec, register_layer

LAMBDA = 0.001
SIGMOID_KNEE = 4.0 * math.log(2.0 + math.sqrt(3.0))


# ---- pure functions -------------------------------------------------------------------------


def step(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """The threshold neuron ``[x ≥ θ]`` as 0/1 floats (no gradient)."""
    return (x >= threshold).to(x.dtype)


def whetstone_brelu(x: torch.Tensor, sharpness: float) -> torch.Tensor:
    """Whetstone's sharpenable bounded ReLU; exactly the step ``[x ≥ 0.5]`` at s = 1."""
    if sharpness >= 1.0:
        return step(x, 0.5)
    return torch.clamp((x - 0.5) / (1.0 - sharpness + LAMBDA) + 0.5, 0.0, 1.0)


def whetstone_sigmoid(x: torch.Tensor, sharpness: float) -> torch.Tensor:
    """Whetstone's sharpenable sigmoid; exactly the step ``[x ≥ 0]`` at s = 1."""
    if sharpness >= 1.0:
        return step(x, 0.0)
    k = SIGMOID_KNEE / (1.0 - sharpness + LAMBDA)
    return torch.sigmoid(torch.clamp(x * k, -40.0, 40.0))


class _ThresholdSTE(torch.autograd.Function):
    """Forward ``[x ≥ 0.5]``; backward the bounded ReLU's gradient ``1[0 ≤ x ≤ 1]``."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return step(x, 0.5)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad * ((x >= 0.0) & (x <= 1.0)).to(grad.dtype)


def threshold_ste(x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = _ThresholdSTE.apply(x)
    return out


def uniform_noise(
    x: torch.Tensor, noise_range: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x + n`` with ``n ~ U(−r/2, r/2)``; r = 0 returns ``x`` itself."""
    if noise_range <= 0.0:
        return x
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) - 0.5
    return x + noise * noise_range


def noisy_bounded_relu(
    x: torch.Tensor, noise_range: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``clip(x + n, 0, 1)`` with ``n ~ U(−r/2, r/2)``; r = 0 is the plain bounded ReLU."""
    return torch.clamp(uniform_noise(x, noise_range, generator), 0.0, 1.0)


# ---- modules --------------------------------------------------------------------------------


class BinaryActivation(nn.Module, ABC):
    """Base of neurons that become the step ``[x ≥ threshold]`` on hardware."""

    threshold: float = 0.5

    def __init__(self) -> None:
        super().__init__()
        self.forced_binary = False  # set by fully_binary(); not state, never saved

    @abstractmethod
    def is_binary(self) -> bool:
        """True when the forward pass is already exactly the step."""

    def binary_forward(self, x: torch.Tensor) -> torch.Tensor:
        return step(x, self.threshold)


class Whetstone(BinaryActivation):
    """Sharpenable activation. Optionally (``noise_range`` > 0, training only, while not fully
    sharp) its input gets the noisy ReLU's uniform noise, which makes the network robust to the
    coming binarization."""

    sharpness: torch.Tensor
    noise_range: torch.Tensor

    def __init__(self, variant: Literal["brelu", "sigmoid"] = "brelu") -> None:
        super().__init__()
        self.variant = variant
        self.threshold = 0.5 if variant == "brelu" else 0.0
        self.register_buffer("sharpness", torch.zeros(()))
        self.register_buffer("noise_range", torch.zeros(()))

    def is_binary(self) -> bool:
        return float(self.sharpness) >= 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.forced_binary:
            return self.binary_forward(x)
        fn = whetstone_brelu if self.variant == "brelu" else whetstone_sigmoid
        s = float(self.sharpness)
        if self.training and s < 1.0:
            x = uniform_noise(x, float(self.noise_range))
        return fn(x, s)

    def extra_repr(self) -> str:
        return f"variant={self.variant}, sharpness={float(self.sharpness):.4f}"


class NoisyReLU(BinaryActivation):
    threshold = 0.5
    noise_range: torch.Tensor
    binary: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("noise_range", torch.zeros(()))
        self.register_buffer("binary", torch.zeros((), dtype=torch.bool))

    def is_binary(self) -> bool:
        return bool(self.binary)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.forced_binary:
            return self.binary_forward(x)
        if bool(self.binary):
            return threshold_ste(x)
        return noisy_bounded_relu(x, float(self.noise_range) if self.training else 0.0)

    def extra_repr(self) -> str:
        return f"noise_range={float(self.noise_range):.4f}, binary={bool(self.binary)}"


def binary_activations(model: nn.Module) -> list[tuple[str, BinaryActivation]]:
    """The model's binary activations in forward (registration) order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BinaryActivation)]


@contextmanager
def fully_binary(model: nn.Module) -> Iterator[None]:
    """Within the block every binary activation computes its step ``[x ≥ θ]``."""
    acts = [m for _, m in binary_activations(model)]
    before = [m.forced_binary for m in acts]
    for m in acts:
        m.forced_binary = True
    try:
        yield
    finally:
        for m, b in zip(acts, before, strict=True):
            m.forced_binary = b


# ---- recipe layer types ---------------------------------------------------------------------


@register_layer
class WhetstoneSpec(LayerSpec):
    """A Whetstone sharpenable activation; the ``binary`` recipe section schedules it."""

    type: Literal["whetstone"] = "whetstone"
    prefix = "spike"
    variant: Literal["brelu", "sigmoid"] = "brelu"

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return Whetstone(self.variant)


@register_layer
class NoisyReLUSpec(LayerSpec):
    """A noisy bounded ReLU that a schedule turns into a threshold neuron."""

    type: Literal["noisy_relu"] = "noisy_relu"
    prefix = "spike"

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return NoisyReLU()

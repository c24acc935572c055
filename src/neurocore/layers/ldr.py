"""Low-displacement-rank linear layers (Zhao et al. 2017; parametrized as Thomas et al. 2018).

Z_f is the n×n unit-circulant shift, Z_f[t+1, t] = 1 and Z_f[0, n−1] = f; Z_f(v) = Σ_t v_t·Z_fᵗ is
the f-circulant with first column v: Z_f(v)[r, c] = v[r − c] for r ≥ c, f·v[n + r − c] else.

Toeplitz-like, displacement rank r, generators g_k, h_k ∈ ℝⁿ (``g``, ``h`` of shape (r, n)):

    W = Σ_k Z_1(g_k)·Z_{−1}(h_k)ᵀ,   Z_1·W − W·Z_{−1} = 2·Σ_k g_k·(Z_{−1}(h_k)·e_{n−1})ᵀ,

so rank(Z_1·W − W·Z_{−1}) ≤ r; every Toeplitz matrix has r ≤ 2. Multiplying costs O(r·n·log n)
with real FFTs: Z_{−1}(h)ᵀ·x is the top half of a length-2n circular correlation of [h, −h] with
[x, 0], and Z_1(g)·u a length-n circular convolution.

General LDR (Thomas et al.'s LDR-SD with corners): operators A, B ∈ ℝⁿˣⁿ that are cyclic weighted
shifts, A[(t+1) mod n, t] = ã_t with ã = (``subdiag_a``, ``corner_a``) (B likewise), and

    W = Σ_k K(A, g_k)·K(B, h_k)ᵀ,   K(A, v) = [v, A·v, …, Aⁿ⁻¹·v]   (Krylov matrices),

the solution of the Stein displacement equation W − A·W·Bᵀ = (1 − α·β)·G·Hᵀ, α = Π ã, β = Π b̃
(Aⁿ = α·I). With zero corners (the initialisation; A and B nilpotent) it is W − A·W·Bᵀ = G·Hᵀ;
with A = Z_1 and B = Z_{−1} it is the Toeplitz-like matrix above. The Krylov matrices are built
with a cumulative product, K(A, v)[j, k] = v[(j − k) mod n]·Π_{s=1..k} ã[(j − s) mod n], so
training is plain backprop. Training multiplies by the factors, x ↦ Σ_k K(A, g_k)·(K(B, h_k)ᵀ·x),
2·r·n² MACs per example; eval mode without gradients caches W (n² MACs per example). No fast
O(r·n·log² n) Krylov multiplication is implemented.

Rectangular (out, in): both layers use n = max(in, out), zero-pad the input to n and crop the
output to ``out``; ``weight`` is the top-left (out, in) corner of the n×n matrix.

Cost (``neurocore_cost``, one example; cached spectra and W not counted; real FFT of length N:
⌊2.5·N·log₂N⌉ flops; a complex product counts as 4 real MACs):

    Toeplitz-like: fft_flops = (r + 1)·(fft(2n) + fft(n)),  macs = 4·r·((n + 1) + (n//2 + 1)),
    general LDR:   macs = out·in (the cached W);   both beside ``dense_macs`` = out·in.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from neurocore.analysis.inspect import LayerCost
from neurocore.layers.circulant import EvalCached, fft_flops, positive_int
from neurocore.layers.registry import LayerSpec, register_layer
from neurocore.layers.standard import features

__all__ = [
    "LDRLinear",
    "ToeplitzLikeLinear",
    "krylov",
    "ldr_matrix",
    "toeplitz_like_apply",
    "toeplitz_like_spectra",
]


# ----------------------------------------------------------------------------- Toeplitz-like


def toeplitz_like_spectra(g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(r, (n + 1) + (n//2 + 1)) complex: rfft₂ₙ([h_k, −h_k]) then rfftₙ(g_k); differentiable."""
    n = g.shape[-1]
    h_hat = torch.fft.rfft(torch.cat([h, -h], dim=-1), dim=-1)  # (r, n + 1)
    g_hat = torch.fft.rfft(g, n=n, dim=-1)  # (r, n//2 + 1)
    return torch.cat([h_hat, g_hat], dim=-1)


def toeplitz_like_apply(x: torch.Tensor, spectra: torch.Tensor) -> torch.Tensor:
    """Σ_k Z_1(g_k)·Z_{−1}(h_k)ᵀ·x for rows x (R, n); ``spectra = toeplitz_like_spectra(g, h)``."""
    n = x.shape[-1]
    h_hat, g_hat = spectra.split([n + 1, n // 2 + 1], dim=-1)
    x_hat = torch.fft.rfft(x, n=2 * n, dim=-1)  # (R, n + 1)
    u = torch.fft.irfft(x_hat[:, None, :] * h_hat.conj(), n=2 * n, dim=-1)[..., :n]  # (R, r, n)
    y_hat = (torch.fft.rfft(u, dim=-1) * g_hat).sum(dim=1)  # (R, n//2 + 1)
    return torch.fft.irfft(y_hat, n=n, dim=-1)  # (R, n)


def _init_generators(rank: int, n: int, in_features: int, factory: dict[str, Any]) -> nn.Parameter:
    # An entry of Σ_k Z_1(g_k)·Z_{−1}(h_k)ᵀ sums r·n products of two generator entries: with
    # generator variance σ² its variance is r·n·σ⁴, set to nn.Linear's 1/(3·in).
    std = (3.0 * rank * n * in_features) ** -0.25
    return nn.Parameter(torch.randn(rank, n, **factory) * std)


def _check(in_features: int, out_features: int, rank: int) -> tuple[int, int, int]:
    return (
        positive_int("in_features", in_features),
        positive_int("out_features", out_features),
        positive_int("rank", rank),
    )


def _rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """x (*, in) -> (R, n), zero-padded."""
    rows = x.reshape(-1, x.shape[-1])
    return F.pad(rows, (0, n - rows.shape[-1])) if rows.shape[-1] < n else rows


class _GeneratorLinear(EvalCached):
    """What both LDR layers share: sizes, generators ``g``, ``h`` (rank, n), n = max(in, out),
    the bias (nn.Linear's uniform initialisation), the eval cache, and the bias-and-reshape
    ending of ``forward``."""

    in_features: int
    out_features: int
    rank: int
    n: int
    g: nn.Parameter
    h: nn.Parameter
    bias: nn.Parameter | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()  # the eval cache
        self.in_features, self.out_features, self.rank = _check(in_features, out_features, rank)
        self.n = n = max(in_features, out_features)
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.g = _init_generators(rank, n, in_features, factory)
        self.h = _init_generators(rank, n, in_features, factory)
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        if self.bias is not None:
            bound = 1.0 / math.sqrt(in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def _output(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Padded rows y (R, ≥ out) of input x (*, in) -> (*, out), bias added."""
        y = y[:, : self.out_features]
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}, bias={self.bias is not None}")


class ToeplitzLikeLinear(_GeneratorLinear):
    """nn.Linear with a Toeplitz-like weight of displacement rank ``rank`` (see module doc).

    Parameters ``g``, ``h`` (rank, n), n = max(in, out), and ``bias`` (out_features). ``weight``
    is the dense (out, in) view. Multiplication by FFT, O(rank·n·log n).
    """

    @property
    def weight(self) -> torch.Tensor:
        """The dense (out_features, in_features) matrix; a new, differentiable tensor."""
        eye = torch.eye(self.n, dtype=self.g.dtype, device=self.g.device)
        columns = toeplitz_like_apply(eye, toeplitz_like_spectra(self.g, self.h))  # row c = W·e_c
        return columns.T[: self.out_features, : self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:  # MKL's FFT rejects empty batches
            return F.linear(x, self.weight, self.bias)
        spectra = self._cache.get(
            self, [self.g, self.h], lambda: toeplitz_like_spectra(self.g, self.h)
        )
        return self._output(toeplitz_like_apply(_rows(x, self.n), spectra), x)

    def neurocore_cost(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> LayerCost:
        rows = output.numel() // self.out_features
        n, r = self.n, self.rank
        return LayerCost(
            macs=rows * 4 * r * ((n + 1) + (n // 2 + 1)),
            other={
                "fft_flops": rows * (r + 1) * (fft_flops(2 * n) + fft_flops(n)),
                "dense_macs": rows * self.in_features * self.out_features,
            },
        )


# ----------------------------------------------------------------------------- general LDR


def krylov(edges: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """K(A, v_k) = [v_k, A·v_k, …, Aⁿ⁻¹·v_k] for v (r, n) -> (r, n, n), where A is the cyclic
    weighted shift A[(t+1) mod n, t] = edges[t]; differentiable in both arguments."""
    n = v.shape[-1]
    idx = torch.arange(n, device=v.device)
    lag = (idx[:, None] - idx[None, :]) % n  # (n, n): j, k -> (j − k) mod n
    steps = edges[lag[:, 1:]]  # (n, n − 1): ã[(j − s) mod n], s = 1 … n − 1
    paths = torch.cat([torch.ones_like(edges[:1]).expand(n, 1), torch.cumprod(steps, dim=1)], 1)
    return v[:, lag] * paths  # (r, n, n)


def _edges(subdiag: torch.Tensor, corner: torch.Tensor) -> torch.Tensor:
    return torch.cat([subdiag, corner.reshape(1)])  # (n,): ã_t, the weight of t -> t + 1 mod n


def ldr_matrix(
    g: torch.Tensor,
    h: torch.Tensor,
    subdiag_a: torch.Tensor,
    corner_a: torch.Tensor,
    subdiag_b: torch.Tensor,
    corner_b: torch.Tensor,
) -> torch.Tensor:
    """W = Σ_k K(A, g_k)·K(B, h_k)ᵀ, (n, n); differentiable."""
    ka = krylov(_edges(subdiag_a, corner_a), g)  # (r, n, n)
    kb = krylov(_edges(subdiag_b, corner_b), h)
    return torch.einsum("kij,kcj->ic", ka, kb)


class LDRLinear(_GeneratorLinear):
    """nn.Linear whose weight has displacement rank ``rank`` for learned operators (module doc).

    Parameters ``g``, ``h`` (rank, n); ``subdiag_a``, ``subdiag_b`` (n − 1), initialised to 1;
    ``corner_a``, ``corner_b`` (scalars), initialised to 0; ``bias`` (out). n = max(in, out).
    The generators are initialised as in :class:`ToeplitzLikeLinear`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, rank, bias, device, dtype)
        n = self.n
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.subdiag_a = nn.Parameter(torch.ones(n - 1, **factory))
        self.subdiag_b = nn.Parameter(torch.ones(n - 1, **factory))
        self.corner_a = nn.Parameter(torch.zeros((), **factory))
        self.corner_b = nn.Parameter(torch.zeros((), **factory))

    def _operators(self) -> list[torch.Tensor]:
        return [self.g, self.h, self.subdiag_a, self.corner_a, self.subdiag_b, self.corner_b]

    @property
    def weight(self) -> torch.Tensor:
        """The dense (out_features, in_features) matrix; a new, differentiable tensor."""
        return ldr_matrix(
            self.g, self.h, self.subdiag_a, self.corner_a, self.subdiag_b, self.corner_b
        )[: self.out_features, : self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        operators = self._operators()
        if self._cache.usable(self, operators, differentiable=True):
            return F.linear(x, self._cache.get(self, operators, lambda: self.weight), self.bias)
        ka = krylov(_edges(self.subdiag_a, self.corner_a), self.g)  # (r, n, n)
        kb = krylov(_edges(self.subdiag_b, self.corner_b), self.h)
        t = _rows(x, self.n) @ kb  # (r, R, n): rows of K(B, h_k)ᵀ·x
        return self._output((t @ ka.transpose(1, 2)).sum(dim=0), x)  # (R, n) -> (*, out)

    def neurocore_cost(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> LayerCost:
        dense = output.numel() // self.out_features * self.in_features * self.out_features
        return LayerCost(macs=dense, other={"dense_macs": dense})


# ----------------------------------------------------------------------------- registry


@register_layer
class ToeplitzLikeLinearSpec(LayerSpec):
    type: Literal["toeplitz_like_linear"] = "toeplitz_like_linear"
    prefix = "fc"
    out_features: int = Field(gt=0)
    rank: int = Field(gt=0)
    bias: bool = True

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return ToeplitzLikeLinear(features(in_shape, self.type), self.out_features, self.rank,
                                  self.bias)


@register_layer
class LDRLinearSpec(LayerSpec):
    type: Literal["ldr_linear"] = "ldr_linear"
    prefix = "fc"
    out_features: int = Field(gt=0)
    rank: int = Field(gt=0)
    bias: bool = True

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return LDRLinear(features(in_shape, self.type), self.out_features, self.rank, self.bias)

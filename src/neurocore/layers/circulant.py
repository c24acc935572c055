"""Block-circulant layers computed with real FFTs (CirCNN, Ding et al. 2017; CircConv, Liao & Yuan
2019).

A circulant block of size b is defined by its FIRST COLUMN w ∈ ℝᵇ:

    C(w)[r, c] = w[(r − c) mod b],   so   C(w)·x = w ⊛ x   and   DFT(C(w)·x) = DFT(w) ∘ DFT(x).

A block-circulant (out, in) matrix has q_out × q_in such blocks, q = ⌈features / b⌉; the stored
parameter ``blocks`` has shape (q_out, q_in, b) and

    W[i·b + r, j·b + c] = blocks[i, j, (r − c) mod b],
    y_i = Σ_j C(w_ij)·x_j   ⇔   Y_i(f) = Σ_j Ŵ_ij(f)·X_j(f),   f = 0 … b//2 (real FFTs).

When a size is not a multiple of b the input is zero-padded to q_in·b and the output cropped to
``out``: W is the top-left (out, in) corner of the padded matrix. ``weight`` materializes that
dense W for inspection and export; forward and backward never form it. A convolution applies the
same structure along channels (CircConv): ``blocks`` has shape (q_out, q_in, b, kh, kw) and
``weight[:, :, u, v]`` is block-circulant for every kernel position (u, v).

Computation (linear): one rfft over all input blocks, one batched complex GEMM with frequency as
the batch dimension, (F, rows, q_in) @ (F, q_in, q_out), one irfft. The backward is a custom
autograd function, in the frequency domain as well:

    ∂L/∂x_j = Σ_i C(w_ij)ᵀ·g_i   ⇔   Σ_i conj(Ŵ_ij)·G_i,
    ∂L/∂w_ij = Σ_batch g_i ⋆ x_j   ⇔   Σ_batch G_i·conj(X_j)          (⋆: circular correlation).

The convolution takes the rfft of the input map along channel blocks, runs one grouped real
convolution (a group per frequency, complex weights as 2×2 real blocks) and an irfft along the
output channel blocks; autograd differentiates it. In eval mode the weight spectra are cached
(:class:`EvalCache`).

Projection (``from_dense``): every parameter owns a disjoint set of entries of W (one circulant
diagonal of one block, cut by the crop), so the Frobenius-nearest block-circulant matrix sets each
parameter to the mean of its entries; a parameter whose entries are all cropped away is 0.

Cost (``neurocore_cost``, one example; the weight spectra are cached, so not counted): a real FFT
of length N costs ⌊2.5·N·log₂N⌉ flops; a complex multiply–accumulate counts as 4 real MACs:

    linear:  fft_flops = (q_in + q_out)·fft(b),   macs = 4·q_out·q_in·(b//2 + 1),
    conv:    fft_flops = (q_in·H·W + q_out·H'·W')·fft(b),
             macs = 4·q_out·q_in·(b//2 + 1)·kh·kw·H'·W',
    beside ``dense_macs``, the MACs of the dense layer they replace.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, Self, TypeVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from neurocore.analysis.inspect import LayerCost
from neurocore.layers.registry import LayerSpec, register_layer
from neurocore.layers.standard import ConvOptions, features

Pair = int | tuple[int, int]

__all__ = [
    "BlockCirculantConv2d",
    "BlockCirculantLinear",
    "EvalCache",
    "EvalCached",
    "block_circulant_linear",
    "block_circulant_matrix",
    "conv_spectra",
    "fft_flops",
    "linear_spectra",
    "nearest_block_circulant",
    "positive_int",
    "project_block_circulant",
    "relative_residual",
]


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int ≥ 1 (not a bool), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def fft_flops(n: int) -> int:
    """Real flops of one real FFT of length ``n``: 2.5·n·log₂n, rounded (0 for n = 1)."""
    return round(2.5 * n * math.log2(n))


class EvalCache:
    """A tensor computed from some parameters, reused in eval mode while they are unchanged.

    The key is each parameter's identity, autograd version counter and storage address, so
    optimizer steps, ``load_state_dict``, ``.to()`` and re-assignment all invalidate it. Writes
    through ``.data`` bypass the version counter: the owning modules clear the cache on every
    ``train()``/``eval()`` call, so call ``eval()`` again after such a write. The cached value is
    used only when no gradient is needed (eval mode, and grad disabled or no parameter requiring
    it), because a tensor that carries an autograd graph cannot be reused across backward passes.
    """

    def __init__(self) -> None:
        self._params: tuple[torch.Tensor, ...] = ()
        self._stamp: tuple[int, ...] = ()
        self._value = torch.empty(0)

    def clear(self) -> None:
        self._params, self._stamp, self._value = (), (), torch.empty(0)

    @staticmethod
    def usable(module: nn.Module, params: Sequence[torch.Tensor], differentiable: bool) -> bool:
        """Whether a cached value may stand in for ``compute()`` now."""
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        return not module.training and not (differentiable and needs_grad)

    def get(
        self,
        module: nn.Module,
        params: Sequence[torch.Tensor],
        compute: Callable[[], torch.Tensor],
        differentiable: bool = True,
    ) -> torch.Tensor:
        """``compute()``, or its cached value; ``differentiable=False`` for a detached value."""
        if not self.usable(module, params, differentiable):
            return compute()
        stamp = tuple(n for p in params for n in (p._version, p.data_ptr()))
        same = len(params) == len(self._params) and all(
            a is b for a, b in zip(params, self._params, strict=False)
        )
        # a value made under torch.inference_mode() cannot enter autograd afterwards
        outdated = self._value.is_inference() and not torch.is_inference_mode_enabled()
        if not same or stamp != self._stamp or outdated:
            self._value = compute()
            self._params, self._stamp = tuple(params), stamp
        return self._value


class EvalCached(nn.Module):
    """A module holding one :class:`EvalCache` (``self._cache``), cleared on every
    ``train()``/``eval()`` call: the base of the structured layers."""

    def __init__(self) -> None:
        super().__init__()
        self._cache = EvalCache()

    def train(self, mode: bool = True) -> Self:
        self._cache.clear()
        return super().train(mode)


# ----------------------------------------------------------------------------- pure functions


def block_circulant_matrix(blocks: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The dense (rows, cols, *k) matrix of ``blocks`` (q_out, q_in, b, *k), cropped.

    ``W[i·b + r, j·b + c] = blocks[i, j, (r − c) mod b]``; differentiable.
    """
    q_out, q_in, b = blocks.shape[:3]
    kernel = blocks.shape[3:]
    lag = torch.arange(b, device=blocks.device)
    diag = (lag[:, None] - lag[None, :]) % b  # (b, b): r, c -> (r - c) mod b
    full = blocks[:, :, diag]  # (q_out, q_in, b, b, *k)
    full = full.transpose(1, 2).reshape(q_out * b, q_in * b, *kernel)
    return full[:rows, :cols]


def project_block_circulant(weight: torch.Tensor, block_size: int) -> torch.Tensor:
    """The blocks (q_out, q_in, b, *k) of the Frobenius-nearest block-circulant matrix to
    ``weight`` (rows, cols, *k): the mean of each block's circulant diagonal, cropped entries
    left out; a diagonal cropped away entirely gives 0."""
    b = positive_int("block_size", block_size)
    rows, cols = weight.shape[:2]
    kernel = weight.shape[2:]
    q_out, q_in = -(-rows // b), -(-cols // b)
    padded = weight.new_zeros(q_out * b, q_in * b, *kernel)
    padded[:rows, :cols] = weight
    present = weight.new_zeros(q_out * b, q_in * b)
    present[:rows, :cols] = 1.0
    lag = torch.arange(b, device=weight.device)
    diag = ((lag[:, None] - lag[None, :]) % b).reshape(-1)  # (b·b,)

    def by_diagonal(t: torch.Tensor) -> torch.Tensor:
        tail = t.shape[2:]
        t = t.reshape(q_out, b, q_in, b, *tail).transpose(1, 2).reshape(q_out, q_in, b * b, *tail)
        return t.new_zeros(q_out, q_in, b, *tail).index_add_(2, diag, t)

    sums = by_diagonal(padded)  # (q_out, q_in, b, *k)
    counts = by_diagonal(present).clamp(min=1.0)  # (q_out, q_in, b)
    return sums / counts.reshape(q_out, q_in, b, *(1,) * len(kernel))


def nearest_block_circulant(weight: torch.Tensor, block_size: int) -> torch.Tensor:
    """The Frobenius-nearest block-circulant matrix to ``weight`` (rows, cols, *k), as a dense
    tensor of the same shape (the blocks of :func:`project_block_circulant`, materialized)."""
    rows, cols = weight.shape[:2]
    return block_circulant_matrix(project_block_circulant(weight, block_size), rows, cols)



def relative_residual(weight: torch.Tensor, block_size: int) -> float:
    """‖W − P(W)‖ / ‖W‖ with P = :func:`nearest_block_circulant`: how far ``weight`` is from
    block-circulant (0 when it is)."""
    w = weight.detach()
    residual = float(torch.linalg.vector_norm(w - nearest_block_circulant(w, block_size)))
    return residual / max(float(torch.linalg.vector_norm(w)), 1e-30)

def linear_spectra(blocks: torch.Tensor) -> torch.Tensor:
    """Weight spectra of ``blocks`` (q_out, q_in, b): (F, q_in, q_out) complex, F = b//2 + 1,
    ``[f, j, i] = Ŵ_ij(f)``; contiguous (a GEMM operand per frequency) and detached."""
    return torch.fft.rfft(blocks.detach(), dim=-1).permute(2, 1, 0).contiguous()


# The FFTs run along contiguous blocks and the GEMM wants frequency outermost, so each direction
# copies the spectrum once; these copy forms were the fastest measured (2 threads). On the way
# back, from block 128 up, handing irfft the permuted view (its own copy to (R, q, F)) is faster
# than the 2-D transpose copy (benchmarks/circulant.py, docs/circulant.md: the headline training
# step 1.68 -> 1.41-1.46 ms); below block 128 it was slower, so the transpose copy stays there.


def _to_spectrum(x: torch.Tensor, b: int) -> torch.Tensor:
    """(R, q·b) real -> (F, R, q) complex, contiguous: the rfft of every block."""
    rows, q = x.shape[0], x.shape[1] // b
    spec = torch.fft.rfft(x.reshape(rows, q, b), dim=-1)  # (R, q, F)
    return spec.permute(2, 0, 1).contiguous()


def _from_spectrum(spec: torch.Tensor, b: int) -> torch.Tensor:
    """(F, R, q) complex -> (R, q·b) real: the irfft of every block."""
    freqs, rows, q = spec.shape
    if b >= 128:
        blocks = spec.permute(1, 2, 0)  # (R, q, F), a view: irfft copies it
    else:
        blocks = spec.reshape(freqs, rows * q).t().contiguous()  # (R·q, F), a 2-D transpose
    return torch.fft.irfft(blocks, n=b, dim=-1).reshape(rows, q * b)


class _BlockCirculantProduct(torch.autograd.Function):
    """y = W·x for padded rows x (R, q_in·b); ``spectra`` = linear_spectra(blocks)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        blocks: torch.Tensor,
        spectra: torch.Tensor,
    ) -> torch.Tensor:
        b = blocks.shape[-1]
        xs = _to_spectrum(x, b)  # (F, R, q_in)
        ctx.save_for_backward(xs, spectra)
        ctx.block = b  # type: ignore[attr-defined]
        return _from_spectrum(torch.bmm(xs, spectra), b)  # (R, q_out·b)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        xs, spectra = ctx.saved_tensors  # type: ignore[attr-defined]
        b: int = ctx.block  # type: ignore[attr-defined]
        need_x, need_w, _ = ctx.needs_input_grad  # type: ignore[attr-defined]
        gs = _to_spectrum(grad, b)  # (F, R, q_out)
        grad_x = grad_w = None
        if need_x:  # Σ_i conj(Ŵ_ij)·G_i
            grad_x = _from_spectrum(torch.bmm(gs, spectra.transpose(1, 2).conj()), b)
        if need_w:  # Σ_batch G_i·conj(X_j), at [f, j, i]
            corr = torch.bmm(xs.transpose(1, 2).conj(), gs)  # (F, q_in, q_out)
            grad_w = torch.fft.irfft(corr.permute(2, 1, 0), n=b, dim=-1)  # (q_out, q_in, b)
        return grad_x, grad_w, None


def block_circulant_linear(
    x: torch.Tensor,
    blocks: torch.Tensor,
    spectra: torch.Tensor,
    bias: torch.Tensor | None,
    out_features: int,
) -> torch.Tensor:
    """y = W·x + bias for x (*, in_features); ``spectra = linear_spectra(blocks)`` (cacheable)."""
    q_in, b = blocks.shape[1:]
    lead, in_features = x.shape[:-1], x.shape[-1]
    if x.numel() == 0:  # MKL's FFT rejects empty batches
        return F.linear(x, block_circulant_matrix(blocks, out_features, in_features), bias)
    rows = x.reshape(-1, in_features)  # (R, in)
    if q_in * b != in_features:
        rows = F.pad(rows, (0, q_in * b - in_features))  # (R, q_in·b)
    y = _BlockCirculantProduct.apply(rows, blocks, spectra)  # (R, q_out·b)
    if y.shape[1] != out_features:
        y = y[:, :out_features]
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, out_features)


M = TypeVar("M", bound=nn.Module)


def _projected(m: M, dense: nn.Linear | nn.Conv2d, block_size: int) -> M:
    """``m`` (a fresh block-circulant layer) with the projection of ``dense``'s weight and its
    bias."""
    with torch.no_grad():
        m.get_parameter("blocks").copy_(project_block_circulant(dense.weight, block_size))
        if dense.bias is not None:
            m.get_parameter("bias").copy_(dense.bias)
    return m


def _check_linear(in_features: int, out_features: int, block_size: int) -> tuple[int, int, int]:
    return (
        positive_int("in_features", in_features),
        positive_int("out_features", out_features),
        positive_int("block_size", block_size),
    )


# ----------------------------------------------------------------------------- modules


class BlockCirculantLinear(EvalCached):
    """nn.Linear with a block-circulant weight of block size ``block_size`` (see module doc).

    ``blocks`` (q_out, q_in, b) holds the first column of every block; ``weight`` is the dense
    (out_features, in_features) view. Initialisation matches nn.Linear: every weight entry and
    bias ~ U(−1/√in_features, 1/√in_features). With ``block_size=1`` it is nn.Linear.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        block_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.block_size = _check_linear(
            in_features, out_features, block_size
        )
        b = self.block_size
        q_out, q_in = -(-out_features // b), -(-in_features // b)
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.blocks = nn.Parameter(torch.empty(q_out, q_in, b, **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.blocks, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_dense(cls, linear: nn.Linear, block_size: int) -> BlockCirculantLinear:
        """The Frobenius-nearest block-circulant layer to ``linear`` (same bias, dtype, device)."""
        w = linear.weight
        m = cls(linear.in_features, linear.out_features, block_size, linear.bias is not None,
                device=w.device, dtype=w.dtype)
        return _projected(m, linear, block_size)

    @property
    def weight(self) -> torch.Tensor:
        """The dense (out_features, in_features) matrix; a new, differentiable tensor."""
        return block_circulant_matrix(self.blocks, self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectra = self._cache.get(
            self, [self.blocks], lambda: linear_spectra(self.blocks), differentiable=False
        )
        return block_circulant_linear(x, self.blocks, spectra, self.bias, self.out_features)

    def neurocore_cost(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> LayerCost:
        rows = output.numel() // self.out_features
        q_out, q_in, b = self.blocks.shape
        return LayerCost(
            macs=rows * 4 * q_out * q_in * (b // 2 + 1),
            other={
                "fft_flops": rows * (q_in + q_out) * fft_flops(b),
                "dense_macs": rows * self.in_features * self.out_features,
            },
        )

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"block_size={self.block_size}, bias={self.bias is not None}")


def _pair(name: str, value: object, minimum: int) -> tuple[int, int]:
    pair = (value, value) if not isinstance(value, tuple) else value
    if len(pair) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in pair
    ):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return pair[0], pair[1]


def conv_spectra(blocks: torch.Tensor) -> torch.Tensor:
    """Grouped-convolution weight (F·2·q_out, 2·q_in, kh, kw) of ``blocks`` (q_out, q_in, b,
    kh, kw): group f maps channels (j, c) to (i, c'), c = 0 real, 1 imaginary, with the 2×2
    block [[Re, −Im], [Im, Re]] of Ŵ_ij(f). Differentiable."""
    q_out, q_in, b, kh, kw = blocks.shape
    spec = torch.fft.rfft(blocks, dim=2).permute(2, 0, 1, 3, 4)  # (F, q_out, q_in, kh, kw)
    re, im = spec.real, spec.imag
    to_re = torch.stack([re, -im], dim=3)  # (F, q_out, q_in, 2, kh, kw)
    to_im = torch.stack([im, re], dim=3)
    return torch.stack([to_re, to_im], dim=2).reshape(-1, 2 * q_in, kh, kw)


class BlockCirculantConv2d(EvalCached):
    """nn.Conv2d whose kernel is block-circulant along (out_channels, in_channels) (CircConv).

    ``blocks`` (q_out, q_in, b, kh, kw); ``weight`` is the dense (out, in, kh, kw) view. Only
    ``groups=1`` and ``padding_mode="zeros"``. Initialisation as nn.Conv2d (entries and bias
    ~ U(±1/√(in_channels·kh·kw))). With ``block_size=1`` it is nn.Conv2d.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Pair,
        block_size: int,
        stride: Pair = 1,
        padding: Pair | str = 0,
        dilation: Pair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.block_size = b = positive_int("block_size", block_size)
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)
        self.dilation = _pair("dilation", dilation, 1)
        self.padding: tuple[int, int] | str
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding must be 'valid', 'same' or ints >= 0, got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride={stride!r}")
            self.padding = padding
        else:
            self.padding = _pair("padding", padding, 0)
        if groups != 1:
            raise ValueError(f"groups must be 1 for a block-circulant convolution, got {groups!r}")
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros', got {padding_mode!r}")
        self.groups, self.padding_mode = 1, "zeros"
        q_out, q_in = -(-out_channels // b), -(-in_channels // b)
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.blocks = nn.Parameter(torch.empty(q_out, q_in, b, *self.kernel_size, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        bound = 1.0 / math.sqrt(in_channels * math.prod(self.kernel_size))
        nn.init.uniform_(self.blocks, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_dense(cls, conv: nn.Conv2d, block_size: int) -> BlockCirculantConv2d:
        """The Frobenius-nearest block-circulant convolution to ``conv`` (same options, bias)."""
        if conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError(
                f"from_dense needs groups=1 and padding_mode='zeros', got groups={conv.groups}, "
                f"padding_mode={conv.padding_mode!r}"
            )
        w = conv.weight
        padding = conv.padding
        padding = padding if isinstance(padding, str) else _pair("padding", padding, 0)
        m = cls(conv.in_channels, conv.out_channels, _pair("kernel_size", tuple(w.shape[2:]), 1),
                block_size, _pair("stride", conv.stride, 1), padding,
                _pair("dilation", conv.dilation, 1), bias=conv.bias is not None, device=w.device,
                dtype=w.dtype)
        return _projected(m, conv, block_size)

    @property
    def weight(self) -> torch.Tensor:
        """The dense (out_channels, in_channels, kh, kw) kernel; a new, differentiable tensor."""
        return block_circulant_matrix(self.blocks, self.out_channels, self.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return self.forward(x.unsqueeze(0)).squeeze(0)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input (N, {self.in_channels}, H, W) or ({self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        if x.numel() == 0:  # MKL's FFT rejects empty batches
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        q_out, q_in, b = self.blocks.shape[:3]
        n, c, h, w = x.shape
        if q_in * b != c:
            x = F.pad(x, (0, 0, 0, 0, 0, q_in * b - c))  # zero channels
        spec = torch.fft.rfft(x.reshape(n, q_in, b, h, w), dim=2)  # (N, q_in, F, H, W)
        freqs = spec.shape[2]
        xs = torch.view_as_real(spec).permute(0, 2, 1, 5, 3, 4)  # (N, F, q_in, 2, H, W)
        xs = xs.reshape(n, freqs * 2 * q_in, h, w)
        weight = self._cache.get(self, [self.blocks], lambda: conv_spectra(self.blocks))
        ys = F.conv2d(xs, weight, None, self.stride, self.padding, self.dilation, freqs)
        ho, wo = ys.shape[2:]
        ys = ys.reshape(n, freqs, q_out, 2, ho, wo).permute(0, 2, 1, 4, 5, 3).contiguous()
        y = torch.fft.irfft(torch.view_as_complex(ys), n=b, dim=2)  # (N, q_out, b, H', W')
        y = y.reshape(n, q_out * b, ho, wo)[:, : self.out_channels]
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return y

    def neurocore_cost(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> LayerCost:
        q_out, q_in, b = self.blocks.shape[:3]
        kernel = math.prod(self.kernel_size)
        out_pixels = output.numel() // self.out_channels  # N·H'·W'
        in_pixels = inputs[0].numel() // self.in_channels  # N·H·W
        return LayerCost(
            macs=out_pixels * 4 * q_out * q_in * (b // 2 + 1) * kernel,
            other={
                "fft_flops": (q_in * in_pixels + q_out * out_pixels) * fft_flops(b),
                "dense_macs": out_pixels * self.out_channels * self.in_channels * kernel,
            },
        )

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"block_size={self.block_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, bias={self.bias is not None}")


# ----------------------------------------------------------------------------- registry


@register_layer
class BlockCirculantLinearSpec(LayerSpec):
    type: Literal["block_circulant_linear"] = "block_circulant_linear"
    prefix = "fc"
    out_features: int = Field(gt=0)
    block_size: int = Field(gt=0)
    bias: bool = True

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return BlockCirculantLinear(features(in_shape, self.type), self.out_features,
                                    self.block_size, self.bias)


@register_layer
class BlockCirculantConv2dSpec(ConvOptions):
    type: Literal["block_circulant_conv2d"] = "block_circulant_conv2d"
    block_size: int = Field(gt=0)
    bias: bool = True

    def build(self, in_shape: tuple[int, ...]) -> nn.Module:
        return BlockCirculantConv2d(self.in_channels(in_shape), self.out_channels,
                                    self.kernel_size, self.block_size, self.stride, self.padding,
                                    groups=self.groups, bias=self.bias)

"""Symmetric kernels (Appuswamy et al. 2016): the family, its L×L×M form, the block-Toeplitz
theorem and the nearest symmetric kernel of a real layer.

Notation (stated once; ``docs/symmetric.md`` derives and illustrates it)
------------------------------------------------------------------------
* Axon types ``t ∈ {0, 1, 2, 3}``. A permutation of the types is a tuple ``p`` with ``p[t]`` the
  image of ``t``; composition ``(p ∘ r)[t] = p[r[t]]``; ``p^n`` for any integer ``n``.
* **Family.** For commuting permutations ``ρσ = σρ``, a start type ``q`` and ``f: types → ℤ``
  (the paper's family: ``f`` into ``{−1, 0, +1}``) the L×L kernel is
  ``K[i, j] = f(σ^i(ρ^j(q)))`` — row ``i`` steps with ``σ``, column ``j`` with ``ρ``.
* **Layer (L×L×M) form.** ``K[o, c, i, j] = f_o(σ^i(ρ^j(q_c)))``: ``ρ, σ`` shared by the layer,
  a start type ``q_c`` per input channel, a table ``f_o`` per output feature.
* **Convolution matrix** of an input tile ``X`` (C, H, W), stride ``s``, valid positions
  (``Ho = ⌊(H − L)/s⌋ + 1``), torch's ``conv2d`` (cross-correlation):
  ``Y[o, u, v] = Σ_{c,i,j} K[o, c, i, j] · X[c, s·u + i, s·v + j]``, i.e. ``vec(Y) = vec(X) · W(K)``
  with rows = input lines (axons) ``r = (c·H + y)·W + x`` and columns = neurons
  ``n = (o·Ho + u)·Wo + v``; ``W(K)[r, n] = K[o, c, y − s·u, x − s·v]`` inside the window, else 0.
* **Theorem** (one type vector for every neuron of the core): ``W(K) = B ∘ S(G)`` exactly, with
  ``B = [W(K) ≠ 0]``, ``G[(c, y, x)] = σ^y(ρ^x(q_c))`` and
  ``S[(o, u, v), t] = f_o(σ^{−s·u}(ρ^{−s·v}(t)))``, because for line ``(c, y, x)`` in the window
  of ``(u, v)``, with ``i = y − s·u`` and ``j = x − s·v``,
  ``σ^{−s·u} ρ^{−s·v} σ^y ρ^x (q_c) = σ^i ρ^j (q_c)`` — which needs ``ρ^{−s·v}`` to pass ``σ^y``:
  the commutation ``ρσ = σρ``.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import torch

from neurocore.errors import NeurocoreError
from neurocore.hardware.colouring import TypeColouring

NUM_TYPES = 4
Perm = tuple[int, ...]  # a permutation of the NUM_TYPES axon types: p[t] is the image of t

IDENTITY: Perm = tuple(range(NUM_TYPES))
PERMUTATIONS: tuple[Perm, ...] = tuple(itertools.permutations(range(NUM_TYPES)))  # S4, lex order
TERNARY_TABLES: tuple[Perm, ...] = tuple(itertools.product((0, 1, -1), repeat=NUM_TYPES))
"""The 81 tables ``f: types → {−1, 0, +1}``, the all-zero table first."""


class SymmetricError(NeurocoreError):
    """Parameters do not define a symmetric kernel, or a kernel is not in the family."""


# ---- permutations ----------------------------------------------------------------------------


def compose(p: Perm, r: Perm) -> Perm:
    """``p ∘ r``: apply ``r`` first, then ``p``."""
    return tuple(p[r[t]] for t in range(len(r)))


def inverse(p: Perm) -> Perm:
    """``p^{−1}``."""
    out = [0] * len(p)
    for t, image in enumerate(p):
        out[image] = t
    return tuple(out)


def power(p: Perm, n: int) -> Perm:
    """``p^n`` for any integer ``n`` (negative powers are powers of the inverse)."""
    base, out = (p if n >= 0 else inverse(p)), tuple(range(len(p)))
    for _ in range(abs(n)):
        out = compose(base, out)
    return out


@functools.cache
def commuting_pairs() -> tuple[tuple[Perm, Perm], ...]:
    """Every ordered pair ``(ρ, σ)`` of permutations of the 4 types with ``ρσ = σρ`` (120),
    in lexicographic order."""
    return tuple((r, s) for r in PERMUTATIONS for s in PERMUTATIONS
                 if compose(r, s) == compose(s, r))


@functools.cache
def pair_classes() -> tuple[tuple[Perm, Perm], ...]:
    """One commuting pair per class under relabelling the types (21 classes): the
    lexicographically smallest ``(τρτ^{−1}, τστ^{−1})`` over ``τ ∈ S4``.

    Relabelling gives the same kernels (``f ∘ τ`` and ``τ(q)`` absorb ``τ``), so searches over
    kernels need one pair per class.
    """
    reps = {
        min((compose(compose(t, r), inverse(t)), compose(compose(t, s), inverse(t)))
            for t in PERMUTATIONS)
        for r, s in commuting_pairs()
    }
    return tuple(sorted(reps))


# ---- the family and the layer form -----------------------------------------------------------


@dataclass(frozen=True)
class SymmetricLayer:
    """``K[o, c, i, j] = f_o(σ^i(ρ^j(q_c)))``: ``rho``, ``sigma`` commuting permutations of the
    types, ``starts[c] = q_c``, ``values[o] = (f_o(0), …, f_o(3))`` (integers; the paper's family
    uses {−1, 0, +1}). One 2-d kernel is the case of one channel and one output
    (:meth:`single`)."""

    rho: Perm
    sigma: Perm
    starts: tuple[int, ...]
    values: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        for name in ("rho", "sigma"):
            p = getattr(self, name)
            if not isinstance(p, tuple) or sorted(p) != list(range(NUM_TYPES)):
                raise SymmetricError(
                    f"symmetric layer: {name} {p!r} is not a permutation of 0..{NUM_TYPES - 1}"
                )
        if compose(self.rho, self.sigma) != compose(self.sigma, self.rho):
            raise SymmetricError(
                f"symmetric layer: rho {self.rho} and sigma {self.sigma} do not commute "
                f"(rho∘sigma = {compose(self.rho, self.sigma)}, "
                f"sigma∘rho = {compose(self.sigma, self.rho)})"
            )
        if not self.starts or not all(
            isinstance(q, int) and not isinstance(q, bool) and 0 <= q < NUM_TYPES
            for q in self.starts
        ):
            raise SymmetricError(
                f"symmetric layer: starts {self.starts!r} must be a non-empty tuple of types "
                f"0..{NUM_TYPES - 1}"
            )
        if not self.values or not all(
            isinstance(f, tuple) and len(f) == NUM_TYPES
            and all(isinstance(v, int) and not isinstance(v, bool) for v in f)
            for f in self.values
        ):
            raise SymmetricError(
                f"symmetric layer: values must be a non-empty tuple of {NUM_TYPES}-tuples of "
                f"integers, got {self.values!r}"
            )

    @classmethod
    def single(cls, rho: Perm, sigma: Perm, start: int, values: tuple[int, ...]
               ) -> SymmetricLayer:
        """The 2-d kernel ``K[i, j] = f(σ^i(ρ^j(q)))`` as a layer of one channel and output."""
        return cls(rho=tuple(rho), sigma=tuple(sigma), starts=(start,), values=(tuple(values),))

    @property
    def channels(self) -> int:
        return len(self.starts)

    @property
    def outputs(self) -> int:
        return len(self.values)

    def type_grid(self, size: int) -> torch.Tensor:
        """``T[c, i, j] = σ^i(ρ^j(q_c))``, shape (C, L, L) int64."""
        _check_size(size)
        grid = _type_grids(((self.rho, self.sigma),), size)[0]  # (4, L, L), one per start
        return grid[torch.tensor(self.starts)]  # (C, L, L)

    def kernel(self, size: int) -> torch.Tensor:
        """``K[o, c, i, j] = f_o(T[c, i, j])``, shape (O, C, L, L) int64."""
        f = torch.tensor(self.values, dtype=torch.int64)  # (O, 4)
        return f[:, self.type_grid(size)]  # (O, C, L, L)

    def line_types(self, height: int, width: int) -> torch.Tensor:
        """G of an H×W tile: ``G[(c·H + y)·W + x] = σ^y(ρ^x(q_c))``, shape (C·H·W,) int8."""
        _check_size(height)
        _check_size(width)
        rows = _powers(self.sigma, 0, height)  # (H, 4): σ^y
        cols = _powers(self.rho, 0, width)  # (W, 4): ρ^x
        q = torch.tensor(self.starts)  # (C,)
        shape = (height, width, NUM_TYPES)
        g = rows[:, None, :].expand(shape).gather(2, cols[None, :, :].expand(shape))  # (H, W, 4q)
        return g[:, :, q].permute(2, 0, 1).reshape(-1).to(torch.int8)  # (C·H·W,)

    def neuron_strengths(self, out_height: int, out_width: int, stride: int = 1
                         ) -> torch.Tensor:
        """S of the neurons of a tile: ``S[(o·Ho + u)·Wo + v, t] = f_o(σ^{−s·u}(ρ^{−s·v}(t)))``,
        shape (O·Ho·Wo, 4) int64."""
        _check_size(out_height)
        _check_size(out_width)
        _check_size(stride)
        up = _powers(inverse(self.sigma), 0, out_height, stride)  # (Ho, 4): σ^{−s·u}
        vp = _powers(inverse(self.rho), 0, out_width, stride)  # (Wo, 4): ρ^{−s·v}
        shape = (out_height, out_width, NUM_TYPES)
        m = up[:, None, :].expand(shape).gather(2, vp[None, :, :].expand(shape))  # (Ho, Wo, 4)
        f = torch.tensor(self.values, dtype=torch.int64)  # (O, 4)
        return f[:, m].reshape(-1, NUM_TYPES)  # (O·Ho·Wo, 4)

    def factorise(self, size: int, height: int, width: int, stride: int = 1) -> TypeColouring:
        """The theorem's ``G`` and ``S`` for ``W(K)`` of an H×W tile (``B = W(K) ≠ 0``)."""
        ho, wo = _out_size(height, size, stride), _out_size(width, size, stride)
        types = self.line_types(height, width)
        active = conv_matrix(self.kernel(size), height, width, stride).ne(0).any(dim=1)
        return TypeColouring(
            types=types,
            strengths=self.neuron_strengths(ho, wo, stride),
            method="symmetric",
            colours=int(torch.unique(types[active]).numel()),
        )


def conv_matrix(kernel: torch.Tensor, height: int, width: int, stride: int = 1) -> torch.Tensor:
    """The block-Toeplitz ``W(K)`` of a conv kernel (O, C, KH, KW) on a C×H×W tile.

    Rows are input lines ``(c·H + y)·W + x``, columns neurons ``(o·Ho + u)·Wo + v``;
    ``vec(X) · W(K)`` equals ``conv2d(X, K, stride=stride)`` flattened. Same dtype as ``kernel``.
    """
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 4:
        raise ValueError("kernel must be a 4-d tensor (out, in, kh, kw)")
    o, c, kh, kw = (int(n) for n in kernel.shape)
    ho, wo = _out_size(height, kh, stride), _out_size(width, kw, stride)
    a = torch.arange
    oo, cc, uu, vv, ii, jj = torch.meshgrid(a(o), a(c), a(ho), a(wo), a(kh), a(kw), indexing="ij")
    rows = (cc * height + stride * uu + ii) * width + stride * vv + jj
    cols = (oo * ho + uu) * wo + vv
    w = torch.zeros((c * height * width, o * ho * wo), dtype=kernel.dtype)
    w[rows.reshape(-1), cols.reshape(-1)] = kernel[oo, cc, ii, jj].reshape(-1)
    return w


@functools.cache
def _family_tuples(size: int) -> tuple[tuple[int, ...], ...]:
    grids = _type_grids(commuting_pairs(), size).reshape(-1, size * size)  # (120·4, L²)
    f = torch.tensor(TERNARY_TABLES, dtype=torch.int64)  # (81, 4)
    kernels = f[:, grids].reshape(-1, size * size)  # (81·480, L²)
    return tuple(tuple(k) for k in torch.unique(kernels, dim=0).tolist())


def family(size: int) -> torch.Tensor:
    """Every distinct L×L kernel of the family (ternary ``f``), lexicographically sorted,
    shape (N, L, L) int8 — by enumerating all 120 · 4 · 81 parameter tuples."""
    _check_size(size)
    return torch.tensor(_family_tuples(size), dtype=torch.int8).reshape(-1, size, size)


def symmetric_mask(kernels: torch.Tensor) -> torch.Tensor:
    """(N,) bool: which integer kernels (N, L, L) have the form ``f(σ^i(ρ^j(q)))``.

    Checked kernel-first, independently of :func:`family`: ``K = f ∘ T`` for a type grid ``T``
    exactly when ``K`` is constant on each level set of ``T``; for cells ``{T = t}`` (``n``
    of them) that is ``n · Σ K² = (Σ K)²`` (Cauchy–Schwarz equality), in integers.
    """
    k, onehot = _kernels_and_grids(kernels)
    return _constant_on_types(k, onehot).any(dim=1)  # (N,)


def is_symmetric(kernel: torch.Tensor) -> bool:
    """Whether one integer kernel (L, L) has the form ``f(σ^i(ρ^j(q)))``."""
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 2:
        raise ValueError("kernel must be a 2-d tensor (L, L)")
    return bool(symmetric_mask(kernel[None])[0])


def symmetric_parameters(kernel: torch.Tensor, name: str = "kernel") -> SymmetricLayer:
    """``(ρ, σ, q, f)`` with ``K[i, j] = f(σ^i(ρ^j(q)))`` for an integer kernel (L, L): the first
    match over :func:`pair_classes` and starts; ``f`` is 0 on types the grid does not use."""
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 2:
        raise ValueError("kernel must be a 2-d tensor (L, L)")
    k, onehot = _kernels_and_grids(kernel[None])
    match = _constant_on_types(k, onehot)[0].nonzero()  # (matches, 1) over pair·4 + start
    if match.numel() == 0:
        raise SymmetricError(
            f"{name}: {kernel.tolist()} is not a symmetric kernel: no commuting ρ, σ and start "
            "type q make it constant on the cells of each type σ^i(ρ^j(q))"
        )
    index = int(match[0, 0])
    rho, sigma = pair_classes()[index // NUM_TYPES]
    grid = onehot[index]  # (4, L²)
    values = tuple(int(k[0][grid[t]][0]) if bool(grid[t].any()) else 0 for t in range(NUM_TYPES))
    return SymmetricLayer.single(rho, sigma, index % NUM_TYPES, values)


# ---- nearest symmetric kernel ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SymmetricProjection:
    """The nearest layer-form symmetric kernel found: ``kernel[o] = scale[o] · K_layer[o]``."""

    layer: SymmetricLayer  # ρ, σ shared; q_c per input channel; ternary f_o per output
    scale: torch.Tensor  # (O,) > 0, float64; 1 where f_o ≡ 0
    kernel: torch.Tensor  # (O, C, L, L), weight's dtype: scale[o] · f_o(σ^i(ρ^j(q_c)))
    residual: torch.Tensor  # (O, C, L, L): weight − kernel

    @property
    def error(self) -> float:
        """``‖weight − kernel‖²``."""
        return float(self.residual.to(torch.float64).square().sum())


def nearest_symmetric(
    weight: torch.Tensor, *, beam: int = 32, max_iterations: int = 100
) -> SymmetricProjection:
    """Nearest ``α_o · f_o(σ^i(ρ^j(q_c)))`` to a real kernel (O, C, L, L) in squared error.

    For each pair class (:func:`pair_classes`) alternate, as in EM, two exact steps, neither of
    which raises the error:

    * tables: given the starts ``q``, the best ternary ``f_o`` and scale ``α_o > 0`` of each
      output, over all 81 tables: with ``s_t`` the sum of output ``o``'s weights on cells of type
      ``t`` and ``n_t`` the number of such cells, ``α = ⟨f, s⟩ / ⟨f², n⟩`` and the error falls by
      ``⟨f, s⟩² / ⟨f², n⟩`` (the all-zero table, scale 1, when no table helps);
    * starts: given ``α_o f_o``, the best start of each channel (4 choices; changed only when
      strictly better, so the alternation stops).

    Starts begin (i) all at type ``t``, for each ``t``; (ii) at the best start of each channel's
    leading singular pattern; (iii) at the best starts for prototype vectors: up to 4 of the
    weight vectors ``weight[:, c, i, j]`` (one per cell, over outputs) picked farthest-point
    first, put on the 4 types in every way (24 bijections; all maps when fewer than 4 are
    distinct). After the first table fit only the ``beam`` best candidates go on (ties keep
    their order); the smallest final error wins (ties: first candidate). Deterministic.

    Guarantees (the best candidate always survives the beam): with one input channel the search
    is exhaustive, so the result is the global optimum; a weight that is itself ``α_o · K_o`` for
    a symmetric layer ``K`` comes back as itself, up to the rounding of ``α`` (its ≤ 4 distinct
    cell vectors are found by (iii), and one labelling is the true one). With several channels
    the result is a local optimum that no single step improves. For a single 2-d kernel
    ``k`` pass ``k[None, None]``. Cost per iteration ≈ candidates · O · C · L² · 16 flops,
    candidates = 21 · 29 (more when fewer than 4 distinct cell vectors).
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or (
        weight.shape[2] != weight.shape[3]
    ):
        raise ValueError("weight must be a 4-d tensor (out, in, L, L) with a square kernel")
    if not weight.dtype.is_floating_point:
        raise TypeError(f"weight must be a floating tensor, got {weight.dtype}")
    if min(weight.shape) < 1:
        raise ValueError(f"weight has an empty dimension: shape {tuple(weight.shape)}")
    if not bool(torch.isfinite(weight).all()):
        raise ValueError("weight has non-finite entries")
    for key, value in (("beam", beam), ("max_iterations", max_iterations)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be an integer ≥ 1, got {value!r}")
    o, c, size, _ = (int(n) for n in weight.shape)
    w = weight.detach().to(torch.float64).reshape(o, c, size * size)  # (O, C, K)
    pairs = pair_classes()
    grids = _type_grids(pairs, size).reshape(len(pairs), NUM_TYPES, -1)  # (P, 4q, K)
    onehot = torch.nn.functional.one_hot(grids, NUM_TYPES).permute(0, 1, 3, 2)  # (P, 4q, 4t, K)
    onehot = onehot.to(torch.float64)
    counts = onehot.sum(-1)  # (P, 4q, 4t)
    tables = torch.tensor(TERNARY_TABLES, dtype=torch.float64)  # (81, 4)
    half = tables[_first_nonzero_positive(tables)]  # (40, 4): one of each pair ±f, f ≠ 0
    every_pair = torch.arange(len(pairs))

    def fit_tables(q: torch.Tensor, pair_of: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Best (f_o, α_o) per output given starts: f (B, O, 4t), α (B, O), error (B,)."""
        oh = onehot[pair_of[:, None], q]  # (B, C, 4t, K)
        s = torch.einsum("ock,bctk->bot", w, oh)  # (B, O, 4t): s_t
        n = counts[pair_of[:, None], q].sum(1)  # (B, 4t): n_t (the same for every output)
        num = torch.einsum("bot,ft->bof", s, half)  # (B, O, 40): ⟨f, s⟩; −f gives −⟨f, s⟩
        den = (n @ half.square().t())[:, None, :].expand_as(num)  # (B, O, 40): ⟨f², n⟩ ≥ 0
        gain = num.square() / den.clamp(min=1)  # ⟨f, s⟩ = 0 wherever ⟨f², n⟩ = 0
        best = gain.argmax(-1, keepdim=True)  # (B, O, 1); ties → first table
        top = gain.gather(-1, best)[..., 0]  # (B, O)
        dot = num.gather(-1, best)[..., 0]
        f = torch.where(top[..., None] > 0, dot.sign()[..., None] * half[best[..., 0]], 0.0)
        alpha = torch.where(top > 0, dot.abs() / den.gather(-1, best)[..., 0].clamp(min=1), 1.0)
        return f, alpha, w.square().sum() - top.sum(-1)

    def fit_starts(v: torch.Tensor, pair_of: torch.Tensor, q: torch.Tensor | None
                   ) -> torch.Tensor:
        """Best start per channel for per-type vectors v (B, O, 4t); keeps q unless beaten."""
        pred = torch.einsum("bot,bqtk->boqk", v, onehot[pair_of])  # (B, O, 4q, K)
        cross = torch.einsum("ock,boqk->bcq", w, pred)  # (B, C, 4q)
        err = pred.square().sum((1, 3))[:, None, :] - 2 * cross  # (B, C, 4q), up to a constant
        cand = err.argmin(-1)  # (B, C)
        if q is None:
            return cand
        better = err.gather(-1, cand[..., None]) < err.gather(-1, q[..., None])
        return torch.where(better[..., 0], cand, q)

    # (i) constant starts, (ii) singular patterns, (iii) labelled prototypes
    starts = [torch.full((len(pairs), c), t, dtype=torch.int64) for t in range(NUM_TYPES)]
    starts.append(_pattern_starts(w, onehot, counts, tables))
    protos = _prototypes(w)  # (D, O)
    maps = torch.tensor(list(itertools.permutations(range(NUM_TYPES))) if len(protos) == NUM_TYPES
                        else list(itertools.product(range(len(protos)), repeat=NUM_TYPES)))
    v = protos[maps].transpose(1, 2)  # (M, O, 4t)
    pair_proto = every_pair.repeat_interleave(len(maps))  # (P·M,)
    starts.append(fit_starts(v.repeat(len(pairs), 1, 1), pair_proto, None))
    q = torch.cat(starts)  # (B, C)
    pair_of = torch.cat([every_pair.repeat(NUM_TYPES + 1), pair_proto])  # (B,)

    for step in range(max_iterations):
        q, pair_of = _first_distinct(q, pair_of)  # candidates that met go on as one
        f, alpha, err = fit_tables(q, pair_of)
        if step == 0 and q.shape[0] > beam:  # keep the `beam` best (stable: ties keep order)
            keep = torch.sort(torch.argsort(err, stable=True)[:beam]).values
            q, pair_of, f, alpha, err = q[keep], pair_of[keep], f[keep], alpha[keep], err[keep]
        moved = fit_starts(alpha[..., None] * f, pair_of, q)
        if torch.equal(moved, q):
            break
        q = moved
    else:
        f, alpha, err = fit_tables(q, pair_of)

    b = int(err.argmin())
    rho, sigma = pairs[int(pair_of[b])]
    layer = SymmetricLayer(
        rho=rho, sigma=sigma,
        starts=tuple(int(t) for t in q[b]),
        values=tuple(tuple(int(v) for v in row) for row in f[b].tolist()),
    )
    scale = alpha[b]  # (O,)
    kernel = (scale[:, None, None, None] * layer.kernel(size).to(torch.float64)).to(weight.dtype)
    return SymmetricProjection(layer=layer, scale=scale, kernel=kernel,
                               residual=weight.detach() - kernel)


# ---- helpers ---------------------------------------------------------------------------------


def _check_size(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"sizes and strides must be integers ≥ 1, got {n!r}")


def _out_size(n: int, kernel: int, stride: int) -> int:
    _check_size(n)
    _check_size(kernel)
    _check_size(stride)
    if n < kernel:
        raise ValueError(f"tile side {n} is smaller than the kernel side {kernel}")
    return (n - kernel) // stride + 1


def _powers(p: Perm, start: int, count: int, step: int = 1) -> torch.Tensor:
    """(count, 4) int64: row k is ``p^{start + step·k}``."""
    return torch.tensor([power(p, start + step * k) for k in range(count)], dtype=torch.int64)


def _type_grids(pairs: tuple[tuple[Perm, Perm], ...], size: int) -> torch.Tensor:
    """(P, 4, L, L) int64: ``[p, q, i, j] = σ_p^i(ρ_p^j(q))`` (a fresh tensor)."""
    return _type_grids_cached(pairs, size).clone()


@functools.cache
def _type_grids_cached(pairs: tuple[tuple[Perm, Perm], ...], size: int) -> torch.Tensor:
    out = []
    for rho, sigma in pairs:
        rows = _powers(sigma, 0, size)  # (L, 4): σ^i
        cols = _powers(rho, 0, size)  # (L, 4): ρ^j
        shape = (size, size, NUM_TYPES)
        grid = rows[:, None, :].expand(shape).gather(2, cols[None, :, :].expand(shape))
        out.append(grid.permute(2, 0, 1))  # (4q, L, L): σ^i(ρ^j(q))
    return torch.stack(out)


def _kernels_and_grids(kernels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(kernels, torch.Tensor) or kernels.dim() != 3 or (
        kernels.shape[1] != kernels.shape[2] or kernels.shape[1] < 1
    ):
        raise ValueError("kernels must be a 3-d tensor (N, L, L) with L ≥ 1")
    if kernels.dtype.is_floating_point or kernels.dtype.is_complex or kernels.dtype == torch.bool:
        raise TypeError(f"kernels must be integer tensors, got {kernels.dtype}")
    size = int(kernels.shape[1])
    k = kernels.to(torch.int64).reshape(kernels.shape[0], -1)  # (N, K)
    grids = _type_grids(pair_classes(), size).reshape(-1, size * size)  # (P·4, K)
    onehot = grids[:, None, :] == torch.arange(NUM_TYPES)[None, :, None]  # (P·4, 4t, K) bool
    return k, onehot


def _constant_on_types(k: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """(N, G) bool: kernel n is constant on every level set of grid g."""
    m = onehot.to(torch.int64)  # (G, 4, K)
    n = m.sum(-1)  # (G, 4)
    s1 = torch.einsum("gtk,nk->ngt", m, k)  # (N, G, 4)
    s2 = torch.einsum("gtk,nk->ngt", m, k * k)
    return (n[None] * s2 == s1 * s1).all(-1)  # (N, G)


def _first_nonzero_positive(tables: torch.Tensor) -> torch.Tensor:
    """(81,) bool: tables whose first non-zero entry is +1 (one of each pair ±f, f ≠ 0)."""
    nz = tables != 0
    first = nz.to(torch.int64).argmax(-1)  # index of the first non-zero entry
    return nz.any(-1) & (tables.gather(-1, first[:, None])[:, 0] > 0)


def _first_distinct(q: torch.Tensor, pair_of: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop candidates (pair, starts) equal to an earlier one; keep the order."""
    key = torch.cat([pair_of[:, None], q], dim=1)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), key.shape[0], dtype=torch.int64)
    first = first.scatter_reduce(0, inverse, torch.arange(key.shape[0]), reduce="amin")
    keep = first.sort().values
    return q[keep], pair_of[keep]


def _prototypes(w: torch.Tensor) -> torch.Tensor:
    """(D, O), D ≤ 4: cell vectors ``w[:, c, k]`` picked farthest-point first from the largest,
    stopping early when every cell vector equals a picked one."""
    sites = w.permute(1, 2, 0).reshape(-1, w.shape[0])  # (C·K, O)
    chosen = [int(sites.square().sum(1).argmax())]
    dist = (sites - sites[chosen[0]]).square().sum(1)  # (C·K,) to the nearest picked vector
    while len(chosen) < NUM_TYPES:
        far = int(dist.argmax())
        if not bool(dist[far] > 0):
            break
        chosen.append(far)
        dist = torch.minimum(dist, (sites - sites[far]).square().sum(1))
    return sites[chosen]


def _pattern_starts(w: torch.Tensor, onehot: torch.Tensor, counts: torch.Tensor,
                    tables: torch.Tensor) -> torch.Tensor:
    """(P, C): per pair, the start that best fits each channel's leading singular pattern
    (the top eigenvector of ``W_cᵀ W_c``; its sign does not matter, as ±f both count)."""
    gram = torch.einsum("ock,ocl->ckl", w, w)  # (C, K, K): W_cᵀ W_c
    patterns = torch.linalg.eigh(gram).eigenvectors[:, :, -1]  # (C, K): the leading one
    s = torch.einsum("pqtk,ck->pqct", onehot, patterns)  # (P, 4q, C, 4t)
    num = torch.einsum("pqct,ft->pqcf", s, tables)  # (P, 4q, C, 81); sign free: f ↔ −f
    den = (counts @ tables.square().t())[:, :, None, :]  # (P, 4q, 1, 81)
    gain = torch.where(den > 0, num.square() / torch.where(den > 0, den, 1.0), 0.0)
    return gain.amax(-1).argmax(1)  # (P, C)

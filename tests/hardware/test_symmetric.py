"""Symmetric kernels: the family and its counts (two independent enumerations), the block-Toeplitz
theorem checked exactly for every kernel of the family at L = 3, its L×L×M form, kernels outside
the family that no type vector can carry, and the nearest-symmetric-kernel projection."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocore.errors import NeurocoreError
from neurocore.hardware.colouring import ColouringError, colour_types, effective_weights
from neurocore.hardware.symmetric import (
    IDENTITY,
    PERMUTATIONS,
    TERNARY_TABLES,
    SymmetricError,
    SymmetricLayer,
    commuting_pairs,
    compose,
    conv_matrix,
    family,
    inverse,
    is_symmetric,
    nearest_symmetric,
    pair_classes,
    power,
    symmetric_mask,
    symmetric_parameters,
)

ALL_TABLES = tuple(TERNARY_TABLES)  # the 81 ternary f


def _assert_factorises(layer: SymmetricLayer, size: int, height: int, width: int,
                       stride: int = 1) -> torch.Tensor:
    """W(K) = B ∘ S(G) exactly, and vec(X) · W(K) = conv2d(X, K) on a random binary tile."""
    kernel = layer.kernel(size)  # (O, C, L, L)
    w = conv_matrix(kernel, height, width, stride)  # (C·H·W, O·Ho·Wo)
    fac = layer.factorise(size, height, width, stride)
    assert fac.types.dtype == torch.int8 and fac.method == "symmetric"
    assert torch.equal(effective_weights(w != 0, fac.types, fac.strengths), w)
    x = torch.randint(0, 2, (1, layer.channels, height, width),
                      generator=torch.Generator().manual_seed(height * 31 + width)).double()
    y = F.conv2d(x, kernel.double(), stride=stride)  # (1, O, Ho, Wo)
    assert torch.equal(x.reshape(1, -1) @ w.double(), y.reshape(1, -1))
    return w


def _free_grid(rho: tuple[int, ...], sigma: tuple[int, ...], start: int, size: int
               ) -> torch.Tensor:
    """σ^i(ρ^j(q)) for ANY pair, commuting or not (SymmetricLayer refuses the latter)."""
    return torch.tensor([[power(sigma, i)[power(rho, j)[start]] for j in range(size)]
                         for i in range(size)])


# ---- permutations and counts -----------------------------------------------------------------

def test_permutation_algebra() -> None:
    p, r = (1, 2, 3, 0), (1, 0, 2, 3)
    assert compose(p, r) == (2, 1, 3, 0)  # r first, then p
    assert compose(p, inverse(p)) == IDENTITY == power(p, 4) == power(p, 0)
    assert power(p, -1) == inverse(p) == (3, 0, 1, 2) and power(p, 5) == p


def test_commuting_pairs_count_by_the_class_equation() -> None:
    # |{(a, b): ab = ba}| = |G| · (number of conjugacy classes); classes of S4 ↔ cycle types
    def cycle_type(p: tuple[int, ...]) -> tuple[int, ...]:
        seen, lengths = set(), []
        for t in range(4):
            n = 0
            while t not in seen:
                seen.add(t)
                t, n = p[t], n + 1
            if n:
                lengths.append(n)
        return tuple(sorted(lengths))

    classes = {cycle_type(p) for p in PERMUTATIONS}
    assert len(classes) == 5
    pairs = commuting_pairs()
    assert len(pairs) == len(PERMUTATIONS) * len(classes) == 120
    assert len(set(pairs)) == 120 and all(compose(r, s) == compose(s, r) for r, s in pairs)
    assert len(pairs) * 4 * len(ALL_TABLES) == 38880  # parameter tuples (ρ, σ, q, f)


def test_pair_classes_cover_every_commuting_pair_once() -> None:
    reps = pair_classes()
    assert len(reps) == 21 and reps[0] == (IDENTITY, IDENTITY)
    for r, s in commuting_pairs():
        conj = {(compose(compose(t, r), inverse(t)), compose(compose(t, s), inverse(t)))
                for t in PERMUTATIONS}
        assert len(conj & set(reps)) == 1


GOLDEN_FAMILY_SIZE = {1: 3, 2: 81, 3: 405, 4: 561}


@pytest.mark.parametrize("size", sorted(GOLDEN_FAMILY_SIZE))
def test_family_size_golden(size: int) -> None:
    kernels = family(size)
    assert kernels.shape == (GOLDEN_FAMILY_SIZE[size], size, size) and kernels.dtype == torch.int8
    assert len({tuple(k.reshape(-1).tolist()) for k in kernels}) == kernels.shape[0]
    assert bool(symmetric_mask(kernels).all())


@pytest.mark.parametrize("size", [1, 2, 3])
def test_family_size_cross_checked_kernel_first(size: int) -> None:
    """Every ternary kernel, tested by level sets, against the parameter enumeration."""
    every = torch.tensor(list(itertools.product((-1, 0, 1), repeat=size * size)))
    every = every.reshape(-1, size, size)  # (3^(L²), L, L)
    members = every[symmetric_mask(every)]
    as_set = {tuple(k.reshape(-1).tolist()) for k in members}
    assert as_set == {tuple(k.reshape(-1).tolist()) for k in family(size)}
    if size <= 2:  # a 2×2 grid can show all four types: every ternary 2×2 kernel is symmetric
        assert len(as_set) == 3 ** (size * size)


# ---- the theorem -----------------------------------------------------------------------------

@pytest.mark.parametrize(("height", "width", "stride"), [(5, 6, 1), (7, 5, 2)])
def test_theorem_for_every_kernel_of_the_family_l3(height: int, width: int, stride: int) -> None:
    """All 120 · 4 · 81 tuples (ρ, σ, q, f) (stride 2: the 21 pair classes): per pair one layer with the 4 starts as channels and
    the 81 tables as outputs; its block contains every single kernel's block (rows of channel c,
    columns of output o), so one exact factorisation covers them all."""
    seen = set()
    for rho, sigma in commuting_pairs() if stride == 1 else pair_classes():
        layer = SymmetricLayer(rho=rho, sigma=sigma, starts=(0, 1, 2, 3), values=ALL_TABLES)
        _assert_factorises(layer, 3, height, width, stride)
        seen.update(tuple(k.reshape(-1).tolist()) for k in layer.kernel(3).reshape(-1, 9))
    assert len(seen) == 405  # pair classes reach every kernel too


def test_theorem_with_integer_tables() -> None:
    """The construction never uses f ∈ {−1, 0, 1}: any integer table works, e.g. a Laplacian."""
    laplacian = SymmetricLayer.single(rho=(1, 0, 3, 2), sigma=(2, 3, 0, 1), start=0,
                                      values=(0, 1, 1, -4))
    assert torch.equal(laplacian.kernel(3)[0, 0],
                       torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]]))
    for rho, sigma in commuting_pairs():
        _assert_factorises(SymmetricLayer(rho=rho, sigma=sigma, starts=(0, 1, 2, 3),
                                          values=((5, -7, 11, 13), (0, 2, 0, -3))), 3, 5, 4)


@pytest.mark.parametrize(
    ("kernel", "separable"),
    [
        ([[1, -1, 1], [-1, 1, -1], [1, -1, 1]], True),  # checkerboard (1,−1,1)ᵀ(1,−1,1)
        ([[1, 0, -1], [1, 0, -1], [1, 0, -1]], True),  # Prewitt
        ([[1, 1, 1], [1, 1, 1], [1, 1, 1]], True),  # box
        ([[0, 1, 0], [1, -1, 1], [0, 1, 0]], False),  # ternary Laplacian, rank 2
        ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], False),  # diagonal, rank 3
        ([[1, 1, 1], [1, -1, 1], [1, 1, 1]], False),  # centre-surround, rank 2
    ],
)
def test_documented_examples(kernel: list[list[int]], separable: bool) -> None:
    k = torch.tensor(kernel)
    assert is_symmetric(k)
    assert (int(torch.linalg.matrix_rank(k.double())) == 1) == separable
    layer = symmetric_parameters(k)
    assert torch.equal(layer.kernel(3)[0, 0], k)
    _assert_factorises(layer, 3, 6, 6)


def test_symmetric_parameters_round_trip_on_the_whole_family() -> None:
    for k in family(3):
        layer = symmetric_parameters(k)
        assert torch.equal(layer.kernel(3)[0, 0], k.to(torch.int64))


@settings(max_examples=60, deadline=None)
@given(
    pair=st.integers(0, 119), outputs=st.integers(1, 4), channels=st.integers(1, 4),
    size=st.integers(1, 4), extra=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    stride=st.integers(1, 3), seed=st.integers(0, 2**31 - 1),
)
def test_layer_form_factorises(pair: int, outputs: int, channels: int, size: int,
                               extra: tuple[int, int], stride: int, seed: int) -> None:
    """L×L×M: ρ, σ shared, q per channel, f per output: one G for every line of the tile."""
    g = torch.Generator().manual_seed(seed)
    rho, sigma = commuting_pairs()[pair]
    layer = SymmetricLayer(
        rho=rho, sigma=sigma,
        starts=tuple(torch.randint(0, 4, (channels,), generator=g).tolist()),
        values=tuple(tuple(r) for r in torch.randint(-1, 2, (outputs, 4), generator=g).tolist()),
    )
    _assert_factorises(layer, size, size + extra[0], size + extra[1], stride)


# ---- outside the family ------------------------------------------------------------------------

def test_non_commuting_pairs_are_refused() -> None:
    rho, sigma = (1, 0, 2, 3), (0, 2, 1, 3)  # two transpositions sharing type 1
    assert compose(rho, sigma) != compose(sigma, rho)
    with pytest.raises(SymmetricError, match="do not commute") as info:
        SymmetricLayer.single(rho, sigma, 0, (1, 2, 3, 4))
    assert isinstance(info.value, NeurocoreError)


def _rgs(cells: int, blocks: int) -> list[tuple[int, ...]]:
    """Set partitions of `cells` cells into exactly `blocks` blocks (restricted growth strings)."""
    out: list[tuple[int, ...]] = []

    def grow(prefix: tuple[int, ...], used: int) -> None:
        if len(prefix) == cells:
            if used == blocks:
                out.append(prefix)
            return
        for v in range(min(used + 1, blocks)):
            grow(prefix + (v,), max(used, v + 1))

    grow((), 0)
    return out


def test_four_valued_kernels_colour_exactly_when_symmetric() -> None:
    """Theorem, second half: a 3×3 kernel with 4 distinct non-zero values fits one type vector
    on a 5×5 tile iff it is symmetric. Classes up to relabelling the values: S(9, 4) = 7770;
    all 5 symmetric ones and every 97th of the rest are checked here (all 7770 agree; see
    docs/symmetric.md)."""
    partitions = _rgs(9, 4)
    assert len(partitions) == 7770
    kernels = torch.tensor(partitions).reshape(-1, 3, 3) + 1  # values 1..4
    members = symmetric_mask(kernels)
    assert int(members.sum()) == 5
    chosen = sorted(set(members.nonzero()[:, 0].tolist()) | set(range(0, 7770, 97)))
    for n in chosen:
        w = conv_matrix(kernels[n][None, None], 5, 5)
        if members[n]:
            assert colour_types(w).colours == 4
        else:
            with pytest.raises(ColouringError) as info:
                colour_types(w)
            assert info.value.reason in ("clique", "infeasible")


def test_non_commuting_grids_need_more_types() -> None:
    """σ^i(ρ^j(q)) with ρσ ≠ σρ and an injective f: no type vector exists unless the 3×3 grid
    happens to equal a commuting one; the naive construction G = σ^yρ^x q fails too."""
    checked = 0
    for rho, sigma in itertools.product(PERMUTATIONS[::5], PERMUTATIONS[::3]):
        if compose(rho, sigma) == compose(sigma, rho):
            continue
        k = _free_grid(rho, sigma, 0, 3) + 1  # f(t) = t + 1
        if is_symmetric(k):
            continue
        w = conv_matrix(k[None, None], 5, 5)
        with pytest.raises(ColouringError) as info:
            colour_types(w)
        assert info.value.reason in ("clique", "infeasible")
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("kernel", "reason"),
    [
        ([[1, 2, 3], [4, 5, 0], [0, 0, 0]], "values"),  # 5 distinct non-zero values
        ([[-1, 1, 1], [1, 1, 1], [1, 1, 1]], "clique"),  # one −1 among +1: K5 on every tile
        ([[1, 1, 1], [1, -1, -1], [1, -1, -1]], "clique"),
    ],
)
def test_kernels_outside_the_family_are_refused(kernel: list[list[int]], reason: str) -> None:
    k = torch.tensor(kernel)
    assert not is_symmetric(k)
    with pytest.raises(SymmetricError, match="not a symmetric kernel"):
        symmetric_parameters(k, name="conv1[0, 0]")
    with pytest.raises(ColouringError) as info:
        colour_types(conv_matrix(k[None, None], 6, 6), name="conv1 tile")
    assert info.value.reason == reason and len(info.value.clique) == 5


def test_ternary_kernels_outside_the_family_can_still_colour() -> None:
    """The family is sufficient, not necessary, for ternary kernels: this one is not of the form
    f(σ^i(ρ^j(q))) yet two types carry it on any tile (the compiler should colour, not test
    membership)."""
    k = torch.tensor([[1, 0, 0], [0, -1, 0], [0, 0, 0]])
    assert not is_symmetric(k)
    for side in (5, 9):
        w = conv_matrix(k[None, None], side, side)
        c = colour_types(w)
        assert c.colours == 2 and torch.equal(effective_weights(w != 0, c.types, c.strengths), w)


def test_channels_must_share_the_pair_and_the_tables() -> None:
    """Why the layer form shares ρ, σ and f_o across channels: breaking either leaves no type
    vector for the tile (injective tables, so every column pins its lines' types)."""
    f = (1, 2, 3, 4)
    cycle = (1, 2, 3, 0)
    row = SymmetricLayer.single(cycle, IDENTITY, 0, f).kernel(3)  # K[i, j] = f(ρ^j(0))
    col = SymmetricLayer.single(IDENTITY, cycle, 0, f).kernel(3)  # K[i, j] = f(σ^i(0))
    with pytest.raises(ColouringError):  # channel 0 steps along x, channel 1 along y
        colour_types(conv_matrix(torch.cat([row, col], dim=1), 5, 5))
    shuffled = SymmetricLayer.single(cycle, IDENTITY, 0, (2, 1, 3, 4)).kernel(3)
    with pytest.raises(ColouringError):  # same ρ, σ, q but f differs between channels
        colour_types(conv_matrix(torch.cat([row, shuffled], dim=1), 5, 5))
    same = SymmetricLayer(rho=cycle, sigma=IDENTITY, starts=(0, 2), values=(f,))
    _assert_factorises(same, 3, 5, 5)


def test_bad_layers_and_tiles() -> None:
    with pytest.raises(SymmetricError, match="not a permutation"):
        SymmetricLayer.single((0, 0, 1, 2), IDENTITY, 0, (1, 0, 0, 0))
    with pytest.raises(SymmetricError, match="starts"):
        SymmetricLayer(rho=IDENTITY, sigma=IDENTITY, starts=(4,), values=((1, 0, 0, 0),))
    with pytest.raises(SymmetricError, match="values"):
        SymmetricLayer(rho=IDENTITY, sigma=IDENTITY, starts=(0,), values=((1, 0, 0),))
    layer = SymmetricLayer.single(IDENTITY, IDENTITY, 0, (1, 0, 0, 0))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        layer.factorise(3, 2, 5)


# ---- nearest symmetric kernel ------------------------------------------------------------------

def _brute_force_error(weight: torch.Tensor) -> float:
    """min over all (ρ, σ, q) of Σ_o min over (f, α > 0) — one input channel."""
    o, _, size, _ = weight.shape
    w = weight.double().reshape(o, -1)  # (O, K)
    tables = torch.tensor(ALL_TABLES, dtype=torch.float64)  # (81, 4)
    grids = torch.cat([  # (480, K): every (ρ, σ, q)
        SymmetricLayer(rho=r, sigma=s, starts=(0, 1, 2, 3), values=((0, 0, 0, 0),))
        .type_grid(size).reshape(4, -1)
        for r, s in commuting_pairs()
    ])
    ks = tables[:, grids]  # (81, 480, K)
    num = torch.einsum("ok,fgk->ofg", w, ks)  # (O, 81, 480)
    den = ks.square().sum(-1)  # (81, 480)
    fits = torch.where((num > 0) & (den > 0), num.square() / den.clamp(min=1), 0.0)
    return float((w.square().sum() - fits.amax(1).sum(0)).min())


def _random_layer(g: torch.Generator, outputs: int, channels: int) -> SymmetricLayer:
    rho, sigma = commuting_pairs()[int(torch.randint(0, 120, (1,), generator=g))]
    return SymmetricLayer(
        rho=rho, sigma=sigma,
        starts=tuple(torch.randint(0, 4, (channels,), generator=g).tolist()),
        values=tuple(tuple(r) for r in torch.randint(-1, 2, (outputs, 4), generator=g).tolist()),
    )


@settings(max_examples=25, deadline=None)
@given(outputs=st.integers(1, 4), channels=st.integers(1, 5), size=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1))
def test_projection_of_a_scaled_symmetric_layer_is_itself(
    outputs: int, channels: int, size: int, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    layer = _random_layer(g, outputs, channels)
    scale = torch.tensor([0.375, 2.5, 1.0, 0.125])[:outputs]  # dyadic: sums are exact
    weight = scale[:, None, None, None] * layer.kernel(size).float()
    p = nearest_symmetric(weight)
    assert torch.equal(p.kernel, weight)
    assert torch.equal(p.layer.kernel(size).float() * p.scale[:, None, None, None].float(),
                       weight)
    assert p.error == 0.0 and not p.residual.any()


@pytest.mark.parametrize("seed", range(4))
def test_projection_with_one_channel_is_the_global_optimum(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn((3, 1, 3, 3), generator=g, dtype=torch.float64)
    p = nearest_symmetric(weight)
    assert p.error == pytest.approx(_brute_force_error(weight), rel=1e-12, abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(outputs=st.integers(1, 5), channels=st.integers(1, 6), size=st.integers(1, 4),
       noise=st.floats(0.0, 2.0), seed=st.integers(0, 2**31 - 1))
def test_projection_beats_random_family_members(
    outputs: int, channels: int, size: int, noise: float, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    weight = (_random_layer(g, outputs, channels).kernel(size).double()
              + noise * torch.randn((outputs, channels, size, size), generator=g,
                                    dtype=torch.float64))
    p = nearest_symmetric(weight)
    assert bool((p.scale > 0).all()) and torch.equal(p.residual, weight - p.kernel)
    assert p.error == pytest.approx(float((weight - p.kernel).square().sum()))
    assert set(p.layer.kernel(size).unique().tolist()) <= {-1, 0, 1}
    for _ in range(5):  # each with its own best scale per output
        k = _random_layer(g, outputs, channels).kernel(size).double()
        num, den = (weight * k).sum((1, 2, 3)), k.square().sum((1, 2, 3))
        alpha = torch.where((num > 0) & (den > 0), num / den.clamp(min=1), 0.0)
        other = float((weight - alpha[:, None, None, None] * k).square().sum())
        assert p.error <= other + 1e-9


def test_projection_is_deterministic_and_keeps_dtype() -> None:
    weight = torch.randn((6, 5, 3, 3), generator=torch.Generator().manual_seed(9))
    a, b = nearest_symmetric(weight), nearest_symmetric(weight)
    assert a.layer == b.layer and torch.equal(a.kernel, b.kernel) and torch.equal(a.scale, b.scale)
    assert a.kernel.dtype == torch.float32 and a.residual.dtype == torch.float32
    zero = nearest_symmetric(torch.zeros((2, 3, 3, 3)))
    assert not zero.kernel.any() and torch.equal(zero.scale, torch.ones(2, dtype=torch.float64))


def test_projection_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="4-d"):
        nearest_symmetric(torch.zeros((3, 3)))
    with pytest.raises(ValueError, match="square"):
        nearest_symmetric(torch.zeros((1, 1, 3, 2)))
    with pytest.raises(TypeError, match="floating"):
        nearest_symmetric(torch.zeros((1, 1, 3, 3), dtype=torch.int64))
    with pytest.raises(ValueError, match="non-finite"):
        nearest_symmetric(torch.full((1, 1, 3, 3), float("nan")))

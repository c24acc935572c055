"""Type colouring: every returned colouring reproduces its block exactly (``W = B ∘ S(G)``), and
every refusal is certified — by pairwise conflicting lines, or by a solver proof that an
independent brute force over all colourings confirms on small blocks."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocore.errors import NeurocoreError
from neurocore.hardware.colouring import (
    ColouringError,
    colour_types,
    conflict_graph,
    conflict_matrix,
    effective_weights,
)
from neurocore.hardware.corespec import CoreSpec
from neurocore.hardware.program import Program
from neurocore.hardware.symmetric import SymmetricLayer, commuting_pairs, conv_matrix


def _graph_block(lines: int, edges: list[tuple[int, int]]) -> torch.Tensor:
    """A block whose conflict graph is exactly ``edges``: one neuron per edge, weights 1 and 2."""
    w = torch.zeros((lines, len(edges)), dtype=torch.int64)
    for j, (a, b) in enumerate(edges):
        w[a, j], w[b, j] = 1, 2
    return w


def _colourable(conflict: torch.Tensor, num_types: int) -> bool:
    """Brute force: does any of the T^A colourings avoid every conflict? (A ≤ 8)"""
    lines = conflict.shape[0]
    edges = torch.triu(conflict, diagonal=1).nonzero()  # (E, 2)
    if lines == 0 or edges.numel() == 0:
        return True
    colourings = torch.tensor(list(itertools.product(range(num_types), repeat=lines)))  # (T^A, A)
    clash = colourings[:, edges[:, 0]] == colourings[:, edges[:, 1]]  # (T^A, E)
    return bool((~clash.any(dim=1)).any())


def _check(w: torch.Tensor, c, num_types: int) -> None:
    assert c.types.dtype == torch.int8 and c.types.shape == (w.shape[0],)
    assert c.strengths.dtype == torch.int64 and c.strengths.shape == (w.shape[1], num_types)
    assert bool(((c.types >= 0) & (c.types < num_types)).all())
    assert torch.equal(effective_weights(w != 0, c.types, c.strengths), w)
    assert c.colours <= num_types


# C5 joined with K2: chromatic number 5, largest clique 4 (the smallest such graph)
C5_JOIN_K2 = ([(i, (i + 1) % 5) for i in range(5)] + [(5, 6)]
              + [(i, j) for i in range(5) for j in (5, 6)])
# 3-colourable, but DSatur (networkx, this node and edge order) uses 4 colours
DSATUR_HARD = [(0, 1), (0, 3), (0, 4), (0, 7), (1, 4), (1, 5), (2, 3), (2, 4), (2, 5), (2, 6),
               (3, 5), (3, 7), (4, 5)]


# ---- conflicts and composition ---------------------------------------------------------------

def test_conflict_matrix_by_hand() -> None:
    w = torch.tensor([[1, 0, 2],
                      [1, 3, 0],
                      [2, 3, 2],
                      [0, -1, 0]])
    expected = torch.tensor([[0, 0, 1, 0],  # line 0 vs 2: column 0 holds 1 and 2
                             [0, 0, 1, 1],  # line 1 vs 2 (col 0), vs 3 (col 1: 3 and −1)
                             [1, 1, 0, 1],
                             [0, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(conflict_matrix(w), expected)
    assert sorted(conflict_graph(w).edges) == [(0, 2), (1, 2), (1, 3), (2, 3)]


def test_effective_weights_match_program() -> None:
    g = torch.Generator().manual_seed(3)
    spec = CoreSpec(axons=8, neurons=6, name="tiny")
    p = Program.blank(1, spec=spec).replace(
        crossbar=torch.rand((1, 8, 6), generator=g) < 0.5,
        axon_types=torch.randint(0, 4, (1, 8), generator=g).to(torch.int8),
        strengths=torch.randint(-255, 256, (1, 6, 4), generator=g).to(torch.int16),
    )
    ours = effective_weights(p.crossbar[0], p.axon_types[0], p.strengths[0])
    assert torch.equal(ours, p.effective_weights()[0].to(torch.int64))


def test_colour_types_by_hand() -> None:
    w = torch.tensor([[1, 0, 2],
                      [1, 3, 0],
                      [2, 3, 2],
                      [0, -1, 0]])
    c = colour_types(w)
    _check(w, c, 4)
    assert c.method == "dsatur"
    assert c.types[0] != c.types[2] and c.types[1] != c.types[2] and c.types[1] != c.types[3]


def test_colouring_is_deterministic() -> None:
    layer = SymmetricLayer(rho=(1, 2, 3, 0), sigma=(3, 0, 1, 2), starts=(0, 2, 1),
                           values=((1, -1, 0, 1), (0, 1, 1, -1)))
    for w, num_types in ((conv_matrix(layer.kernel(3), 7, 6), 4),
                         (_graph_block(8, DSATUR_HARD), 3)):
        a, b = colour_types(w, num_types), colour_types(w, num_types)
        assert torch.equal(a.types, b.types) and torch.equal(a.strengths, b.strengths)


# ---- the exact path and every reason for refusing ----------------------------------------------

def test_cp_sat_finds_what_dsatur_misses() -> None:
    w = _graph_block(8, DSATUR_HARD)
    with pytest.raises(ColouringError) as info:
        colour_types(w, num_types=3, exact=False, name="hard")
    assert info.value.reason == "heuristic" and "hard" in str(info.value)
    c = colour_types(w, num_types=3)
    assert c.method == "cp-sat"
    _check(w, c, 3)


def test_too_many_values_in_a_column() -> None:
    w = torch.tensor([[1, 0], [2, 0], [3, 1], [-1, 0], [-2, 1], [0, 0]])
    with pytest.raises(ColouringError) as info:
        colour_types(w, name="layer conv1 core 3")
    e = info.value
    assert e.reason == "values" and e.clique == (4, 3, 0, 1, 2)  # lines of −2, −1, 1, 2, 3
    assert str(e).startswith("layer conv1 core 3: neuron (column) 0 holds 5 distinct")
    assert isinstance(e, NeurocoreError)


def test_k5_is_reported_as_a_clique() -> None:
    w = _graph_block(6, [(a, b) for a, b in itertools.combinations(range(5), 2)])
    with pytest.raises(ColouringError) as info:
        colour_types(w)
    assert info.value.reason == "clique" and info.value.clique == (0, 1, 2, 3, 4)


def test_infeasible_without_a_clique_is_the_solvers_proof() -> None:
    w = _graph_block(7, C5_JOIN_K2)
    assert not _colourable(conflict_matrix(w), 4) and _colourable(conflict_matrix(w), 5)
    with pytest.raises(ColouringError) as info:
        colour_types(w)
    assert info.value.reason == "infeasible" and info.value.clique == ()
    with pytest.raises(ColouringError) as info:
        colour_types(w, exact=False)
    assert info.value.reason == "heuristic"


def test_timeout_is_reported() -> None:
    with pytest.raises(ColouringError) as info:
        colour_types(_graph_block(8, DSATUR_HARD), num_types=3, time_limit=0.0)
    assert info.value.reason == "timeout" and "time_limit=0.0" in str(info.value)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="integer"):
        colour_types(torch.ones(3, 2))
    with pytest.raises(ValueError, match="2-d"):
        colour_types(torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="num_types"):
        colour_types(torch.ones(3, 2, dtype=torch.int64), num_types=0)
    with pytest.raises(ValueError, match="time_limit"):
        colour_types(torch.ones(3, 2, dtype=torch.int64), time_limit=float("nan"))
    with pytest.raises(ValueError, match="too large"):
        conflict_matrix(torch.full((2, 4), 2**31, dtype=torch.int64))


def test_empty_and_silent_blocks() -> None:
    for w in (torch.zeros((0, 3), dtype=torch.int64), torch.zeros((4, 0), dtype=torch.int64),
              torch.zeros((4, 3), dtype=torch.int64)):
        c = colour_types(w)
        _check(w, c, 4)
        assert c.colours == 0


# ---- properties -------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(
    lines=st.integers(1, 7), neurons=st.integers(1, 5), num_types=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1), spread=st.integers(1, 3), density=st.floats(0.2, 1.0),
)
def test_random_blocks_are_coloured_or_certified(
    lines: int, neurons: int, num_types: int, seed: int, spread: int, density: float
) -> None:
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-spread, spread + 1, (lines, neurons), generator=g)
    w[torch.rand((lines, neurons), generator=g) > density] = 0
    conflict = conflict_matrix(w)
    try:
        c = colour_types(w, num_types=num_types)
    except ColouringError as e:
        assert e.reason in ("values", "clique", "infeasible")
        if e.reason != "infeasible":
            assert len(e.clique) > num_types
            for a, b in itertools.combinations(e.clique, 2):
                assert conflict[a, b]
        assert not _colourable(conflict, num_types)  # the refusal is right
    else:
        _check(w, c, num_types)
        types = c.types.to(torch.int64)
        assert not (conflict & (types[:, None] == types[None, :])).any()


@settings(max_examples=40, deadline=None)
@given(
    pair=st.integers(0, 119), outputs=st.integers(1, 3), size=st.integers(1, 4),
    extra=st.tuples(st.integers(0, 4), st.integers(0, 4)), data=st.data(),
)
def test_symmetric_layers_always_colour_with_four_types(
    pair: int, outputs: int, size: int, extra: tuple[int, int], data: st.DataObject
) -> None:
    channels = data.draw(st.integers(1, 3))
    rho, sigma = commuting_pairs()[pair]
    layer = SymmetricLayer(
        rho=rho, sigma=sigma,
        starts=tuple(data.draw(st.lists(st.integers(0, 3), min_size=channels,
                                        max_size=channels))),
        values=tuple(tuple(data.draw(st.lists(st.integers(-1, 1), min_size=4, max_size=4)))
                     for _ in range(outputs)),
    )
    w = conv_matrix(layer.kernel(size), size + extra[0], size + extra[1])
    c = colour_types(w, name="symmetric tile")
    _check(w, c, 4)

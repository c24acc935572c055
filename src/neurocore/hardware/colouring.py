"""Type colouring: write an integer weight block as ``W = B ∘ S(G)`` with one type per input line.

A core gives each input line (axon) ``i`` one type ``G_i ∈ {0, …, T−1}`` shared by all its
neurons, and each neuron ``j`` one table of ``T`` signed strengths ``S_j``; the weight of line
``i`` on neuron ``j`` is ``W_ij = B_ij · S_j[G_i]`` with a binary crossbar ``B``. A block ``W``
(lines × neurons) has such a form with ``B = [W ≠ 0]`` exactly when its lines can be coloured
with ``T`` colours so that, in every column, the lines of one colour that carry a non-zero weight
carry the same value. Equivalently: ``G`` is a proper colouring of the *conflict graph*, whose
vertices are the lines and where lines ``i`` and ``k`` are adjacent when some column ``j`` holds
different non-zero values on them (``W_ij ≠ 0``, ``W_kj ≠ 0``, ``W_ij ≠ W_kj``). Given ``G``,
``S_j[t]`` is the one non-zero value of column ``j`` on lines of type ``t`` (0 when there is none).

The search uses libraries, not a hand-written search (the ``solver`` extra: networkx, OR-Tools):

1. a column with more than ``T`` distinct non-zero values needs more than ``T`` types (its lines
   pairwise conflict): reported at once, with those lines as the witness;
2. networkx's DSatur greedy colouring; done if it uses at most ``T`` colours;
3. otherwise OR-Tools CP-SAT, exact (one worker, fixed seed, a *deterministic* time limit, so the
   outcome does not depend on the machine's load); an infeasible block is reported with a clique
   of ``T + 1`` pairwise conflicting lines when CP-SAT finds one, else with the solver's proof.

Every failure is one :class:`ColouringError` naming the block and the reason.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

import torch

from neurocore.errors import NeurocoreError

Method = Literal["dsatur", "cp-sat", "symmetric"]
Reason = Literal["values", "clique", "infeasible", "timeout", "heuristic"]


class ColouringError(NeurocoreError):
    """A weight block has no type colouring with the allowed number of types (or none was found).

    ``reason`` is one of ``"values"`` (a column holds more than ``num_types`` distinct non-zero
    values), ``"clique"`` (CP-SAT proved the block infeasible and found ``num_types + 1``
    pairwise conflicting lines), ``"infeasible"`` (CP-SAT proved it infeasible; no such clique),
    ``"timeout"`` (CP-SAT reached its limit undecided) and ``"heuristic"`` (DSatur needed more
    colours and the exact search was switched off). ``clique`` holds pairwise conflicting lines
    (more than ``num_types``) for ``"values"`` and ``"clique"``, and is empty otherwise.
    """

    def __init__(self, block: str, reason: Reason, message: str,
                 clique: tuple[int, ...] = ()) -> None:
        super().__init__(f"{block}: {message}")
        self.block = block
        self.reason: Reason = reason
        self.clique = clique


@dataclass(frozen=True, eq=False)
class TypeColouring:
    """``W = B ∘ S(G)`` for one block: ``B = [W ≠ 0]``, ``types`` = G, ``strengths`` = S."""

    types: torch.Tensor  # (lines,) int8, G_i ∈ [0, num_types)
    strengths: torch.Tensor  # (neurons, num_types) int64, S_j[t]; 0 where type t is unused
    method: Method  # how G was found
    colours: int  # distinct types used by lines that carry a non-zero weight


def effective_weights(
    crossbar: torch.Tensor, types: torch.Tensor, strengths: torch.Tensor
) -> torch.Tensor:
    """``B ∘ S(G)``: ``out[i, j] = B[i, j] · S[j, G[i]]``, shape (lines, neurons) int64."""
    s = strengths.to(torch.int64)  # (N, T)
    g = types.to(torch.int64)  # (A,)
    return s.t()[g] * crossbar.to(torch.int64)  # (A, N)


def conflict_matrix(weights: torch.Tensor) -> torch.Tensor:
    """(lines, lines) bool: lines i and k conflict (some column holds different non-zero values).

    ``D_ik = Σ_j [W_ij ≠ 0][W_kj ≠ 0](W_ij − W_kj)² = (W²)Nᵀ + N(W²)ᵀ − 2WWᵀ`` with
    ``N = [W ≠ 0]``, in exact integer arithmetic; lines conflict where ``D_ik > 0``.
    """
    w = _check_weights(weights)
    if w.numel() and 4 * w.shape[1] * int(w.abs().max()) ** 2 >= 2**63:
        raise ValueError("weights too large for the exact int64 conflict test")
    nz = (w != 0).to(torch.int64)  # (A, N)
    sq = w * w  # (A, N)
    d = sq @ nz.t() + nz @ sq.t() - 2 * (w @ w.t())  # (A, A)
    return d > 0


def conflict_graph(weights: torch.Tensor) -> Any:
    """The conflict graph as a ``networkx.Graph`` on lines ``0..A−1`` (nodes and edges sorted)."""
    nx = _import("networkx", "the conflict graph")
    conflict = conflict_matrix(weights)
    graph = nx.Graph()
    graph.add_nodes_from(range(conflict.shape[0]))
    pairs = torch.triu(conflict, diagonal=1).nonzero().tolist()
    graph.add_edges_from((int(a), int(b)) for a, b in pairs)
    return graph


def colour_types(
    weights: torch.Tensor,
    num_types: int = 4,
    *,
    exact: bool = True,
    time_limit: float = 10.0,
    name: str = "block",
) -> TypeColouring:
    """Find G and S with ``weights == B ∘ S(G)``, ``B = weights ≠ 0``, using ≤ ``num_types`` types.

    ``weights`` is an integer tensor (lines, neurons). DSatur first; when it needs more than
    ``num_types`` colours and ``exact`` is true, CP-SAT decides, within ``time_limit``
    deterministic seconds (CP-SAT's ``max_deterministic_time``). ``name`` names the block in
    errors. Raises :class:`ColouringError` (see its ``reason``) when no colouring is found.
    """
    w = _check_weights(weights)
    if isinstance(num_types, bool) or not isinstance(num_types, int) or not 1 <= num_types <= 127:
        raise ValueError(f"num_types must be an integer in [1, 127] (int8), got {num_types!r}")
    if isinstance(time_limit, bool) or not isinstance(time_limit, int | float) or not (
        0 <= time_limit < float("inf")
    ):
        raise ValueError(f"time_limit must be a finite number ≥ 0, got {time_limit!r}")
    lines = w.shape[0]
    _check_column_values(w, num_types, name)
    graph = conflict_graph(w)
    nx = _import("networkx", "DSatur colouring")
    greedy: dict[int, int] = nx.greedy_color(graph, strategy="DSATUR")
    used = max(greedy.values(), default=-1) + 1
    method: Method
    if used <= num_types:
        colour = [greedy[i] for i in range(lines)]
        method = "dsatur"
    elif not exact:
        raise ColouringError(
            name, "heuristic",
            f"DSatur needed {used} axon types for {lines} input lines (at most {num_types} "
            "allowed) and the exact search is off (exact=False)",
        )
    else:
        colour = _cp_sat_colouring(graph, greedy, num_types, time_limit, name)
        method = "cp-sat"
    types = torch.tensor(colour, dtype=torch.int8) if lines else torch.zeros(0, dtype=torch.int8)
    strengths = _strengths(w, types, num_types)
    if not torch.equal(effective_weights(w != 0, types, strengths), w):
        raise AssertionError(f"{name}: type colouring does not reproduce the block")  # a bug
    active = (w != 0).any(dim=1)
    return TypeColouring(types=types, strengths=strengths, method=method,
                         colours=int(torch.unique(types[active]).numel()))


# ---- helpers ----------------------------------------------------------------------------------


def _check_weights(weights: torch.Tensor) -> torch.Tensor:
    if not isinstance(weights, torch.Tensor) or weights.dim() != 2:
        raise ValueError("weights must be a 2-d tensor (lines, neurons)")
    if weights.dtype.is_floating_point or weights.dtype.is_complex or weights.dtype == torch.bool:
        raise TypeError(f"weights must be an integer tensor, got {weights.dtype}")
    return weights.to(torch.int64)


def _check_column_values(w: torch.Tensor, num_types: int, name: str) -> None:
    """Raise "values" for the first column with more than ``num_types`` distinct non-zero values."""
    ordered = torch.sort(w, dim=0).values  # (A, N), per column
    new = torch.ones_like(ordered, dtype=torch.bool)
    new[1:] = ordered[1:] != ordered[:-1]
    distinct = (new & (ordered != 0)).sum(dim=0)  # (N,) distinct non-zero values per column
    bad = (distinct > num_types).nonzero()
    if bad.numel() == 0:
        return
    j = int(bad[0])
    column = w[:, j]
    values = sorted({int(v) for v in column[column != 0].tolist()})
    clique = tuple(int((column == v).nonzero()[0]) for v in values)
    raise ColouringError(
        name, "values",
        f"neuron (column) {j} holds {len(values)} distinct non-zero weights {values}; "
        f"{num_types} axon types can carry at most {num_types} (lines {list(clique)})",
        clique=clique,
    )


def _strengths(w: torch.Tensor, types: torch.Tensor, num_types: int) -> torch.Tensor:
    """S[j, t] = the non-zero value of column j on lines of type t (0 if none), (N, T) int64."""
    strengths = torch.zeros((w.shape[1], num_types), dtype=torch.int64)
    rows, cols = (w != 0).nonzero(as_tuple=True)
    strengths[cols, types.to(torch.int64)[rows]] = w[rows, cols]  # conflict-free: writes agree
    return strengths


def _solver(time_limit: float) -> Any:
    cp_model = _import("ortools.sat.python.cp_model", "exact type colouring")
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = float(time_limit)
    return solver


def _cp_sat_colouring(
    graph: Any, greedy: dict[int, int], num_types: int, time_limit: float, name: str
) -> list[int]:
    """Exact colouring with CP-SAT: one integer per line, ``x_u ≠ x_v`` on every conflict."""
    cp_model = _import("ortools.sat.python.cp_model", "exact type colouring")
    nodes = sorted(graph.nodes)
    model = cp_model.CpModel()
    x = {v: model.new_int_var(0, num_types - 1, f"g{v}") for v in nodes}
    for u, v in sorted(graph.edges):
        model.add(x[u] != x[v])
    for v in nodes:
        model.add_hint(x[v], min(greedy[v], num_types - 1))
    # symmetry breaking: a greedy clique takes colours 0, 1, 2, ... in order
    for c, v in enumerate(_greedy_clique(graph)[:num_types]):
        model.add(x[v] == c)
    solver = _solver(time_limit)
    status = solver.solve(model)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return [int(solver.value(x[v])) for v in nodes]
    lines = len(nodes)
    if status == cp_model.INFEASIBLE:
        clique = _find_clique(graph, num_types + 1, time_limit)
        if clique:
            raise ColouringError(
                name, "clique",
                f"no colouring of {lines} input lines with {num_types} axon types: lines "
                f"{list(clique)} pairwise conflict (some neuron weighs each pair differently)",
                clique=clique,
            )
        raise ColouringError(
            name, "infeasible",
            f"CP-SAT proved that {lines} input lines admit no colouring with {num_types} axon "
            f"types (no {num_types + 1} pairwise conflicting lines found; the proof is the "
            "solver's)",
        )
    raise ColouringError(
        name, "timeout",
        f"CP-SAT found no colouring of {lines} input lines with {num_types} axon types within "
        f"time_limit={time_limit} deterministic seconds (status {solver.status_name(status)})",
    )


def _greedy_clique(graph: Any) -> list[int]:
    """A clique grown greedily from the highest-degree line (ties: lowest index)."""
    order = sorted(graph.nodes, key=lambda v: (-graph.degree[v], v))
    clique: list[int] = []
    for v in order:
        if all(graph.has_edge(v, u) for u in clique):
            clique.append(v)
    return clique


def _find_clique(graph: Any, size: int, time_limit: float) -> tuple[int, ...]:
    """``size`` pairwise adjacent lines found by CP-SAT, or () if there are none (or no time)."""
    cp_model = _import("ortools.sat.python.cp_model", "clique search")
    nx = _import("networkx", "clique search")
    core = nx.k_core(graph, size - 1)  # a clique of `size` lies in the (size−1)-core
    nodes = sorted(core.nodes)
    if len(nodes) < size:
        return ()
    model = cp_model.CpModel()
    x = {v: model.new_bool_var(f"c{v}") for v in nodes}
    model.add(sum(x.values()) == size)
    for a, u in enumerate(nodes):
        for v in nodes[a + 1:]:
            if not core.has_edge(u, v):
                model.add_bool_or([~x[u], ~x[v]])
    solver = _solver(time_limit)
    if solver.solve(model) in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return tuple(v for v in nodes if solver.value(x[v]))
    return ()


def _import(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NeurocoreError(
            f"{what} needs {module.split('.')[0]}: install the solver extra "
            "(pip install 'neurocore[solver]')"
        ) from None

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neurocore.analysis.inspect import inspect_model
from neurocore.config import validate_recipe
from neurocore.layers import LDRLinear, ToeplitzLikeLinear, build_model
from neurocore.layers.ldr import krylov

D = torch.float64


def z_circulant(v: np.ndarray, f: float) -> np.ndarray:
    """Z_f(v) entry by entry: v[r − c] on and below the diagonal, f·v[n + r − c] above."""
    n = len(v)
    return np.array([[v[r - c] if r >= c else f * v[n + r - c] for c in range(n)] for r in range(n)])


def shift(edges: np.ndarray) -> np.ndarray:
    """The cyclic weighted shift A[(t + 1) mod n, t] = edges[t]."""
    n = len(edges)
    a = np.zeros((n, n))
    for t in range(n):
        a[(t + 1) % n, t] = edges[t]
    return a


def toeplitz_like_reference(g: np.ndarray, h: np.ndarray) -> np.ndarray:
    return sum(z_circulant(gk, 1.0) @ z_circulant(hk, -1.0).T for gk, hk in zip(g, h, strict=True))


def _set(m: nn.Module, **values: torch.Tensor) -> None:
    with torch.no_grad():
        for name, value in values.items():
            getattr(m, name).copy_(value)


# ----------------------------------------------------------------------------- Toeplitz-like


def test_toeplitz_like_golden() -> None:
    m = ToeplitzLikeLinear(3, 3, 1, bias=False, dtype=D)
    _set(m, g=torch.tensor([[1.0, 2.0, 3.0]]), h=torch.tensor([[0.0, 1.0, 0.0]]))
    # Z_1(g)·Z_{−1}ᵀ: the columns of C([1, 2, 3]) rotated left, the wrapped one negated
    expected = torch.tensor([[-2.0, 1.0, 3.0], [-3.0, 2.0, 1.0], [-1.0, 3.0, 2.0]], dtype=D)
    assert torch.allclose(m.weight, expected, rtol=0, atol=1e-12)
    x = torch.tensor([1.0, 10.0, 100.0], dtype=D)
    assert torch.allclose(m(x), expected @ x, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("n_in", "n_out", "rank"), [(6, 6, 1), (8, 8, 3), (7, 5, 2), (4, 9, 2), (1, 3, 1)])
def test_toeplitz_like_matches_dense_reference(n_in: int, n_out: int, rank: int) -> None:
    torch.manual_seed(0)
    m = ToeplitzLikeLinear(n_in, n_out, rank, dtype=D)
    n = max(n_in, n_out)
    assert m.g.shape == m.h.shape == (rank, n)
    dense = toeplitz_like_reference(m.g.detach().numpy(), m.h.detach().numpy())[:n_out, :n_in]
    assert np.abs(m.weight.detach().numpy() - dense).max() <= 1e-10


@pytest.mark.parametrize("rank", [1, 2, 4])
def test_toeplitz_like_displacement_rank(rank: int) -> None:
    torch.manual_seed(rank)
    n = 12
    m = ToeplitzLikeLinear(n, n, rank, dtype=D)
    w = m.weight.detach().numpy()
    z1, zm1 = z_circulant(np.eye(n)[1], 1.0), z_circulant(np.eye(n)[1], -1.0)  # Z_1, Z_{−1}
    displacement = z1 @ w - w @ zm1
    s = np.linalg.svd(displacement, compute_uv=False)
    assert s[rank - 1] > 1e-3 * s[0] and s[rank] <= 1e-10 * s[0]  # rank exactly r (generic g, h)
    # and the closed form 2·Σ_k g_k·(Z_{−1}(h_k)·e_{n−1})ᵀ
    g, h = m.g.detach().numpy(), m.h.detach().numpy()
    closed = 2 * sum(np.outer(gk, z_circulant(hk, -1.0)[:, -1]) for gk, hk in zip(g, h, strict=True))
    assert np.abs(displacement - closed).max() <= 1e-10


# ----------------------------------------------------------------------------- general LDR


def test_krylov_golden_against_matrix_powers() -> None:
    edges = torch.tensor([2.0, -1.0, 0.5, 3.0], dtype=D)
    v = torch.tensor([[1.0, 2.0, -1.0, 4.0], [0.0, 1.0, 0.0, 0.0]], dtype=D)
    a = shift(edges.numpy())
    for k, vk in enumerate(v.numpy()):
        expected = np.stack([np.linalg.matrix_power(a, t) @ vk for t in range(4)], axis=1)
        assert np.array_equal(krylov(edges, v)[k].numpy(), expected)  # products of exact binary values


def _random_ldr(n_in: int, n_out: int, rank: int, seed: int, corners: bool) -> LDRLinear:
    g = torch.Generator().manual_seed(seed)
    m = LDRLinear(n_in, n_out, rank, dtype=D)
    n = m.n
    _set(m, g=torch.randn(rank, n, generator=g, dtype=D), h=torch.randn(rank, n, generator=g, dtype=D),
         subdiag_a=1 + 0.3 * torch.randn(n - 1, generator=g, dtype=D),
         subdiag_b=1 + 0.3 * torch.randn(n - 1, generator=g, dtype=D))
    if corners:
        _set(m, corner_a=torch.tensor(0.7, dtype=D), corner_b=torch.tensor(-1.3, dtype=D))
    return m


@pytest.mark.parametrize("corners", [False, True])
def test_ldr_solves_the_stein_displacement_equation(corners: bool) -> None:
    rank, n = 2, 9
    m = _random_ldr(n, n, rank, seed=1, corners=corners)
    w = m.weight.detach().numpy()
    edges_a = np.append(m.subdiag_a.detach().numpy(), m.corner_a.item())
    edges_b = np.append(m.subdiag_b.detach().numpy(), m.corner_b.item())
    a, b = shift(edges_a), shift(edges_b)
    scale = 1 - np.prod(edges_a) * np.prod(edges_b)  # 1 − α·β; exactly 1 without corners
    ghT = m.g.detach().numpy().T @ m.h.detach().numpy()
    residual = w - a @ w @ b.T - scale * ghT
    assert np.abs(residual).max() <= 1e-10 * np.abs(w).max()
    s = np.linalg.svd(w - a @ w @ b.T, compute_uv=False)
    assert s[rank] <= 1e-10 * s[0]


def test_ldr_with_z1_and_zminus1_is_toeplitz_like() -> None:
    torch.manual_seed(2)
    t = ToeplitzLikeLinear(7, 5, 3, dtype=D)
    m = LDRLinear(7, 5, 3, dtype=D)
    _set(m, g=t.g, h=t.h, corner_a=torch.tensor(1.0), corner_b=torch.tensor(-1.0), bias=t.bias)
    assert (m.weight - t.weight).abs().max() <= 1e-12  # cumprod-Krylov vs FFT: independent paths
    x = torch.randn(4, 7, dtype=D)
    assert (m(x) - t(x)).abs().max() <= 1e-12


# ----------------------------------------------------------------------------- both: parity


def _layers() -> list[tuple[str, Callable[[int, int, int], nn.Module]]]:
    return [
        ("toeplitz", lambda i, o, r: ToeplitzLikeLinear(i, o, r, dtype=D)),
        ("ldr", lambda i, o, r: _random_ldr(i, o, r, seed=3, corners=True)),
    ]


@pytest.mark.parametrize(("name", "make"), _layers())
@pytest.mark.parametrize(("n_in", "n_out", "rank"), [(6, 6, 2), (7, 4, 1), (3, 8, 3)])
def test_forward_and_gradients_match_dense_autograd(
    name: str, make: Callable[[int, int, int], nn.Module], n_in: int, n_out: int, rank: int
) -> None:
    torch.manual_seed(4)
    m = make(n_in, n_out, rank)
    x = torch.randn(2, 3, n_in, dtype=D, requires_grad=True)
    grad = torch.randn(2, 3, n_out, dtype=D)
    y = m(x)
    y.backward(grad)
    ours = {n: p.grad.clone() for n, p in m.named_parameters()}  # type: ignore[union-attr]
    x_grad = x.grad.clone()  # type: ignore[union-attr]
    m.zero_grad()

    x_ref = x.detach().clone().requires_grad_()
    y_ref = F.linear(x_ref, m.weight, m.bias)  # dense autograd through the materialized matrix
    y_ref.backward(grad)
    assert (y - y_ref).abs().max() <= 1e-10
    assert (x_grad - x_ref.grad).abs().max() <= 1e-10  # type: ignore[operator]
    for n, p in m.named_parameters():
        assert (ours[n] - p.grad).abs().max() <= 1e-10 * max(1.0, float(p.grad.abs().max())), n  # type: ignore[union-attr]


def test_krylov_gradcheck_with_zero_corner() -> None:
    g = torch.Generator().manual_seed(5)
    edges = torch.cat([torch.randn(4, generator=g, dtype=D), torch.zeros(1, dtype=D)]).requires_grad_()
    v = torch.randn(2, 5, generator=g, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(krylov, (edges, v), fast_mode=True)


@pytest.mark.parametrize(("name", "make"), _layers())
def test_eval_equals_train(name: str, make: Callable[[int, int, int], nn.Module]) -> None:
    m = make(6, 5, 2)
    x = torch.randn(4, 6, dtype=D)
    y_train = m(x)
    m.eval()
    with torch.no_grad():
        y_eval, y_again = m(x), m(x)
    assert (y_train - y_eval).abs().max() <= 1e-12 and torch.equal(y_eval, y_again)
    with torch.no_grad():
        m.g.add_(1.0)  # a changed parameter invalidates the cached spectra / matrix
        assert (m(x) - F.linear(x, m.weight, m.bias)).abs().max() <= 1e-10


@pytest.mark.parametrize("make", [ToeplitzLikeLinear, LDRLinear])
def test_backprop_training_reduces_the_loss(make: type) -> None:
    torch.manual_seed(6)
    m = make(8, 6, 2)
    target = torch.randn(6, 8)
    x = torch.randn(64, 8)
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    losses = []
    for _ in range(25):
        loss = F.mse_loss(m(x), x @ target.T)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@given(n_in=st.integers(1, 16), n_out=st.integers(1, 16), rank=st.integers(1, 4), rows=st.integers(1, 3))
@settings(max_examples=20, deadline=None)
def test_property_toeplitz_like_parity(n_in: int, n_out: int, rank: int, rows: int) -> None:
    g = torch.Generator().manual_seed(n_in * 100 + n_out * 10 + rank)
    m = ToeplitzLikeLinear(n_in, n_out, rank, dtype=D)
    _set(m, g=torch.randn(m.g.shape, generator=g, dtype=D), h=torch.randn(m.h.shape, generator=g, dtype=D))
    n = max(n_in, n_out)
    dense = toeplitz_like_reference(m.g.detach().numpy(), m.h.detach().numpy())
    assert np.abs(m.weight.detach().numpy() - dense[:n_out, :n_in]).max() <= 1e-10
    x = torch.randn(rows, n_in, generator=g, dtype=D)
    assert (m(x) - F.linear(x, torch.from_numpy(dense[:n_out, :n_in]), m.bias)).abs().max() <= 1e-10 * n


# ----------------------------------------------------------------------------- contract, cost


@pytest.mark.parametrize("cls", [ToeplitzLikeLinear, LDRLinear])
def test_signature_is_linear_plus_rank(cls: type) -> None:
    mine = inspect.signature(cls.__init__).parameters
    theirs = inspect.signature(nn.Linear.__init__).parameters
    assert [p for p in mine if p != "rank"] == list(theirs) and list(mine).index("rank") == 3
    assert all(mine[n].default == p.default for n, p in theirs.items())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ToeplitzLikeLinear(4, 4, 0), r"rank must be an int >= 1, got 0"),
        (lambda: LDRLinear(4, 4, 1.5), r"rank must be an int >= 1, got 1\.5"),
        (lambda: LDRLinear(0, 4, 1), r"in_features must be an int >= 1, got 0"),
        (lambda: ToeplitzLikeLinear(4, False, 1), r"out_features must be an int >= 1, got False"),
    ],
)
def test_bad_arguments(make: Callable[[], nn.Module], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_inspect_costs() -> None:
    model = nn.Sequential(ToeplitzLikeLinear(16, 8, 2), LDRLinear(8, 4, 3))
    insp = inspect_model(model, (16,))
    toeplitz, ldr = insp.layers
    # n = 16: FFTs of 32 (400 flops) and 16 (160 flops), (r + 1) of each; 4·2·(17 + 9) real MACs
    assert toeplitz.cost.macs == 208
    assert toeplitz.cost.other == {"fft_flops": 3 * (400 + 160), "dense_macs": 128}
    assert ldr.cost.macs == 32 and ldr.cost.other == {"dense_macs": 32}
    assert insp.total_params == (2 * 2 * 16 + 8) + (2 * 3 * 8 + 2 * 7 + 2 + 4)


def test_registry_builds_ldr_layers() -> None:
    recipe = validate_recipe({"name": "t", "model": {"layers": [
        {"type": "toeplitz_like_linear", "out_features": 12, "rank": 2},
        {"type": "ldr_linear", "out_features": 10, "rank": 1, "bias": False},
    ]}}, "t.yaml")
    model = build_model(list(recipe.model.layers), (20,), num_classes=10)
    assert isinstance(model.fc0, ToeplitzLikeLinear) and model.fc0.g.shape == (2, 20)
    assert isinstance(model.fc1, LDRLinear) and model.fc1.bias is None and model.fc1.n == 12
    assert model(torch.zeros(3, 20)).shape == (3, 10)


@pytest.mark.parametrize("cls", [ToeplitzLikeLinear, LDRLinear])
def test_inference_mode_cache_then_autograd_and_empty_batch(cls: type) -> None:
    torch.manual_seed(7)
    m = cls(8, 6, 2).eval()
    x = torch.randn(3, 8)
    with torch.inference_mode():
        expected = m(x)
    y = m(x)
    y.sum().backward()
    assert torch.allclose(y, expected) and m.g.grad is not None
    assert m(torch.zeros(0, 8)).shape == (0, 6)

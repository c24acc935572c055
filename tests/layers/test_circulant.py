from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import neurocore.layers.circulant as circulant
from neurocore.analysis.inspect import inspect_model
from neurocore.config import validate_recipe
from neurocore.errors import RecipeError
from neurocore.layers import BlockCirculantConv2d, BlockCirculantLinear, build_model
from neurocore.layers.circulant import block_circulant_matrix, project_block_circulant

D = torch.float64


def _set_blocks(m: nn.Module, values: torch.Tensor) -> None:
    with torch.no_grad():
        m.blocks.copy_(values)  # type: ignore[operator]


# ----------------------------------------------------------------------------- convention


def test_convention_first_column_golden() -> None:
    m = BlockCirculantLinear(3, 3, 3, bias=False, dtype=D)
    _set_blocks(m, torch.tensor([[[1.0, 2.0, 3.0]]]))
    # C(w)[r, c] = w[(r - c) mod 3]: the first column is w
    assert torch.equal(m.weight, torch.tensor([[1.0, 3.0, 2.0], [2.0, 1.0, 3.0], [3.0, 2.0, 1.0]], dtype=D))
    y = m(torch.tensor([1.0, 10.0, 100.0], dtype=D))
    assert torch.allclose(y, torch.tensor([231.0, 312.0, 123.0], dtype=D), rtol=0, atol=1e-12)


def test_padded_blocks_golden() -> None:
    m = BlockCirculantLinear(5, 4, 3, bias=False, dtype=D)  # q_out = q_in = 2, cropped to (4, 5)
    _set_blocks(m, torch.arange(1.0, 13.0, dtype=D).reshape(2, 2, 3))
    expected = torch.tensor(
        [[1, 3, 2, 4, 6], [2, 1, 3, 5, 4], [3, 2, 1, 6, 5], [7, 9, 8, 10, 12]], dtype=D
    )
    assert torch.equal(m.weight, expected)
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0, -1.0]], dtype=D)
    assert torch.allclose(m(x), x @ expected.T, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- dense parity

# block 128 and up takes the other copy form in _from_spectrum (300 × 200 pads and crops)
SHAPES = [(8, 8, 4), (5, 4, 3), (7, 13, 4), (3, 2, 8), (6, 6, 1), (16, 24, 16), (10, 3, 5),
          (256, 384, 128), (300, 200, 256)]


@pytest.mark.parametrize(("n_in", "n_out", "b"), SHAPES)
def test_forward_and_gradients_match_dense_float64(n_in: int, n_out: int, b: int) -> None:
    torch.manual_seed(0)
    m = BlockCirculantLinear(n_in, n_out, b, dtype=D)
    x = torch.randn(2, 3, n_in, dtype=D, requires_grad=True)
    grad = torch.randn(2, 3, n_out, dtype=D)
    y = m(x)
    y.backward(grad)

    # independent reference: dense autograd through the gathered matrix
    blocks = m.blocks.detach().clone().requires_grad_()
    bias = m.bias.detach().clone().requires_grad_()  # type: ignore[union-attr]
    x_ref = x.detach().clone().requires_grad_()
    y_ref = x_ref @ block_circulant_matrix(blocks, n_out, n_in).T + bias
    y_ref.backward(grad)

    assert y.shape == (2, 3, n_out)
    assert (y - y_ref).abs().max() <= 1e-10
    assert (x.grad - x_ref.grad).abs().max() <= 1e-10  # type: ignore[operator]
    assert (m.blocks.grad - blocks.grad).abs().max() <= 1e-10  # type: ignore[operator]
    assert (m.bias.grad - bias.grad).abs().max() <= 1e-10  # type: ignore[union-attr, operator]


def test_gradcheck_against_finite_differences() -> None:
    torch.manual_seed(1)
    m = BlockCirculantLinear(5, 7, 4, dtype=D)
    x = torch.randn(2, 5, dtype=D, requires_grad=True)

    def f(x: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        return circulant.block_circulant_linear(x, blocks, circulant.linear_spectra(blocks), None, 7)

    assert torch.autograd.gradcheck(f, (x, m.blocks.detach().clone().requires_grad_()), fast_mode=True)


def test_float32_and_single_vector() -> None:
    torch.manual_seed(2)
    m = BlockCirculantLinear(12, 9, 4)
    x = torch.randn(12)
    y = m(x)
    assert y.shape == (9,) and y.dtype == torch.float32
    assert torch.allclose(y, F.linear(x, m.weight, m.bias), atol=1e-5)


@given(
    n_in=st.integers(1, 24), n_out=st.integers(1, 24), b=st.integers(1, 12), rows=st.integers(1, 4)
)
@settings(max_examples=25, deadline=None)
def test_property_dense_parity_and_projection(n_in: int, n_out: int, b: int, rows: int) -> None:
    g = torch.Generator().manual_seed(n_in * 1000 + n_out * 10 + b)
    m = BlockCirculantLinear(n_in, n_out, b, dtype=D)
    _set_blocks(m, torch.randn(m.blocks.shape, generator=g, dtype=D))
    x = torch.randn(rows, n_in, generator=g, dtype=D)
    w = m.weight.detach()
    assert (m(x) - F.linear(x, w, m.bias)).abs().max() <= 1e-10
    # projecting a block-circulant matrix gives it back
    again = block_circulant_matrix(project_block_circulant(w, b), n_out, n_in)
    assert (again - w).abs().max() <= 1e-12


# ----------------------------------------------------------------------------- drop-in contract


@pytest.mark.parametrize(("ours", "theirs"), [(BlockCirculantLinear, nn.Linear), (BlockCirculantConv2d, nn.Conv2d)])
def test_signature_is_torch_plus_block_size(ours: type, theirs: type) -> None:
    mine = inspect.signature(ours.__init__).parameters
    torch_params = inspect.signature(theirs.__init__).parameters
    assert [p for p in mine if p != "block_size"] == list(torch_params)
    for name, p in torch_params.items():
        assert mine[name].default == p.default, name
    shape_args = 3 if theirs is nn.Linear else 4  # self + the shape arguments come first
    assert list(mine).index("block_size") == shape_args


@pytest.mark.parametrize(
    ("make_ours", "make_torch", "x_shape"),
    [
        (lambda: BlockCirculantLinear(5, 3, 1, dtype=D), lambda: nn.Linear(5, 3, dtype=D), (4, 5)),
        (lambda: BlockCirculantLinear(5, 3, 1, bias=False, dtype=D),
         lambda: nn.Linear(5, 3, bias=False, dtype=D), (2, 4, 5)),
        (lambda: BlockCirculantConv2d(3, 4, 3, 1, stride=2, padding=1, dtype=D),
         lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=D), (2, 3, 7, 6)),
        (lambda: BlockCirculantConv2d(2, 5, (3, 2), 1, dilation=2, bias=False, dtype=D),
         lambda: nn.Conv2d(2, 5, (3, 2), dilation=2, bias=False, dtype=D), (1, 2, 8, 8)),
    ],
)
def test_block_size_one_equals_torch_layer(
    make_ours: Callable[[], nn.Module], make_torch: Callable[[], nn.Module], x_shape: tuple[int, ...]
) -> None:
    torch.manual_seed(3)
    ours, theirs = make_ours(), make_torch()
    with torch.no_grad():
        ours.blocks.copy_(theirs.weight.unsqueeze(2))  # (out, in, 1, *k)
        if theirs.bias is not None:
            ours.bias.copy_(theirs.bias)
    assert torch.equal(ours.weight, theirs.weight)
    x = torch.randn(x_shape, dtype=D)
    assert torch.allclose(ours(x), theirs(x), rtol=0, atol=1e-12)
    # from_dense at block size 1 is the identity on the parameters
    twin = type(ours).from_dense(theirs, 1)  # type: ignore[attr-defined]
    assert torch.equal(twin.blocks, ours.blocks)


def test_drop_in_replacement_in_a_model() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10))
    model[0] = BlockCirculantLinear.from_dense(model[0], 8)
    x = torch.randn(5, 16)
    model(x).sum().backward()
    assert model[0].blocks.grad is not None and model[0].blocks.grad.shape == (4, 2, 8)
    assert {n for n, _ in model.named_parameters()} == {"0.blocks", "0.bias", "2.weight", "2.bias"}


# ----------------------------------------------------------------------------- projection


def test_projection_golden() -> None:
    # diagonal 0: (1 + 4)/2; diagonal 1: (5 + 2)/2
    blocks = project_block_circulant(torch.tensor([[1.0, 2.0], [5.0, 4.0]], dtype=D), 2)
    assert torch.equal(blocks, torch.tensor([[[2.5, 3.5]]], dtype=D))
    # cropped: one row of three columns, b = 2; the second block's diagonal 1 has no entry -> 0
    blocks = project_block_circulant(torch.tensor([[1.0, 2.0, 3.0]], dtype=D), 2)
    assert torch.equal(blocks, torch.tensor([[[1.0, 2.0], [3.0, 0.0]]], dtype=D))


@pytest.mark.parametrize(("shape", "b"), [((8, 12), 4), ((7, 10), 4), ((9, 5, 3, 2), 3), ((6, 6), 6)])
def test_projection_residual_is_orthogonal_to_the_subspace(shape: tuple[int, ...], b: int) -> None:
    g = torch.Generator().manual_seed(5)
    dense = torch.randn(shape, generator=g, dtype=D)
    rows, cols = shape[:2]
    blocks = project_block_circulant(dense, b)
    residual = dense - block_circulant_matrix(blocks, rows, cols)
    for _ in range(5):  # random directions inside the block-circulant subspace
        direction = block_circulant_matrix(torch.randn(blocks.shape, generator=g, dtype=D), rows, cols)
        assert abs(float((residual * direction).sum())) <= 1e-10
    # hence the nearest: any other block-circulant matrix is farther
    other = blocks + 0.01 * torch.randn(blocks.shape, generator=g, dtype=D)
    assert residual.norm() < (dense - block_circulant_matrix(other, rows, cols)).norm()


def test_from_dense_linear_and_conv() -> None:
    torch.manual_seed(6)
    lin = nn.Linear(10, 7, dtype=D)
    m = BlockCirculantLinear.from_dense(lin, 4)
    assert m.blocks.dtype == D and torch.equal(m.bias, lin.bias)
    assert torch.equal(m.weight.detach(), block_circulant_matrix(project_block_circulant(lin.weight.detach(), 4), 7, 10))

    conv = nn.Conv2d(6, 5, 3, stride=2, padding=1, dilation=1, dtype=D)
    c = BlockCirculantConv2d.from_dense(conv, 4)
    assert (c.stride, c.padding, c.dilation, c.kernel_size) == ((2, 2), (1, 1), (1, 1), (3, 3))
    x = torch.randn(2, 6, 9, 9, dtype=D)
    w = block_circulant_matrix(project_block_circulant(conv.weight.detach(), 4), 5, 6)
    assert (c(x) - F.conv2d(x, w, conv.bias, 2, 1)).abs().max() <= 1e-10
    with pytest.raises(ValueError, match="groups=2"):
        BlockCirculantConv2d.from_dense(nn.Conv2d(4, 4, 3, groups=2), 2)


# ----------------------------------------------------------------------------- convolution

CONVS = [
    dict(c_in=5, c_out=7, b=3, k=3, stride=1, padding=1, dilation=1),
    dict(c_in=8, c_out=4, b=4, k=(3, 2), stride=2, padding=0, dilation=2),
    dict(c_in=4, c_out=6, b=2, k=3, stride=1, padding="same", dilation=1),
    dict(c_in=3, c_out=3, b=8, k=1, stride=(1, 2), padding=(0, 1), dilation=1),
]


@pytest.mark.parametrize("cfg", CONVS)
def test_conv_forward_and_gradients_match_dense_float64(cfg: dict) -> None:
    torch.manual_seed(7)
    c = BlockCirculantConv2d(cfg["c_in"], cfg["c_out"], cfg["k"], cfg["b"], cfg["stride"], cfg["padding"],
                             cfg["dilation"], dtype=D)
    x = torch.randn(2, cfg["c_in"], 9, 8, dtype=D, requires_grad=True)
    y = c(x)
    grad = torch.randn(y.shape, dtype=D)
    y.backward(grad)

    blocks = c.blocks.detach().clone().requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    w = block_circulant_matrix(blocks, cfg["c_out"], cfg["c_in"])
    y_ref = F.conv2d(x_ref, w, c.bias, cfg["stride"], cfg["padding"], cfg["dilation"])
    y_ref.backward(grad)
    assert y.shape == y_ref.shape
    assert (y - y_ref).abs().max() <= 1e-10
    assert (x.grad - x_ref.grad).abs().max() <= 1e-10  # type: ignore[operator]
    assert (c.blocks.grad - blocks.grad).abs().max() <= 1e-10  # type: ignore[operator]
    # an unbatched (C, H, W) input works as in nn.Conv2d
    assert torch.allclose(c(x[0].detach()), y[0].detach(), rtol=0, atol=1e-12)


def test_conv_dense_view_golden() -> None:
    c = BlockCirculantConv2d(2, 2, (1, 2), 2, bias=False, dtype=D)
    _set_blocks(c, torch.tensor([[[[[1.0, 5.0]], [[2.0, 6.0]]]]], dtype=D))  # (1, 1, 2, 1, 2)
    # kernel column 0 is C([1, 2]), column 1 is C([5, 6])
    assert torch.equal(c.weight[:, :, 0, 0], torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=D))
    assert torch.equal(c.weight[:, :, 0, 1], torch.tensor([[5.0, 6.0], [6.0, 5.0]], dtype=D))


# ----------------------------------------------------------------------------- eval cache


def test_eval_caches_spectra_until_the_weights_change(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = circulant.linear_spectra

    def counting(blocks: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return real(blocks)

    monkeypatch.setattr(circulant, "linear_spectra", counting)
    torch.manual_seed(8)
    m = BlockCirculantLinear(8, 8, 4, dtype=D)
    x = torch.randn(3, 8, dtype=D)
    m(x), m(x)
    assert len(calls) == 2  # training: every forward
    m.eval()
    y1, y2 = m(x), m(x)
    assert len(calls) == 3 and torch.equal(y1, y2)  # eval: once
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    m(x).sum().backward()  # eval mode still trains the blocks: the spectra carry no graph
    assert m.blocks.grad is not None
    opt.step()  # in place: bumps the version counter
    y3 = m(x)
    assert len(calls) == 4
    assert (y3 - F.linear(x, m.weight, m.bias)).abs().max() <= 1e-12
    with torch.no_grad():
        m.blocks.data.mul_(2.0)  # invisible to the version counter ...
    m.eval()  # ... until the next train()/eval()
    assert (m(x) - F.linear(x, m.weight, m.bias)).abs().max() <= 1e-12
    assert len(calls) == 5


def test_conv_eval_cache_and_gradients() -> None:
    torch.manual_seed(9)
    c = BlockCirculantConv2d(4, 4, 3, 2, padding=1, dtype=D).eval()
    x = torch.randn(1, 4, 5, 5, dtype=D)
    with torch.no_grad():
        y1 = c(x)
        c.blocks.add_(0.5)  # in place: the cached kernel is stale
        y2 = c(x)
    assert (y2 - F.conv2d(x, c.weight, c.bias, padding=1)).abs().max() <= 1e-10
    assert not torch.allclose(y1, y2)
    c(x).sum().backward()  # eval mode with grad: computed fresh, so the blocks get gradients
    assert c.blocks.grad is not None and c.blocks.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BlockCirculantLinear(8, 8, 0), r"block_size must be an int >= 1, got 0"),
        (lambda: BlockCirculantLinear(8, 8, 2.0), r"block_size must be an int >= 1, got 2\.0"),
        (lambda: BlockCirculantLinear(8, 8, True), r"block_size must be an int >= 1, got True"),
        (lambda: BlockCirculantLinear(0, 8, 2), r"in_features must be an int >= 1, got 0"),
        (lambda: BlockCirculantLinear(8, -1, 2), r"out_features must be an int >= 1, got -1"),
        (lambda: BlockCirculantConv2d(4, 4, 3, 0), r"block_size must be an int >= 1"),
        (lambda: BlockCirculantConv2d(4, 4, (3,), 2), r"kernel_size must be an int >= 1 or a pair"),
        (lambda: BlockCirculantConv2d(4, 4, 3, 2, stride=0), r"stride must be an int >= 1"),
        (lambda: BlockCirculantConv2d(4, 4, 3, 2, padding=-1), r"padding must be an int >= 0"),
        (lambda: BlockCirculantConv2d(4, 4, 3, 2, groups=2), r"groups must be 1 .* got 2"),
        (lambda: BlockCirculantConv2d(4, 4, 3, 2, padding_mode="reflect"), r"padding_mode must be 'zeros'"),
        (lambda: BlockCirculantConv2d(4, 4, 3, 2, stride=2, padding="same"), r"padding='same' needs stride 1"),
    ],
)
def test_bad_arguments_name_the_argument(make: Callable[[], nn.Module], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_conv_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match=r"expected input \(N, 4, H, W\)"):
        BlockCirculantConv2d(4, 4, 3, 2)(torch.zeros(1, 3, 5, 5))


# ----------------------------------------------------------------------------- cost and registry


def test_inspect_counts_fft_cost() -> None:
    model = nn.Sequential(BlockCirculantLinear(8, 6, 4), BlockCirculantLinear(6, 8, 1, bias=False))
    insp = inspect_model(model, (8,))
    first, second = insp.layers
    # q_in = q_out = 2, F = 3: 4·2·2·3 real MACs; FFTs: (2 + 2)·round(2.5·4·2) = 80 flops
    assert first.cost.macs == 48 and first.cost.other == {"fft_flops": 80, "dense_macs": 48}
    # block size 1: a length-1 FFT costs nothing; 4 real MACs per (complex) product
    assert second.cost.macs == 4 * 48 and second.cost.other == {"fft_flops": 0, "dense_macs": 48}
    assert [p.numel for p in insp.params] == [2 * 2 * 4, 6, 8 * 6]


def test_inspect_conv_cost() -> None:
    model = nn.Sequential(BlockCirculantConv2d(8, 16, 3, 8, padding=1, bias=False))
    (row,) = inspect_model(model, (8, 4, 4)).layers
    # q_in = 1, q_out = 2, F = 5, 16 output pixels; FFT of length 8 = 60 flops
    assert row.cost.macs == 16 * 4 * 2 * 1 * 5 * 9
    assert row.cost.other == {"fft_flops": (1 * 16 + 2 * 16) * 60, "dense_macs": 16 * 16 * 8 * 9}


def _recipe(*layers: dict) -> list:
    return list(validate_recipe({"name": "t", "model": {"layers": list(layers)}}, "t.yaml").model.layers)


def test_registry_builds_both_layers() -> None:
    specs = _recipe(
        {"type": "block_circulant_conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "block_size": 4},
        {"type": "flatten"},
        {"type": "block_circulant_linear", "out_features": 10, "block_size": 16, "bias": False},
    )
    model = build_model(specs, (3, 4, 4), num_classes=10)
    assert isinstance(model.conv0, BlockCirculantConv2d) and model.conv0.blocks.shape == (2, 1, 4, 3, 3)
    assert isinstance(model.fc0, BlockCirculantLinear) and model.fc0.bias is None
    assert model(torch.zeros(2, 3, 4, 4)).shape == (2, 10)
    with pytest.raises(RecipeError, match=r"model\.layers\.0 \(conv0, block_circulant_conv2d\).*groups must be 1"):
        build_model(_recipe({"type": "block_circulant_conv2d", "out_channels": 4, "groups": 2,
                             "block_size": 2}), (4, 6, 6))


@pytest.mark.parametrize(
    ("make", "x_shape"),
    [(lambda: BlockCirculantLinear(8, 6, 4), (3, 8)), (lambda: BlockCirculantConv2d(4, 6, 3, 4), (2, 4, 5, 5))],
)
def test_inference_mode_cache_then_autograd_and_empty_batch(make: Callable[[], nn.Module], x_shape: tuple[int, ...]) -> None:
    torch.manual_seed(10)
    m = make().eval()
    x = torch.randn(x_shape)
    with torch.inference_mode():
        expected = m(x)
    y = m(x)  # a spectrum cached under inference mode must not reach autograd
    y.sum().backward()
    assert torch.allclose(y, expected) and m.blocks.grad is not None
    empty = torch.zeros(0, *x_shape[1:], requires_grad=True)  # as nn.Linear / nn.Conv2d
    m.train()
    m(empty).sum().backward()
    assert m(empty).shape[0] == 0 and empty.grad is not None

"""Cost inspection: every expected number below is worked out by hand in the comments."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode

from neurocore.analysis import (
    LayerCost,
    format_bits,
    format_count,
    format_text,
    inspect_model,
    percent_bar,
    register_cost,
    render_tables,
)
from neurocore.errors import NeurocoreError


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),  # 0
        nn.BatchNorm2d(4),  # 1
        nn.ReLU(),  # 2
        nn.MaxPool2d(2),  # 3
        nn.Conv2d(4, 8, 3, groups=2),  # 4
        nn.Flatten(),  # 5
        nn.Linear(8 * 2 * 2, 10),  # 6
    )


# ----------------------------------------------------------------------------- the small net


def test_small_net_params_by_hand() -> None:
    insp = inspect_model(small_net(), (1, 8, 8))
    # conv0 weight 4*1*3*3 = 36, bias 4; bn weight 4, bias 4 (running stats are buffers);
    # grouped conv weight 8*(4/2)*3*3 = 144, bias 8; linear weight 10*32 = 320, bias 10.
    expected = [
        ("0.weight", (4, 1, 3, 3), 36),
        ("0.bias", (4,), 4),
        ("1.weight", (4,), 4),
        ("1.bias", (4,), 4),
        ("4.weight", (8, 2, 3, 3), 144),
        ("4.bias", (8,), 8),
        ("6.weight", (10, 32), 320),
        ("6.bias", (10,), 10),
    ]
    assert [(p.name, p.shape, p.numel) for p in insp.params] == expected
    assert all(p.bits == 32 and p.size_bits == 32 * p.numel for p in insp.params)
    # 36 + 4 + 4 + 4 + 144 + 8 + 320 + 10 = 530 values, * 32 bits = 16960 bits = 2120 bytes.
    assert insp.total_params == 530
    assert insp.total_param_bits == 16960
    # All float32, so the share in bits is the share in values: 36/530 = 6.79 %, 4/530 = 0.75 %,
    # 144/530 = 27.17 %, 8/530 = 1.51 %, 320/530 = 60.38 %, 10/530 = 1.89 %.
    assert [f"{pct:.2f}" for pct in insp.param_percents()] == [
        "6.79", "0.75", "0.75", "0.75", "27.17", "1.51", "60.38", "1.89",
    ]  # fmt: skip


def test_small_net_layers_by_hand() -> None:
    insp = inspect_model(small_net(), (1, 8, 8))
    rows = [
        (r.name, r.kind, r.input_shape, r.output_shape, r.output_size, r.cost.macs)
        for r in insp.layers
    ]
    assert rows == [
        # conv0 (padding 1 keeps 8x8): 4*8*8 = 256 outputs * (1/1)*3*3 = 9 -> 2304 MACs
        ("0", "Conv2d", (1, 8, 8), (4, 8, 8), 256, 2304),
        ("1", "BatchNorm2d", (4, 8, 8), (4, 8, 8), 256, 0),
        ("2", "ReLU", (4, 8, 8), (4, 8, 8), 256, 0),
        # 2x2 max pool: 8x8 -> 4x4, 4*4*4 = 64 outputs
        ("3", "MaxPool2d", (4, 8, 8), (4, 4, 4), 64, 0),
        # grouped conv, no padding: 4x4 -> 2x2, 8*2*2 = 32 outputs * (4/2)*3*3 = 18 -> 576 MACs
        ("4", "Conv2d", (4, 4, 4), (8, 2, 2), 32, 576),
        ("5", "Flatten", (8, 2, 2), (32,), 32, 0),
        # linear: 1 row * 32 in * 10 out = 320 MACs (the bias add is no MAC)
        ("6", "Linear", (32,), (10,), 10, 320),
    ]
    assert all(r.call == 1 for r in insp.layers)
    # max pool: 64 outputs * (2*2 - 1) = 192 comparisons; nothing else has other ops
    assert insp.layers[3].cost.other == {"comparisons": 192}
    assert [r.cost.other for i, r in enumerate(insp.layers) if i != 3] == [{}] * 6
    # 2304 + 576 + 320 = 3200 MACs: 2304/3200 = 72 %, 576/3200 = 18 %, 320/3200 = 10 %
    assert insp.total_macs == 3200
    assert insp.total_other == {"comparisons": 192}
    assert insp.layer_percents() == [72.0, 0.0, 0.0, 0.0, 18.0, 0.0, 10.0]


def test_format_text_has_headers_totals_and_sizes() -> None:
    text = format_text(inspect_model(small_net(), (1, 8, 8)))
    for header in ("param_name", "shape", "#values", "size", "perc", "layer_name", "ispace",
                   "ospace", "osize", "#macs", "readable"):  # fmt: skip
        assert header in text
    assert "\x1b" not in text  # no colour codes in report.md
    assert max(len(line) for line in text.splitlines()) <= 120
    lines = text.splitlines()
    # parameter total: 530 values, 16960 bits = 2120 B = 2.07 KiB
    assert any(line.split()[:2] == ["total", "530"] and "2.1 KiB" in line for line in lines)
    # layer total: 3200 MACs = "3.2 K", with the 192 comparisons beside it
    total = next(line for line in lines if line.split()[:2] == ["total", "3200"])
    assert "3.2 K" in total and "100.00%" in total and "comparisons=192" in total
    # the linear weight: 320 * 4 B = 1280 B = 1.25 KiB, printed with one decimal
    assert "1.2 KiB" in text
    assert "72.00%" in text and "60.38%" in text


def test_render_tables_gives_two_tables_with_total_rows() -> None:
    params, layers = render_tables(inspect_model(small_net(), (1, 8, 8)))
    assert params.row_count == 8 + 1  # 8 parameters + total
    assert layers.row_count == 7 + 1  # 7 layers + total


def test_to_dict_is_json_ready() -> None:
    d = inspect_model(small_net(), (1, 8, 8)).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["input_shape"] == [1, 8, 8]
    assert d["params"][0] == {
        "name": "0.weight", "shape": [4, 1, 3, 3], "numel": 36, "bits": 32, "size_bits": 1152,
    }  # fmt: skip
    assert d["layers"][3] == {
        "name": "3", "kind": "MaxPool2d", "call": 1, "input_shape": [4, 8, 8],
        "output_shape": [4, 4, 4], "output_size": 64, "macs": 0, "other": {"comparisons": 192},
    }  # fmt: skip
    assert d["totals"] == {
        "params": 530, "param_bits": 16960, "macs": 3200, "other": {"comparisons": 192},
    }  # fmt: skip


def test_slides_alexnet_like_numbers() -> None:
    # The net of the approximation slides on (3, 40, 40); the slides count the fc bias as ops
    # (fc0 819712 = 819200 + 512), we do not.
    net = nn.Sequential(
        nn.Conv2d(3, 24, 5),  # (24, 36, 36): 31104 * 3*25 = 2332800
        nn.MaxPool2d(2),  # (24, 18, 18)
        nn.Conv2d(24, 32, 3),  # (32, 16, 16): 8192 * 24*9 = 1769472
        nn.Conv2d(32, 32, 3),  # (32, 14, 14): 6272 * 32*9 = 1806336
        nn.MaxPool2d(2),  # (32, 7, 7)
        nn.Conv2d(32, 64, 3),  # (64, 5, 5): 1600 * 32*9 = 460800
        nn.Flatten(),
        nn.Linear(1600, 512),  # 819200
        nn.Linear(512, 10),  # 5120
    )
    insp = inspect_model(net, (3, 40, 40))
    assert [r.cost.macs for r in insp.layers] == [
        2332800, 0, 1769472, 1806336, 0, 460800, 0, 819200, 5120,
    ]  # fmt: skip
    assert [r.output_size for r in insp.layers][:6] == [31104, 7776, 8192, 6272, 1568, 1600]
    # slide: 861354 floats = 3.3 MiB; conv0_W 1800 floats = 7.0 KiB; fc0_W = 3.1 MiB at 95.11 %
    assert insp.total_params == 861354
    assert format_bits(insp.total_param_bits) == "3.3 MiB"
    assert format_bits(insp.params[0].size_bits) == "7.0 KiB"
    fc0 = [p.name for p in insp.params].index("7.weight")
    assert format_bits(insp.params[fc0].size_bits) == "3.1 MiB"
    assert f"{insp.param_percents()[fc0]:.2f}" == "95.11"


# ----------------------------------------------------------------------------- cost protocol


class TernaryBlock(nn.Module):
    """Declares its own cost and 2-bit weights; its child must get no row of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(4, 8))
        self.inner = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 8) -> (B, 4)
        return self.inner(x) + x @ self.weight.t()

    def neurocore_param_bits(self) -> dict[str, int]:
        return {"weight": 2}

    def neurocore_cost(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> LayerCost:
        assert inputs[0].shape == (1, 8) and output.shape == (1, 4)  # batch 1
        return LayerCost(macs=7, other={"fft_flops": 100})


def test_own_cost_and_param_bits() -> None:
    insp = inspect_model(nn.Sequential(TernaryBlock(), nn.Linear(4, 2)), (8,))
    # 0.weight: 32 values * 2 bits = 64; 0.inner: 32 + 4 values * 32 bits (not declared, and
    # declarations are not recursive) = 1024 + 128; 1: 8 + 2 values * 32 = 256 + 64.
    assert [(p.name, p.bits, p.size_bits) for p in insp.params] == [
        ("0.weight", 2, 64),
        ("0.inner.weight", 32, 1024),
        ("0.inner.bias", 32, 128),
        ("1.weight", 32, 256),
        ("1.bias", 32, 64),
    ]
    assert insp.total_params == 32 + 32 + 4 + 8 + 2 == 78
    assert insp.total_param_bits == 1536  # = 192 bytes
    assert format_bits(insp.params[0].size_bits) == "8.0 B"
    assert insp.params[0].size_bytes == 8.0
    # percent is the share in bits: 64/1536 = 4.17 %, not the share in values 32/78 = 41 %
    assert f"{insp.param_percents()[0]:.2f}" == "4.17"
    # the block is one layer with its declared cost; "0.inner" is not descended into
    assert [(r.name, r.kind, r.cost) for r in insp.layers] == [
        ("0", "TernaryBlock", LayerCost(macs=7, other={"fft_flops": 100})),
        ("1", "Linear", LayerCost(macs=4 * 2)),
    ]
    assert insp.total_macs == 15
    assert insp.total_other == {"fft_flops": 100}
    assert "192.0 B" in format_text(insp) and "fft_flops=100" in format_text(insp)


class Square(nn.Module):
    """A module we pretend not to own; it has a child, which must get no row."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        return x * x


@register_cost(Square)
def _square_cost(m: Square, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> LayerCost:
    return LayerCost(macs=0, other={"mults": output.numel()})


def test_registered_cost() -> None:
    insp = inspect_model(nn.Sequential(nn.Linear(3, 5), Square()), (3,))
    # linear 3*5 = 15 MACs; square: 5 multiplications for one example
    assert [(r.name, r.cost) for r in insp.layers] == [
        ("0", LayerCost(macs=15)),
        ("1", LayerCost(macs=0, other={"mults": 5})),
    ]


class MyLinear(nn.Linear):
    pass


def test_registry_lookup_follows_the_mro() -> None:
    insp = inspect_model(MyLinear(6, 3), (2, 6))
    # the model itself is the layer (name ""); 2 leading rows * 6 * 3 = 36 MACs
    assert [(r.name, r.kind, r.input_shape, r.output_shape, r.cost.macs) for r in insp.layers] == [
        ("", "MyLinear", (2, 6), (2, 3), 36)
    ]


class Symmetric(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w.triu() + w.triu(1).t()


def test_parametrized_layer_is_still_a_linear() -> None:
    lin = nn.Linear(4, 4)
    parametrize.register_parametrization(lin, "weight", Symmetric())
    insp = inspect_model(nn.Sequential(lin), (4,))
    assert [p.name for p in insp.params] == ["0.bias", "0.parametrizations.weight.original"]
    assert [(r.name, r.cost.macs) for r in insp.layers] == [("0", 16)]  # 4 * 4


class PlainWeight(nn.Module):
    """No registered cost and no children except its parametrizations: still a leaf layer."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


def test_parametrization_modules_get_no_rows() -> None:
    plain = PlainWeight()
    parametrize.register_parametrization(plain, "weight", Symmetric())
    insp = inspect_model(nn.Sequential(plain, nn.ReLU()), (3,))
    assert [(r.name, r.kind) for r in insp.layers] == [
        ("0", "ParametrizedPlainWeight"),
        ("1", "ReLU"),
    ]


class TernaryLinear(nn.Linear):
    def neurocore_param_bits(self) -> dict[str, int]:
        return {"weight": 2}


def test_param_bits_of_a_parametrized_weight() -> None:
    lin = TernaryLinear(4, 4)
    parametrize.register_parametrization(lin, "weight", Symmetric())
    insp = inspect_model(lin, (4,))
    bits = {p.name: p.bits for p in insp.params}
    assert bits == {"bias": 32, "parametrizations.weight.original": 2}


class TwoCalls(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.act(self.lin(x)))


def test_module_called_twice_gets_two_rows() -> None:
    insp = inspect_model(TwoCalls(), (4,))
    assert [(r.name, r.call, r.cost.macs) for r in insp.layers] == [
        ("lin", 1, 16),
        ("act", 1, 0),
        ("lin", 2, 16),
    ]
    assert insp.total_macs == 32
    assert insp.total_params == 16 + 4
    assert "lin (call 2)" in format_text(insp)


def test_shared_parameter_counted_once() -> None:
    a, b = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
    b.weight = a.weight
    insp = inspect_model(nn.Sequential(a, b), (4,))
    assert [p.name for p in insp.params] == ["0.weight"]
    assert insp.total_params == 16
    assert insp.total_macs == 16 + 16  # both layers still compute


class RecordsMode(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return x


def test_training_flags_restored_and_forward_in_eval() -> None:
    probe, bn = RecordsMode(), nn.BatchNorm1d(3)
    model = nn.Sequential(probe, bn)
    model.train()
    bn.eval()  # a frozen BatchNorm must stay frozen
    assert bn.running_mean is not None
    running_mean = bn.running_mean.clone()
    inspect_model(model, (3,))
    assert probe.seen == [False]  # one forward pass, in eval mode
    assert model.training and probe.training and not bn.training
    assert torch.equal(bn.running_mean, running_mean)


def test_tuple_output_uses_first_tensor() -> None:
    class Spiking(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return (x > 0).float(), x.sum(dim=-1)  # (spikes, state)

    insp = inspect_model(nn.Sequential(Spiking()), (5,))
    assert insp.layers[0].output_shape == (5,)


# ----------------------------------------------------------------------------- errors


def test_wrong_input_shape_names_the_shape() -> None:
    with pytest.raises(NeurocoreError, match=r"\(1, 7\)"):
        inspect_model(nn.Linear(4, 2), (7,))


def test_bad_input_shape() -> None:
    with pytest.raises(NeurocoreError, match="input_shape"):
        inspect_model(nn.Linear(4, 2), (0,))


def test_param_bits_for_unknown_name_names_layer_and_key() -> None:
    class Bad(nn.Linear):
        def neurocore_param_bits(self) -> dict[str, int]:
            return {"wieght": 2}

    with pytest.raises(NeurocoreError, match=r"'0'.*'wieght'"):
        inspect_model(nn.Sequential(Bad(2, 2)), (2,))


def test_layer_cost_must_be_exact_counts() -> None:
    with pytest.raises(TypeError, match="macs"):
        LayerCost(macs=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fft_flops"):
        LayerCost(macs=1, other={"fft_flops": -1})


def test_cost_method_must_return_layer_cost() -> None:
    class Bad(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

        def neurocore_cost(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
            return 3

    with pytest.raises(TypeError, match="LayerCost"):
        inspect_model(nn.Sequential(Bad()), (2,))


# ----------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("bits", "text"),
    [
        (0, "0.0 B"),
        (18, "2.2 B"),  # 18 bits = 2.25 bytes (nine 2-bit values)
        (96 * 8, "96.0 B"),  # slides: conv0_b
        (1800 * 32, "7.0 KiB"),  # slides: conv0_W
        (819200 * 32, "3.1 MiB"),  # slides: fc0_W
        (3 * 1024**3 * 8, "3.0 GiB"),
    ],
)
def test_format_bits(bits: int, text: str) -> None:
    assert format_bits(bits) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0"), (999, "999"), (1000, "1.0 K"), (2332800, "2.3 M"), (7194250, "7.2 M"),
     (12_345_678_901, "12.3 G")],
)  # fmt: skip
def test_format_count(n: int, text: str) -> None:
    assert format_count(n) == text


@pytest.mark.parametrize(
    ("pct", "bar"),
    [(0.0, ""), (4.99, ""), (5.0, "#"), (19.9, "#"), (20.0, "#"), (40.0, "##"), (95.11, "####"),
     (100.0, "#####")],
)  # fmt: skip
def test_percent_bar(pct: float, bar: str) -> None:
    assert percent_bar(pct) == bar


# ---------------------------------------------------------------------- independent reference


@settings(max_examples=30, deadline=None)
@given(
    cin_per_group=st.integers(1, 3),
    cout_per_group=st.integers(1, 3),
    groups=st.integers(1, 2),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.integers(0, 1),
    size=st.integers(3, 7),
    transpose=st.booleans(),
)
def test_conv_macs_match_torch_flop_counter(
    cin_per_group: int,
    cout_per_group: int,
    groups: int,
    k: int,
    stride: int,
    padding: int,
    size: int,
    transpose: bool,
) -> None:
    cin, cout = cin_per_group * groups, cout_per_group * groups
    conv_t = nn.ConvTranspose2d if transpose else nn.Conv2d
    conv = conv_t(cin, cout, k, stride=stride, padding=padding, groups=groups, bias=False)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        conv(torch.zeros(1, cin, size, size))
    # torch counts 2 FLOPs (multiply + add) per MAC
    assert 2 * inspect_model(conv, (cin, size, size)).total_macs == counter.get_total_flops()

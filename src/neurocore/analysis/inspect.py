"""Where a network spends its storage and its arithmetic: the two tables of the approximation
slides (Zhou 2016).

Per parameter: name, shape, number of values, stored size at its real bit width, share of the total.
Per layer: input and output shape (without the batch dimension), output size, multiply-accumulates
(MACs), share of the total MACs. Both tables end with a total line.

Counting rules, stated once:

- A layer's cost is a :class:`LayerCost` for ONE example: ``macs`` multiply-accumulates plus
  ``other`` op kinds that are not MACs, keyed by name (``"fft_flops"``, ``"synaptic_ops"``,
  ``"comparisons"``). The cost of a module is looked up in this order: its own
  ``neurocore_cost(inputs, output)`` method, then a function registered with :func:`register_cost`
  for its exact type, then for the nearest type in its MRO, else 0 MACs. Built in:

  - ``nn.Linear``: ``in_features * out_features`` MACs per output row, times the leading dimensions;
    the bias add is not a MAC.
  - ``nn.Conv1d/2d/3d``: ``output elements * (in_channels / groups) * kernel elements``.
  - ``nn.ConvTranspose1d/2d/3d``: ``input elements * (out_channels / groups) * kernel elements``.
  - ``nn.MaxPool1d/2d/3d``: 0 MACs and
    ``other={"comparisons": output elements * (kernel elements - 1)}``.
  - everything else (BatchNorm, activations, average pooling, flatten, dropout): 0 MACs.

- The layers are found by walking ``model.named_modules()``: a module is a layer when it has a
  ``neurocore_cost`` method, has a registered cost, or has no children (``parametrize``'s
  ``parametrizations`` container does not count as a child); the walk does not descend into a
  layer. Arithmetic a container does itself (a residual ``x + f(x)``) is not counted.
- The rows follow the order of the forward calls of one batch-1 pass of ``torch.zeros(1, *shape)``
  under ``torch.no_grad()`` in eval mode (the training flag of every module is restored afterwards).
  A layer called twice gets two rows with the same name and ``call`` 1 and 2. A layer never called
  gets no row. A layer's input is its first tensor argument; its output is its return value, or the
  first tensor of a returned tuple (``(spikes, state)``).
- The size of a parameter is ``bits * numel`` where ``bits`` comes from the owning module's
  ``neurocore_param_bits()`` (its own, non-recursive parameter names; a parametrized tensor
  ``parametrizations.weight.original`` counts as ``weight`` of the parametrized module) or else from
  the dtype (``torch.finfo/iinfo(dtype).bits``, bool 1). Shared parameters are counted once, under
  their first name. Buffers (BatchNorm running statistics) are not parameters and are not counted.
- A parameter's percent is its share of the total size in BITS, not of the number of values: with
  mixed bit widths (2-bit weights beside 32-bit biases) that is the honest share of storage.
  A layer's percent is its share of the total MACs; ``other`` op kinds are totalled, not mixed in.
- Rendering: sizes in B/KiB/MiB/GiB (binary, one decimal, as the slides); MAC counts below 1000 as
  integers, above with decimal K/M/G and one decimal; percents with two decimals; the bar has one
  ``#`` per full 20 %, and a single ``#`` for a share from 5 % up to 20 %.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from torch import nn

from neurocore.errors import NeurocoreError

__all__ = [
    "CostFn",
    "HasCost",
    "HasParamBits",
    "LayerCost",
    "LayerRow",
    "ModelInspection",
    "ParamRow",
    "format_bits",
    "format_count",
    "format_text",
    "inspect_model",
    "percent_bar",
    "register_cost",
    "render_tables",
]


@dataclass(frozen=True)
class LayerCost:
    """The arithmetic of one call of a layer on ONE example."""

    macs: int
    other: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Costs are exact counts: a float or a tensor here is a bug in the cost function.
        if not _is_count(self.macs):
            raise TypeError(f"LayerCost.macs must be an int >= 0, got {self.macs!r}")
        for key, value in self.other.items():
            if not isinstance(key, str) or not _is_count(value):
                raise TypeError(f"LayerCost.other[{key!r}] must be an int >= 0, got {value!r}")


@runtime_checkable
class HasCost(Protocol):
    """A module that declares its own cost (FFT-based, spiking, quantized layers)."""

    def neurocore_cost(
        self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> LayerCost: ...


@runtime_checkable
class HasParamBits(Protocol):
    """A module whose parameters are stored at fewer bits than their dtype (a trinary weight: 2)."""

    def neurocore_param_bits(self) -> dict[str, int]: ...


CostFn = Callable[[Any, tuple[torch.Tensor, ...], torch.Tensor], LayerCost]
_M = TypeVar("_M", bound=nn.Module)

_COSTS: dict[type[nn.Module], CostFn] = {}


def register_cost(module_type: type[_M]) -> Callable[[CostFn], CostFn]:
    """Decorator: ``fn(module, inputs, output) -> LayerCost`` is the cost of ``module_type``.

    For modules we do not own; a module we write defines ``neurocore_cost`` instead. A later
    registration for the same type replaces the earlier one.
    """
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"register_cost needs an nn.Module subclass, got {module_type!r}")

    def decorate(fn: CostFn) -> CostFn:
        _COSTS[module_type] = fn
        return fn

    return decorate


# ----------------------------------------------------------------------------- built-in costs


@register_cost(nn.Linear)
def _linear_cost(m: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> LayerCost:
    rows = output.numel() // m.out_features  # product of the leading dims, batch 1 included
    return LayerCost(macs=rows * m.in_features * m.out_features)


@register_cost(nn.Conv1d)
@register_cost(nn.Conv2d)
@register_cost(nn.Conv3d)
def _conv_cost(m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> LayerCost:
    assert isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)
    per_output = (m.in_channels // m.groups) * math.prod(m.kernel_size)
    return LayerCost(macs=output.numel() * per_output)


@register_cost(nn.ConvTranspose1d)
@register_cost(nn.ConvTranspose2d)
@register_cost(nn.ConvTranspose3d)
def _conv_transpose_cost(
    m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
) -> LayerCost:
    # Each input element is scattered into (out_channels / groups) * kernel outputs.
    assert isinstance(m, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d)
    per_input = (m.out_channels // m.groups) * math.prod(m.kernel_size)
    return LayerCost(macs=inputs[0].numel() * per_input)


@register_cost(nn.MaxPool1d)
@register_cost(nn.MaxPool2d)
@register_cost(nn.MaxPool3d)
def _maxpool_cost(
    m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
) -> LayerCost:
    # A window of k values needs k - 1 comparisons (padding counts as values, as in a naive loop).
    assert isinstance(m, nn.MaxPool1d | nn.MaxPool2d | nn.MaxPool3d)
    k = m.kernel_size
    dims = 1 if isinstance(m, nn.MaxPool1d) else 2 if isinstance(m, nn.MaxPool2d) else 3
    window = math.prod(k) if isinstance(k, tuple) else k**dims
    return LayerCost(macs=0, other={"comparisons": output.numel() * (window - 1)})


# ----------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class ParamRow:
    name: str
    shape: tuple[int, ...]
    numel: int
    bits: int  # stored bits per value
    size_bits: int  # bits * numel

    @property
    def size_bytes(self) -> float:
        return self.size_bits / 8


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str  # the module's class name
    call: int  # 1 for the first call of this module in the forward pass, 2 for the second, ...
    input_shape: tuple[int, ...]  # without the batch dimension
    output_shape: tuple[int, ...]  # without the batch dimension
    output_size: int  # number of output values for one example
    cost: LayerCost


@dataclass(frozen=True)
class ModelInspection:
    input_shape: tuple[int, ...]
    params: list[ParamRow]
    layers: list[LayerRow]

    @property
    def total_params(self) -> int:
        return sum(p.numel for p in self.params)

    @property
    def total_param_bits(self) -> int:
        return sum(p.size_bits for p in self.params)

    @property
    def total_macs(self) -> int:
        return sum(row.cost.macs for row in self.layers)

    @property
    def total_other(self) -> dict[str, int]:
        totals: dict[str, int] = {}  # keys in order of first appearance
        for row in self.layers:
            for key, value in row.cost.other.items():
                totals[key] = totals.get(key, 0) + value
        return totals

    def param_percents(self) -> list[float]:
        """Share of each parameter in the total size in bits, in percent."""
        return [_percent(p.size_bits, self.total_param_bits) for p in self.params]

    def layer_percents(self) -> list[float]:
        """Share of each layer row in the total MACs, in percent."""
        return [_percent(row.cost.macs, self.total_macs) for row in self.layers]

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, dicts, ints and strings: ready for ``json.dumps``."""
        return {
            "input_shape": list(self.input_shape),
            "params": [
                {
                    "name": p.name,
                    "shape": list(p.shape),
                    "numel": p.numel,
                    "bits": p.bits,
                    "size_bits": p.size_bits,
                }
                for p in self.params
            ],
            "layers": [
                {
                    "name": row.name,
                    "kind": row.kind,
                    "call": row.call,
                    "input_shape": list(row.input_shape),
                    "output_shape": list(row.output_shape),
                    "output_size": row.output_size,
                    "macs": row.cost.macs,
                    "other": dict(row.cost.other),
                }
                for row in self.layers
            ],
            "totals": {
                "params": self.total_params,
                "param_bits": self.total_param_bits,
                "macs": self.total_macs,
                "other": self.total_other,
            },
        }


# ----------------------------------------------------------------------------- inspection


def inspect_model(model: nn.Module, input_shape: tuple[int, ...]) -> ModelInspection:
    """Parameter and layer tables of ``model`` for one example of ``input_shape`` (no batch dim)."""
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape):
        raise NeurocoreError(
            f"input_shape must be positive ints without the batch dim, got {input_shape!r}"
        )
    input_shape = tuple(input_shape)
    params = _param_rows(model)
    layers = _find_layers(model)

    # One forward pass of batch 1; the hooks only record, costs are computed afterwards.
    calls: list[tuple[str, nn.Module, tuple[Any, ...], Any]] = []

    def make_hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            calls.append((name, module, args, output))

        return hook

    first = next(iter(model.parameters()), None)
    floating = next((p for p in model.parameters() if p.is_floating_point()), None)
    x = torch.zeros(
        1,
        *input_shape,
        device=first.device if first is not None else None,
        dtype=floating.dtype if floating is not None else None,
    )  # (1, *input_shape)
    modes = [(m, m.training) for m in model.modules()]
    handles = [module.register_forward_hook(make_hook(name)) for name, module in layers]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    except RuntimeError as e:
        raise NeurocoreError(
            f"{type(model).__name__} does not run on an input of shape {(1, *input_shape)}: {e}"
        ) from e
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes:
            m.training = training

    rows: list[LayerRow] = []
    seen: dict[int, int] = {}  # id(module) -> calls so far
    for name, module, args, output in calls:
        inputs = tuple(a for a in args if isinstance(a, torch.Tensor))
        out = _first_tensor(output)
        if out is None:
            raise NeurocoreError(f"layer {name!r} ({type(module).__name__}) returned no tensor")
        seen[id(module)] = seen.get(id(module), 0) + 1
        rows.append(
            LayerRow(
                name=name,
                kind=type(module).__name__,
                call=seen[id(module)],
                input_shape=tuple(inputs[0].shape[1:]) if inputs else (),
                output_shape=tuple(out.shape[1:]),
                output_size=out[0].numel() if out.dim() > 0 else 1,
                cost=_cost_of(name, module, inputs, out),
            )
        )
    return ModelInspection(input_shape=input_shape, params=params, layers=rows)


def _find_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers in ``named_modules()`` order, not descending into a layer."""
    layers: list[tuple[str, nn.Module]] = []
    inside: str | None = None  # name of the last layer; pre-order puts its descendants right after
    for name, module in model.named_modules():
        if inside is not None and (inside == "" or name.startswith(inside + ".")):
            continue
        if "parametrizations" in name.split("."):
            continue  # torch.nn.utils.parametrize internals belong to the parametrized module
        children = [n for n, _ in module.named_children() if n != "parametrizations"]
        if _own_cost(module) is not None or _registered_cost(module) is not None or not children:
            layers.append((name, module))
            inside = name
    return layers


def _own_cost(module: nn.Module) -> Callable[..., Any] | None:
    fn = getattr(module, "neurocore_cost", None)
    return fn if callable(fn) else None


def _registered_cost(module: nn.Module) -> CostFn | None:
    for t in type(module).__mro__:  # the exact type comes first
        if t in _COSTS:
            return _COSTS[t]
    return None


def _cost_of(
    name: str, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
) -> LayerCost:
    own = _own_cost(module)
    registered = _registered_cost(module)
    if own is not None:
        cost = own(inputs, output)
    elif registered is not None:
        cost = registered(module, inputs, output)
    else:
        cost = LayerCost(macs=0)
    if not isinstance(cost, LayerCost):
        raise TypeError(
            f"cost of layer {name!r} ({type(module).__name__}) is {cost!r}, not a LayerCost"
        )
    return cost


def _param_rows(model: nn.Module) -> list[ParamRow]:
    rows: list[ParamRow] = []
    declared: dict[str, dict[str, int]] = {}  # module path -> its neurocore_param_bits()
    for module_path, module in model.named_modules():
        if callable(getattr(module, "neurocore_param_bits", None)):
            declared[module_path] = _checked_bits(module_path, module)
    for name, p in model.named_parameters():  # shared parameters come once, under the first name
        owner, local = _owner_and_local(name)
        bits = declared.get(owner, {}).get(local, _dtype_bits(p.dtype))
        rows.append(
            ParamRow(
                name=name,
                shape=tuple(p.shape),
                numel=p.numel(),
                bits=bits,
                size_bits=bits * p.numel(),
            )
        )
    return rows


def _checked_bits(path: str, module: nn.Module) -> dict[str, int]:
    bits = getattr(module, "neurocore_param_bits")()  # noqa: B009 (nn.Module types attributes as Tensor)
    own = {n for n, _ in module.named_parameters(recurse=False)}
    own |= set(
        getattr(module, "parametrizations", {})
    )  # parametrized tensors count as the module's
    for key, value in bits.items():
        where = f"layer {path!r} ({type(module).__name__})"
        if key not in own:
            raise NeurocoreError(
                f"{where} declares bits for {key!r}, not one of its parameters {sorted(own)}"
            )
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise NeurocoreError(f"{where} declares {value!r} bits for {key!r}; need an int > 0")
    return bits


def _owner_and_local(name: str) -> tuple[str, str]:
    """``"a.b.weight"`` -> ``("a.b", "weight")``.

    ``"a.parametrizations.weight.original"`` -> ``("a", "weight")``.
    """
    parts = name.split(".")
    if len(parts) >= 3 and parts[-3] == "parametrizations" and parts[-1].startswith("original"):
        return ".".join(parts[:-3]), parts[-2]
    return ".".join(parts[:-1]), parts[-1]


def _dtype_bits(dtype: torch.dtype) -> int:
    if dtype == torch.bool:
        return 1
    if dtype.is_floating_point or dtype.is_complex:
        return torch.finfo(dtype).bits * (2 if dtype.is_complex else 1)
    return torch.iinfo(dtype).bits


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _percent(part: int, total: int) -> float:
    return 100.0 * part / total if total else 0.0


# ----------------------------------------------------------------------------- rendering


def format_bits(bits: int) -> str:
    """A size in bits as the slides write it: ``"96.0 B"``, ``"7.0 KiB"``, ``"3.1 MiB"``."""
    value = bits / 8
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{value:.1f} {unit}"


def format_count(n: int) -> str:
    """An op count: ``"576"``, ``"2.3 K"``, ``"4.5 M"``, ``"1.2 G"`` (decimal prefixes)."""
    if n < 1000:
        return str(n)
    value = float(n)
    for unit in ("K", "M", "G"):
        value /= 1000
        if value < 1000 or unit == "G":
            break
    return f"{value:.1f} {unit}"


def percent_bar(percent: float) -> str:
    """One ``#`` per full 20 %; a share from 5 % up to 20 % still gets one."""
    return "#" * max(int(percent // 20), 1 if percent >= 5 else 0)


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def render_tables(insp: ModelInspection) -> list[Table]:
    """The parameter table and the layer table, each ending with a total line."""
    params = Table(title="Parameters", box=box.SIMPLE_HEAD)
    for header in ("param_name", "shape", "#values", "bits", "size", "perc", ""):
        right = header in ("#values", "bits", "size", "perc")
        params.add_column(header, justify="right" if right else "left")
    for p, pct in zip(insp.params, insp.param_percents(), strict=True):
        params.add_row(
            *_cells(
                p.name,
                _shape(p.shape),
                str(p.numel),
                str(p.bits),
                format_bits(p.size_bits),
                f"{pct:.2f}%",
                percent_bar(pct),
            )
        )
    params.add_section()
    params.add_row(
        *_cells(
            "total",
            "",
            str(insp.total_params),
            "",
            format_bits(insp.total_param_bits),
            f"{_percent(insp.total_param_bits, insp.total_param_bits):.2f}%",
            "",
        )
    )

    layers = Table(
        title=f"Layers (one example of shape {_shape(insp.input_shape)})", box=box.SIMPLE_HEAD
    )
    headers = [
        "layer_name",
        "type",
        "ispace",
        "ospace",
        "osize",
        "#macs",
        "readable",
        "perc",
        "",
        "other",
    ]
    for header in headers:
        right = header in ("osize", "#macs", "readable", "perc")
        layers.add_column(header, justify="right" if right else "left")
    for row, pct in zip(insp.layers, insp.layer_percents(), strict=True):
        name = row.name if row.call == 1 else f"{row.name} (call {row.call})"
        layers.add_row(
            *_cells(
                name,
                row.kind,
                _shape(row.input_shape),
                _shape(row.output_shape),
                str(row.output_size),
                str(row.cost.macs),
                format_count(row.cost.macs),
                f"{pct:.2f}%",
                percent_bar(pct),
                _other(row.cost.other),
            )
        )
    layers.add_section()
    layers.add_row(
        *_cells(
            "total",
            "",
            "",
            "",
            "",
            str(insp.total_macs),
            format_count(insp.total_macs),
            f"{_percent(insp.total_macs, insp.total_macs):.2f}%",
            "",
            _other(insp.total_other),
        )
    )
    return [params, layers]


def format_text(insp: ModelInspection) -> str:
    """Both tables as plain text (no colour, 120 columns), for ``report.md``."""
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=120, color_system=None, force_terminal=False, highlight=False
    )
    for table in render_tables(insp):
        console.print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def _other(other: dict[str, int]) -> str:
    return ", ".join(f"{key}={format_count(value)}" for key, value in other.items())


def _cells(*values: str) -> list[Text]:
    return [Text(v) for v in values]  # Text, not str: names with "[...]" are not rich markup

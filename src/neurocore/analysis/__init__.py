"""Cost inspection: where a network spends its storage and its arithmetic."""

from neurocore.analysis.inspect import (
    CostFn,
    HasCost,
    HasParamBits,
    LayerCost,
    LayerRow,
    ModelInspection,
    ParamRow,
    format_bits,
    format_count,
    format_text,
    inspect_model,
    percent_bar,
    register_cost,
    render_tables,
)

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

"""Data sets by name: ``digits``, ``mnist``, ``cifar10``, and ``idx:<dir>`` for any IDX pair.

Each data set registers itself next to its loader with :func:`register_dataset`; the modules that
define them are imported at the bottom of this file so that importing ``neurocore.data`` is enough.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from neurocore.data.base import Dataset, DatasetInfo, InfoFn, Loader, Split
from neurocore.errors import DataError

__all__ = [
    "Dataset",
    "DatasetInfo",
    "Split",
    "available_datasets",
    "dataset_info",
    "load_dataset",
    "register_dataset",
    "validation_split",
]

IDX_PREFIX = "idx:"
_REGISTRY: dict[str, tuple[Loader, InfoFn]] = {}


def register_dataset(name: str, info: InfoFn) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader`` under ``name`` with its cheap ``info`` function."""
    if name.startswith(IDX_PREFIX) or not name:
        raise ValueError(f"dataset name {name!r} is empty or uses the reserved prefix 'idx:'")

    def decorate(loader: Loader) -> Loader:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = (loader, info)
        return loader

    return decorate


def available_datasets() -> list[str]:
    """Registered names, sorted; ``idx:<dir>`` is accepted as well."""
    return sorted(_REGISTRY)


def _unknown(spec: str) -> DataError:
    names = ", ".join(available_datasets())
    return DataError(
        f"unknown dataset {spec!r}; expected one of {names}, or 'idx:<dir>' for a folder of "
        "IDX files in the MNIST naming"
    )


def load_dataset(spec: str, data_dir: str | None = None) -> Dataset:
    """Load ``spec`` (a registered name or ``idx:<dir>``); ``data_dir`` is the user's --data-dir."""
    if spec.startswith(IDX_PREFIX):
        return idx.load_idx_dir(spec.removeprefix(IDX_PREFIX))
    if spec not in _REGISTRY:
        raise _unknown(spec)
    loader, _ = _REGISTRY[spec]
    return loader(data_dir)


def dataset_info(spec: str, data_dir: str | None = None) -> DatasetInfo:
    """What a model needs to know about ``spec``, reading headers only where the format allows."""
    if spec.startswith(IDX_PREFIX):
        return idx.idx_dir_info(spec.removeprefix(IDX_PREFIX))
    if spec not in _REGISTRY:
        raise _unknown(spec)
    _, info = _REGISTRY[spec]
    return info(data_dir)


def validation_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Stratified hold-out: ``(rest, val)`` with ``round(fraction * count)`` of each class in val.

    Per class (in increasing label order) the held-out examples are the first ones of a
    ``torch.randperm`` drawn from one generator seeded with ``seed``, so the result depends only on
    ``(split, fraction, seed)``. Both parts keep the original order of the examples.
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1), got {fraction}")
    n = len(split)
    if fraction == 0.0:
        empty = torch.zeros(n, dtype=torch.bool)
        return split, split.take(empty)
    generator = torch.Generator().manual_seed(seed)
    in_val = torch.zeros(n, dtype=torch.bool)  # (N,)
    for c in torch.unique(split.labels).tolist():  # sorted
        members = torch.nonzero(split.labels == c).flatten()  # (count,)
        k = round(fraction * len(members))
        chosen = members[torch.randperm(len(members), generator=generator)[:k]]
        in_val[chosen] = True
    return split.take(~in_val), split.take(in_val)


from neurocore.data import cifar, digits, idx  # noqa: E402, F401  (registers the data sets)

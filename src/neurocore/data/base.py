"""What every data set gives the trainer: raw integer images and labels held in memory.

Images stay in their stored integer form, ``(N, C, H, W)`` uint8, so that hardware input
transduction (thermometer coding of pixel values) sees the true values; :meth:`Split.float_images`
gives the ``[0, 1]`` float view the networks train on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from neurocore.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a data set before any pixels are read."""

    name: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    max_value: int  # largest raw pixel value (16 for digits, 255 for 8-bit images)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64

    def __post_init__(self) -> None:
        if self.images.shape[0] != self.labels.shape[0]:
            raise DataError(
                f"split has {self.images.shape[0]} images but {self.labels.shape[0]} labels"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def float_images(self, max_value: int) -> torch.Tensor:
        return self.images.to(torch.float32) / float(max_value)

    def batches(
        self, batch_size: int, max_value: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` float batches; shuffled when a generator is given, else in order."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        for start in range(0, n, batch_size):
            stop = start + batch_size
            idx = order[start:stop] if order is not None else slice(start, stop)
            x = self.images[idx].to(torch.float32) / float(max_value)  # (B, C, H, W)
            yield x, self.labels[idx]

    def take(self, idx: torch.Tensor) -> Split:
        return Split(self.images[idx], self.labels[idx])


@dataclass(frozen=True)
class Dataset:
    info: DatasetInfo
    train: Split
    test: Split


# A loader takes the user's data directory (or None) and returns the data set; ``info`` returns
# the DatasetInfo cheaply (headers only) so `neurocore inspect RECIPE` need not read pixels.
Loader = Callable[[str | None], Dataset]
InfoFn = Callable[[str | None], DatasetInfo]

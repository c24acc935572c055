"""scikit-learn's embedded 8x8 handwritten digits: 1797 images, values 0..16, no files needed.

The train/test split is fixed: ``train_test_split(test_size=0.2, stratify=y, random_state=0)``,
which gives 1437 training and 360 test images, the same on every call and every machine.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits as _sklearn_load_digits
from sklearn.model_selection import train_test_split

from neurocore.data import register_dataset
from neurocore.data.base import Dataset, DatasetInfo, Split

DIGITS_INFO = DatasetInfo("digits", input_shape=(1, 8, 8), num_classes=10, max_value=16)


def digits_info(data_dir: str | None) -> DatasetInfo:
    """Constant: the digits ship inside scikit-learn, so ``data_dir`` is not used."""
    return DIGITS_INFO


@register_dataset("digits", info=digits_info)
def load_digits(data_dir: str | None) -> Dataset:
    """The digits data set; ``data_dir`` is not used."""
    bunch = _sklearn_load_digits()
    x = np.asarray(bunch.data).astype(np.uint8).reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8) 0..16
    y = np.asarray(bunch.target).astype(np.int64)  # (1797,)
    train_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=0.2, stratify=y, random_state=0
    )
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    train_t, test_t = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    train = Split(images[train_t], labels[train_t])  # (1437, 1, 8, 8)
    test = Split(images[test_t], labels[test_t])  # (360, 1, 8, 8)
    return Dataset(DIGITS_INFO, train, test)

from __future__ import annotations

import torch

from neurocore.data.augment import random_shift


def test_shift_moves_pixels_and_fills_zeros() -> None:
    x = torch.arange(1, 26, dtype=torch.float32).view(1, 1, 5, 5).repeat(200, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    out = random_shift(x, 1, g)
    g = torch.Generator().manual_seed(0)
    offsets = torch.randint(-1, 2, (200, 2), generator=g)
    for i in range(200):
        dy, dx = offsets[i].tolist()
        expected = torch.zeros(5, 5)
        for r in range(5):
            for c in range(5):
                if 0 <= r - dy < 5 and 0 <= c - dx < 5:
                    expected[r, c] = x[i, 0, r - dy, c - dx]
        assert torch.equal(out[i, 0], expected), (dy, dx)
    assert len({tuple(o) for o in offsets.tolist()}) == 9  # every offset exercised


def test_no_shift_is_identity() -> None:
    x = torch.rand(4, 3, 6, 6)
    assert random_shift(x, 0, torch.Generator()) is x

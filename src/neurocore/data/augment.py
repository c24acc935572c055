"""Training-time augmentation, drawn from the trainer's per-epoch generator (so resumable)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by (dy, dx) ∈ [−shift, shift]², filling with zeros.

    ``x`` is (B, C, H, W); the offsets are drawn from ``generator``.
    """
    if shift <= 0:
        return x
    b, _, h, w = x.shape
    offsets = torch.randint(-shift, shift + 1, (b, 2), generator=generator)
    padded = F.pad(x, (shift, shift, shift, shift))  # (B, C, H + 2s, W + 2s)
    out = torch.empty_like(x)
    for dy, dx in torch.unique(offsets, dim=0).tolist():
        rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero().flatten()
        # shifting the image by (dy, dx) reads the padded window that starts at s − (dy, dx)
        top, left = shift - dy, shift - dx
        out[rows] = padded[rows, :, top : top + h, left : left + w]
    return out

from __future__ import annotations

import torch

from neurocore.layers.encode import thermometer


def test_thermometer_golden() -> None:
    # levels 3: thresholds 1/4, 2/4, 3/4
    x = torch.tensor([0.0, 0.24, 0.25, 0.5, 0.74, 0.75, 1.0]).view(1, 1, 1, 7)
    out = thermometer(x, 3)
    assert out.shape == (1, 3, 1, 7)
    assert out[0, :, 0].T.tolist() == [
        [0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]
    ]


def test_thermometer_channel_order() -> None:
    x = torch.tensor([0.3, 0.9]).view(1, 2, 1, 1)  # channel 0 = 0.3, channel 1 = 0.9
    assert thermometer(x, 2)[0, :, 0, 0].tolist() == [0, 0, 1, 1]  # thresholds 1/3, 2/3

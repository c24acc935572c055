from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from neurocore.errors import RunDirError
from neurocore.training.checkpoint import load_checkpoint, load_model_state, save_checkpoint


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_round_trip_model_and_optimizer(tmp_path: Path, opt_name: str) -> None:
    torch.manual_seed(0)
    m = _model()
    opt: torch.optim.Optimizer = (
        torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        if opt_name == "sgd" else torch.optim.Adam(m.parameters(), lr=0.01)
    )
    for _ in range(3):
        opt.zero_grad()
        m(torch.randn(5, 3)).sum().backward()
        opt.step()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, m, opt, epoch=3)
    assert path.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle

    torch.manual_seed(1)
    m2 = _model()
    opt2: torch.optim.Optimizer = (
        torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
        if opt_name == "sgd" else torch.optim.Adam(m2.parameters(), lr=0.01)
    )
    assert load_checkpoint(path, m2, opt2) == 3
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid, st in s1["state"].items():
        for key, v in st.items():
            assert torch.equal(v, s2["state"][pid][key]), (pid, key)
    # one more identical step on both gives identical weights
    x = torch.randn(5, 3)
    for mm, oo in ((m, opt), (m2, opt2)):
        oo.zero_grad()
        mm(x).sum().backward()
        oo.step()
    for a, b in zip(m.parameters(), m2.parameters(), strict=True):
        assert torch.equal(a, b)
    assert set(load_model_state(path)) == set(m.state_dict())


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="nothere.safetensors: checkpoint not found"):
        load_checkpoint(tmp_path / "nothere.safetensors", _model(), None)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(RunDirError, match="bad.safetensors: not a readable safetensors checkpoint"):
        load_checkpoint(bad, _model(), None)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, nn.Linear(3, 3), None, epoch=1)
    with pytest.raises(RunDirError, match="c.safetensors: checkpoint does not fit the recipe's model"):
        load_checkpoint(path, _model(), None)

"""Ensembles: member programs side by side on one machine, voting through the host's decode.

The merged program is checked against its members run alone (every spike, membrane and output
port equal with torch.equal), its decode against the members' summed model outputs computed
independently, and its file round trip; members that cannot share the host are refused with
errors naming the member and what differs.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from neurocore.data import Split
from neurocore.hardware.compiler import compile_network
from neurocore.hardware.deploy import HostSide, evaluate
from neurocore.hardware.ensemble import Ensemble, EnsembleError, merge_programs
from neurocore.hardware.fold import fold
from neurocore.hardware.program import Program
from neurocore.hardware.simulator import simulate
from neurocore.neurons.binary import fully_binary
from support import BN, build, images, randomise

SHAPE = (1, 6, 6)
MAX_VALUE = 16


def _layers(classes_out: bool = False, extra: bool = False) -> list[dict]:
    """thermometer → conv → pool → [conv] → fc; an N-hot decode unless ``classes_out``."""
    layers = [
        {"type": "thermometer", "levels": 2},
        {"type": "ternary_conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        BN, {"type": "whetstone"},
        {"type": "maxpool2d", "kernel_size": 2},
    ]
    if extra:
        layers += [{"type": "ternary_conv2d", "out_channels": 4, "kernel_size": 1},
                   BN, {"type": "whetstone"}]
    layers += [{"type": "flatten"}]
    if classes_out:
        return layers + [{"type": "ternary_linear", "out_features": 3}, BN, {"type": "whetstone"}]
    return layers + [{"type": "ternary_linear", "out_features": 12, "groups": 2}, BN,
                     {"type": "whetstone"}, {"type": "nhot_decode", "classes": 3, "hot": 4}]


def _member(seed: int, shape: tuple[int, ...] = SHAPE, **kw: bool) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    model = build(_layers(**kw), shape)
    randomise(model, g, images(shape, 2, 64, g))
    return model


def _program(model: nn.Sequential, shape: tuple[int, ...] = SHAPE) -> Program:
    return compile_network(fold(model), shape).program


def _split(n: int = 96, seed: int = 11) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, MAX_VALUE + 1, (n, *SHAPE), generator=g).to(torch.uint8)
    return Split(x, torch.randint(0, 3, (n,), generator=g))


def test_merged_program_runs_each_member_as_alone() -> None:
    members = [_member(1), _member(2), _member(3, classes_out=True)]
    programs = [_program(m) for m in members]
    merged = merge_programs(programs)
    assert merged.num_cores == sum(p.num_cores for p in programs)
    assert merged.num_outputs == sum(p.num_outputs for p in programs)
    host = HostSide.of(merged)
    x = _split().float_images(MAX_VALUE)
    ticks = host.latency_ticks
    res = simulate(merged, host.encode(x), ticks, record=True)
    assert res.spikes is not None and res.membrane is not None
    c0 = o0 = 0
    for p in programs:
        alone = simulate(p, HostSide.of(p).encode(x), ticks, record=True)
        assert alone.spikes is not None and alone.membrane is not None
        c1, o1 = c0 + p.num_cores, o0 + p.num_outputs
        assert torch.equal(res.spikes[:, :, c0:c1], alone.spikes)
        assert torch.equal(res.membrane[:, :, c0:c1], alone.membrane)
        assert torch.equal(res.outputs[:, :, o0:o1], alone.outputs)
        assert bool(alone.spikes.any())  # the members do fire
        c0, o0 = c1, o1
    rows = json.loads(merged.metadata["layers"])
    assert [r["layer"].split("/")[0] for r in rows] == ["m0"] * 3 + ["m1"] * 3 + ["m2"] * 3
    assert sum(r["cores"] for r in rows) == merged.num_cores


def test_merged_decode_is_the_argmax_of_the_summed_member_scores() -> None:
    members = [_member(1), _member(2), _member(4)]
    merged = merge_programs([_program(m) for m in members])
    split = _split()
    x = split.float_images(MAX_VALUE)
    with torch.no_grad():
        scores = []
        for m in members:
            with fully_binary(m):
                scores.append(m(x))
    want = torch.stack(scores).sum(0).argmax(1)
    # the vote is not any single member's: the ensemble decides differently on some frame
    assert any(bool((s.argmax(1) != want).any()) for s in scores)
    host = HostSide.of(merged)
    got = host.decode(simulate(merged, host.encode(x), host.latency_ticks).outputs[:, -1])
    assert torch.equal(got, want)
    ev = evaluate(merged, Ensemble(members), split, MAX_VALUE, macs=1)
    assert ev.mismatches == 0 and ev.frames == len(split)
    assert ev.cores == merged.num_cores and ev.chips == 1


def test_identity_key_ranks_as_the_output_bits() -> None:
    """A member whose output bits are the classes joins with the identity key: merged with
    itself, the decode is the argmax of twice its bits."""
    model = _member(5, classes_out=True)
    p = _program(model)
    assert json.loads(p.metadata["decode_key"]) is None
    merged = merge_programs([p, p])
    assert json.loads(merged.metadata["decode_key"]) == [
        [1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 1]]
    x = _split().float_images(MAX_VALUE)
    with torch.no_grad(), fully_binary(model):
        want = model(x).argmax(1)
    host = HostSide.of(merged)
    got = host.decode(simulate(merged, host.encode(x), host.latency_ticks).outputs[:, -1])
    assert torch.equal(got, want)


def test_merged_program_round_trips_through_its_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    merged = merge_programs([_program(_member(1)), _program(_member(2))], ["a", "b"])
    merged.save(tmp_path / "e.safetensors")
    back = Program.load(tmp_path / "e.safetensors")
    assert back.equal(merged)
    assert [m["member"] for m in json.loads(back.metadata["ensemble"])] == ["a", "b"]


def test_members_that_cannot_share_the_host_are_refused() -> None:
    base = _program(_member(1))
    other_shape = _program(_member(2, shape=(1, 8, 8)), (1, 8, 8))
    with pytest.raises(EnsembleError, match=r"member m1: reads 128 input lines.*72"):
        merge_programs([base, other_shape])
    deeper = _program(_member(3, extra=True))
    with pytest.raises(EnsembleError, match=r"member m1: latency_ticks is 4.* is 3"):
        merge_programs([base, deeper])
    with pytest.raises(EnsembleError, match="at least one member"):
        merge_programs([])
    with pytest.raises(EnsembleError, match="2 names for 1"):
        merge_programs([base], ["a", "b"])
    bare = base.replace(metadata={})
    with pytest.raises(EnsembleError, match="member m1: the program lacks .*input_shape"):
        merge_programs([base, bare])
    with pytest.raises(EnsembleError, match="at least one member"):
        Ensemble([])

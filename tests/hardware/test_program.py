"""Program: effective weights, one clear error per broken bound, and the safetensors file format."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

from neurocore.errors import NeurocoreError
from neurocore.hardware.corespec import TRUENORTH, CoreSpec, NegMode, ResetMode
from neurocore.hardware.program import FORMAT, TENSORS, Program, ProgramError

TINY = CoreSpec(axons=8, neurons=6, axon_types=4, strength_min=-255, strength_max=255,
                max_delay=15, cores_per_chip=4, name="tiny")


def _random_program(
    g: torch.Generator, spec: CoreSpec, cores: int, num_inputs: int, num_outputs: int,
    entries: int, metadata: dict[str, str] | None = None,
) -> Program:
    """A random VALID program: every field drawn uniformly inside its bound."""
    c, a, n, t = cores, spec.axons, spec.neurons, spec.axon_types
    vmax = spec.membrane_max

    def ints(lo: int, hi: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64).to(dtype)

    dest_lo = -1 if num_outputs else -2
    dest_core = ints(-2, c - 1, (c, n), torch.int32)
    dest_core = torch.where(dest_core == -1, torch.tensor(dest_lo, dtype=torch.int32), dest_core)
    port = ints(0, max(num_outputs - 1, 0), (c, n), torch.int32)
    dest_axon = torch.where(dest_core == -1, port, ints(0, a - 1, (c, n), torch.int32))
    line_hi = max(num_inputs - 1, 0)
    k = entries if num_inputs else 0
    return Program(
        crossbar=torch.rand((c, a, n), generator=g) < torch.rand((), generator=g),
        axon_types=ints(0, t - 1, (c, a), torch.int8),
        strengths=ints(spec.strength_min, spec.strength_max, (c, n, t), torch.int16),
        leak=ints(spec.membrane_min, vmax, (c, n), torch.int32),
        threshold=ints(1, vmax, (c, n), torch.int32),
        neg_threshold=ints(0, vmax, (c, n), torch.int32),
        reset_value=ints(-vmax, vmax, (c, n), torch.int32),
        reset_mode=ints(0, 2, (c, n), torch.uint8),
        neg_mode=ints(0, 1, (c, n), torch.uint8),
        dest_core=dest_core,
        dest_axon=dest_axon,
        delay=ints(1, spec.max_delay, (c, n), torch.uint8),
        input_line=ints(0, line_hi, (k,), torch.int32),
        input_core=ints(0, c - 1, (k,), torch.int32),
        input_axon=ints(0, a - 1, (k,), torch.int32),
        num_inputs=num_inputs,
        num_outputs=num_outputs,
        spec=spec,
        metadata=metadata or {},
    )


def _base() -> Program:
    return _random_program(torch.Generator().manual_seed(7), TINY, cores=3, num_inputs=5,
                           num_outputs=3, entries=6, metadata={"layers": "[]"})


# ---- construction and weights ---------------------------------------------------------------

def test_blank_program_is_valid_and_silent() -> None:
    p = Program.blank(2, num_inputs=1, num_outputs=1)
    p.validate()
    assert p.num_cores == 2 and p.spec == TRUENORTH and p.chips() == 1
    assert not p.crossbar.any() and bool((p.dest_core == -2).all())
    assert bool((p.reset_mode == ResetMode.ABSOLUTE).all())
    assert bool((p.neg_mode == NegMode.SATURATE).all())


def test_base_program_is_valid() -> None:
    _base().validate()


def test_effective_weights_equal_the_definition() -> None:
    p = _base()
    w = p.effective_weights()
    assert w.dtype == torch.int32 and w.shape == (3, TINY.axons, TINY.neurons)
    for c in range(3):
        for i in range(TINY.axons):
            for j in range(TINY.neurons):
                g = int(p.axon_types[c, i])
                expected = int(p.strengths[c, j, g]) if bool(p.crossbar[c, i, j]) else 0
                assert int(w[c, i, j]) == expected


def test_effective_weights_hand_example() -> None:
    spec = CoreSpec(axons=2, neurons=2, axon_types=2, name="2x2")
    p = Program.blank(1, spec=spec).replace(
        crossbar=torch.tensor([[[True, True], [False, True]]]),
        axon_types=torch.tensor([[1, 0]], dtype=torch.int8),
        strengths=torch.tensor([[[5, -3], [7, 2]]], dtype=torch.int16),  # S_0 = (5, -3), S_1 = (7, 2)
    )
    # W[0] row axon 0 (type 1): (S_0[1], S_1[1]) = (-3, 2); row axon 1 (type 0): (0, S_1[0]) = (0, 7)
    assert torch.equal(p.effective_weights(), torch.tensor([[[-3, 2], [0, 7]]], dtype=torch.int32))


def test_more_cores_than_a_chip_is_fine() -> None:
    p = Program.blank(9, spec=TINY)  # 4 cores per chip
    p.validate()
    assert p.chips() == 3


# ---- validation: one error per broken bound, naming where ----------------------------------

def _set(name: str, index: tuple[int, ...], value: int) -> Callable[[Program], Program]:
    def mutate(p: Program) -> Program:
        t = getattr(p, name).clone()
        t[index] = value
        return p.replace(**{name: t})
    return mutate


def _route(core: int, neuron: int, dest: int, axon: int, delay: int = 1) -> Callable[[Program], Program]:
    def mutate(p: Program) -> Program:
        p = _set("dest_core", (core, neuron), dest)(p)
        p = _set("dest_axon", (core, neuron), axon)(p)
        return _set("delay", (core, neuron), delay)(p)
    return mutate


VMAX = TINY.membrane_max
BAD: dict[str, tuple[Callable[[Program], Program], list[str]]] = {
    "strength high": (_set("strengths", (2, 4, 1), 300),
                      ["core 2 neuron 4", "strength 300 outside [-255, 255]", "axon type 1"]),
    "strength low": (_set("strengths", (0, 3, 0), -256), ["core 0 neuron 3", "strength -256"]),
    "axon type": (_set("axon_types", (1, 7), 4), ["core 1 axon 7", "axon type 4 outside [0, 3]"]),
    "axon type negative": (_set("axon_types", (0, 2), -1), ["core 0 axon 2", "axon type -1"]),
    "threshold 0": (_set("threshold", (1, 5), 0), ["core 1 neuron 5", "threshold 0 outside [1, "]),
    "threshold high": (_set("threshold", (0, 0), VMAX + 1), ["core 0 neuron 0", f"threshold {VMAX + 1}"]),
    "neg_threshold": (_set("neg_threshold", (2, 1), -1), ["core 2 neuron 1", "neg_threshold -1 outside [0, "]),
    "leak": (_set("leak", (0, 2), VMAX + 1), ["core 0 neuron 2", "leak", f"[{-VMAX - 1}, {VMAX}]"]),
    "reset_value": (_set("reset_value", (1, 1), -VMAX - 1), ["core 1 neuron 1", "reset_value"]),
    "reset_mode": (_set("reset_mode", (2, 5), 3), ["core 2 neuron 5", "reset_mode 3 outside [0, 2]"]),
    "neg_mode": (_set("neg_mode", (0, 4), 2), ["core 0 neuron 4", "neg_mode 2 outside [0, 1]"]),
    "dest core missing": (_route(1, 3, 3, 0), ["core 1 neuron 3", "dest_core 3 outside [-2, 2]", "3 cores"]),
    "dest core -3": (_set("dest_core", (0, 1), -3), ["core 0 neuron 1", "dest_core -3"]),
    "dest axon": (_route(2, 2, 0, 8), ["core 2 neuron 2", "dest_axon 8 outside [0, 7]"]),
    "dest axon negative": (_route(2, 2, 1, -1), ["core 2 neuron 2", "dest_axon -1"]),
    "delay 0": (_route(0, 5, 1, 2, delay=0), ["core 0 neuron 5", "delay 0 outside [1, 15]"]),
    "delay 16": (_route(1, 0, 0, 0, delay=16), ["core 1 neuron 0", "delay 16 outside [1, 15]"]),
    "output port": (_route(1, 4, -1, 3), ["core 1 neuron 4", "output port (dest_axon) 3 outside [0, 2]", "num_outputs 3"]),
    "input line": (_set("input_line", (2,), 5), ["input map entry 2", "input_line 5 outside [0, 4]"]),
    "input core": (_set("input_core", (0,), 3), ["input map entry 0", "input_core 3 outside [0, 2]"]),
    "input axon": (_set("input_axon", (5,), 8), ["input map entry 5", "input_axon 8 outside [0, 7]"]),
    "crossbar dtype": (lambda p: p.replace(crossbar=p.crossbar.to(torch.uint8)), ["crossbar", "dtype torch.uint8", "torch.bool"]),
    "strengths dtype": (lambda p: p.replace(strengths=p.strengths.to(torch.int32)), ["strengths", "dtype torch.int32", "torch.int16"]),
    "delay dtype": (lambda p: p.replace(delay=p.delay.to(torch.int64)), ["delay", "dtype"]),
    "crossbar shape": (lambda p: p.replace(crossbar=torch.zeros(3, 9, 6, dtype=torch.bool)), ["crossbar", "(3, 9, 6)", "(3, 8, 6)"]),
    "leak shape": (lambda p: p.replace(leak=p.leak[:2]), ["leak", "(2, 6)", "(3, 6)"]),
    "strengths types": (lambda p: p.replace(strengths=p.strengths[:, :, :3]), ["strengths", "(C, N, T)"]),
    "input map lengths": (lambda p: p.replace(input_core=p.input_core[:5]), ["input_core", "(5,)", "(6,)"]),
    "no cores": (lambda p: Program.blank(0, spec=TINY), ["0 cores"]),
    "num_inputs": (lambda p: p.replace(num_inputs=-1), ["num_inputs -1"]),
    "num_outputs": (lambda p: p.replace(num_outputs=2.0), ["num_outputs 2.0"]),
    "metadata": (lambda p: p.replace(metadata={"a": 1}), ["metadata", "dict[str, str]"]),
    "spec": (lambda p: p.replace(spec={"axons": 8}), ["spec must be a CoreSpec"]),
    "not a tensor": (lambda p: p.replace(threshold=[1, 2]), ["threshold must be a tensor"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_broken_bound_gives_one_clear_error(case: str) -> None:
    mutate, words = BAD[case]
    base = _base()
    with pytest.raises(ProgramError) as e:
        mutate(base).validate()
    assert isinstance(e.value, NeurocoreError)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_error_counts_further_offenders() -> None:
    p = _base()
    s = p.strengths.clone()
    s[1, 2, 0] = 400
    s[2, 0, 3] = -400
    with pytest.raises(ProgramError, match=r"core 1 neuron 2: strength 400 .*1 more"):
        p.replace(strengths=s).validate()


def test_fields_ignored_where_unused_are_not_checked() -> None:
    p = _base()
    # an unused neuron's dest_axon and delay, and an output neuron's delay, mean nothing
    p = _set("dest_core", (0, 0), -2)(p)
    p = _set("dest_axon", (0, 0), 99)(p)
    p = _set("delay", (0, 0), 0)(p)
    p = _route(0, 1, -1, 2, delay=0)(p)
    p.validate()


# ---- file format ------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path: Path) -> None:
    p = _base()
    path = tmp_path / "sub" / "prog.safetensors"
    p.save(path)
    q = Program.load(path)
    assert q.spec == p.spec and q.metadata == {"layers": "[]"}
    assert (q.num_inputs, q.num_outputs) == (5, 3)
    for name, (dtype, _) in TENSORS.items():
        a, b = getattr(p, name), getattr(q, name)
        assert b.dtype == dtype and torch.equal(a, b), name
    assert q.equal(p)
    assert not list(tmp_path.glob("sub/.*.tmp"))  # the atomic write left no temporary file


def test_file_metadata_is_as_documented(tmp_path: Path) -> None:
    p = _base()
    p.save(tmp_path / "p.safetensors")
    blob = (tmp_path / "p.safetensors").read_bytes()
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    meta = header["__metadata__"]
    assert meta["format"] == FORMAT == "neurocore-program/1"
    assert CoreSpec.from_dict(json.loads(meta["spec"])) == TINY
    assert (meta["num_inputs"], meta["num_outputs"]) == ("5", "3")
    assert json.loads(meta["metadata"]) == {"layers": "[]"}
    assert set(header) - {"__metadata__"} == set(TENSORS)
    assert header["strengths"]["dtype"] == "I16" and header["crossbar"]["dtype"] == "BOOL"


def test_save_refuses_an_invalid_program(tmp_path: Path) -> None:
    bad = _set("threshold", (0, 0), 0)(_base())
    with pytest.raises(ProgramError, match="threshold 0"):
        bad.save(tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match="nope.safetensors: program file not found"):
        Program.load(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 8, 40, -7])
def test_load_truncated_file(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "p.safetensors"
    _base().save(path)
    blob = path.read_bytes()
    path.write_bytes(blob[:keep])
    with pytest.raises(ProgramError, match="p.safetensors: not a readable safetensors file"):
        Program.load(path)


def test_load_garbage(tmp_path: Path) -> None:
    path = tmp_path / "g.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ProgramError, match="not a readable safetensors file"):
        Program.load(path)


def test_load_a_checkpoint_is_not_a_program(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(st_save({"model.w": torch.zeros(2)}, metadata={"format": "neurocore-checkpoint/1"}))
    with pytest.raises(ProgramError, match="not a neurocore program .*'neurocore-checkpoint/1'"):
        Program.load(path)
    path.write_bytes(st_save({"model.w": torch.zeros(2)}))
    with pytest.raises(ProgramError, match="not a neurocore program .*None"):
        Program.load(path)


def _rewrite(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    path.write_bytes(st_save(tensors, metadata=meta))


def _parts(p: Program) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    meta = {"format": FORMAT, "spec": json.dumps(p.spec.to_dict()), "num_inputs": str(p.num_inputs),
            "num_outputs": str(p.num_outputs), "metadata": json.dumps(p.metadata)}
    return {k: v.contiguous() for k, v in p.tensors().items()}, meta


def test_load_wrong_format_version(tmp_path: Path) -> None:
    tensors, meta = _parts(_base())
    _rewrite(tmp_path / "p.safetensors", tensors, {**meta, "format": "neurocore-program/2"})
    with pytest.raises(ProgramError, match="format tag 'neurocore-program/2', expected 'neurocore-program/1'"):
        Program.load(tmp_path / "p.safetensors")


def test_load_missing_tensor(tmp_path: Path) -> None:
    tensors, meta = _parts(_base())
    del tensors["delay"]
    _rewrite(tmp_path / "p.safetensors", tensors, meta)
    with pytest.raises(ProgramError, match="p.safetensors: missing tensor 'delay'"):
        Program.load(tmp_path / "p.safetensors")


def test_load_extra_tensor(tmp_path: Path) -> None:
    tensors, meta = _parts(_base())
    _rewrite(tmp_path / "p.safetensors", {**tensors, "weights": torch.zeros(1)}, meta)
    with pytest.raises(ProgramError, match="unexpected tensor.*'weights'"):
        Program.load(tmp_path / "p.safetensors")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("spec", None, "metadata key 'spec' missing"),
        ("num_outputs", None, "metadata key 'num_outputs' missing"),
        ("spec", "{bad json", "bad program metadata"),
        ("spec", json.dumps({**TINY.to_dict(), "axons": 0}), "axons 0"),
        ("num_inputs", "five", "bad program metadata"),
    ],
)
def test_load_bad_metadata(tmp_path: Path, key: str, value: str | None, words: str) -> None:
    tensors, meta = _parts(_base())
    if value is None:
        del meta[key]
    else:
        meta[key] = value
    _rewrite(tmp_path / "p.safetensors", tensors, meta)
    with pytest.raises(ProgramError, match=words):
        Program.load(tmp_path / "p.safetensors")


def test_load_validates_contents(tmp_path: Path) -> None:
    bad = _set("strengths", (1, 2, 3), 256)(_base())
    tensors, meta = _parts(bad)
    _rewrite(tmp_path / "p.safetensors", tensors, meta)
    with pytest.raises(ProgramError, match=r"p.safetensors: core 1 neuron 2: strength 256 outside \[-255, 255\]"):
        Program.load(tmp_path / "p.safetensors")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    axons=st.integers(1, 12), neurons=st.integers(1, 12), types=st.integers(1, 5),
    bits=st.integers(2, 32), max_delay=st.integers(1, 255),
    cores=st.integers(1, 5), num_inputs=st.integers(0, 6), num_outputs=st.integers(0, 4),
    entries=st.integers(0, 10),
    metadata=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3),
)
def test_random_valid_programs_round_trip(
    tmp_path: Path, seed: int, axons: int, neurons: int, types: int, bits: int, max_delay: int,
    cores: int, num_inputs: int, num_outputs: int, entries: int, metadata: dict[str, str],
) -> None:
    spec = CoreSpec(axons=axons, neurons=neurons, axon_types=types, strength_min=-300,
                    strength_max=17, membrane_bits=bits, max_delay=max_delay,
                    cores_per_chip=2, name="random")
    p = _random_program(torch.Generator().manual_seed(seed), spec, cores, num_inputs,
                        num_outputs, entries, metadata)
    p.validate()
    path = tmp_path / "r.safetensors"
    p.save(path)
    q = Program.load(path)
    assert q.equal(p) and q.chips() == (cores + 1) // 2
    assert all(torch.equal(getattr(p, n), getattr(q, n)) for n in TENSORS)

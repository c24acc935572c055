"""CoreSpec: TrueNorth defaults, derived ranges, self-validation and a dict round trip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocore.errors import NeurocoreError
from neurocore.hardware.corespec import TRUENORTH, CoreSpec, CoreSpecError, NegMode, ResetMode


def test_truenorth_defaults() -> None:
    s = TRUENORTH
    assert (s.axons, s.neurons, s.axon_types) == (256, 256, 4)
    assert (s.strength_min, s.strength_max, s.strength_abs_max) == (-255, 255, 255)
    assert (s.membrane_bits, s.membrane_min, s.membrane_max) == (20, -524288, 524287)
    assert (s.max_delay, s.cores_per_chip, s.tick_seconds, s.name) == (15, 4096, 1e-3, "truenorth")
    assert s == CoreSpec()


def test_modes_are_the_stored_codes() -> None:
    assert [int(m) for m in ResetMode] == [0, 1, 2]
    assert [int(m) for m in NegMode] == [0, 1]


@pytest.mark.parametrize(
    ("cores", "chips"), [(1, 1), (4096, 1), (4097, 2), (8192, 2), (8193, 3)]
)
def test_chips(cores: int, chips: int) -> None:
    assert TRUENORTH.chips(cores) == chips


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"axons": 0}, ["axons 0", "[1, "]),
        ({"neurons": -3}, ["neurons -3"]),
        ({"axon_types": 0}, ["axon_types 0", "[1, 127]"]),
        ({"axon_types": 200}, ["axon_types 200"]),
        ({"strength_min": 10, "strength_max": 5}, ["strength_min 10 > strength_max 5"]),
        ({"strength_max": 40000}, ["strength_max 40000", "32767"]),
        ({"membrane_bits": 1}, ["membrane_bits 1", "[2, 32]"]),
        ({"membrane_bits": 33}, ["membrane_bits 33"]),
        ({"max_delay": 0}, ["max_delay 0", "[1, 255]"]),
        ({"max_delay": 256}, ["max_delay 256"]),
        ({"cores_per_chip": 0}, ["cores_per_chip 0"]),
        ({"tick_seconds": 0.0}, ["tick_seconds 0.0"]),
        ({"tick_seconds": float("nan")}, ["tick_seconds nan"]),
        ({"tick_seconds": "1ms"}, ["tick_seconds '1ms'", "number"]),
        ({"axons": 2.5}, ["axons 2.5", "integer"]),
        ({"neurons": True}, ["neurons True", "integer"]),
        ({"name": ""}, ["name ''"]),
    ],
)
def test_invalid_spec_names_the_field(changes: dict, words: list[str]) -> None:
    with pytest.raises(CoreSpecError) as e:
        CoreSpec(**changes)
    assert isinstance(e.value, NeurocoreError)
    for w in words:
        assert w in str(e.value)


def test_tick_seconds_int_becomes_float() -> None:
    s = CoreSpec(tick_seconds=1)
    assert s.tick_seconds == 1.0 and isinstance(s.tick_seconds, float)


def test_dict_round_trip_through_json() -> None:
    s = CoreSpec(axons=16, neurons=12, axon_types=3, strength_min=-7, strength_max=9,
                 membrane_bits=8, max_delay=4, cores_per_chip=2, tick_seconds=5e-4, name="tiny")
    d = json.loads(json.dumps(s.to_dict()))
    assert CoreSpec.from_dict(d) == s
    assert CoreSpec.from_dict(TRUENORTH.to_dict()) == TRUENORTH


def test_from_dict_rejects_unknown_and_missing_keys() -> None:
    d = TRUENORTH.to_dict()
    with pytest.raises(CoreSpecError, match="unknown key.*'synapses'"):
        CoreSpec.from_dict({**d, "synapses": 3})
    del d["max_delay"]
    with pytest.raises(CoreSpecError, match="missing key.*max_delay"):
        CoreSpec.from_dict(d)
    with pytest.raises(CoreSpecError, match="mapping"):
        CoreSpec.from_dict([1, 2])  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(
    axons=st.integers(1, 512), neurons=st.integers(1, 512), types=st.integers(1, 127),
    smin=st.integers(-(2**15), 2**15 - 1), width=st.integers(0, 2**15),
    bits=st.integers(2, 32), delay=st.integers(1, 255), per_chip=st.integers(1, 10_000),
    tick=st.floats(1e-9, 10.0), name=st.text(min_size=1, max_size=10),
)
def test_random_specs_round_trip(
    axons: int, neurons: int, types: int, smin: int, width: int, bits: int, delay: int,
    per_chip: int, tick: float, name: str,
) -> None:
    smax = min(smin + width, 2**15 - 1)
    s = CoreSpec(axons, neurons, types, smin, smax, bits, delay, per_chip, tick, name)
    assert CoreSpec.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert s.membrane_max - s.membrane_min + 1 == 2**bits

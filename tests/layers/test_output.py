"""N-hot output keys and their decode ``(2x − 1) · (2Kᵀ − 1)``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocore.errors import RecipeError
from neurocore.layers.output import NHotDecode, nhot_decode, nhot_key
from support import build


def test_disjoint_key_exact_layout() -> None:
    key = nhot_key(3, 8, 2, overlapping=False)
    want = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0, 0, 0],  # class 0 owns units 0, 1
            [0, 0, 1, 1, 0, 0, 0, 0],  # class 1 owns units 2, 3
            [0, 0, 0, 0, 1, 1, 0, 0],  # class 2 owns units 4, 5; units 6, 7 belong to none
        ],
        dtype=torch.float32,
    )
    assert torch.equal(key, want)
    # the seed plays no part in disjoint keys
    assert torch.equal(nhot_key(3, 8, 2, overlapping=False, seed=9), want)
    # one-hot is the special case hot = 1
    assert torch.equal(nhot_key(4, 4, 1, overlapping=False), torch.eye(4))


@settings(max_examples=40, deadline=None)
@given(
    classes=st.integers(2, 10),
    width=st.integers(4, 40),
    hot=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_overlapping_keys_have_hot_ones_per_row(
    classes: int, width: int, hot: int, seed: int
) -> None:
    try:
        key = nhot_key(classes, width, hot, overlapping=True, seed=seed)
    except ValueError as e:
        # only two legitimate reasons to refuse
        assert hot > width or "two equal rows" in str(e)
        return
    assert key.shape == (classes, width)
    assert bool(((key == 0) | (key == 1)).all())
    assert torch.equal(key.sum(1), torch.full((classes,), float(hot)))
    assert len({tuple(r.tolist()) for r in key}) == classes  # rows distinct
    assert torch.equal(key, nhot_key(classes, width, hot, overlapping=True, seed=seed))


def test_overlapping_keys_are_seeded() -> None:
    a = nhot_key(10, 30, 5, overlapping=True, seed=0)
    assert torch.equal(a, nhot_key(10, 30, 5, overlapping=True, seed=0))
    others = [nhot_key(10, 30, 5, overlapping=True, seed=s) for s in (1, 2, 3)]
    assert all(not torch.equal(a, b) for b in others)
    # with 10 × 5 = 50 > 30 ones the rows must share units: the key really overlaps
    assert int(a.sum(0).max()) > 1


def test_key_errors_name_the_numbers() -> None:
    with pytest.raises(ValueError, match=r"hot=5 .*output width 4"):
        nhot_key(2, 4, 5, overlapping=True)
    with pytest.raises(ValueError, match=r"hot=0 "):
        nhot_key(2, 4, 0, overlapping=False)
    with pytest.raises(ValueError, match=r"classes × hot = 6 .*has 4"):
        nhot_key(3, 4, 2, overlapping=False)
    # 3 classes, 1 hot unit out of 2: only 2 distinct rows exist, so two rows must be equal
    with pytest.raises(ValueError, match=r"seed 7 gave two equal rows"):
        nhot_key(3, 2, 1, overlapping=True, seed=7)


def test_decode_golden() -> None:
    # K = [[1, 1, 0, 0], [0, 0, 1, 1]]: columns of 2Kᵀ − 1 are (1, 1, −1, −1) and (−1, −1, 1, 1)
    key = nhot_key(2, 4, 2, overlapping=False)
    x = torch.tensor(
        [
            [1.0, 1.0, 0.0, 1.0],  # 2x − 1 = (1, 1, −1, 1): class 0: 1+1+1−1 = 2, class 1: −2
            [1.0, 1.0, 0.0, 0.0],  # exactly class 0's key: 4 and −4
            [0.0, 0.0, 0.0, 0.0],  # all silent: (−1)(1)·2 + (−1)(−1)·2 = 0 for both
            [0.5, 1.0, 0.0, 0.25],  # (0, 1, −1, −0.5): class 0: 0+1+1+0.5 = 2.5, class 1: −2.5
        ]
    )
    want = torch.tensor([[2.0, -2.0], [4.0, -4.0], [0.0, 0.0], [2.5, -2.5]])
    assert torch.equal(nhot_decode(x, key), want)
    assert torch.equal(NHotDecode(key)(x), want)


def test_decode_counts_agreeing_units() -> None:
    # for binary x, score_c = (#agreeing units) − (#disagreeing units) = width − 2·Hamming
    torch.manual_seed(0)
    key = nhot_key(5, 12, 3, overlapping=True, seed=4)
    x = torch.randint(0, 2, (64, 12)).float()
    hamming = (x[:, None, :] != key[None, :, :]).sum(-1).float()  # (B, classes)
    assert torch.equal(nhot_decode(x, key), 12.0 - 2.0 * hamming)


def test_module_keeps_its_own_copy_in_state_dict() -> None:
    key = nhot_key(2, 4, 2, overlapping=False)
    m = NHotDecode(key)
    key.zero_()
    assert torch.equal(m.key, nhot_key(2, 4, 2, overlapping=False))
    assert set(m.state_dict()) == {"key"}


def test_recipe_layer_builds_the_key() -> None:
    model = build(
        [
            {"type": "linear", "out_features": 12},
            {"type": "whetstone"},
            {"type": "nhot_decode", "classes": 3, "hot": 4},
        ],
        (5,),
        3,
    )
    assert isinstance(model.decode0, NHotDecode)
    assert torch.equal(model.decode0.key, nhot_key(3, 12, 4, overlapping=False))
    model = build(
        [{"type": "nhot_decode", "classes": 4, "hot": 3, "overlapping": True, "seed": 11}], (10,), 4
    )
    assert torch.equal(model.decode0.key, nhot_key(4, 10, 3, overlapping=True, seed=11))


def test_recipe_layer_errors() -> None:
    # disjoint keys that do not fit the width: a RecipeError naming the layer and the numbers
    with pytest.raises(RecipeError, match=r"decode0.*classes × hot = 9 .*has 8"):
        build([{"type": "nhot_decode", "classes": 3, "hot": 3}], (8,))
    with pytest.raises(RecipeError, match=r"nhot_decode needs a flat"):
        build([{"type": "nhot_decode", "classes": 2, "hot": 1}], (1, 2, 2))
    with pytest.raises(RecipeError):
        build([{"type": "nhot_decode", "classes": 1, "hot": 1}], (8,))  # classes > 1


def test_interleaved_keys_golden() -> None:
    want = torch.tensor([
        [1, 0, 0, 1, 0, 0, 0, 0],
        [0, 1, 0, 0, 1, 0, 0, 0],
        [0, 0, 1, 0, 0, 1, 0, 0],
    ], dtype=torch.float32)
    assert torch.equal(nhot_key(3, 8, 2, overlapping=False, interleaved=True), want)
    with pytest.raises(ValueError, match="either overlapping or interleaved"):
        nhot_key(3, 8, 2, overlapping=True, interleaved=True)
    with pytest.raises(ValueError, match="classes × hot = 9"):
        nhot_key(3, 8, 3, overlapping=False, interleaved=True)

"""ADMM toward block-circulant weights: the penalty's gradient, the per-epoch update of Z and U
against their formulas, convergence to block-circulant weights that survive conversion, exact
resume from the checkpoint, hooks removed after an exception, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from neurocore.config import AdmmConfig, OptimizerConfig, TrainConfig, load_recipe, validate_recipe
from neurocore.convert import convert_run
from neurocore.data import Split
from neurocore.errors import NeurocoreError, RunDirError
from neurocore.layers import nearest_block_circulant, relative_residual
from neurocore.pipeline import run_recipe
from neurocore.training import Trainer
from neurocore.training.admm import BlockCirculantADMM
from neurocore.training.checkpoint import CHECKPOINT
from support import KillAt, Killed, assert_same_state

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "recipes" / "digits-float.yaml"
CFG = TrainConfig(epochs=3, optimizer=OptimizerConfig(name="adam", lr=0.01))


def _data(n: int = 64) -> Split:
    g = torch.Generator().manual_seed(7)
    images = torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8)
    return Split(images, (images.float().mean(dim=(1, 2, 3)) > 127).long())


def _model(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("flat", nn.Flatten())
    model.add_module("fc0", nn.Linear(16, 12))
    model.add_module("act", nn.ReLU())
    model.add_module("fc1", nn.Linear(12, 2))
    return model.to(dtype)


def _trainer(model: nn.Module, callbacks: list, run_dir: Path | None = None) -> Trainer:  # type: ignore[type-arg]
    return Trainer(model, _data(), CFG, max_value=255, batch_size=16, seed=3, run_dir=run_dir,
                   callbacks=callbacks, progress=False)


def test_the_hook_adds_the_penalty_gradient() -> None:
    """∇(loss) + hook == autograd of loss + ρ/2·‖W − Z + U‖² over the chosen layers (fc0 only:
    fc1's output size 2 is below the block size 4)."""
    model = _model(dtype=torch.float64)
    cb = BlockCirculantADMM(AdmmConfig(block_size=4, rho=0.3, growth=2.0))
    trainer = _trainer(model, [cb])
    cb.on_train_start(trainer)
    assert list(cb.layers) == ["fc0"]
    cb.on_epoch_start(trainer, 2)
    assert cb.rho == pytest.approx(0.3 * 4.0)
    g = torch.Generator().manual_seed(1)
    cb.u["fc0"] = torch.randn(12, 16, generator=g, dtype=torch.float64)  # a non-zero dual
    x = torch.randn(8, 16, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (8,), generator=g)

    reference = _model(dtype=torch.float64)
    reference.load_state_dict(model.state_dict())
    w = reference.fc0.weight
    penalty = cb.rho / 2 * (w - cb.z["fc0"] + cb.u["fc0"]).pow(2).sum()
    (F.cross_entropy(reference(x), y) + penalty).backward()
    F.cross_entropy(model(x), y).backward()
    assert torch.allclose(model.fc0.weight.grad, w.grad, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(model.fc0.weight.grad, 0 * w.grad)
    assert torch.equal(model.fc1.weight.grad, reference.fc1.weight.grad)  # not chosen
    cb.on_train_end(trainer)  # the hook is removed
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    reference.zero_grad()
    F.cross_entropy(reference(x), y).backward()
    assert torch.equal(model.fc0.weight.grad, reference.fc0.weight.grad)


def test_z_and_u_follow_their_formulas_and_are_logged(tmp_path: Path) -> None:
    model = _model()
    cb = BlockCirculantADMM(AdmmConfig(block_size=4, layers=["fc0"]))
    trainer = _trainer(model, [cb], tmp_path)
    cb.on_train_start(trainer)
    w = model.fc0.weight.detach()
    assert torch.equal(cb.z["fc0"], nearest_block_circulant(w, 4))
    assert torch.equal(cb.u["fc0"], torch.zeros_like(w))
    with torch.no_grad():
        w.add_(0.1)  # as if a training epoch had moved W
    u_old = torch.full_like(w, 0.01)
    cb.u["fc0"] = u_old.clone()
    metrics: dict[str, object] = {}
    cb.on_epoch_start(trainer, 0)  # epoch 0: ρ = rho, U untouched
    assert torch.equal(cb.u["fc0"], u_old)
    cb.on_epoch_end(trainer, 0, metrics)
    z = nearest_block_circulant(w + u_old, 4)
    assert torch.equal(cb.z["fc0"], z)
    assert torch.equal(cb.u["fc0"], u_old + w - z)
    assert metrics == {"admm_rho": 1e-3, "admm_residual": {"fc0": relative_residual(w, 4)}}
    state = cb.state_tensors()
    assert state.keys() == {"admm.z.fc0", "admm.u.fc0"}
    assert torch.equal(state["admm.z.fc0"], z) and torch.equal(state["admm.u.fc0"], u_old + w - z)
    # ρ grows by 1.6: the scaled dual U shrinks by as much, so ρ·U carries over
    u1 = cb.u["fc0"].clone()
    cb.on_epoch_start(trainer, 1)
    assert cb.rho == pytest.approx(1.6e-3)
    assert torch.equal(cb.u["fc0"], u1 / 1.6)


def test_relative_residual_is_zero_on_block_circulant_weights() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, 16, generator=g, dtype=torch.float64)
    assert relative_residual(nearest_block_circulant(w, 4), 4) < 1e-15
    # the residual is orthogonal to the subspace: ‖W‖² = ‖P(W)‖² + ‖W − P(W)‖²
    p = nearest_block_circulant(w, 4)
    r = relative_residual(w, 4)
    assert float(p.pow(2).sum() / w.pow(2).sum()) + r**2 == pytest.approx(1.0, abs=1e-12)


def test_admm_makes_conversion_nearly_lossless(tmp_path: Path) -> None:
    """On digits: the residual falls epoch by epoch to < 1e-2, and the projection by
    ``neurocore convert`` then keeps the test accuracy within one image of the dense run's (a
    dense run trained without ADMM loses far more to the same projection)."""
    admm = "admm={block_size: 8, rho: 0.01, growth: 2.0}"
    run_recipe(load_recipe(DIGITS, [admm]), tmp_path / "admm", progress=False)
    history = [json.loads(x) for x in (tmp_path / "admm" / "metrics.jsonl").read_text().splitlines()]
    residuals = [h["admm_residual"] for h in history]
    assert list(residuals[0]) == ["conv1", "fc0"]  # conv0 has 1 input channel < 8
    for layer in ("conv1", "fc0"):
        series = [r[layer] for r in residuals]
        assert series[-1] < 1e-2 < series[0]
    assert [h["admm_rho"] for h in history[:3]] == [0.01, 0.02, 0.04]
    conv = convert_run(tmp_path / "admm", "block-circulant", 8, tmp_path / "bc",
                       evaluate_test=True)
    assert conv.recipe.admm is None  # the converted recipe fine-tunes without it
    assert conv.test_accuracy_after >= conv.test_accuracy_before - 1 / 360

    run_recipe(load_recipe(DIGITS), tmp_path / "plain", progress=False)
    plain = convert_run(tmp_path / "plain", "block-circulant", 8, tmp_path / "plain-bc",
                        evaluate_test=True)
    assert plain.test_accuracy_after < plain.test_accuracy_before - 0.05


@pytest.mark.parametrize("kill", [(1, 0), (2, 2)])
def test_kill_and_resume_equals_uninterrupted(tmp_path: Path, kill: tuple[int, int]) -> None:
    cfg = AdmmConfig(block_size=4, rho=0.05, growth=1.5)
    full_dir, run = tmp_path / "full", tmp_path / "killed"
    full_dir.mkdir(), run.mkdir()
    full = _trainer(_model(), [BlockCirculantADMM(cfg)], full_dir)
    full.fit()
    with pytest.raises(Killed):
        _trainer(_model(), [BlockCirculantADMM(cfg), KillAt(*kill)], run).fit()
    resumed = _trainer(_model(seed=9), [BlockCirculantADMM(cfg)], run)
    resumed.fit(resume=True)
    assert_same_state(full.model, resumed.model)
    a, b = load_file(full_dir / CHECKPOINT), load_file(run / CHECKPOINT)
    assert {"callback.admm.z.fc0", "callback.admm.u.fc0"} <= a.keys()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(full.model.fc0.weight, _model().fc0.weight)  # it trained


def test_resume_without_admm_state_is_named(tmp_path: Path) -> None:
    """A checkpoint written without the admm section cannot resume with it."""
    with pytest.raises(Killed):
        _trainer(_model(), [KillAt(2, 0)], tmp_path).fit()
    with pytest.raises(RunDirError, match=r"no ADMM variable admm.z.fc0 of shape \(12, 16\)"):
        _trainer(_model(), [BlockCirculantADMM(AdmmConfig(block_size=4))], tmp_path).fit(
            resume=True)


def test_hooks_are_removed_when_training_stops_with_an_exception() -> None:
    model = _model()
    cb = BlockCirculantADMM(AdmmConfig(block_size=4, rho=10.0))
    with pytest.raises(Killed):
        _trainer(model, [cb, KillAt(1, 2)]).fit()
    assert cb._handles == []
    x = torch.randn(4, 16)
    model.zero_grad()
    model(x).sum().backward()
    reference = _model()
    reference.load_state_dict(model.state_dict())
    reference(x).sum().backward()
    assert torch.equal(model.fc0.weight.grad, reference.fc0.weight.grad)  # no penalty left


@pytest.mark.parametrize(("cfg", "message"), [
    (AdmmConfig(block_size=4, layers=["fc9"]), "admm.layers: no layer named fc9"),
    (AdmmConfig(block_size=4, layers=["act"]), "admm.layers: act cannot become block-circulant"),
    (AdmmConfig(block_size=64), "no layer to convert: .* fc0: in/out sizes 16/12 below block"),
])
def test_bad_sections_are_named(cfg: AdmmConfig, message: str) -> None:
    with pytest.raises(NeurocoreError, match=message):
        _trainer(_model(), [BlockCirculantADMM(cfg)]).fit()


def test_an_empty_layer_list_is_refused() -> None:
    from neurocore.errors import RecipeError

    data = load_recipe(DIGITS).model_dump(mode="json")
    data["admm"] = {"block_size": 8, "layers": []}
    with pytest.raises(RecipeError, match="admm.layers"):
        validate_recipe(data, "recipe")


def test_a_wrong_layer_list_fails_before_the_run_folder_exists(tmp_path: Path) -> None:
    recipe = load_recipe(DIGITS, ["admm={block_size: 8, layers: [conv9]}"])
    with pytest.raises(NeurocoreError, match="admm.layers: no layer named conv9"):
        run_recipe(recipe, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # the fixed recipe can run there without --overwrite

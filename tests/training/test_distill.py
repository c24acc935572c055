"""Knowledge distillation: the loss against an independent NumPy formula, its gradient where
student and teacher agree, a teacher really steering training, exact resume, and the recipe's
teacher checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurocore.config import DistillConfig, load_recipe
from neurocore.errors import RunDirError
from neurocore.pipeline import run_recipe
from neurocore.training.distill import distillation_loss
from support import KillAt, Killed, assert_same_state

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "recipes" / "digits-float.yaml"


def _numpy_loss(s: np.ndarray, t: np.ndarray, y: np.ndarray, temp: float, w: float) -> float:
    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    hard = -log_softmax(s)[np.arange(len(y)), y].mean()
    p, log_p, log_q = np.exp(log_softmax(t / temp)), log_softmax(t / temp), log_softmax(s / temp)
    soft = (p * (log_p - log_q)).sum(axis=1).mean()
    return float((1 - w) * hard + w * temp * temp * soft)


@pytest.mark.parametrize(("temp", "w"), [(1.0, 0.5), (4.0, 0.9), (2.5, 1.0), (0.5, 0.3)])
def test_loss_equals_an_independent_numpy_formula(temp: float, w: float) -> None:
    g = torch.Generator().manual_seed(7)
    s = torch.randn(9, 5, generator=g, dtype=torch.float64) * 3
    t = torch.randn(9, 5, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 5, (9,), generator=g)
    got = float(distillation_loss(s, t, y, temp, w))
    assert got == pytest.approx(_numpy_loss(s.numpy(), t.numpy(), y.numpy(), temp, w), abs=1e-12)


def test_weight_zero_is_plain_cross_entropy() -> None:
    g = torch.Generator().manual_seed(8)
    s, t = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    y = torch.randint(0, 4, (6,), generator=g)
    assert torch.equal(distillation_loss(s, t, y, 3.0, 0.0, 0.1),
                       F.cross_entropy(s, y, label_smoothing=0.1))


def test_student_equal_to_teacher_gets_only_the_label_gradient() -> None:
    """Where s = t the soft term is at its minimum: the gradient is (1 − w)(softmax(s) − 1_y)/B."""
    g = torch.Generator().manual_seed(9)
    s = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 2, 1, 1, 0])
    w = 0.75
    distillation_loss(s, s.detach().clone(), y, 4.0, w).backward()
    want = (1 - w) * (torch.softmax(s.detach(), 1) - F.one_hot(y, 3).double()) / 5
    assert s.grad is not None
    assert torch.allclose(s.grad, want, rtol=0, atol=1e-14)


def _recipe(extra: list[str]):  # type: ignore[no-untyped-def]
    return load_recipe(DIGITS, ["train.epochs=2", *extra])


def test_a_teacher_steers_training_and_resumes_exactly(tmp_path: Path) -> None:
    from neurocore.pipeline import load_teacher
    from neurocore.training import Trainer

    run_recipe(_recipe([]), tmp_path / "teacher", progress=False)
    kd = [f"train.distill={{teacher: {tmp_path / 'teacher'}, temperature: 3.0, weight: 1.0}}"]
    recipe = _recipe(kd)
    assert recipe.train.distill == DistillConfig(teacher=str(tmp_path / "teacher"),
                                                 temperature=3.0, weight=1.0)
    plain = run_recipe(_recipe([]), tmp_path / "plain", progress=False)
    taught = run_recipe(recipe, tmp_path / "taught", progress=False)
    assert taught.summary["train_examples"] == plain.summary["train_examples"]
    # weight 1: the labels are not used, the teacher's outputs are: the weights differ
    a = (tmp_path / "plain" / "model.safetensors").read_bytes()
    assert a != (tmp_path / "taught" / "model.safetensors").read_bytes()

    # killed in the middle and resumed: the same weights as uninterrupted
    teacher = load_teacher(tmp_path / "teacher", recipe, None)
    from neurocore.data import load_dataset
    from neurocore.layers import build_model

    data = load_dataset("digits")

    def trainer(run: Path, callbacks: list) -> Trainer:  # type: ignore[type-arg]
        torch.manual_seed(0)
        model = build_model(list(recipe.model.layers), data.info.input_shape, 10)
        return Trainer(model, data.train, recipe.train, max_value=16, batch_size=64, seed=0,
                       run_dir=run, callbacks=callbacks, progress=False, teacher=teacher)

    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    full_dir.mkdir(), killed_dir.mkdir()
    full = trainer(full_dir, [])
    full.fit()
    with pytest.raises(Killed):
        trainer(killed_dir, [KillAt(1, 3)]).fit()
    resumed = trainer(killed_dir, [])
    resumed.fit(resume=True)
    assert_same_state(full.model, resumed.model)


def test_teacher_errors_name_the_key(tmp_path: Path) -> None:
    missing = _recipe([f"train.distill={{teacher: {tmp_path / 'nope'}}}"])
    with pytest.raises(RunDirError, match=r"train.distill.teacher: .*nope: no such run folder"):
        run_recipe(missing, tmp_path / "a", progress=False)
    (tmp_path / "empty").mkdir()
    empty = _recipe([f"train.distill={{teacher: {tmp_path / 'empty'}}}"])
    with pytest.raises(RunDirError, match=r"train.distill.teacher: .*not a run folder"):
        run_recipe(empty, tmp_path / "b", progress=False)
    mnist = REPO / "recipes" / "mnist-lenet.yaml"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.yaml").write_text(mnist.read_text())
    (tmp_path / "m" / "model.safetensors").write_bytes(b"")
    other = _recipe([f"train.distill={{teacher: {tmp_path / 'm'}}}"])
    with pytest.raises(RunDirError, match="trained on mnist, this recipe trains on digits"):
        run_recipe(other, tmp_path / "c", progress=False)

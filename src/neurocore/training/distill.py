"""Knowledge distillation (Hinton, Vinyals & Dean 2015): a student learns from a trained
teacher's softened outputs as well as from the labels.

The loss per batch is ``(1 − w) · CE(s, y) + w · T² · KL(softmax(t/T) ‖ softmax(s/T))`` with
student logits ``s``, teacher logits ``t``, temperature ``T`` and weight ``w`` (recipe
``train.distill``); the T² factor keeps the soft term's gradients on the scale of the hard
term's as T changes (Hinton et al. 2015, section 2). The teacher runs in eval mode without
gradients on the same (augmented) batch as the student, so a resumed run sees the same targets
as an uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                      temperature: float, weight: float, label_smoothing: float = 0.0
                      ) -> torch.Tensor:
    """Mean over the batch of the module docstring's loss; (B, classes) logits, (B,) labels."""
    hard = F.cross_entropy(student, labels, label_smoothing=label_smoothing)
    if weight == 0.0:
        return hard
    t = temperature
    soft = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True)
    return (1.0 - weight) * hard + weight * t * t * soft

"""Distillation losses of SENet's stages 2 and 3 (teacher = the all-ReLU model)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """tau^2 * KL(softmax(z_T/tau) || softmax(z_S/tau)), batch mean: Hinton's scaling keeps the
    gradient size independent of the temperature."""
    log_p_s = F.log_softmax(student_logits.float() / tau, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / tau, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * tau * tau


def attention_map(act: torch.Tensor) -> torch.Tensor:
    """Q = L2-normalised, flattened channel mean of a^2 (attention transfer)."""
    return F.normalize(act.float().pow(2).mean(dim=1).flatten(1), dim=1)


def at_loss(student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor]) -> torch.Tensor:
    """sum_j mean((Q_S,j - Q_T,j)^2): aligns the post-activations of the residual stages."""
    total = student_feats[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(student_feats, teacher_feats):
        total = total + (attention_map(s) - attention_map(t)).pow(2).mean()
    return total


def distill_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float,
    gamma: float,
    alpha: float,
    beta: float = 0.0,
    student_feats: list[torch.Tensor] | None = None,
    teacher_feats: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """gamma * CE + alpha * tau^2 * KL + beta * AT (stage 3; stage 2 uses beta = 0)."""
    loss = gamma * F.cross_entropy(student_logits.float(), labels)
    loss = loss + alpha * kd_loss(student_logits, teacher_logits, tau)
    if beta and student_feats is not None and teacher_feats is not None:
        loss = loss + beta * at_loss(student_feats, teacher_feats)
    return loss

"""Loss terms against hand computations."""

import math

import torch
import torch.nn.functional as F

from stages.losses import at_loss, attention_map, distill_loss, kd_loss


def test_kd_is_tau_squared_kl_by_hand() -> None:
    zs = torch.tensor([[1.0, 2.0, 0.5]])
    zt = torch.tensor([[0.0, 3.0, 1.0]])
    tau = 2.0
    ps = [math.exp(v / tau) for v in zs[0].tolist()]
    pt = [math.exp(v / tau) for v in zt[0].tolist()]
    ps = [p / sum(ps) for p in ps]
    pt = [p / sum(pt) for p in pt]
    kl = sum(t * math.log(t / s) for s, t in zip(ps, pt))
    assert math.isclose(float(kd_loss(zs, zt, tau)), tau * tau * kl, rel_tol=1e-5)


def test_kd_is_zero_for_equal_logits() -> None:
    z = torch.randn(4, 10)
    assert float(kd_loss(z, z, 4.0)) < 1e-6


def test_attention_map_by_hand() -> None:
    a = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # (1, 2 channels, 1, 2)
    q = [(1 + 9) / 2, (4 + 0) / 2]  # channel mean of a^2
    norm = math.sqrt(sum(v * v for v in q))
    assert torch.allclose(attention_map(a), torch.tensor([[q[0] / norm, q[1] / norm]]))


def test_at_loss_by_hand() -> None:
    """Two stages of different shapes, each term worked out on paper: the loss is the sum over
    stages of the mean squared difference of the normalised attention maps."""
    s1 = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # q = (5, 2) / sqrt(29)
    t1 = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]]]])  # q = (1, 0)
    s2 = torch.tensor([[[[1.0, 1.0]]]])  # q = (1, 1) / sqrt(2)
    t2 = torch.tensor([[[[2.0, 0.0]]]])  # q = (1, 0)
    r29, r2 = math.sqrt(29), math.sqrt(2)
    stage1 = ((5 / r29 - 1) ** 2 + (2 / r29) ** 2) / 2
    stage2 = ((1 / r2 - 1) ** 2 + (1 / r2) ** 2) / 2
    assert math.isclose(float(at_loss([s1, s2], [t1, t2])), stage1 + stage2, rel_tol=1e-6)
    assert float(at_loss([s1, s2], [s1, s2])) == 0.0


def test_distill_loss_weights_its_terms() -> None:
    zs, zt = torch.randn(3, 5), torch.randn(3, 5)
    y = torch.tensor([0, 1, 2])
    fs, ft = [torch.randn(3, 2, 2, 2)], [torch.randn(3, 2, 2, 2)]
    expected = 0.1 * F.cross_entropy(zs, y) + 0.9 * kd_loss(zs, zt, 4.0) + 1000 * at_loss(fs, ft)
    got = distill_loss(
        zs, zt, y, tau=4.0, gamma=0.1, alpha=0.9, beta=1000, student_feats=fs, teacher_feats=ft
    )
    assert torch.allclose(got, expected)

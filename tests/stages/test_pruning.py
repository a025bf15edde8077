"""Stage 1's pruning methods on resnet20 and 8x8 one-channel images (seeded random tensors: the
densities need gradients, not a real task, and sklearn's import would double the file's time):
exact global densities, a teacher left untouched, seeded determinism, and regrowth that actually
moves weights between layers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from stages.models import build_model
from stages.partial_relu import init_masks
from stages.pruning import (
    PRUNINGS,
    _top,
    iterative_densities,
    magnitude_densities,
    pruned_densities,
)

DENSITY = 0.05
ROUNDS = 2


def _sizes(model: nn.Module) -> dict[str, int]:
    return {n: m.weight.numel() for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def _kept(densities: dict[str, float], sizes: dict[str, int]) -> int:
    """Active weights in all, from per-layer fractions (each an exact count / size)."""
    return sum(int(round(densities[n] * sizes[n])) for n in sizes)


Data = list[tuple[torch.Tensor, torch.Tensor]]


class _Batches:
    """The same batches on every call (so two runs see the same data); counts calls."""

    def __init__(self, data: Data) -> None:
        self.data = data
        self.calls = 0

    def __call__(self) -> Data:
        self.calls += 1
        return self.data


@dataclass
class _Run:
    teacher: nn.Module
    densities: dict[str, float]
    batch_calls: int
    state_before: dict[str, torch.Tensor]
    rand_after: torch.Tensor  # torch.rand right after the call, under a fixed global seed


@pytest.fixture(scope="module")
def data() -> Data:
    """Two batches of 32 (two SGD steps a pass); labels follow the pixels, so gradients mean
    something."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, generator=gen)
    y = x.flatten(1)[:, :10].argmax(dim=1)
    return [(x[:32], y[:32]), (x[32:], y[32:])]


@pytest.fixture(scope="module")
def teacher() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("resnet20", 10, 1)
    init_masks(model, 8, 1)
    return model.eval()


@pytest.fixture(scope="module")
def run(teacher: nn.Module, data: Data) -> _Run:
    before = {k: v.detach().clone() for k, v in teacher.state_dict().items()}
    batches = _Batches(data)
    torch.manual_seed(123)
    d = iterative_densities(teacher, DENSITY, batches, rounds=ROUNDS, seed=1)
    return _Run(teacher, d, batches.calls, before, torch.rand(8))


def _iterative(teacher: nn.Module, data: Data, regrow: float = 0.3) -> dict[str, float]:
    return iterative_densities(teacher, DENSITY, _Batches(data), ROUNDS, regrow, seed=1)


# --- one-shot ------------------------------------------------------------------------------


def test_oneshot_hits_the_global_density_unevenly(teacher: nn.Module) -> None:
    sizes = _sizes(teacher)
    d = magnitude_densities(teacher, DENSITY)
    assert d.keys() == sizes.keys()
    assert abs(_kept(d, sizes) - round(DENSITY * sum(sizes.values()))) <= 1
    assert max(d.values()) - min(d.values()) > 0.05


# --- iterative -----------------------------------------------------------------------------


def test_iterative_hits_the_global_density_exactly(run: _Run) -> None:
    sizes = _sizes(run.teacher)
    assert run.densities.keys() == sizes.keys()
    assert all(0.0 <= v <= 1.0 for v in run.densities.values())
    assert _kept(run.densities, sizes) == round(DENSITY * sum(sizes.values()))  # exact count
    assert max(run.densities.values()) - min(run.densities.values()) > 0.05


def test_iterative_trains_one_pass_per_round(run: _Run) -> None:
    assert run.batch_calls == ROUNDS


def test_iterative_leaves_the_teacher_untouched(run: _Run) -> None:
    after = run.teacher.state_dict()
    assert after.keys() == run.state_before.keys()
    for k, v in run.state_before.items():  # weights and BN running stats alike
        assert torch.equal(after[k], v), k
    assert not run.teacher.training
    assert all(p.grad is None for p in run.teacher.parameters())


def test_iterative_leaves_the_global_rng_alone(run: _Run) -> None:
    torch.manual_seed(123)
    assert torch.equal(torch.rand(8), run.rand_after)


def test_iterative_is_deterministic_for_a_seed(run: _Run, data: Data) -> None:
    assert _iterative(run.teacher, data) == run.densities


def test_iterative_differs_from_oneshot(run: _Run) -> None:
    sizes = _sizes(run.teacher)
    oneshot = magnitude_densities(run.teacher, DENSITY)
    moved = [n for n in sizes if abs(oneshot[n] - run.densities[n]) * sizes[n] >= 2]
    assert moved


def test_regrowth_redistributes_weights(run: _Run, data: Data) -> None:
    sizes = _sizes(run.teacher)
    no_regrow = _iterative(run.teacher, data, regrow=0.0)
    assert _kept(no_regrow, sizes) == _kept(run.densities, sizes)
    assert any(abs(no_regrow[n] - run.densities[n]) * sizes[n] >= 2 for n in sizes)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"density": 0.0}, "density"),
        ({"density": 1.5}, "density"),
        ({"rounds": 0}, "rounds"),
        ({"regrow": 1.5}, "regrow"),
    ],
)
def test_iterative_refuses_bad_settings(
    teacher: nn.Module, kw: dict[str, float], match: str
) -> None:
    args = {"density": DENSITY, "batches": lambda: [], **kw}
    with pytest.raises(ValueError, match=match):
        iterative_densities(teacher, **args)


def test_iterative_refuses_empty_batches(teacher: nn.Module) -> None:
    with pytest.raises(ValueError, match="batches"):
        iterative_densities(teacher, DENSITY, lambda: [])


# --- dispatch ------------------------------------------------------------------------------


def test_dispatch(teacher: nn.Module) -> None:
    assert PRUNINGS == ("oneshot", "iterative")
    assert pruned_densities(teacher, DENSITY, "oneshot") == magnitude_densities(teacher, DENSITY)
    with pytest.raises(ValueError, match="'magic'"):
        pruned_densities(teacher, DENSITY, "magic")
    with pytest.raises(ValueError, match="batches"):
        pruned_densities(teacher, DENSITY, "iterative")


def test_one_round_without_regrowth_is_valid_and_dispatched(teacher: nn.Module, data: Data) -> None:
    sizes = _sizes(teacher)
    batches = _Batches(data)
    d = pruned_densities(teacher, DENSITY, "iterative", batches, rounds=1, regrow=0.0)
    assert batches.calls == 1
    assert d.keys() == sizes.keys()
    assert all(0.0 <= v <= 1.0 for v in d.values())
    assert abs(_kept(d, sizes) - round(DENSITY * sum(sizes.values()))) <= 1


def test_top_breaks_ties_by_seed_with_an_exact_count() -> None:
    score = torch.tensor([3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    picks = {}
    for seed in range(6):
        chosen = _top(score, 3, torch.Generator().manual_seed(seed))
        assert int(chosen.sum()) == 3 and bool(chosen[0]) and not bool(chosen[-1])
        assert torch.equal(chosen, _top(score, 3, torch.Generator().manual_seed(seed)))
        picks[seed] = tuple(chosen.tolist())
    assert len(set(picks.values())) > 1  # the seed, not the position, decides among ties
    assert int(_top(score, 0, torch.Generator()).sum()) == 0
    assert bool(_top(score, 8, torch.Generator()).all())

"""Budget allocation: the method note's ResNet18 test vectors and the properties that must hold
for any weights."""

import random

import pytest

from stages.allocation import BudgetError, allocate

# Test vector from the method note (ResNet18, stem first), not a product constant.
W = [
    0.0572,
    0.1854,
    0.2129,
    0.2506,
    0.2758,
    0.3549,
    0.4884,
    0.5102,
    0.5568,
    0.6739,
    0.8143,
    0.8277,
    0.8623,
    0.9410,
    0.9902,
    0.9986,
    1.0,
]
N = [65_536] * 5 + [32_768] * 4 + [16_384] * 4 + [8_192] * 4
EXPECTED = {
    50_000: [
        286,
        927,
        1064,
        1253,
        1379,
        1774,
        2442,
        2551,
        2784,
        3369,
        4071,
        4138,
        4311,
        4705,
        4951,
        4993,
        5000,
    ],
    100_000: [
        634,
        2053,
        2358,
        2775,
        3055,
        3931,
        5409,
        5651,
        6167,
        7464,
        9019,
        9167,
        9550,
        8192,
        8192,
        8192,
        8192,
    ],
    300_000: [
        4424,
        14339,
        16466,
        19382,
        21331,
        27449,
        32768,
        32768,
        32768,
        16384,
        16384,
        16384,
        16384,
        8192,
        8192,
        8192,
        8192,
    ],
}


@pytest.mark.parametrize("budget", sorted(EXPECTED))
def test_matches_the_published_resnet18_allocation(budget: int) -> None:
    r = allocate(budget, N, W)
    assert sum(r) == budget
    assert all(abs(a - b) <= 1 for a, b in zip(r, EXPECTED[budget])), r


@pytest.mark.parametrize("seed", range(20))
def test_properties_on_random_layers(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 12)
    counts = [rng.choice([4, 16, 64, 256, 1024]) for _ in range(n)]
    sens = [rng.random() for _ in range(n)]
    budget = rng.randint(1, sum(counts))
    for strategy in ("sensitivity", "uniform", "proportional"):
        r = allocate(budget, counts, sens, strategy)
        assert sum(r) == budget
        assert all(0 <= a <= c for a, c in zip(r, counts))


def test_order_follows_sensitivity_among_equal_layers() -> None:
    counts = [1000] * 5
    sens = [0.1, 0.5, 0.3, 0.9, 0.7]
    r = allocate(1500, counts, sens)
    assert sorted(range(5), key=lambda i: r[i]) == sorted(range(5), key=lambda i: sens[i])


def test_budget_equal_to_total_keeps_every_relu() -> None:
    assert allocate(sum(N), N, W) == N


def test_tiny_budget() -> None:
    r = allocate(1, N, W)
    assert sum(r) == 1 and r[-1] == 1  # the single ReLU goes to the most sensitive layer


def test_uniform_keeps_the_same_fraction_everywhere() -> None:
    r = allocate(sum(N) // 4, N, strategy="uniform")
    assert r == [n // 4 for n in N]


def test_budget_zero_is_the_linearised_network() -> None:
    for strategy in ("sensitivity", "uniform", "proportional"):
        assert allocate(0, N, [0.5] * len(N), strategy) == [0] * len(N)


def test_zero_sensitivity_layers_fill_last() -> None:
    r = allocate(150, [100, 100], [0.0, 1.0])
    assert r == [50, 100]


@pytest.mark.parametrize("budget", [-1, -5, sum(N) + 1])
def test_impossible_budgets_are_clear_errors(budget: int) -> None:
    with pytest.raises(BudgetError, match="budget"):
        allocate(budget, N, W)


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown allocation"):
        allocate(10, N, W, "random")

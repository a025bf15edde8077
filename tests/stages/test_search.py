"""stages.stage2's mask searches beyond exact counts: the annealed searches settle, SNL spends one
global budget exactly, budget 0 is the linearised network, and equal work shares one key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from stages.artifacts import WEIGHTS, content_key, load_state, read_meta
from stages.config import (
    ConfigError,
    DataConfig,
    OptimConfig,
    Stage1Config,
    Stage2Config,
    canonical,
    check_combination,
)
from stages.partial_relu import PartialReLU, model_relu_count, partial_relus
from stages.search import AnnealedSearch
from stages.stage1 import build_from_meta, run_stage1
from stages.stage2 import run_stage2

CPU = torch.device("cpu")


def _optim(epochs: int) -> OptimConfig:
    return OptimConfig(epochs=epochs, lr=0.05, batch_size=64)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store") / "stage1"
    cfg = Stage1Config("resnet20", DataConfig("digits", limit=400), optim=_optim(3))
    run_stage1(cfg, out, content_key(1, cfg), device="cpu")
    return out


def _model(folder: Path, teacher: Path) -> torch.nn.Module:
    meta1 = read_meta(teacher)
    assert meta1 is not None
    model = build_from_meta(meta1, CPU)
    model.load_state_dict(load_state(folder / WEIGHTS))
    return model


def test_annealed_search_settles_where_the_per_epoch_search_keeps_flipping(
    teacher: Path, tmp_path: Path
) -> None:
    runs = {}
    for method in ("activation-ema", "activation"):
        cfg = Stage2Config(budget=1500, method=method, optim=_optim(8))
        rows: list[dict] = []
        run_stage2(cfg, teacher, tmp_path / method, "k", rows.append, device="cpu")
        meta = read_meta(tmp_path / method)
        assert meta is not None and meta["relu_count"] == 1500
        assert meta["hamming"] == [r["hamming"] for r in rows]
        runs[method] = rows
    ema, per_epoch = runs["activation-ema"], runs["activation"]
    assert len(ema) == len(per_epoch) == 8
    # The annealed search linearises step by step: the kept count falls every search epoch and
    # reaches the budget at the last one (6 of 8: the last quarter keeps the mask fixed).
    kept = [r["mask_relus"] for r in ema]
    assert all(a > b for a, b in zip(kept[:6], kept[1:6])) and kept[5:] == [1500] * 3
    # Settled: no position moves over the last epochs; only at-budget epochs can be picked.
    assert [r["hamming"] for r in ema[-2:]] == [0.0, 0.0]
    best = max(r["val_acc"] for r in ema[5:])
    assert read_meta(tmp_path / "activation-ema")["val_acc"] == pytest.approx(best)  # type: ignore[index]
    # The note's search jumps to the budget at once and never stops moving positions.
    assert [r["mask_relus"] for r in per_epoch] == [1500] * 8
    assert min(r["hamming"] for r in per_epoch[1:]) > 0.0


def test_annealed_search_linearises_a_few_positions_at_a_time_by_the_damage_they_prevent() -> None:
    """activation-ema's rule on its own: the kept count falls in many small steps within the
    search, never rises, and lands on r_l at its last step; the score of a position is what
    linearising it would change (|relu(x_T) - x_S|), so a position whose pre-activation is
    strongly negative keeps its ReLU even while kept, where |a_T - a_S| would be 0."""
    layer = PartialReLU()
    layer.set_mask(torch.ones(1, 16, 16))
    cfg = Stage2Config(budget=3, optim=OptimConfig(epochs=4))  # search: 3 epochs, freeze 1
    search = AnnealedSearch(cfg, {"l": layer}, {"l": 3}, steps_per_epoch=20)
    x = torch.linspace(-1.0, 0.5, 256).view(1, 1, 16, 16).repeat(8, 1, 1, 1)  # negative first
    kept = []
    for _ in range(search.search_steps + 5):
        post = layer(x)
        search.observe({"l": torch.relu(x)}, {"l": post}, {"l": x})
        kept.append(int(layer.mask.sum()))
    assert search.search_steps == 60
    assert all(a >= b for a, b in zip(kept, kept[1:])) and len(set(kept)) > 20
    assert kept[59:] == [3] * 6 and 45 < kept.index(3) <= 59  # the cubic tail is gentle
    assert layer.mask.view(-1).nonzero().view(-1).tolist() == [0, 1, 2]  # the most negative


def test_taylor_search_keeps_the_relus_whose_linearisation_would_cost_the_loss_most() -> None:
    """taylor-ema's score is gathered in the backward pass: the batch mean of g * min(x, 0),
    the first-order loss change of linearising each position (g: the loss gradient at the
    layer's output). Signed: a position whose ReLU the loss would rather lose ranks last,
    however large its change; evaluation passes (no gradient) leave it alone."""
    layer = PartialReLU()
    layer.set_mask(torch.ones(1, 2, 4))
    cfg = Stage2Config(budget=2, method="taylor-ema", optim=OptimConfig(epochs=4))
    search = AnnealedSearch(cfg, {"l": layer}, {"l": 2}, steps_per_epoch=5)
    x = torch.tensor([[-1.0, -2.0, -3.0, -4.0, 1.0, -0.1, -8.0, -0.5]]).view(1, 1, 2, 4)
    x = torch.cat([x, 3 * x])  # a batch of two: the score is their mean
    g = torch.tensor([1.0, 1.0, 1.0, 1.0, 5.0, 5.0, -1.0, 9.0]).view(1, 1, 2, 4)
    with torch.no_grad():
        layer(x)  # an evaluation pass: nothing to gather
    assert search.score["l"].abs().sum() == 0
    for step in range(search.search_steps):
        inp = x.clone().requires_grad_()
        out = layer(inp)
        search.observe({}, {}, {})
        (g * out).sum().backward()  # dL/d(out) = g for both images
        if step == 0:
            first = (1 - search.momentum) * (g * x.clamp(max=0)).mean(0)
            assert torch.allclose(search.score["l"], first)
    # mean of g * min(x, 0) over the two images: -2, -4, -6, -8, 0, -1, 16, -9. Kept: x = -8
    # with g = -1 (linearising lowers its output, which raises the loss) and x > 0 (no change);
    # x = -0.5 with g = 9 goes, although it moves the loss most (by -9: the loss would fall).
    assert layer.mask.view(-1).nonzero().view(-1).tolist() == [4, 6]


def test_taylor_search_keeps_every_layer_budget_and_settles(teacher: Path, tmp_path: Path) -> None:
    cfg = Stage2Config(budget=1500, method="taylor-ema", init="teacher", optim=_optim(4))
    rows: list[dict] = []
    run_stage2(cfg, teacher, tmp_path, "k", rows.append, device="cpu")
    meta = read_meta(tmp_path)
    assert meta is not None and meta["relu_count"] == 1500
    assert meta["relu_per_layer"] == list(meta["layer_budgets"].values())
    assert [r["mask_relus"] for r in rows][-1] == 1500 and rows[-1]["hamming"] == 0.0


def test_snl_spends_one_global_budget_exactly(teacher: Path, tmp_path: Path) -> None:
    budget = 701
    cfg = canonical(
        Stage2Config(
            budget=budget, method="snl", snl_alpha_lr=0.05, snl_growth=1.5, optim=_optim(4)
        )
    )
    rows: list[dict] = []
    result = run_stage2(cfg, teacher, tmp_path / "snl", "k", rows.append, device="cpu")
    meta = read_meta(tmp_path / "snl")
    assert meta is not None
    assert (meta["allocation"], meta["method"], meta["init"]) == ("global", "snl", "teacher")
    model = _model(tmp_path / "snl", teacher)
    total, per_layer = model_relu_count(model)
    assert total == budget == result.metrics["relu_count"]
    assert meta["layer_budgets"] == per_layer  # what SNL ended with, per layer
    assert len({n for n, c in per_layer.items() if c > 0}) > 1  # spread, not one layer's top-B
    assert not [k for k in load_state(tmp_path / "snl" / WEIGHTS) if k.endswith(".alpha")]
    # The L1 search drives the count of live alphas down epoch after epoch.
    counts = [r["snl_count"] for r in rows]
    assert counts == sorted(counts, reverse=True) and counts[-1] < counts[0]
    assert isinstance(meta["snl_converged"], bool) and meta["snl_lambda"] >= cfg.snl_lambda


def test_alpha_relaxation_keeps_senet_per_layer_budgets(teacher: Path, tmp_path: Path) -> None:
    """`alpha`: SNL's relaxation inside SENet's r_l, so allocation and mask search can be
    told apart; every layer ends at exactly its r_l."""
    cfg = Stage2Config(budget=701, method="alpha", snl_alpha_lr=0.05, optim=_optim(2))
    assert canonical(cfg).init == "teacher" and canonical(cfg).allocation == "sensitivity"
    run_stage2(canonical(cfg), teacher, tmp_path / "a", "k", device="cpu")
    meta = read_meta(tmp_path / "a")
    assert meta is not None and (meta["method"], meta["allocation"]) == ("alpha", "sensitivity")
    total, per_layer = model_relu_count(_model(tmp_path / "a", teacher))
    assert total == 701 and per_layer == meta["layer_budgets"]
    assert len(set(per_layer.values())) > 1  # the sensitivity allocation, not an even split


def test_budget_zero_is_the_linearised_network(teacher: Path, tmp_path: Path) -> None:
    run_stage2(Stage2Config(budget=0, optim=_optim(1)), teacher, tmp_path / "z", "k", device="cpu")
    model = _model(tmp_path / "z", teacher)
    assert model_relu_count(model)[0] == 0
    assert all(not m.mask.any() for _, m in partial_relus(model))
    x = torch.randn(3, 1, 8, 8)
    model.eval()
    a, b = model(x), model(2 * x)  # no ReLU left: the logits are affine in the input
    assert torch.allclose(b - a, model(3 * x) - b, atol=1e-4)


def test_equal_work_has_one_canonical_config() -> None:
    zero = {canonical(Stage2Config(budget=0, allocation=a, method=m))
            for a in ("sensitivity", "uniform", "proportional")
            for m in ("activation-ema", "activation", "snl")}  # fmt: skip
    assert len(zero) == 1
    snl = {canonical(Stage2Config(budget=5, allocation=a, method="snl", init=i))
           for a in ("sensitivity", "uniform") for i in ("random", "teacher")}  # fmt: skip
    assert [(c.allocation, c.init) for c in snl] == [("global", "teacher")]
    ours = Stage2Config(budget=5, allocation="uniform", init="random")
    assert canonical(ours) == ours


def test_search_allocation_ranks_every_layer_by_one_loss_score() -> None:
    """allocation `search`: one top-k over all layers' taylor-ema scores, k annealed down to the
    budget, so the per-layer counts are whatever the scores make them (here 3 in one layer,
    0 in the other), and the total lands exactly on the budget."""
    a, b = PartialReLU(), PartialReLU()
    for layer in (a, b):
        layer.set_mask(torch.ones(1, 2, 4))
    cfg = Stage2Config(budget=3, allocation="search", optim=OptimConfig(epochs=4))
    sizes = {"a": 8, "b": 8}  # the caps: a layer may keep all its positions or none
    search = AnnealedSearch(cfg, {"a": a, "b": b}, sizes, steps_per_epoch=5, total=3)
    x = -torch.ones(2, 1, 2, 4)
    g_a = torch.tensor([-3.0, -2.0, -1.5, -1.0, 0.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 4)
    g_b = torch.full((1, 1, 2, 4), -0.5)  # every position of b matters less than a's top three
    kept = []
    for _ in range(search.search_steps):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_a, out_b = a(xa), b(xb)
        search.observe({}, {}, {})
        ((g_a * out_a).sum() + (g_b * out_b).sum()).backward()
        kept.append(int(a.mask.sum() + b.mask.sum()))
        assert search.at_budget() == (kept[-1] <= 3)
    assert all(p >= q for p, q in zip(kept, kept[1:])) and kept[-1] == 3
    assert a.mask.view(-1).nonzero().view(-1).tolist() == [0, 1, 2] and not b.mask.any()


def test_search_allocation_meets_the_budget_exactly_and_settles(
    teacher: Path, tmp_path: Path
) -> None:
    """On a trained teacher: the budget exactly, the counts recorded as the search ended them
    (and checked against the masks at commit), not the sensitivity allocation's, and the mask
    still over the frozen epochs."""
    cfg = Stage2Config(budget=1500, allocation="search", init="teacher", optim=_optim(4))
    rows: list[dict] = []
    run_stage2(cfg, teacher, tmp_path / "s", "k", rows.append, device="cpu")
    meta = read_meta(tmp_path / "s")
    assert meta is not None and meta["relu_count"] == 1500 and meta["allocation"] == "search"
    total, per_layer = model_relu_count(_model(tmp_path / "s", teacher))
    assert total == 1500 and per_layer == meta["layer_budgets"]
    run_stage2(canonical(dataclasses.replace(cfg, allocation="sensitivity")), teacher,
               tmp_path / "w", "k", device="cpu")  # fmt: skip
    waterfilled = read_meta(tmp_path / "w")
    assert waterfilled is not None and waterfilled["layer_budgets"] != meta["layer_budgets"]
    assert [r["mask_relus"] for r in rows][-1] == 1500 and rows[-1]["hamming"] == 0.0


@pytest.mark.parametrize(
    ("method", "granularity", "key"),
    [("activation-ema", "pixel", "method"), ("alpha", "pixel", "method"),
     ("taylor-ema", "channel", "granularity")],
)  # fmt: skip
def test_search_allocation_needs_taylor_scores_on_single_positions(
    method: str, granularity: str, key: str
) -> None:
    cfg = Stage2Config(budget=5, allocation="search", method=method, granularity=granularity)
    with pytest.raises(ConfigError) as e:
        check_combination(cfg)
    assert e.value.key == key
    snl = Stage2Config(budget=5, allocation="search", method="snl")
    check_combination(snl)  # SNL ignores the allocation, as it does every other one
    assert canonical(snl).allocation == "global"

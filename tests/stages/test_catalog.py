"""stages.catalog: the torch-free facts agree with what the torch modules compute."""

from __future__ import annotations

import pytest

from stages import catalog
from stages.models import MODELS


def test_every_model_and_dataset_shape_is_in_the_table() -> None:
    shapes = set(catalog.INPUT_SHAPES.values())
    wanted = {(m, c, s, stem) for m in MODELS for (c, s) in shapes for stem in (True, False)}
    assert set(catalog.RELU_TOTALS) == wanted


def test_the_table_matches_a_traced_forward_pass() -> None:
    """A model whose ReLUs change makes the table stale: this prints the entries to paste."""
    traced = {k: catalog.trace_relu_total(*k) for k in catalog.RELU_TOTALS}
    stale = {k: v for k, v in traced.items() if catalog.RELU_TOTALS[k] != v}
    assert not stale, "stages/catalog.py RELU_TOTALS is stale; correct entries: " + "".join(
        f"\n    {k!r}: {v}," for k, v in stale.items()
    )


def test_an_unknown_shape_is_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(catalog.RELU_TOTALS, ("resnet20", 1, 8, True))
    assert catalog.relu_total("resnet20", "digits") == 11_776  # the demo file's comment


def test_the_model_names_are_the_builders() -> None:
    assert catalog.MODELS == tuple(sorted(MODELS))

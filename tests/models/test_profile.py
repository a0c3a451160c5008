"""FLOP and parameter counting, and the zoo table behind ``densenet models``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from densenet.models import count_flops, count_params, create_model, list_models, model_info, model_table
from tests.models.zoo_helpers import meta_model


def test_count_flops_counts_a_multiply_add_as_two() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 5 * 5, 4))
    assert count_flops(model, (3, 5, 5)) == 2 * (3 * 9 * 8 * 25) + 2 * (200 * 4)
    assert count_params(model) == (3 * 9 * 8 + 8) + 16 + (200 * 4 + 4)


def test_count_flops_leaves_the_model_as_it_was() -> None:
    model = create_model("densenet40_k12").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, (3, 32, 32))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(("name", "gflops"), [
    ("d2l_densenet", 0.258),  # the seed's network at 1x96x96
    ("densenet121", 2 * 2.834),  # torchvision reports 2.834 G multiply-adds
    ("densenet161", 2 * 7.728),
    ("resnet18", 2 * 1.814),
    ("resnet50", 2 * 4.089),
])
def test_flops_at_the_default_input(name: str, gflops: float) -> None:
    assert count_flops(meta_model(name), model_info(name).input_size) / 1e9 == pytest.approx(gflops, abs=0.001)


def test_model_table_rows() -> None:
    rows = model_table("d2l*")
    assert [r["name"] for r in rows] == ["d2l_densenet", "d2l_densenet_doubling", "d2l_resnet18"]
    first = rows[0]
    assert set(first) == {"name", "family", "source", "params", "gflops", "input_size"}
    assert first["params"] == 758_226 and first["gflops"] == pytest.approx(0.258, abs=5e-4)
    assert first["input_size"] == (1, 96, 96) and first["family"] == "densenet"


@pytest.mark.slow
def test_model_table_covers_the_registry() -> None:
    rows = model_table()
    assert [r["name"] for r in rows] == list_models()
    assert all(r["params"] == model_info(r["name"]).params and r["gflops"] > 0 for r in rows)


def test_summarize_is_the_seed_networks_printing_loop_as_data():
    from densenet.models import summarize

    doc = summarize("d2l_densenet")
    assert (doc["model"], doc["input_size"], doc["params"]) == ("d2l_densenet", [1, 96, 96], 758_226)
    assert round(doc["flops"] / 1e9, 3) == 0.258
    shapes = {row["name"]: tuple(row["output_shape"]) for row in doc["layers"]}
    assert shapes["stem"] == (1, 64, 24, 24) and shapes["denseblock1"] == (1, 192, 24, 24)
    assert shapes["transition3"] == (1, 120, 3, 3) and shapes["classifier"] == (1, 10)
    assert summarize("d2l_densenet", (3, 64, 64), num_classes=5)["layers"][-1]["output_shape"] == [1, 5]


def test_summarize_names_the_smallest_input_that_works():
    import pytest

    from densenet.errors import InputSizeError
    from densenet.models import summarize

    with pytest.raises(InputSizeError, match="smallest square input that works is 29x29"):
        summarize("d2l_densenet", (1, 16, 16))

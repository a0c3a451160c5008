"""evaluate() under a real 2-process gloo group: uneven shards gather to the numbers of the whole set at once."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from tests.engine import gather_worker as worker

from densenet.engine.evaluate import evaluate


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("gather")
    mp.spawn(worker.run, args=(str(out / "init"), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def test_gather_rows_concatenates_uneven_and_empty_shards_in_rank_order(ranks):
    for result in ranks:
        assert torch.equal(result["rows"], torch.arange(10.0).view(5, 2))  # 2 rows + 3 rows
        assert torch.equal(result["empty"], torch.ones(3, 2))  # rank 0 had none


@pytest.mark.parametrize("task", ["single", "multi"])
def test_every_rank_gets_the_metrics_of_the_whole_set(ranks, task):
    x, labels, multi = worker.dataset()
    y = multi if task == "multi" else labels
    whole = evaluate(worker.model(), [(x, y)], worker.CLASSES, multilabel=task == "multi",
                     tta="flip" if task == "multi" else None)
    assert ranks[0][task] == ranks[1][task]  # identical on both ranks
    assert ranks[0][task]["examples"] == worker.N
    for key, value in whole.items():
        exact = isinstance(value, list) or value is None
        assert ranks[0][task][key] == (value if exact else pytest.approx(value, rel=1e-6)), key

"""Evaluation: the loop's numbers on a model with known answers, and evaluate_run on a real trained run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tests.run_dirs import binary_run, multilabel_run
from torch import nn

from densenet.engine.config import load_preset
from densenet.engine.evaluate import evaluate, evaluate_run, per_class_accuracy
from densenet.engine.metrics import single_label_metrics
from densenet.engine.trainer import train
from densenet.errors import DataError


class Oracle(nn.Module):
    """Answers the class written in its input: logits 3 for that class, 0 for the others."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.anchor = nn.Parameter(torch.zeros(()))  # evaluate() reads the device from a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 3.0 * F.one_hot(x.long(), self.num_classes).float() + self.anchor  # (B,) -> (B, classes)


def test_loop_counts_every_example_once_across_batches() -> None:
    predicted = torch.tensor([0, 1, 2, 2, 1, 0, 2])
    labels = torch.tensor([0, 1, 2, 1, 1, 2, 2])
    batches = [(predicted[:4], labels[:4]), (predicted[4:], labels[4:])]
    model = Oracle(3).train()
    result = evaluate(model, batches, 3)
    assert model.training  # put back as it was
    assert result["examples"] == 7 and math.isclose(result["accuracy"], 5 / 7)
    assert result["confusion_matrix"] == [[1, 0, 0], [0, 2, 1], [1, 0, 2]]  # rows: true class
    expected_loss = F.cross_entropy(model(predicted), labels).item()
    assert math.isclose(result["loss"], expected_loss, rel_tol=1e-6)
    assert per_class_accuracy(result["confusion_matrix"], ["a", "b", "c"]) == {"a": 1.0, "b": 2 / 3, "c": 2 / 3}


def test_evaluate_run_reproduces_the_trainers_test_numbers_and_writes_its_files(tmp_path: Path,
                                                                              fashion_dir: Path) -> None:
    cfg = load_preset("d2l-fashion-mnist").replace({
        "data.data_dir": str(fashion_dir), "data.resize": 32, "data.train_subset": 256, "data.test_subset": 64,
        "run.batch_size": 64, "run.epochs": 1, "run.compile": False, "run.device": "cpu", "run.precision": "fp32"})
    run = tmp_path / "run"
    summary = train(cfg, run, progress=False)

    result = evaluate_run(run, test_subset=64, batch_size=16)
    assert result["examples"] == 64
    assert result["accuracy"] == summary["test_acc"]  # the same model on the same 64 images
    assert math.isclose(result["loss"], summary["test_loss"], rel_tol=1e-4)
    assert sum(map(sum, result["confusion_matrix"])) == 64 and len(result["classes"]) == 10
    assert result["per_class_accuracy"].keys() == set(result["classes"])
    assert json.loads((run / "evaluation.json").read_text()) == json.loads(json.dumps(result))
    assert (run / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def tiny_model(num_classes: int) -> nn.Module:
    """A small real network that is not mirror-symmetric (its head sees every position)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, num_classes))


def batches_of(x: torch.Tensor, y: torch.Tensor, size: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def mann_whitney(scores: torch.Tensor, truth: torch.Tensor) -> float:
    """AUROC by its definition: the fraction of (positive, negative) pairs in order, ties counting half."""
    diff = scores[truth == 1][:, None] - scores[truth == 0][None, :]
    return ((diff > 0).double() + 0.5 * (diff == 0).double()).mean().item()


INPUTS = torch.randn(10, 3, 6, 6, generator=torch.Generator().manual_seed(1))


def test_single_label_loss_accuracy_and_metrics_cover_the_whole_set() -> None:
    model, y = tiny_model(4), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    result = evaluate(model, batches_of(INPUTS, y), 4, classes=list("abcd"))
    assert list(result) == ["accuracy", "loss", "examples", "confusion_matrix", "top5_accuracy", "macro_f1", "ece"]
    with torch.no_grad():
        logits = model(INPUTS)
    assert math.isclose(result["loss"], F.cross_entropy(logits, y).item(), rel_tol=1e-6)
    assert result["accuracy"] == (logits.argmax(1) == y).sum().item() / 10 and result["examples"] == 10
    assert result["top5_accuracy"] is None  # 4 classes
    direct = single_label_metrics(torch.softmax(logits, 1), y, list("abcd"))  # the metrics of the whole set at once
    assert result["confusion_matrix"] == direct["confusion_matrix"]
    assert (result["macro_f1"], result["ece"]) == pytest.approx((direct["macro_f1"], direct["ece"]))


def test_multilabel_loss_is_the_mean_bce_and_auroc_the_pair_fraction() -> None:
    model = tiny_model(3)
    y = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0],
                      [0, 1, 0], [1, 1, 1], [0, 0, 1], [1, 0, 1], [0, 1, 0]], dtype=torch.float32)
    result = evaluate(model, batches_of(INPUTS, y), 3, multilabel=True)
    assert list(result) == ["loss", "examples", "auroc", "mean_auroc", "average_precision", "map", "f1_at_0.5",
                            "f1_best", "thresholds", "undefined"]
    with torch.no_grad():
        logits = model(INPUTS)
    assert math.isclose(result["loss"], F.binary_cross_entropy_with_logits(logits, y).item(), rel_tol=1e-6)
    probs = torch.sigmoid(logits)
    expected = {str(c): mann_whitney(probs[:, c], y[:, c]) for c in range(3)}
    assert result["auroc"] == pytest.approx(expected) and result["undefined"] == []
    assert result["mean_auroc"] == pytest.approx(sum(expected.values()) / 3)
    json.dumps(result, allow_nan=False)


def test_targets_that_do_not_fit_the_task_are_refused() -> None:
    with pytest.raises(DataError, match=r"multi-label evaluation needs \(B, classes\) 0/1 targets"):
        evaluate(tiny_model(3), [(INPUTS, torch.zeros(10, dtype=torch.int64))], 3, multilabel=True)


def test_evaluate_run_of_a_two_class_run_writes_its_roc_curve_and_strict_json(tmp_path: Path) -> None:
    run = binary_run(tmp_path)
    result = evaluate_run(run, tta="flip")
    assert result["examples"] == 12 and result["classes"] == ["green", "red"]
    assert result["top5_accuracy"] is None and (result["multilabel"], result["tta"]) == (False, "flip")
    assert sum(map(sum, result["confusion_matrix"])) == 12 and set(result["per_class_accuracy"]) == {"green", "red"}
    saved = (run / "evaluation.json").read_text()
    assert json.loads(saved) == json.loads(json.dumps(result, allow_nan=False)) and "NaN" not in saved
    for name in ("roc_curves.png", "confusion_matrix.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_run_of_a_multilabel_run_reports_auroc_per_class(tmp_path: Path) -> None:
    run = multilabel_run(tmp_path)
    result = evaluate_run(run)
    assert result["multilabel"] is True and result["examples"] == 8
    assert set(result["auroc"]) == {"blue", "green", "red"} and "accuracy" not in result
    defined = [v for v in result["auroc"].values() if v is not None]
    assert result["mean_auroc"] == pytest.approx(sum(defined) / len(defined))
    assert (run / "roc_curves.png").is_file() and not (run / "confusion_matrix.png").exists()
    assert json.loads((run / "evaluation.json").read_text()) == json.loads(json.dumps(result, allow_nan=False))


def test_a_test_set_with_one_class_of_two_has_no_roc_curve_and_no_nan(tmp_path: Path) -> None:
    run = binary_run(tmp_path, test_classes=("green",))
    (run / "roc_curves.png").write_bytes(b"left by an earlier evaluation")
    result = evaluate_run(run)
    assert result["per_class_accuracy"]["red"] is None and result["examples"] == 12
    assert not (run / "roc_curves.png").exists()
    json.dumps(result, allow_nan=False)

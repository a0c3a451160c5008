"""Evaluation: the loop's numbers on a model with known answers, and evaluate_run on a real trained run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from densenet.engine.config import load_preset
from densenet.engine.evaluate import evaluate, evaluate_run, per_class_accuracy
from densenet.engine.trainer import train


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

"""Every row of README.md's "What happens when things go wrong" is checked where users meet it: the CLI.

``CLI_TESTS`` maps each row to the test that runs the real CLI for it (exit status, the one ``error:``
line); ``API_ONLY`` names the rows that only a Python caller can meet, and why. A README row that is
in neither, or a test that is missing, not named by its row, or never runs the CLI, fails here.
The last tests below are the CLI checks of rows that had only Python API tests.
"""

from __future__ import annotations

import ast
import hashlib
import pathlib
import pickle
import re
from pathlib import Path

import torch
from PIL import Image

from densenet.data._specs import CIFAR10
from tests.cli.reliability import error_line

REPO = Path(__file__).resolve().parents[2]
BAD_INPUT = "tests/cli/test_bad_input.py"
UNTRUSTED = "tests/cli/test_untrusted_files.py"
ROWS = "tests/cli/test_readme_rows.py"
RELIABILITY = "tests/engine/test_reliability.py"

WEIGHTS = "tests/cli/test_bad_weights.py"
MULTI = "tests/cli/test_bad_multilabel.py"
AUGMENT = "tests/cli/test_bad_augmentation.py"
RECIPE = "tests/cli/test_recipe.py"
EXPORT = "tests/export/test_cli_export.py"

CLI_TESTS = {
    "`export --format openvino` with an `--output` that is not a `.xml` file":
        f"{EXPORT}::test_an_openvino_output_that_is_no_xml_file_is_refused_before_any_work",
    "`export --format onnx --quantize int8` with `--opset` below 13":
        f"{EXPORT}::test_onnx_int8_below_opset_13_is_refused_before_any_work",
    "an unknown `--backend` for `evaluate` or `predict`":
        "tests/cli/test_backend_flags.py::test_an_unknown_backend_is_a_usage_error",
    "`--mixup` or `--cutmix` below 0, `--mix-prob`/`--mix-switch-prob` outside [0, 1]":
        f"{AUGMENT}::test_bad_mixing_and_augmentation_options",
    "an unknown `--augment`, `--ra-magnitude` outside 0 to 10, `--ra-ops 0`":
        f"{AUGMENT}::test_bad_mixing_and_augmentation_options",
    "`--mixup`/`--cutmix` on a multi-label run":
        f"{AUGMENT}::test_mixing_a_multi_label_csv_says_why_before_writing_anything",
    "`--accum-steps 0`, or `--ema` outside (0, 1)": f"{RECIPE}::test_bad_recipe_values",
    "`densenet average` with fewer checkpoints kept than `--last K`":
        f"{RECIPE}::test_average_with_fewer_checkpoints_kept_than_asked",
    "`explain --class` names a class the run does not know":
        f"{MULTI}::test_explain_with_a_class_the_run_does_not_know",
    "`explain --layer` names a layer a ResNet baseline does not have":
        f"{MULTI}::test_explain_on_a_layer_a_resnet_baseline_does_not_have",
    "a multi-label CSV whose test split names a class the train split lacks":
        f"{MULTI}::test_a_multi_label_csv_whose_test_split_names_a_class_the_train_split_lacks",
    "a class with no positive picture in the train split":
        f"{MULTI}::test_a_class_with_no_positive_picture_is_warned_about_and_its_auroc_is_undefined",
    "`--init-from` a path that does not exist": f"{WEIGHTS}::test_a_source_that_does_not_exist",
    "weights of another architecture (a ResNet's into a DenseNet)": f"{WEIGHTS}::test_weights_of_another_architecture",
    "a truncated `.pth`": f"{WEIGHTS}::test_a_truncated_pth",
    "a `.pth` that carries code": f"{WEIGHTS}::test_a_pth_that_carries_code_is_refused_and_never_runs",
    "an unknown `--freeze-until` stage, or one the network lacks": f"{WEIGHTS}::test_bad_fine_tuning_options",
    "`--backbone-lr-scale` of zero or below": f"{WEIGHTS}::test_bad_fine_tuning_options",
    "`--init-from` together with `--resume`": f"{WEIGHTS}::test_init_from_together_with_resume",
    "a file is missing from `--data-dir`": f"{BAD_INPUT}::test_damaged_dataset_files",
    "an empty file": f"{BAD_INPUT}::test_damaged_dataset_files",
    "a truncated download": f"{BAD_INPUT}::test_damaged_dataset_files",
    "random bytes in place of a dataset file": f"{BAD_INPUT}::test_damaged_dataset_files",
    "a labels file where the images file belongs": f"{BAD_INPUT}::test_damaged_dataset_files",
    "a file with the wrong magic number": f"{BAD_INPUT}::test_damaged_dataset_files",
    "a well-formed but modified file (one label changed)": f"{BAD_INPUT}::test_damaged_dataset_files",
    "the same data with a different gzip header (Debian)": f"{BAD_INPUT}::test_debian_style_gzip_headers_are_accepted",
    "an image folder whose batches cannot fit in memory at the chosen `--resize` (streamed or not)":
        f"{BAD_INPUT}::test_an_image_folder_too_big_for_memory_fails_before_decoding",
    "images too small for the model (`--resize 16` for `d2l_densenet`)":
        f"{BAD_INPUT}::test_images_too_small_for_the_model_name_the_smallest_size",
    "`densenet summary` with an input too small":
        f"{BAD_INPUT}::test_images_too_small_for_the_model_name_the_smallest_size",
    "a channel count of 0, or a malformed `--input-size`": f"{BAD_INPUT}::test_channel_count",
    "an unknown model (`--model densenet122`)":
        f"{BAD_INPUT}::test_unknown_model_suggests_close_names_before_touching_the_data",
    "an unknown preset": f"{BAD_INPUT}::test_unknown_preset_lists_the_shipped_ones",
    "a zero or negative batch size or epoch count, a zero or NaN learning rate":
        f"{BAD_INPUT}::test_invalid_option_values",
    "a subset larger than the data": f"{BAD_INPUT}::test_subset_larger_than_the_data",
    "`evaluate`, `predict`, `export` or `train --resume` on a folder that is not a run directory":
        f"{BAD_INPUT}::test_a_folder_that_is_not_a_run_directory",
    "`model.safetensors` and `model.json` from different models":
        f"{BAD_INPUT}::test_weights_that_do_not_match_model_json",
    "a truncated or corrupt `checkpoints/last.pt`": f"{BAD_INPUT}::test_a_truncated_checkpoint",
    "`predict RUN good.png bad.png`": f"{BAD_INPUT}::test_an_unreadable_picture_does_not_stop_the_others",
    "`predict` where no picture can be read": f"{BAD_INPUT}::test_an_unreadable_picture_does_not_stop_the_others",
    "a checkpoint that carries code (a pickle whose `__reduce__` runs a function)":
        f"{UNTRUSTED}::test_a_checkpoint_that_carries_code_is_refused_and_never_run",
    "a `.pt` file given where weights are expected (`densenet.load(\"x.pt\")`, `predict x.pt ...`)":
        f"{UNTRUSTED}::test_pickled_weights_are_never_loaded",
    "a pickle renamed to `model.safetensors`": f"{ROWS}::test_a_pickle_renamed_to_model_safetensors_through_the_cli",
    "a CIFAR batch file that carries code": f"{ROWS}::test_a_cifar_batch_that_carries_code_through_the_cli",
    "the disk fills up while a checkpoint or the weights are written":
        f"{RELIABILITY}::test_full_disk_through_the_cli_says_what_to_do",
    "the disk fills up while a `metrics.jsonl` row is appended":
        f"{RELIABILITY}::test_full_disk_through_the_cli_says_what_to_do",
    "out of memory (GPU or CPU)": f"{RELIABILITY}::test_out_of_memory_through_the_cli",
    "the loss becomes NaN or infinite": f"{RELIABILITY}::test_a_diverging_loss_through_the_cli",
    "Ctrl-C (SIGINT)": "tests/engine/test_trainer.py::test_sigint_saves_and_exits_cleanly_then_resume_finishes",
    "SIGTERM (a job scheduler, `kill`)": f"{RELIABILITY}::test_sigterm_saves_and_exits_cleanly_like_sigint",
    "SIGKILL or a power cut at any moment":
        f"{RELIABILITY}::test_sigkill_inside_a_checkpoint_write_leaves_the_previous_or_the_next_file",
    "the training process killed while its DataLoader workers decode pictures":
        f"{RELIABILITY}::test_sigkill_at_random_moments_never_corrupts_the_run",
    "killed before the first epoch finished": f"{RELIABILITY}::test_a_run_killed_in_its_first_epoch_starts_again",
}

API_ONLY = {
    "image and label counts disagree (only possible for files without a known checksum)":
        "every IDX dataset the CLI reads has known checksums, which catch such files first",
    "any bytes at all given to the IDX parser": "a property of densenet.data.read_idx, fuzzed in-process",
    "a built model fed the wrong number of channels (Python API)": "a Python API row",
    "any bytes at all given as a picture":
        "fuzzes the decoder in-process; the CLI's unreadable-picture rows are checked through `predict`",
    "a signal (Ctrl-C, SIGTERM, a DataLoader worker's SIGCHLD) in a process that compiled and freed OpenVINO models":
        "a property of any Python process using densenet.export's OpenVINO functions, checked in fresh processes",
}

# Calls that run the real CLI: the warm server, a subprocess, or a subprocess with an injected fault.
CLI_CALLS = {"densenet", "cli", "cli_with_fault", "run_cli", "start", "Popen", "cli_json_ok"}


def readme_rows() -> dict[str, str]:
    """situation -> the "test that proves it" cell, for each row of the section's tables."""
    text = (REPO / "README.md").read_text()
    section = text.split("## What happens when things go wrong", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith(("| situation", "|---")):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            assert len(cells) == 3, line
            rows[cells[0]] = cells[2]
    return rows


def calls_in(nodeid: str) -> set[str]:
    """The names of the functions the test ``path::name`` calls."""
    path, name = nodeid.split("::")
    tree = ast.parse((REPO / path).read_text())
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == name]
    assert len(functions) == 1, f"{nodeid} does not exist"
    return {(node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            for node in ast.walk(functions[0]) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)}


def test_every_readme_row_has_a_cli_test_or_a_reason():
    rows = readme_rows()
    assert len(rows) == 58
    assert set(rows) == set(CLI_TESTS) | set(API_ONLY) and not set(CLI_TESTS) & set(API_ONLY)
    for situation, nodeid in CLI_TESTS.items():
        assert nodeid in rows[situation], f"README's row {situation!r} does not name {nodeid}"
        assert calls_in(nodeid) & CLI_CALLS, f"{nodeid} never runs the CLI"
    for cell in rows.values():  # and every test a row names exists
        for named in re.findall(r"`(tests/[^`:]+::[a-z_0-9]+)", cell):
            calls_in(named)


def test_a_pickle_renamed_to_model_safetensors_through_the_cli(tmp_path, model_dir, densenet):
    run, marker, picture = tmp_path / "run", tmp_path / "pwned", tmp_path / "pic.png"
    run.mkdir()
    (run / "model.json").write_bytes((model_dir / "model.json").read_bytes())
    torch.save({"w": torch.zeros(2), "payload": _Exploit(marker)}, run / "model.safetensors")
    Image.new("L", (28, 28)).save(picture)
    message = error_line(densenet("predict", str(run), str(picture)), 1)
    assert message.startswith(f"{run}/model.safetensors is not a readable safetensors file (".lower())
    assert not marker.exists()


class _Exploit:
    """Unpickling this creates ``path``: the proof that code in a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def test_a_cifar_batch_that_carries_code_through_the_cli(tmp_path, densenet):
    # Through the CLI the checksums refuse it before anything is unpickled; read directly (no checksum), the
    # restricted unpickler does (tests/data/test_datasets.py::test_malicious_pickle_is_refused).
    marker, folder = tmp_path / "pwned", tmp_path / "cifar" / CIFAR10.cifar.extracted_dir
    folder.mkdir(parents=True)
    evil = pickle.dumps({b"data": _Exploit(marker), b"labels": []}, protocol=2)
    pickle.loads(evil)  # the payload is live
    assert marker.exists()
    marker.unlink()
    for member in CIFAR10.cifar.members:
        (folder / member).write_bytes(evil)
    run = tmp_path / "run"
    message = error_line(densenet("train", "--dataset", "cifar-10", "--data-dir", str(tmp_path / "cifar"),
                                  "--out", str(run), "--no-progress"), 1)
    assert message == (f"{folder}/data_batch_1: checksum mismatch (expected md5 c99cafc152244af753f735de768cd75f, "
                       f"got {hashlib.md5(evil).hexdigest()}). the file is damaged or a different version; delete it "
                       "and download it again, or replace it with a good copy.").lower()
    assert not marker.exists() and not run.exists()

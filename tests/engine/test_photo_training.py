"""Training on a generated photo folder through `densenet train`: streamed or held, resumed, predicted, evaluated.

Every run here is eager fp32 on the CPU with one thread, so the two data paths and an interrupted run can be
compared bit for bit. The folder holds every format and mode, and two unreadable files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.helpers import cli_json, run_cli
from tests.photo_files import (
    CLASS_COLOURS,
    picture,
    random_bytes,
    save,
    truncated_jpeg,
    write_photo_folder,
    write_plain_pngs,
)

import densenet
from densenet.data.catalogue import ImageList
from densenet.data.images import list_image_folder
from densenet.data.photos import EvalTransform
from densenet.data.stream import PhotoDataset, PhotoLoader
from densenet.engine.data import BUDGET_ENV, build_data, photo_transforms
from densenet.engine.distributed import DistContext
from densenet.engine.predict import predict
from densenet.engine.setup import model_card
from densenet.engine.trainer import train
from densenet.rundir import read_config

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
# 90 pictures and 2 unreadable files: 74 train (19 batches of 4 an epoch), 18 test; dropout, jitter and
# lighting on, so every random stream (the global one and the per-picture ones) has to resume exactly.
RUN = ("--model", "d2l_densenet", "--dataset", "image-folder", "--resize", "32", "--epochs", "2", "--batch-size", "4",
       "--lr", "0.05", "--momentum", "0.9", "--schedule", "cosine", "--normalize", "--color-jitter", "0.2",
       "--lighting", "0.1", "--model-kwargs", '{"drop_rate": 0.2}', "--seed", "3", "--no-compile",
       "--precision", "fp32", "--threads", "1", "--no-progress")
TRAIN, TEST, BATCHES = 74, 18, 19
BAD = ("red/cut.jpg", "green/noise.png")  # both land in the train split


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "densenet", *args]


def start(args: list[str], env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ENV, **(env or {})}, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert len(wa) > 50 and wa.keys() == wb.keys()
    assert [k for k in wa if not torch.equal(wa[k], wb[k])] == []


def rows(run: Path, keys=("epoch", "loss", "train_acc", "test_acc", "test_loss", "examples", "lr")) -> list:
    return [[json.loads(line)[k] for k in keys] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = write_photo_folder(tmp_path_factory.mktemp("photos") / "folder", per_class=30)
    truncated_jpeg(root / "red" / "cut.jpg")
    random_bytes(root / "green" / "noise.png")
    (root / "blue" / "notes.txt").write_text("not a picture, and ignored\n")
    train, test = list_image_folder(root, "train"), list_image_folder(root, "test")
    assert (len(train), len(test)) == (TRAIN, TEST) and {root / bad for bad in BAD} <= set(train.paths)
    return root


@pytest.fixture(scope="module")
def runs(folder, tmp_path_factory) -> dict:
    """The same run streamed by 2 workers (--stream) and held in memory (--no-stream), side by side.

    The memory budget points the other way each time, to show that the flags override it."""
    root = tmp_path_factory.mktemp("runs")
    out = {"stream": root / "stream", "memory": root / "memory"}
    procs = {"stream": start(["train", *RUN, "--data-dir", str(folder), "--stream", "--workers", "2",
                              "--out", str(out["stream"]), "--json"], env={BUDGET_ENV: "64G"}),
             "memory": start(["train", *RUN, "--data-dir", str(folder), "--no-stream", "--workers", "0",
                              "--out", str(out["memory"]), "--json"], env={BUDGET_ENV: "1K"})}
    for name, proc in procs.items():
        stdout, stderr = finish(proc)
        out[f"{name}_summary"], out[f"{name}_log"] = json.loads(stdout), stderr
    return out


def test_stream_and_no_stream_end_with_identical_weights_and_the_log_says_why(runs, folder):
    assert_same_weights(runs["stream"], runs["memory"])
    assert rows(runs["stream"]) == rows(runs["memory"]) and len(rows(runs["stream"])) == 2
    for split in ("train", "test"):
        assert f"data: streaming the {split} split of {folder}: --stream (" in runs["stream_log"]
        assert f"data: holding in memory the {split} split of {folder}: --no-stream (" in runs["memory_log"]
    assert "pictures need about" in runs["stream_log"]
    assert runs["stream_summary"]["data_paths"] == {"train": "stream", "test": "stream"}
    assert runs["memory_summary"]["data_paths"] == {"train": "memory", "test": "memory"}


def test_summary_counts_the_unreadable_files_and_the_data_wait(runs, folder):
    for name in ("stream", "memory"):
        summary, log = runs[f"{name}_summary"], runs[f"{name}_log"]
        assert summary == json.loads((runs[name] / "summary.json").read_text())
        assert summary["bad_files"] == len(BAD) and summary["epochs"] == 2
        assert summary["data_wait_s"] >= 0 and summary["data_wait_per_step_s"] >= 0
        for bad in BAD:  # named once, though both epochs visit them
            assert log.count(f"warning: skipping an unreadable picture: {folder / bad}") == 1, log[-2000:]


@pytest.mark.parametrize(("budget", "path"), [("1K", "stream"), ("64G", "memory")])
def test_the_automatic_choice_follows_the_memory_budget(runs, folder, monkeypatch, budget, path):
    monkeypatch.setenv(BUDGET_ENV, budget)
    config = read_config(runs["stream"]).replace({"data.stream": None, "data.workers": 0})
    lines: list[str] = []
    data = build_data(config, DistContext(), lines.append)
    assert data.paths == {"train": path, "test": path}
    train_line = next(line for line in lines if line.startswith("data: ") and " the train split " in line)
    if path == "stream":
        assert train_line.startswith(f"data: streaming the train split of {folder}: ")
        assert train_line.endswith("more than the in-memory budget of 0 MiB")
    else:
        assert train_line.startswith(f"data: holding in memory the train split of {folder}: ")
        assert train_line.endswith("within the budget of 65,536 MiB")


def test_under_torchrun_the_ranks_on_one_machine_share_the_automatic_budget(runs, monkeypatch):
    """Each rank holds its own copy of a split kept in memory, so 4 ranks on a machine get a quarter each."""
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    config = read_config(runs["stream"]).replace({"data.stream": None, "data.workers": 0})
    budgets = {}
    for world in (1, 4):  # alone, LOCAL_WORLD_SIZE is not read; rank 0 of 4 builds its loaders without a group
        lines: list[str] = []
        data = build_data(config, DistContext(rank=0, world_size=world), lines.append)
        line = next(line for line in lines if " the train split " in line)
        budgets[world] = float(re.search(r"budget of ([\d,]+) MiB", line).group(1).replace(",", ""))
        assert data.paths["train"] == "memory"
    assert budgets[4] == pytest.approx(budgets[1] / 4, rel=0.05)


def test_strict_fails_before_any_epoch_with_one_error_naming_the_bad_file(folder, tmp_path):
    result = run_cli("train", *RUN, "--data-dir", str(folder), "--strict", "--workers", "0", "--out",
                     str(tmp_path / "run"))
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--strict" in errors[0] and "Traceback" not in result.stderr
    assert any(str(folder / bad) in errors[0] for bad in BAD), errors
    assert "epoch 1/" not in result.stderr and "training: " not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_class_whose_pictures_are_all_unreadable_is_an_error_before_training(tmp_path):
    root = write_photo_folder(tmp_path / "pics", per_class=4, classes=("red", "green"))
    for i in range(3):
        truncated_jpeg(root / "blue" / f"cut{i}.jpg")
    random_bytes(root / "blue" / "noise.png")
    (root / "blue" / "notes.txt").write_text("the only readable file, and not a picture\n")
    result = run_cli("train", *RUN, "--data-dir", str(root), "--workers", "0", "--out", str(tmp_path / "run"))
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "class 'blue' has no readable training picture" in errors[0], result.stderr
    assert str(root / "blue" / "cut") in errors[0] and "training: " not in result.stderr


def test_a_run_stopped_mid_epoch_by_on_batch_end_resumes_bit_identical_with_no_workers(runs, tmp_path):
    config = read_config(runs["stream"]).replace({"data.workers": 0})
    seen: list[tuple[int, int]] = []
    stopped = train(config, tmp_path / "run", progress=False,
                    on_batch_end=lambda s: seen.append((s.epoch, s.batch)) or (s.epoch, s.batch) == (2, 7))
    assert stopped["interrupted"] and seen[-1] == (2, 7) and len(seen) == BATCHES + 7
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and (state["partial"]["epoch"], state["partial"]["batches"]) == (2, 7)
    train(config, tmp_path / "run", resume=True, progress=False)
    assert_same_weights(runs["stream"], tmp_path / "run")
    assert rows(runs["stream"]) == rows(tmp_path / "run")


def test_a_real_ctrl_c_mid_epoch_with_two_workers_then_resume_ends_bit_identical(runs, folder, tmp_path):
    """Ctrl-C in a terminal signals the whole process group, the DataLoader workers included."""
    run = tmp_path / "run"
    proc = start(["train", *RUN, "--data-dir", str(folder), "--stream", "--workers", "2", "--out", str(run)],
                 start_new_session=True)
    deadline = time.monotonic() + 240
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text().strip():
        assert time.monotonic() < deadline and proc.poll() is None, "training did not finish an epoch"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "error:" not in err, err[-3000:]
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    done = state["partial"]["batches"]
    assert state["epoch"] == 1 and state["partial"]["epoch"] == 2 and 1 <= done < BATCHES
    result = run_cli("train", "--resume", str(run), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming after epoch 1 and {done} batches of epoch 2:" in result.stderr
    assert_same_weights(runs["stream"], run)
    assert rows(runs["stream"]) == rows(run)


def test_predict_on_jpegs_of_other_aspect_ratios_gives_the_eval_paths_probabilities(runs, tmp_path):
    run = runs["stream"]
    config = read_config(run)
    model = densenet.load(run)
    _, eval_tf = photo_transforms(config)
    assert model.card.preprocessing.transform() == eval_tf  # model.json records the evaluation transform
    assert (eval_tf.size, eval_tf.resize_to, eval_tf.keep_aspect) == (32, 37, True)
    colours = list(CLASS_COLOURS.values())
    paths = [save(picture(w, h, colours[i % 3], mode, seed=i), tmp_path / f"new{i}.jpg")
             for i, (w, h, mode) in enumerate([(250, 400, "RGB"), (640, 180, "RGB"), (333, 500, "CMYK"),
                                               (1200, 900, "L")])]
    out = predict(run, paths, top_k=len(model.card.classes))
    files = ImageList(paths, torch.zeros(len(paths), dtype=torch.int64), model.card.classes, "new")
    loader = PhotoLoader(PhotoDataset(files, eval_tf, channels=3), 8, mean=model.card.preprocessing.mean,
                         std=model.card.preprocessing.std)
    (x, _), = list(loader)
    assert model.card.preprocessing.mean == [0.485, 0.456, 0.406]  # --normalize: ImageNet statistics
    with torch.no_grad():
        logits = model(x)
    reference = torch.log_softmax(logits, dim=1)  # the logits, up to one constant per picture
    assert [r["file"] for r in out] == [str(p) for p in paths]
    for i, result in enumerate(out):
        by_index = sorted(result["predictions"], key=lambda p: p["index"])
        assert [p["class"] for p in by_index] == model.card.classes
        log_probs = torch.tensor([p["probability"] for p in by_index], dtype=torch.float64).log().float()
        # A probability below float32's smallest (log < -87) is reported as 0: compare the others in log space.
        # (A bf16-trained run on an AMX Xeon gave one picture log-probabilities of -37.8, 0 and -232.1.)
        tiny = reference[i] < -87
        assert torch.allclose(log_probs[~tiny], reference[i][~tiny], atol=1e-5), (result, reference[i])
        assert all(by_index[c]["probability"] < 1e-37 for c in torch.nonzero(tiny).flatten().tolist())
    # The tolerance tells the transforms apart: the same pictures stretched give other outputs.
    stretched = PhotoLoader(PhotoDataset(files, EvalTransform(32, keep_aspect=False), channels=3), 8,
                            mean=model.card.preprocessing.mean, std=model.card.preprocessing.std)
    (xs, _), = list(stretched)
    with torch.no_grad():
        assert (torch.log_softmax(model(xs), dim=1) - reference).abs().max() > 1e-3


@pytest.mark.parametrize(("flags", "resize", "crop_pct"), [({}, "center-crop", 0.875),
                                                         ({"data.keep_aspect": False, "data.crop_pct": 1.0},
                                                          "stretch", 1.0)])
def test_model_json_records_the_evaluation_transform(runs, flags, resize, crop_pct):
    """--no-keep-aspect --crop-pct 1 is the stretching path of older run directories; model.json says which."""
    config = read_config(runs["stream"]).replace({"data.workers": 0, "data.interpolation": "bicubic", **flags})
    data = build_data(config, DistContext())
    pre = model_card(config, data).preprocessing
    assert (pre.resize, pre.crop_pct, pre.interpolation, pre.image_size) == (resize, crop_pct, "bicubic", 32)
    assert pre.transform() == photo_transforms(config)[1] == data.test_loader.dataset.transform


def test_evaluate_gives_the_accuracy_of_the_last_test_pass(runs):
    run = runs["stream"]
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    doc = cli_json("evaluate", str(run))
    assert doc["accuracy"] == last["test_acc"] and doc["loss"] == pytest.approx(last["test_loss"], rel=1e-4)
    readable_test = sum(sum(row) for row in doc["confusion_matrix"])
    assert doc["examples"] == readable_test == TEST


# ----------------------------------------------------------------- label files


def test_a_csv_label_file_trains_and_no_multi_label_refuses_a_multi_label_one(folder, tmp_path):
    pictures = sorted(p for p in folder.rglob("*") if p.suffix in (".jpg", ".png", ".bmp", ".webp")
                      and p.name not in ("cut.jpg", "noise.png"))
    (tmp_path / "labels.csv").write_text("path,label\n" + "".join(
        f"{p.relative_to(folder)},{'warm' if p.parent.name == 'red' else 'cool'}\n" for p in pictures))
    run = tmp_path / "run"
    result = run_cli("train", *RUN, "--dataset", "csv", "--data-dir", str(folder), "--labels",
                     str(tmp_path / "labels.csv"), "--epochs", "1", "--workers", "0", "--out", str(run), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["dataset"] == "csv" and summary["epochs"] == 1 and summary["bad_files"] == 0
    card = json.loads((run / "model.json").read_text())
    assert card["classes"] == ["cool", "warm"] and card["model_kwargs"]["num_classes"] == 2
    assert f"of {tmp_path / 'labels.csv'}: " in result.stderr

    (tmp_path / "multi.csv").write_text("path,labels\n" + "".join(
        f"{p.relative_to(folder)},{p.parent.name}|{'bright' if i % 2 else 'dark'}\n" for i, p in enumerate(pictures)))
    refused = run_cli("train", *RUN, "--dataset", "csv", "--data-dir", str(folder), "--labels",
                      str(tmp_path / "multi.csv"), "--no-multi-label", "--workers", "0",
                      "--out", str(tmp_path / "multi"))
    assert refused.returncode == 2, refused.stderr[-3000:]
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--no-multi-label" in errors[0] and str(tmp_path / "multi.csv") in errors[0]
    assert "Traceback" not in refused.stderr and not (tmp_path / "multi" / "checkpoints").exists()


# ----------------------------------------------------------------- memory stays flat as the folder grows


def _tree(root: int) -> list[int]:
    """``root`` and every process descended from it (the DataLoader workers)."""
    tree, i = [root], 0
    while i < len(tree):
        for children in Path(f"/proc/{tree[i]}/task").glob("*/children"):
            try:
                tree += [int(pid) for pid in children.read_text().split()]
            except OSError:  # the process has just exited
                pass
        i += 1
    return tree


def _kib(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_memory(args: list[str], stop_after: str | None = None) -> dict[str, float]:
    """Run ``densenet ARGS`` and sample its process tree every 50 ms; MiB.

    ``pss``, the peak over time of the summed proportional set sizes of the main process and its workers,
    is the honest total: it counts each shared page (torch's libraries, pages a forked worker still shares
    with its parent) once. Summing RSS or VmHWM would count those in every process, so a part that grows
    would look smaller beside them; ``getrusage(RUSAGE_CHILDREN)`` reports only the largest single process.
    ``main_hwm`` is the main process's own peak RSS, as the kernel keeps it. With ``stop_after``, the run is
    killed shortly after a log line starting with it (the data is loaded by then). ``train_decoded`` is the
    size of the decoded train split, as the log gives it.
    """
    proc = subprocess.Popen(cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    peak = {"pss": 0.0, "rss": 0.0, "main_hwm": 0.0, "processes": 0.0}
    done, log = threading.Event(), []

    def sample() -> None:
        while not done.is_set():
            pids = _tree(proc.pid)
            pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss") for p in pids) / 1024
            rss = sum(_kib(f"/proc/{p}/status", "VmRSS") for p in pids) / 1024
            hwm = _kib(f"/proc/{proc.pid}/status", "VmHWM") / 1024
            peak.update(pss=max(peak["pss"], pss), rss=max(peak["rss"], rss), main_hwm=max(peak["main_hwm"], hwm),
                        processes=max(peak["processes"], len(pids)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stderr is not None
    for line in proc.stderr:
        log.append(line)
        if stop_after is not None and line.startswith(stop_after):
            time.sleep(0.5)  # a few more samples
            proc.kill()
            break
    proc.wait(timeout=900)
    done.set()
    sampler.join()
    assert proc.returncode == 0 or (stop_after and proc.returncode == -signal.SIGKILL), "".join(log)[-3000:]
    decoded = re.search(r"the train split of .*?([\d,.]+) MiB decoded", "".join(log))
    assert decoded is not None, "".join(log)[-3000:]
    return {**peak, "train_decoded": float(decoded.group(1).replace(",", ""))}


SIDE = 224  # a decoded picture takes 3 * 224 * 224 bytes: held in memory, 2,400 would add more than half the peak


def flat_memory(tmp_path: Path, small: int, large: int, control: bool = False) -> dict:
    """Peak memory of 1 streamed epoch on ``train/`` folders of ``small`` and ``large`` pictures (trained at
    32 px) beside the same ``val/`` folder of 300 (so both evaluate in the same batches). With ``control``, also
    the large folder held in memory (--no-stream) and streamed, each up to the first epoch: the measure sees
    the decoded pictures."""
    val = write_plain_pngs(tmp_path / "val", 300, size=SIDE, seed=1)
    peaks: dict = {}
    for n in (small, large):
        data = tmp_path / f"pics{n}"
        write_plain_pngs(data / "train", n, size=SIDE)
        (data / "val").symlink_to(val, target_is_directory=True)
        assert n % 64 != 1  # d2l_densenet cannot train on a last batch of 1 picture
        common = ["train", "--model", "d2l_densenet", "--dataset", "image-folder", "--data-dir", str(data),
                  "--resize", "32", "--batch-size", "64", "--epochs", "1", "--workers", "2", "--no-compile",
                  "--threads", "1", "--no-progress"]
        peaks[n] = peak_memory([*common, "--stream", "--out", str(tmp_path / f"run{n}")])
        if control and n == large:
            for path in ("stream", "no-stream"):
                peaks[f"{path} until training"] = peak_memory([*common, f"--{path}", "--out", str(tmp_path / path)],
                                                              stop_after="training: ")
    print(f"peak memory (MiB) streaming {small} and {large} pictures: {peaks}")
    return peaks


def assert_flat(peaks: dict, small: int, large: int) -> None:
    assert peaks[small]["processes"] >= 4  # main, 2 training workers, and the test loader's
    assert peaks[large]["pss"] <= 1.25 * peaks[small]["pss"], peaks
    assert peaks[large]["main_hwm"] <= 1.25 * peaks[small]["main_hwm"], peaks
    # The test can fail: the large split, decoded, is more than the 25% allowed. (What streaming does grow by,
    # 20-40 MiB here, follows the number of steps, not the folder: the main process's high-water mark was
    # the same for 400 pictures over 7 epochs as for 3,200 over 1.)
    assert peaks[large]["train_decoded"] == pytest.approx(3 * SIDE * SIDE * large / 2**20, rel=0.01)
    assert peaks[large]["train_decoded"] > 0.25 * peaks[small]["pss"], peaks


def test_memory_stays_flat_as_the_folder_grows(tmp_path):
    """The default suite's version (about 45 s here): 8 times the pictures. Measured on the 2-vCPU machine:
    PSS 645 vs 637 MiB, main process 514 vs 537 MiB; holding the 2,400 would have added 345 MiB."""
    assert_flat(flat_memory(tmp_path, 300, 2400), 300, 2400)


@pytest.mark.slow
def test_memory_stays_flat_from_2000_to_16000_pictures(tmp_path):
    """Issue #19's numbers (about 5 min here). Measured: PSS 656 vs 689 MiB, main process 530 vs 550 MiB;
    up to the first epoch, --no-stream held 2,607 MiB against 345 MiB streamed (2,297 MiB decoded)."""
    peaks = flat_memory(tmp_path, 2000, 16000, control=True)
    assert_flat(peaks, 2000, 16000)
    held = peaks["no-stream until training"]["pss"] - peaks["stream until training"]["pss"]
    assert held > 0.8 * peaks[16000]["train_decoded"], peaks  # the held pictures show in the measure


# ----------------------------------------------------------------- DDP on a streamed folder


def test_two_gloo_ranks_stream_disjoint_shards_and_end_with_identical_weights(folder, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(Path(__file__).with_name("photo_ddp_worker.py")), "--out", str(tmp_path), "--data-dir", str(folder)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["sampler_rank"], r["world"]) for r in ranks] == [(0, 2), (1, 2)]
    for epoch in ("1", "2"):  # 74 pictures: 37 a rank, no padding
        a, b = (set(r["shards"][epoch]) for r in ranks)
        assert len(a) == len(b) == TRAIN // 2 and not a & b and len(a | b) == TRAIN
    assert ranks[0]["shards"]["1"] != ranks[0]["shards"]["2"]  # set_epoch reshuffles
    for r in ranks:  # 37 pictures a rank at batch 8: 5 batches an epoch, all trained
        assert r["batches"] == [[e, b, 5] for e in (1, 2) for b in range(1, 6)]
        assert r["paths"] == {"train": "stream", "test": "stream"} and r["summary"]["world_size"] == 2
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all(m["examples"] == TRAIN - len(BAD) for m in metrics)  # both ranks' pictures, less the unreadable ones
    w0, w1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    params = [k for k in w0 if "running" not in k and "num_batches" not in k]
    assert len(params) > 50 and all(torch.equal(w0[k], w1[k]) for k in params)
    # Each rank skips the unreadable pictures its shards held (in either epoch): together, all of them.
    assert set(ranks[0]["bad_files"]) | set(ranks[1]["bad_files"]) == {str(folder / bad) for bad in BAD}
    assert [r["summary"]["bad_files"] for r in ranks] == [len(BAD)] * 2  # the run's count, over both ranks' shards

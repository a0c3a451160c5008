"""Photo collections batched by PhotoLoader (data/stream.py): real files, real DataLoader worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from tests.photo_files import picture, random_bytes, save, truncated_jpeg, write_photo_folder
from tests.processes import wait_until_gone
from torch.utils.data.distributed import DistributedSampler

from densenet.data.catalogue import ImageList
from densenet.data.images import list_image_folder
from densenet.data.photos import EvalTransform, TrainTransform, decode
from densenet.data.stream import PhotoDataset, PhotoLoader
from densenet.errors import DataError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TRAIN_TF = TrainTransform(32, color_jitter=0.3, lighting=0.1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """36 pictures of 3 classes in every format and mode, some large enough for JPEG draft to matter."""
    return write_photo_folder(tmp_path_factory.mktemp("photos") / "folder", per_class=12)


@pytest.fixture(scope="module")
def files(folder) -> ImageList:
    return list_image_folder(folder, "train")


def loader(files: ImageList, transform, workers: int = 0, memory: bool = False, batch_size: int = 8,
           shuffle: bool = True, warnings: list | None = None, **kwargs) -> PhotoLoader:
    dataset = PhotoDataset(files, transform, channels=3, seed=5)
    if memory:
        dataset.load_into_memory()
    return PhotoLoader(dataset, batch_size, mean=MEAN, std=STD, shuffle=shuffle, seed=5, workers=workers,
                       warn=None if warnings is None else warnings.append, **kwargs)


def epochs(photo_loader: PhotoLoader, which=(1, 2)) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    out = []
    for epoch in which:
        photo_loader.set_epoch(epoch)
        out.append([(x.clone(), y.clone()) for x, y in photo_loader])
    return out


def assert_same_batches(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_batches_do_not_depend_on_the_number_of_workers_and_each_epoch_differs(files):
    one, two = loader(files, TRAIN_TF, workers=0), loader(files, TRAIN_TF, workers=2)
    by_one, by_two = epochs(one), epochs(two)
    for e in range(2):
        assert_same_batches(by_one[e], by_two[e])
    assert [x.shape for x, _ in by_one[0]] == [(8, 3, 32, 32)] * 3 + [(len(files) - 24, 3, 32, 32)]
    # The order is the shared epoch plan's, and epoch 2 reshuffles and redraws every augmentation.
    for e, batches in zip((1, 2), by_one):
        assert torch.equal(torch.cat([y for _, y in batches]), files.labels[one.epoch_order(e)])
    assert not torch.equal(one.epoch_order(1), one.epoch_order(2))
    assert all(not torch.equal(a, b) for (a, _), (b, _) in zip(by_one[0], by_one[1]))
    assert one.epoch == 3 and two.epoch == 3  # a pass that ran to its end moves to the next epoch


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_at_gives_exactly_the_tail_of_an_uninterrupted_pass(files, workers):
    (full,) = epochs(loader(files, TRAIN_TF, workers=0), which=(2,))
    resumed = loader(files, TRAIN_TF, workers=workers)
    resumed.set_epoch(2)
    resumed.resume_at(2)
    done = []
    tail = []
    for x, y in resumed:
        done.append(resumed.batches_done)
        tail.append((x, y))
    assert_same_batches(tail, full[2:])
    assert done == [3, 4] and resumed.epoch == 3
    resumed.set_epoch(2)  # resume_at holds for one pass only
    assert_same_batches([(x.clone(), y.clone()) for x, y in resumed], full)
    with pytest.raises(ValueError, match="cannot resume at batch 5"):
        resumed.resume_at(5)


@pytest.mark.parametrize("transform", [TRAIN_TF, EvalTransform(32)], ids=["train", "eval"])
def test_memory_and_stream_give_identical_batches(files, transform):
    streamed = epochs(loader(files, transform, workers=2))
    held = epochs(loader(files, transform, workers=0, memory=True))
    for e in range(2):
        assert_same_batches(streamed[e], held[e])


def test_memory_mode_holds_what_decoded_bytes_predicted(files):
    """The in-memory budget decision rests on decoded_bytes(); it counts JPEG draft as decoding does."""
    for transform in (TRAIN_TF, TrainTransform(32, scale=(0.5, 1.0)), EvalTransform(32)):
        dataset = PhotoDataset(files, transform, channels=3)
        dataset.load_into_memory()
        held = sum(t.numel() for t in dataset.memory)
        assert dataset.decoded_bytes(probe=len(files)) == held, transform


def test_decoded_bytes_counts_jpeg_draft_exactly_at_awkward_sizes(tmp_path):
    """475x468 JPEGs drafted for a short side of 234: Pillow keeps them whole (475 // 238 = 1), which an estimate
    that only halved the short side (468 // 2 >= 234) put at a quarter of that."""
    transform = TrainTransform(64, scale=(0.1, 1.0))
    assert transform.decode_size() == 234
    paths = [save(picture(475, 468, (80, 80, 80), seed=i), tmp_path / f"{i}.jpg") for i in range(3)]
    dataset = PhotoDataset(ImageList(paths, torch.zeros(3, dtype=torch.int64), ["a"], "awkward"), transform, 3)
    dataset.load_into_memory()
    assert dataset.decoded_bytes() == sum(t.numel() for t in dataset.memory) == 3 * 3 * 475 * 468


def test_eval_batches_are_the_eval_transform_normalized_with_mean_and_std(files):
    tf = EvalTransform(32)
    batches = epochs(loader(files, tf, workers=2, shuffle=False, batch_size=16), which=(1,))[0]
    x = torch.cat([b for b, _ in batches])
    pixels = torch.stack([tf(decode(p, 3, tf.decode_size())) for p in files.paths]).float() / 255
    expected = (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert x.dtype == torch.float32 and x.shape == (len(files), 3, 32, 32)
    assert torch.allclose(x, expected, atol=1e-6)
    assert torch.equal(torch.cat([y for _, y in batches]), files.labels)


def test_ranks_of_a_distributed_sampler_take_disjoint_shards_with_the_same_pictures(files):
    """Each rank's batches are its shard of the epoch's order; a picture's augmentation depends only on
    (seed, epoch, index), so rank r's pixels are exactly what one process would make of those indices."""
    n, orders = len(files), []
    for rank in (0, 1):
        sampler = DistributedSampler(range(n), num_replicas=2, rank=rank, shuffle=True, seed=5, drop_last=False)
        ranked = loader(files, TRAIN_TF, workers=1, sampler=sampler, batch_size=4)
        (batches,) = epochs(ranked, which=(3,))
        order = ranked.epoch_order(3)
        orders.append(set(order.tolist()))
        dataset = ranked.dataset
        pixels = torch.stack([dataset[(int(i), 3)].x for i in order]).float() / 255
        expected = (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        assert torch.allclose(torch.cat([x for x, _ in batches]), expected, atol=1e-6)
        assert len(batches) == len(ranked) == n // 2 // 4 + (n // 2 % 4 > 0)
    assert not orders[0] & orders[1] and orders[0] | orders[1] == set(range(n))  # 30 pictures: no padding


# ----------------------------------------------------------------- bad files


@pytest.fixture
def with_bad_files(tmp_path, files) -> tuple[ImageList, list[Path]]:
    """The good pictures with four unreadable ones at indices 4..7 (a whole batch of 4) and one at 10."""
    bad = [truncated_jpeg(tmp_path / "cut.jpg"), random_bytes(tmp_path / "noise.png"),
           tmp_path / "empty.jpg", tmp_path / "text.webp", random_bytes(tmp_path / "noise.bmp", seed=1)]
    bad[2].write_bytes(b"")
    bad[3].write_text("not a picture\n")
    paths = files.paths[:4] + bad[:4] + files.paths[4:6] + [bad[4]] + files.paths[6:12]
    labels = torch.tensor([int(files.labels[0])] * len(paths))
    return ImageList(paths, labels, files.classes, "mixed"), bad


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_pictures_are_skipped_counted_and_warned_once_and_an_all_bad_batch_is_skipped(
        with_bad_files, workers):
    mixed, bad = with_bad_files
    warnings: list[str] = []
    photo_loader = loader(mixed, TRAIN_TF, workers=workers, shuffle=False, batch_size=4, warnings=warnings)
    assert len(photo_loader) == 5
    for epoch in (1, 2):
        photo_loader.set_epoch(epoch)
        sizes, done = [], []
        for x, _ in photo_loader:
            sizes.append(x.shape[0])
            done.append(photo_loader.batches_done)
        assert sizes == [4, 3, 4, 1] and done == [1, 3, 4, 5]  # batch 2 (all bad) is skipped, batch 3 is one short
    assert sorted(photo_loader.bad_files) == sorted(map(str, bad))
    assert len(warnings) == len(bad)  # once each, over both epochs
    for path in bad:
        assert sum(str(path) in w for w in warnings) == 1
    assert all(w.startswith("warning: skipping an unreadable picture: ") for w in warnings)


def test_unreadable_pictures_held_in_memory_are_skipped_the_same_way(with_bad_files):
    mixed, bad = with_bad_files
    warnings: list[str] = []
    held = loader(mixed, TRAIN_TF, memory=True, shuffle=False, batch_size=4, warnings=warnings)
    streamed = loader(mixed, TRAIN_TF, workers=2, shuffle=False, batch_size=4)
    assert_same_batches(epochs(held)[1], epochs(streamed)[1])
    assert sorted(held.bad_files) == sorted(map(str, bad)) and len(warnings) == len(bad)


# ----------------------------------------------------------------- what an image folder lists


def test_files_that_are_not_pictures_are_ignored(tmp_path):
    root = tmp_path / "pics"
    for cls in ("cat", "dog"):
        for i, suffix in enumerate(("jpg", "JPEG", "png", "Png", "bmp", "webp")):
            save(picture(40, 30, (100, 100, 100), seed=i), root / cls / f"{i}.{suffix}")
        (root / cls / "notes.txt").write_text("hello")
        (root / cls / ".DS_Store").write_bytes(b"\0" * 16)
        save(picture(40, 30, (1, 1, 1)), root / cls / ".hidden.png")
        (root / cls / "labels.csv").write_text("a,b\n")
    (root / ".git").mkdir()  # hidden folders are not classes
    train, test = list_image_folder(root, "train"), list_image_folder(root, "test")
    assert train.classes == ["cat", "dog"] == test.classes
    names = sorted(p.name for p in train.paths + test.paths)
    assert names == sorted([f"{i}.{s}" for i, s in enumerate(("jpg", "JPEG", "png", "Png", "bmp", "webp"))] * 2)
    assert len(test) == 2 * round(6 * 0.2) and not set(train.paths) & set(test.paths)


@pytest.mark.parametrize("content", ["nothing", "non-pictures"])
def test_a_class_folder_without_pictures_is_an_error_naming_it(tmp_path, content):
    root = write_photo_folder(tmp_path / "pics", per_class=3, classes=("red", "green"))
    empty = root / "blue"
    empty.mkdir()
    if content == "non-pictures":
        (empty / "readme.txt").write_text("to do")
        (empty / "sheet.csv").write_text("path,label\n")
        (empty / ".hidden.jpg").write_bytes(b"")
    for split in ("train", "test"):
        with pytest.raises(DataError, match=f"class folder {empty} holds no"):
            list_image_folder(root, split)


def test_a_presplit_folder_takes_train_and_val_as_they_are(tmp_path):
    root = tmp_path / "pics"
    write_photo_folder(root / "train", per_class=4, classes=("red", "green"))
    write_photo_folder(root / "val", per_class=2, classes=("red", "green"))
    shutil.copy(root / "train" / "red" / "0000.jpg", root / "val" / "red" / "extra.JPG")
    train, test = list_image_folder(root, "train"), list_image_folder(root, "test")
    assert (len(train), len(test)) == (8, 5) and train.classes == test.classes == ["green", "red"]
    assert all(p.parent.parent.name == "val" for p in test.paths)
    with Image.open(test.paths[-1]) as img:
        assert img.format == "JPEG"


@pytest.mark.parametrize("workers", [0, 2])
def test_iterating_leaves_the_global_random_stream_alone(files, workers):
    """Dropout draws from the global torch RNG; a loader that drew from it too (DataLoader's per-iter worker
    seed) would make training depend on the worker count and break exact resume."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    photo_loader = loader(files, TRAIN_TF, workers=workers)
    epochs(photo_loader)
    assert torch.equal(torch.rand(3), expected)


def test_randaugment_on_streamed_photos_is_the_same_from_any_worker_count_and_from_memory(files):
    from densenet.data.augment import RandAugment

    augmented = TrainTransform(32, color_jitter=0.3, lighting=0.1, policy=RandAugment("randaugment", 9, 2))
    (streamed,) = epochs(loader(files, augmented, workers=0), which=(1,))
    (by_two,) = epochs(loader(files, augmented, workers=2), which=(1,))
    (held,) = epochs(loader(files, augmented, memory=True), which=(1,))
    assert_same_batches(streamed, by_two)
    assert_same_batches(streamed, held)
    (plain,) = epochs(loader(files, TRAIN_TF, workers=0), which=(1,))
    assert all(not torch.equal(a, b) for (a, _), (b, _) in zip(streamed, plain))


# ------------------------------------------------------------------ workers end with their parent

def killed_parent_leaves(script: str, tmp_path: Path) -> list[int]:
    """Run ``script`` in a real process that prints the pids of its children, one per line, then
    SIGKILLs itself; the pids it printed. (Its output goes to files, not pipes, which a surviving
    child would hold open.)"""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        code = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], stdout=stdout, stderr=stderr,
                              timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).returncode
    assert code == -signal.SIGKILL, err.read_text()[-2000:]
    pids = [int(line) for line in out.read_text().split()]
    assert pids, err.read_text()[-2000:]
    return pids


# A child that sleeps for an hour once the worker init returns: torch's worker loop, blind to its parent.
CHILD = """
    import os, signal, sys, time
    from densenet.data.stream import _EndWithParent
    watch = _EndWithParent()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        {child}
        watch(0)
        os.write(write, b"x")
        time.sleep(3600)
        os._exit(0)
    print(child, flush=True)
    {parent}
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_worker_whose_parent_was_killed_before_its_init_exits_at_once(tmp_path):
    # The race torch's own check misses: the parent dies between the fork and the worker's first look at it.
    pids = killed_parent_leaves(CHILD.format(
        child="while os.getppid() == watch.parent: time.sleep(0.01)",  # wait for the parent's death
        parent="pass"), tmp_path)
    assert wait_until_gone(pids, within_s=10) == []


def test_a_worker_is_killed_with_its_parent(tmp_path):
    # The parent dies after the init (os.read waits for it), while the worker blocks for an hour.
    pids = killed_parent_leaves(CHILD.format(child="pass", parent="os.read(read, 1)"), tmp_path)
    assert wait_until_gone(pids, within_s=10) == []


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_photo_loader_workers_die_at_once_with_a_killed_parent(folder, tmp_path, method):
    # The real loader and its real workers, under Linux's long-standing default start method and under Python
    # 3.14's, where the workers are children of a fork server that outlives the loading process. torch alone
    # notices within its 5-second queue timeout under fork, and never under forkserver.
    pids = killed_parent_leaves(f"""
        import os, signal
        from pathlib import Path
        import torch.multiprocessing
        from densenet.data.images import list_image_folder
        from densenet.data.photos import EvalTransform
        from densenet.data.stream import PhotoDataset, PhotoLoader
        from tests.processes import descendants
        if __name__ == "__main__":
            torch.multiprocessing.set_start_method({method!r}, force=True)
            files = list_image_folder(Path({str(folder)!r}), "train")
            loader = PhotoLoader(PhotoDataset(files, EvalTransform(32), channels=3), 4, mean=(0.5,) * 3,
                                 std=(0.5,) * 3, workers=2)
            next(iter(loader))
            workers = [w.pid for w in loader._loader._iterator._workers]  # persistent workers stay listed
            print(*workers, *(p for p in descendants(os.getpid()) if p not in workers), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """, tmp_path)
    workers, others = pids[:2], pids[2:]  # others: under forkserver, the server and multiprocessing's tracker
    assert len(others) == (0 if method == "fork" else 2)
    assert wait_until_gone(workers, within_s=2.0) == []
    wait_until_gone(others, within_s=0)  # not ours to judge; killed so that none outlives the test

"""BatchLoader: coverage of every example, reproducible epochs, options, augmentation and samplers."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler

from densenet.data import Augment, BatchLoader, ImageDataset, shuffle_seed
from densenet.errors import ConfigError

N = 103


def _indexed_dataset(n: int = N) -> ImageDataset:
    """Image i holds i in its first two pixels (low byte, high byte), so batches reveal their indices."""
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    index = torch.arange(n)
    images[:, 0, 0, 0] = (index % 256).to(torch.uint8)
    images[:, 0, 0, 1] = (index // 256).to(torch.uint8)
    return ImageDataset(images, index % 10, [str(c) for c in range(10)], (0.5,), (0.25,), "indexed")


def _indices(x: torch.Tensor) -> list[int]:
    pixels = (x[:, 0, 0, :2].double() * 255).round().long()
    return (pixels[:, 0] + 256 * pixels[:, 1]).tolist()


def _epoch(loader: BatchLoader) -> list[int]:
    seen: list[int] = []
    for x, y in loader:
        idx = _indices(x)
        assert y.tolist() == [i % 10 for i in idx]  # labels travel with their images
        seen += idx
    return seen


def test_sequential_covers_everything_once() -> None:
    loader = BatchLoader(_indexed_dataset(), 10)
    assert len(loader) == 11
    batches = list(loader)
    assert [x.shape[0] for x, _ in batches] == [10] * 10 + [3]
    assert _epoch(BatchLoader(_indexed_dataset(), 10)) == list(range(N))
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (10, 1, 4, 4) and y.dtype == torch.int64


def test_drop_last() -> None:
    loader = BatchLoader(_indexed_dataset(), 10, shuffle=True, drop_last=True)
    assert len(loader) == 10 and len(_epoch(loader)) == 100


def test_shuffle_is_a_pure_function_of_seed_and_epoch() -> None:
    first = BatchLoader(_indexed_dataset(), 16, shuffle=True, seed=7)
    orders = [_epoch(first) for _ in range(4)]  # full passes advance the epoch
    assert first.epoch == 4
    assert all(sorted(order) == list(range(N)) for order in orders)
    assert len({tuple(order) for order in orders}) == 4
    resumed = BatchLoader(_indexed_dataset(), 16, shuffle=True, seed=7)
    resumed.set_epoch(3)
    assert _epoch(resumed) == orders[3]  # a resumed run sees exactly the same batches
    expected = torch.randperm(N, generator=torch.Generator().manual_seed(shuffle_seed(7, 2))).tolist()
    assert first.epoch_order(2).tolist() == expected == orders[2]
    other_seed = BatchLoader(_indexed_dataset(), 16, shuffle=True, seed=8)
    assert _epoch(other_seed) != orders[0]


def test_unfinished_pass_does_not_advance() -> None:
    loader = BatchLoader(_indexed_dataset(), 16, shuffle=True)
    next(iter(loader))
    assert loader.epoch == 0


def test_values_and_normalization() -> None:
    ds = _indexed_dataset()
    x, _ = next(iter(BatchLoader(ds, N)))
    assert torch.equal(x, ds.images.float() / 255)  # the textbook's unnormalized [0, 1]
    x, _ = next(iter(BatchLoader(ds, N, normalize=True)))
    torch.testing.assert_close(x, (ds.images.float() / 255 - 0.5) / 0.25)


def test_dtype_and_channels_last() -> None:
    ds = ImageDataset(torch.randint(0, 256, (8, 3, 5, 5), dtype=torch.uint8), torch.zeros(8, dtype=torch.int64),
                      ["a"], (0.5,) * 3, (0.2,) * 3, "rgb")
    x, _ = next(iter(BatchLoader(ds, 4, dtype=torch.bfloat16, channels_last=True)))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)


def test_dataset_stays_uint8() -> None:
    loader = BatchLoader(_indexed_dataset(), 8)
    assert loader._images.dtype == torch.uint8 and loader._images.data_ptr() == loader.dataset.images.data_ptr()


def test_augmentation_is_reproducible_per_epoch() -> None:
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ds = ImageDataset(images, torch.zeros(40, dtype=torch.int64), ["a"], (0.5,) * 3, (0.2,) * 3, "rgb")
    augment = Augment(crop_padding=2, hflip=0.5, erasing=0.5)
    a = BatchLoader(ds, 8, shuffle=True, seed=1, augment=augment)
    epoch0 = [x for x, _ in a]
    epoch1 = [x for x, _ in a]
    b = BatchLoader(ds, 8, shuffle=True, seed=1, augment=augment)
    b.set_epoch(1)
    assert all(torch.equal(p, q) for p, q in zip(epoch1, [x for x, _ in b]))
    assert not all(torch.equal(p, q) for p, q in zip(epoch0, epoch1))
    plain = torch.cat([x for x, _ in BatchLoader(ds, 40)])
    assert not torch.equal(torch.cat([x for x, _ in BatchLoader(ds, 40, augment=augment)]), plain)


def test_resume_at_a_batch_continues_the_pass_exactly() -> None:
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ds = ImageDataset(images, torch.arange(40) % 3, ["a", "b", "c"], (0.5,) * 3, (0.2,) * 3, "rgb")
    augment = Augment(crop_padding=2, hflip=0.5, erasing=0.5)
    whole = BatchLoader(ds, 8, shuffle=True, seed=1, augment=augment)
    whole.set_epoch(2)
    expected = list(whole)
    resumed = BatchLoader(ds, 8, shuffle=True, seed=1, augment=augment)
    resumed.set_epoch(2)
    resumed.resume_at(3)
    rest = list(resumed)
    assert len(rest) == 2 and resumed.batches_done == 5
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(expected[3:], rest))
    assert len(list(resumed)) == 5  # only that one pass is shortened
    with pytest.raises(ValueError, match="batch 6 of an epoch of 5"):
        resumed.resume_at(6)


def test_custom_augment_callables() -> None:
    calls: list[torch.dtype] = []

    def invert(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        calls.append(batch.dtype)
        return 255 - batch

    ds = _indexed_dataset()
    x, _ = next(iter(BatchLoader(ds, N, augment=[invert, invert])))
    assert calls == [torch.uint8, torch.uint8] and torch.equal(x, ds.images.float() / 255)


def test_augment_validates() -> None:
    with pytest.raises(ConfigError, match="hflip"):
        Augment(hflip=1.5)
    with pytest.raises(ConfigError, match="crop_padding"):
        Augment(crop_padding=-1)
    with pytest.raises(ConfigError, match="batch_size"):
        BatchLoader(_indexed_dataset(), 0)


class _RecordingSampler:
    def __init__(self, indices: list[int]) -> None:
        self.indices = indices
        self.epochs: list[int] = []

    def __iter__(self):  # noqa: ANN204
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def test_sampler_replaces_shuffling() -> None:
    sampler = _RecordingSampler([5, 3, 99, 0, 42])
    loader = BatchLoader(_indexed_dataset(), 2, shuffle=True, sampler=sampler)
    assert len(loader) == 3
    loader.set_epoch(4)
    assert _epoch(loader) == [5, 3, 99, 0, 42]
    assert sampler.epochs[0] == 4 and sampler.epochs[-1] == 5


def test_distributed_sampler_ranks_partition_the_data() -> None:
    ds = _indexed_dataset(100)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
        loader = BatchLoader(ds, 16, sampler=sampler)
        loader.set_epoch(1)
        assert len(loader) == 4  # 50 examples per rank
        seen.append(_epoch(loader))
    assert sorted(seen[0] + seen[1]) == list(range(100))

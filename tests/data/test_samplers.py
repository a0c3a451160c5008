"""--balanced-sampler: class-balanced draws that repeat for a seed and epoch and shard like DistributedSampler."""

from __future__ import annotations

import pytest
import torch

from densenet.data.samplers import BalancedSampler, inverse_frequency
from densenet.errors import ConfigError

# 90 pictures of class 0, 9 of class 1, 1 of class 2
LABELS = torch.tensor([0] * 90 + [1] * 9 + [2], dtype=torch.int64)


def test_inverse_frequency_is_balanced_weights():
    assert inverse_frequency(LABELS, 3).tolist() == pytest.approx([100 / 270, 100 / 27, 100 / 3])
    assert inverse_frequency(torch.tensor([0, 1, 0, 1]), 3).tolist() == pytest.approx([2 / 3, 2 / 3, 0.0])  # 2: none


def test_every_class_is_drawn_about_equally_often():
    sampler = BalancedSampler(LABELS, 3, seed=0)
    draws = torch.cat([torch.tensor(list(sampler)) for sampler.epoch in range(50)])
    share = torch.bincount(LABELS[draws], minlength=3).float() / len(draws)
    assert share.tolist() == pytest.approx([1 / 3] * 3, abs=0.02)  # 5,000 draws; unbalanced it would be 0.90/0.09/0.01
    assert len(sampler) == 100


def test_an_epoch_repeats_for_its_seed_and_differs_between_epochs_and_seeds():
    a, b, c = BalancedSampler(LABELS, 3, seed=1), BalancedSampler(LABELS, 3, seed=1), BalancedSampler(LABELS, 3, seed=2)
    a.set_epoch(3)
    b.set_epoch(3)
    c.set_epoch(3)
    assert list(a) == list(b) and list(a) != list(c)
    b.set_epoch(4)
    assert list(a) != list(b)


def test_ranks_take_disjoint_slots_of_the_same_draw():
    whole = BalancedSampler(LABELS, 3, seed=5, num_replicas=1)
    ranks = [BalancedSampler(LABELS, 3, seed=5, num_replicas=2, rank=r) for r in (0, 1)]
    for s in (whole, *ranks):
        s.set_epoch(2)
    r0, r1 = list(ranks[0]), list(ranks[1])
    assert len(r0) == len(r1) == 50
    interleaved = [i for pair in zip(r0, r1) for i in pair]
    assert interleaved == list(whole)  # two ranks of batch b see the batches of one process of batch 2b


def test_multi_label_targets_are_refused_with_what_to_use():
    with pytest.raises(ConfigError, match="for multi-label data use --pos-weight auto"):
        BalancedSampler(torch.zeros(4, 3), 3)

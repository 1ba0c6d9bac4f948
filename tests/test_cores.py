"""utils.cores.map_on_cores: the results of the plain loop, bit for bit, with the jobs running at once."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch
from torch import nn

from utils import cores
from utils.cores import cpu_quota, map_on_cores, usable_cores
from utils.data import load_digits_splits
from utils.models import SmallCNN, evaluate, train


def test_results_come_back_in_item_order():
    assert map_on_cores(lambda a, b: a * b, [1, 2, 3, 4], [5, 6, 7, 8], workers=3) == [5, 12, 21, 32]
    assert map_on_cores(lambda a: a, [], workers=2) == []
    assert usable_cores() >= 1


def test_the_jobs_run_at_the_same_time():
    both = threading.Barrier(2, timeout=30)      # a loop would wait here forever: BrokenBarrierError

    def meet(k):
        both.wait()
        return k
    assert map_on_cores(meet, [0, 1], workers=2) == [0, 1]


def test_the_first_error_in_item_order_is_raised():
    def fail(k):
        if k in (1, 2):
            raise ValueError(f"job {k}")
        return k
    with pytest.raises(ValueError, match="job 1"):
        map_on_cores(fail, range(4), workers=4)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        map_on_cores(fail, range(4), workers=0)


def test_each_job_runs_at_the_callers_torch_thread_count():
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert map_on_cores(lambda _: torch.get_num_threads(), range(3), workers=3) == [1, 1, 1]
    finally:
        torch.set_num_threads(saved)


def test_the_global_generator_is_left_as_before():
    torch.manual_seed(123)
    expected = torch.rand(3)
    for workers in (3, 1):                      # at once, and as the plain loop: the same state after
        torch.manual_seed(123)
        map_on_cores(lambda seed: torch.manual_seed(seed), [0, 1, 2], workers=workers)   # as train() reseeds
        assert torch.equal(torch.rand(3), expected)


def _pooled_cnn(seed: int) -> SmallCNN:
    """Chapter 09's SmallCNN with a global-max-pool head (seeded)."""
    torch.manual_seed(seed)
    model = SmallCNN(num_classes=10)
    model.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    return model


@pytest.mark.parametrize("make", [lambda seed: (torch.manual_seed(seed), SmallCNN(num_classes=10))[1], _pooled_cnn],
                         ids=["SmallCNN", "global max pool head"])
def test_training_several_seeds_at_once_gives_the_loops_weights_bit_for_bit(make):
    splits = load_digits_splits()
    data = (splits.train[0][:256], splits.train[1][:256])
    saved = torch.get_num_threads()
    torch.set_num_threads(1)                    # as the chapters
    try:
        def trained(model, seed):
            history = train(model, data, epochs=2, seed=seed, progress=False)
            return model, history.train_loss, evaluate(model, *splits.test).accuracy

        seeds = (0, 1, 2)
        alone = [trained(make(seed), seed) for seed in seeds]
        at_once = map_on_cores(trained, [make(seed) for seed in seeds], seeds, workers=3)
    finally:
        torch.set_num_threads(saved)
    for (model_a, loss_a, acc_a), (model_b, loss_b, acc_b) in zip(alone, at_once):
        assert loss_a == loss_b and acc_a == acc_b
        for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()):
            assert torch.equal(a, b)
    assert len({alone[k][1][-1] for k in range(3)}) == 3       # three different trainings, not one thrice
    assert np.isfinite(alone[0][1]).all()


def test_fine_tuning_top_blocks_at_once_gives_the_loops_weights_bit_for_bit():
    """Chapter 08's fine-tuning jobs (a copy of EfficientNet-Lite0's top block and a new head each)."""
    from utils import transfer
    from utils.models import efficientnet_lite0
    pretrained = efficientnet_lite0(pretrained=True)
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(16, 192, 2, 2, generator=generator)      # the input of block 15 (64x64 images)
    labels = np.arange(16) % 4
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        def tuned(model, seed):
            transfer.fine_tune(model, maps, labels, head_steps=5, steps=3, seed=seed)
            return model

        def start(seed):
            return transfer.TopBlocks(pretrained, first=15, num_classes=4, seed=seed)
        alone = [tuned(start(seed), seed) for seed in (0, 1)]
        at_once = map_on_cores(tuned, [start(seed) for seed in (0, 1)], (0, 1), workers=2)
    finally:
        torch.set_num_threads(saved)
    for model_a, model_b in zip(alone, at_once):
        for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()):
            assert torch.equal(a, b)
    assert not torch.equal(alone[0].fc.weight, alone[1].fc.weight)


def cgroup_tree(tmp_path, own: str, files: dict) -> str:
    """A fake /sys/fs/cgroup under tmp_path with ``files`` ({relative path: text}), and a fake
    /proc/self/cgroup with ``own``; returns the latter's path."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "self-cgroup").write_text(own)
    return str(tmp_path / "self-cgroup")


def test_a_cgroup_v2_limit_of_its_own_group_or_a_parent_caps_the_cores(tmp_path):
    own = cgroup_tree(tmp_path, "0::/hub/user-ada\n", {
        "cpu.max": "max 100000\n", "hub/cpu.max": "250000 100000\n",
        "hub/user-ada/cpu.max": "max 100000\n"})
    assert cpu_quota(str(tmp_path), own) == 2.5            # the parent's limit: 2.5 CPUs
    (tmp_path / "hub/user-ada/cpu.max").write_text("50000 100000\n")
    assert cpu_quota(str(tmp_path), own) == 0.5            # the tighter one wins


def test_a_cgroup_v1_limit_caps_the_cores_and_none_leaves_them(tmp_path):
    own = cgroup_tree(tmp_path, "4:memory:/x\n1:cpu,cpuacct:/docker/abc\n", {
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"})
    assert cpu_quota(str(tmp_path), own) == 1.5
    (tmp_path / "cpu,cpuacct/docker/abc/cpu.cfs_quota_us").write_text("-1\n")   # v1's "no limit"
    assert cpu_quota(str(tmp_path), own) is None
    assert cpu_quota(str(tmp_path), str(tmp_path / "no-such-file")) is None


def test_usable_cores_takes_the_quota_rounded_up(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(cores, "cpu_quota", lambda: 1.5)
    assert usable_cores() == 2
    monkeypatch.setattr(cores, "cpu_quota", lambda: 0.2)
    assert usable_cores() == 1
    monkeypatch.setattr(cores, "cpu_quota", lambda: None)
    assert usable_cores() == 4


def test_a_malformed_cgroup_file_or_a_group_missing_under_the_mount_means_no_limit_found(tmp_path):
    own = cgroup_tree(tmp_path, "garbage\n\n1:cpu:/docker/abc\n", {
        "cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert cpu_quota(str(tmp_path), own) == 2.0       # the group is not under the mount: its parents are

"""utils.transfer: freezing (weights and BatchNorm statistics), new heads, features, probes, fine-tuning."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from utils.efficientnet import efficientnet_lite0
from utils.transfer import (TopBlocks, _flip, accuracy, batchnorm_layers, center_l2, extract,
                            fine_tune, freeze, freeze_batchnorm, last_linear_name, linear_probe,
                            network_input, reestimate_batchnorm, replace_head, running_stats,
                            steps_to_reach, train_with_curve)


class Tiny(nn.Module):
    def __init__(self, head=None):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = head if head is not None else nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def net():
    return efficientnet_lite0(pretrained=True)


@pytest.fixture(scope="module")
def images():
    """Eight 32x32 inputs, as the network sees them (small so that the tests are quick)."""
    rng = np.random.default_rng(0)
    return network_input(rng.uniform(0, 1, (8, 40, 40)).astype(np.float32), size=32)


def test_freeze_stops_gradients_only_where_asked():
    model = Tiny()
    freeze(model.features)
    model(torch.randn(2, 1, 6, 6)).sum().backward()
    assert all(p.grad is None for p in model.features.parameters())
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize("head, name", [(nn.Linear(4, 3), ""),
                                        (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), "2")])
def test_replace_head_keeps_in_features_and_changes_outputs(head, name):
    model = Tiny(head)
    assert last_linear_name(model.head) == name
    new = replace_head(model, num_classes=10)
    assert model(torch.zeros(5, 1, 6, 6)).shape == (5, 10)
    assert new is model.head.get_submodule(name)


def test_replace_head_of_efficientnet_reads_the_1280_features(images):
    model = efficientnet_lite0(pretrained=False)
    new = replace_head(model, num_classes=8, seed=1)
    assert model._fc is new and (new.in_features, new.out_features) == (1280, 8)
    assert model(images).shape == (8, 8)
    again = replace_head(efficientnet_lite0(pretrained=False), num_classes=8, seed=1)
    assert torch.equal(again.weight, new.weight)   # seeded


@pytest.mark.parametrize("model, n, words", [(Tiny(nn.Identity()), 3, "no nn.Linear"),
                                             (nn.Conv2d(1, 1, 1), 3, "neither"), (Tiny(), 0, "positive")])
def test_replace_head_bad_input_is_a_value_error(model, n, words):
    with pytest.raises(ValueError, match=words):
        replace_head(model, n)


def test_requires_grad_false_does_not_stop_batchnorm_statistics(net, images):
    """The trap of chapter 08: a frozen network in train mode still rewrites its running statistics."""
    model = efficientnet_lite0(pretrained=True)
    freeze(model)
    before = running_stats(model)
    model.train()
    with torch.no_grad():
        model(images)
    assert not torch.equal(running_stats(model), before)       # requires_grad=False was not enough

    model = efficientnet_lite0(pretrained=True)
    freeze(model)
    model.train()
    freeze_batchnorm(model)
    with torch.no_grad():
        out = model.features(images)                           # pooled 1280-d, before dropout
    assert torch.equal(running_stats(model), before)
    assert all(not bn.training for bn in batchnorm_layers(model))
    torch.testing.assert_close(out, net.features(images))      # the same numbers as in eval mode


def test_extract_pools_what_the_network_computes(net, images):
    out = extract(net, images, pooled=("block7", "head"), maps=("block14",), batch_size=3)
    torch.set_grad_enabled(False)
    assert out["block7"].shape == (8, 80) and out["head"].shape == (8, 1280)
    np.testing.assert_allclose(out["head"], net.features(images).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["block7"], net.features(images, upto="block7").numpy(), rtol=1e-5, atol=1e-6)
    torch.set_grad_enabled(True)
    assert isinstance(out["block14"], torch.Tensor) and out["block14"].shape[:2] == (8, 192)
    with pytest.raises(ValueError, match="unknown layer names"):
        extract(net, images, pooled=("block99",))


def test_network_input_shape_and_errors():
    x = network_input(np.full((2, 20, 20), 0.5, np.float32), size=24)
    assert x.shape == (2, 3, 24, 24) and x.dtype == torch.float32
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        network_input(np.zeros((20, 20), np.float32), size=24)


def test_center_l2_uses_the_training_mean_and_unit_rows():
    rng = np.random.default_rng(0)
    train, test = rng.normal(5, 1, (20, 6)), rng.normal(5, 1, (7, 6))
    a, b = center_l2(train, test)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0)
    centred = test - train.mean(0)
    np.testing.assert_allclose(b, centred / np.linalg.norm(centred, axis=1, keepdims=True))


def test_linear_probe_separates_separable_features_and_not_shuffled_ones():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, 16))
    y = np.repeat(np.arange(4), 15)
    X = centres[y] + rng.normal(0, 0.2, (60, 16))
    train, val, test = (X[0::3], y[0::3]), (X[1::3], y[1::3]), (X[2::3], y[2::3])
    fit = linear_probe(train, val, test)
    assert fit.accuracy == 1.0 and fit.val_accuracy == 1.0
    assert linear_probe((X[0::3], rng.permutation(y[0::3])), val, test).accuracy < 0.7


def test_reestimate_batchnorm_measures_the_images_and_keeps_the_weights():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2))
    x = torch.randn(40, 3, 8, 8) * 3 + 2
    new = reestimate_batchnorm(model, x, batch_size=40)
    assert not new.training and new is not model
    bn = new[1]
    with torch.no_grad():
        conv_out = model[0](x)
    torch.testing.assert_close(bn.running_mean, conv_out.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bn.running_var, conv_out.var(dim=(0, 2, 3)), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(model[1].running_mean, torch.zeros(4))       # the original is untouched
    for a, b in zip(model.parameters(), new.parameters()):
        torch.testing.assert_close(a, b)
    with torch.no_grad():                                              # eval output is normalised now
        out = new[:2](x)
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-3 and (out.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2


def test_train_with_curve_learns_features_and_images_and_is_repeatable():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 5)).astype(np.float32)
    y = np.repeat(np.arange(3), 20)
    X = torch.as_tensor(centres[y] + rng.normal(0, 0.1, (60, 5)).astype(np.float32))
    curves = []
    for _ in range(2):
        torch.manual_seed(0)
        head = nn.Linear(5, 3)
        curves.append(train_with_curve(head, X[::2], y[::2], X[1::2], y[1::2], steps=40, lr=0.05, every=10, seed=1))
    np.testing.assert_array_equal(curves[0], curves[1])
    assert curves[0].shape == (4,) and curves[0][-1] == 1.0 and not head.training
    images = torch.rand(6, 1, 4, 4)
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    assert train_with_curve(cnn, images, [0, 1] * 3, images, [0, 1] * 3, steps=3, lr=0.01, every=1,
                            flips=True).shape == (3,)
    with pytest.raises(ValueError, match="flips needs images"):
        train_with_curve(nn.Linear(5, 3), X, y, X, y, steps=2, lr=0.01, flips=True)
    with pytest.raises(ValueError, match="positive"):
        train_with_curve(nn.Linear(5, 3), X, y, X, y, steps=0, lr=0.01)


def test_flips_are_label_preserving_mirror_images():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1)
    flipped = _flip(x, torch.Generator().manual_seed(0))
    variants = {x[0].tolist().__repr__(), x[0].flip(2).tolist().__repr__(), x[0].flip(1).tolist().__repr__(),
                x[0].flip(1).flip(2).tolist().__repr__()}
    seen = {f.tolist().__repr__() for f in flipped}
    assert seen == variants      # each of the four mirror images occurs, and nothing else


def test_steps_to_reach_counts_runs_that_never_get_there():
    assert steps_to_reach([0.2, 0.5, 0.85, 0.7, 0.9], 0.8, every=5) == 15
    assert steps_to_reach([0.2, 0.5], 0.8) is None
    assert steps_to_reach([0.8], 0.8, every=3) == 3


def test_top_blocks_with_the_old_classifier_is_the_original_network(net, images):
    maps = extract(net, images, maps=("block12",))["block12"]
    top = TopBlocks(net, first=13, num_classes=1000)
    top.fc.load_state_dict(net._fc.state_dict())
    torch.testing.assert_close(top.eval()(maps), net(images), rtol=1e-4, atol=1e-4)
    assert all(not p.requires_grad for p in top.backbone.parameters())
    assert all(p.requires_grad for p in top.fc.parameters())
    with pytest.raises(ValueError, match="1..16"):
        TopBlocks(net, first=0, num_classes=3)


def toy_task(net, n_per_class=4):
    """Three classes of inputs (flat gray, noise, stripes) as the maps before block 15."""
    rng = np.random.default_rng(1)
    stripes = np.tile((np.arange(40) // 4 % 2).astype(np.float32), (40, 1))
    patterns = [np.full((40, 40), 0.5, np.float32), None, stripes]
    imgs, labels = [], []
    for label, p in enumerate(patterns):
        for _ in range(n_per_class):
            noise = rng.uniform(0, 1, (40, 40)).astype(np.float32)
            imgs.append(noise if p is None else np.clip(p + 0.05 * noise, 0, 1))
            labels.append(label)
    maps = extract(net, network_input(np.stack(imgs), 32), maps=("block14",))["block14"]
    return maps, np.array(labels)


def test_fine_tune_learns_and_leaves_the_pretrained_network_alone(net):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    maps, y = toy_task(net)
    top = fine_tune(TopBlocks(net, 15, 3, seed=0), maps, y, head_steps=30, steps=10, seed=0)
    assert accuracy(top, maps, y) == 1.0
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_head_only_keeps_the_backbone_and_frozen_batchnorm_keeps_the_statistics(net):
    maps, y = toy_task(net)
    start = TopBlocks(net, 15, 3, seed=0)
    weights = [p.clone() for p in start.backbone.parameters()]
    stats = running_stats(start)
    head_only = fine_tune(start, maps, y, steps=0)
    assert all(torch.equal(a, b) for a, b in zip(weights, head_only.backbone.parameters()))
    frozen = fine_tune(TopBlocks(net, 15, 3, seed=0), maps, y, steps=5, batchnorm="frozen")
    assert torch.equal(running_stats(frozen), stats)
    assert not all(torch.equal(a, b) for a, b in zip(weights, frozen.backbone.parameters()))
    in_train_mode = fine_tune(TopBlocks(net, 15, 3, seed=0), maps, y, steps=5, batchnorm="train")
    assert not torch.equal(running_stats(in_train_mode), stats)
    with pytest.raises(ValueError, match="'frozen' or 'train'"):
        fine_tune(TopBlocks(net, 15, 3), maps, y, batchnorm="eval")


def test_fine_tune_is_repeatable(net):
    maps, y = toy_task(net, n_per_class=2)
    a, b = (fine_tune(TopBlocks(net, 15, 3, seed=2), maps, y, head_steps=5, steps=3, seed=4) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


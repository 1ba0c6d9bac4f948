"""utils.models: the small CNN, training, the checkpoint and receptive fields."""
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from utils.models import (CHECKPOINT_PATH, SOURCE_CHECKPOINT_SHA256, SmallCNN, evaluate,
                          empirical_receptive_field, input_gradient, load_pretrained, predict,
                          receptive_field, save_checkpoint, sha256_of, train)


def _toy_data(n=96, seed=0):
    """Two classes that a CNN separates easily: a bright left half or a bright right half."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.uniform(0, 0.2, (n, 1, 16, 16)).astype(np.float32)
    for i, label in enumerate(y):
        X[i, 0, :, 8 * label:8 * label + 8] += 0.8
    return X, y.astype(np.int64)


@pytest.mark.parametrize("widths, image_size, head_in", [((16, 32, 64), 16, 256), ((8,), 16, 512),
                                                          ((4, 6), 12, 54)])
def test_small_cnn_shapes(widths, image_size, head_in):
    model = SmallCNN(num_classes=7, widths=widths, image_size=image_size)
    out = model(torch.zeros(5, 1, image_size, image_size))
    assert out.shape == (5, 7)
    assert model.head[-1].in_features == head_in
    maps = model.feature_maps(np.zeros((2, 1, image_size, image_size), np.float32))
    assert len(maps) == 3 * len(widths)
    assert maps[-1].shape == (2, widths[-1], image_size // 2 ** len(widths), image_size // 2 ** len(widths))


def test_small_cnn_rejects_bad_configurations():
    with pytest.raises(ValueError, match="odd"):
        SmallCNN(kernel_size=4)
    with pytest.raises(ValueError, match="below 1x1"):
        SmallCNN(widths=(4, 4, 4, 4, 4), image_size=16)


def _trained_weights(seed):
    torch.manual_seed(0)
    model = SmallCNN(num_classes=2, widths=(4, 8))
    train(model, _toy_data(), epochs=2, batch_size=16, seed=seed, progress=False)
    return [p.detach().clone() for p in model.parameters()]


def test_training_is_deterministic_for_a_seed():
    first, second = _trained_weights(seed=1), _trained_weights(seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    other = _trained_weights(seed=2)
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_training_learns_and_records_history():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=2, widths=(4, 8))
    X, y = _toy_data()
    before = evaluate(model, X, y)
    history = train(model, (X, y), val_data=_toy_data(seed=1), epochs=5, batch_size=16,
                    lr=1e-2, progress=False)
    assert len(history.train_loss) == len(history.val_accuracy) == len(history.epoch_seconds) == 5
    assert history.train_loss[-1] < history.train_loss[0]
    after = evaluate(model, X, y)
    assert after.loss < before.loss and after.accuracy > 0.95
    np.testing.assert_array_equal(predict(model, X), y)


def test_frozen_features_stay_unchanged_and_param_groups_are_used():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=2, widths=(4, 8))
    for p in model.features.parameters():
        p.requires_grad_(False)
    features_before = [p.clone() for p in model.features.parameters()]
    head_before = model.head[-1].weight.clone()
    train(model, _toy_data(), epochs=1, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(features_before, model.features.parameters()))
    assert not torch.equal(head_before, model.head[-1].weight)
    # A learning rate of zero for the head in an explicit group keeps it fixed.
    head_after = model.head[-1].weight.clone()
    train(model, _toy_data(), epochs=1, param_groups=[{"params": model.head.parameters(), "lr": 0.0}],
          progress=False)
    assert torch.equal(head_after, model.head[-1].weight)


def test_train_rejects_mismatched_labels():
    X, y = _toy_data()
    with pytest.raises(ValueError, match=r"labels of shape \(96,\)"):
        train(SmallCNN(num_classes=2), (X, y[:-1]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="N, C, H, W"):
        evaluate(SmallCNN(num_classes=2), X[:, 0], y)


# --- checkpoint ------------------------------------------------------------------------------

def test_pretrained_checkpoint_matches_its_recorded_checksum_and_loads():
    assert CHECKPOINT_PATH.stat().st_size < 2 * 1024 * 1024
    assert sha256_of(CHECKPOINT_PATH) == SOURCE_CHECKPOINT_SHA256
    model = load_pretrained()
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 26)
    assert not model.training


def test_pretrained_model_recognises_the_source_letters():
    from utils.data import load_glyph_splits
    X, y = load_glyph_splits().test
    assert evaluate(load_pretrained(), X, y).accuracy > 0.9


def test_corrupt_checkpoint_gives_a_rebuild_message(tmp_path):
    broken = tmp_path / "source_cnn.pt"
    shutil.copy(CHECKPOINT_PATH, broken)
    data = bytearray(broken.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt.*python -m tools.train_source_checkpoint"):
        load_pretrained(broken)


def test_missing_checkpoint_gives_a_rebuild_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m tools.train_source_checkpoint"):
        load_pretrained(tmp_path / "nothing.pt")


def test_unreadable_checkpoint_with_matching_checksum_still_explains(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read.*train_source_checkpoint"):
        load_pretrained(junk, expected_sha256=sha256_of(junk))


def test_save_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN(num_classes=26)
    digest = save_checkpoint(model, tmp_path / "m.pt")
    loaded = load_pretrained(tmp_path / "m.pt", expected_sha256=digest)
    x = torch.rand(3, 1, 16, 16)
    assert torch.equal(model.eval()(x), loaded(x))


# --- receptive fields ------------------------------------------------------------------------

def test_receptive_field_of_the_course_cnn_by_hand():
    rows = receptive_field(SmallCNN())
    # conv3: 3; pool2: 3 + 1 = 4 (jump 2); conv3: 4 + 2*2 = 8; pool: 10 (jump 4); conv: 18; pool: 22
    assert [r.size for r in rows] == [3, 3, 4, 8, 8, 10, 18, 18, 22]
    assert [r.jump for r in rows] == [1, 1, 2, 2, 2, 4, 4, 4, 8]


def test_receptive_field_accepts_window_tuples():
    assert [r.size for r in receptive_field([(3, 1, 1), (3, 1, 2), (2, 2, 1), (5, 1, 1)])] == [3, 7, 8, 16]


CONFIGS = [
    [nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, padding=1)],
    [nn.Conv2d(1, 2, 5), nn.Conv2d(2, 2, 3, stride=2), nn.Conv2d(2, 1, 3)],
    [nn.Conv2d(1, 2, 3, dilation=2), nn.AvgPool2d(3, stride=2), nn.Conv2d(2, 2, 3, dilation=3)],
    [nn.Conv2d(3, 4, 7, stride=2, padding=3), nn.MaxPool2d(3, stride=2, padding=1), nn.Conv2d(4, 4, 1)],
]


@pytest.mark.parametrize("layers", CONFIGS)
def test_formula_matches_the_gradient_of_one_unit(layers):
    formula = receptive_field(nn.Sequential(*layers))[-1].size
    measured = empirical_receptive_field(nn.Sequential(*layers), input_size=81)
    assert (measured.rows, measured.cols) == (formula, formula)


def test_empirical_receptive_field_of_the_course_cnn():
    measured = empirical_receptive_field(SmallCNN(), input_size=64)
    assert (measured.rows, measured.cols) == (22, 22)


def test_input_gradient_is_zero_outside_the_window():
    conv = nn.Conv2d(1, 1, 3, bias=False)
    nn.init.ones_(conv.weight)
    gradient = input_gradient(conv, torch.rand(1, 1, 9, 9), position=(2, 5))
    expected = np.zeros((9, 9))
    expected[2:5, 5:8] = 1
    np.testing.assert_array_equal(gradient, expected)


def test_receptive_field_start_locates_the_window_of_any_unit():
    layers = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(1, 1, 5, stride=2))
    last = receptive_field(layers)[-1]
    from utils.models import _probe_copy  # all-ones weights: the gradient fills the whole window
    for position in [(0, 0), (3, 5)]:
        gradient = input_gradient(_probe_copy(layers), torch.ones(1, 1, 40, 40), position=position)
        rows, cols = np.flatnonzero(gradient.max(1) > 0), np.flatnonzero(gradient.max(0) > 0)
        centre = (last.start + position[0] * last.jump, last.start + position[1] * last.jump)
        # the unit's window, cut by the image border, lies within [centre - r/2, centre + r/2]
        assert rows[-1] == round(centre[0] + (last.size - 1) / 2)
        assert cols[-1] == round(centre[1] + (last.size - 1) / 2)


layer_specs = st.lists(st.tuples(st.sampled_from(["conv", "max", "avg"]), st.integers(1, 4),
                                 st.integers(1, 2), st.integers(1, 2)), min_size=1, max_size=4)


def _build(specs):
    """Layers without padding (every unit's window lies inside the image) from (kind, k, s, d)."""
    layers = []
    for kind, k, s, d in specs:
        if kind == "conv":
            layers.append(nn.Conv2d(1, 1, k, stride=s, dilation=d))
        elif kind == "max":
            layers.append(nn.MaxPool2d(k, stride=s, dilation=d))
        else:
            layers.append(nn.AvgPool2d(k, stride=s))
    return nn.Sequential(*layers)


@settings(max_examples=25, deadline=None)
@given(layer_specs)
def test_formula_matches_the_gradient_for_random_stacks(specs):
    layers = _build(specs)
    formula = receptive_field(layers)[-1]
    measured = empirical_receptive_field(layers, input_size=formula.size + 2 * formula.jump)
    assert (measured.rows, measured.cols) == (formula.size, formula.size)

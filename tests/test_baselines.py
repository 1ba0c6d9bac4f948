"""utils.baselines on scikit-learn's bundled 8x8 digits: shapes, determinism, accuracy floors."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

from utils.baselines import (BaselineResult, flatten_pixels, hog_features, hog_linear, intensity_statistics,
                             logistic_regression_on_pixels, mlp_on_pixels, run_baselines)


@pytest.fixture(scope="module")
def split():
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:600], order[600:1000]
    return x[train], digits.target[train], x[test], digits.target[test]


def test_flatten_accepts_nchw_and_nhw():
    x = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 1, 8, 8)
    assert flatten_pixels(x).shape == (2, 64)
    np.testing.assert_array_equal(flatten_pixels(x), flatten_pixels(x[:, 0]))
    assert flatten_pixels(x)[1, 9] == 64 + 9  # row-major: image 1, row 1, column 1


def test_hog_features_shape_and_orientation_sensitivity():
    vertical_edge = np.zeros((8, 8)); vertical_edge[:, 4:] = 1
    features = hog_features(np.stack([vertical_edge, vertical_edge.T]))
    assert features.shape == (2, 3 * 3 * 4 * 9)
    # a vertical and a horizontal edge must land in different orientation bins
    assert not np.allclose(features[0], features[1])


@pytest.mark.parametrize("method, floor", [
    (logistic_regression_on_pixels, 0.9), (mlp_on_pixels, 0.9), (hog_linear, 0.85)])
def test_baselines_learn_digits(split, method, floor):
    result = method(*split)
    assert isinstance(result, BaselineResult)
    assert floor <= result.accuracy <= 1.0
    assert result.train_seconds > 0 and result.n_params > 0


def test_chance_level_on_shuffled_labels(split):
    x_train, y_train, x_test, y_test = split
    shuffled = np.random.default_rng(1).permutation(y_train)
    assert logistic_regression_on_pixels(x_train, shuffled, x_test, y_test).accuracy < 0.3


def test_deterministic_and_ordered(split):
    x_train, y_train, x_test, y_test = split
    small = (x_train[:200], y_train[:200], x_test[:100], y_test[:100])
    first, second = run_baselines(*small), run_baselines(*small)
    assert [r.accuracy for r in first] == [r.accuracy for r in second]
    assert [r.name for r in first] == ["logistic regression on pixels", "MLP (64 hidden) on pixels",
                                       "HOG features + logistic regression"]


def test_parameter_counts(split):
    assert logistic_regression_on_pixels(*split).n_params == 64 * 10 + 10
    assert mlp_on_pixels(*split, hidden=16).n_params == 64 * 16 + 16 + 16 * 10 + 10


@pytest.mark.parametrize("x, y, words", [
    (np.zeros((4, 3, 8, 8)), np.zeros(4), ["(4, 3, 8, 8)"]),
    (np.zeros((4, 1, 8, 8)), np.zeros(3), ["train 4 vs 3"]),
])
def test_bad_input_is_a_clear_value_error(x, y, words):
    with pytest.raises(ValueError) as info:
        logistic_regression_on_pixels(x, y, x[:2], y[:2])
    assert all(w in str(info.value) for w in words)


def test_hog_on_too_small_images_is_a_value_error():
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        hog_features(np.zeros((1, 3, 3)))


def test_intensity_statistics_ignore_positions_and_see_roughness():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (1, 12, 12))
    shuffled = rng.permutation(image.ravel()).reshape(1, 12, 12)
    smooth = np.sort(image.ravel()).reshape(1, 12, 12)   # same values, neighbours similar
    stats = intensity_statistics(np.concatenate([image, shuffled, smooth]))
    assert stats.shape == (3, 7)
    np.testing.assert_allclose(stats[:, :5], np.tile(stats[0, :5], (3, 1)))   # same histogram
    assert stats[2, 5] < stats[0, 5] / 3   # but the sorted image is far less rough
    np.testing.assert_allclose(stats[0, 2], np.median(image))

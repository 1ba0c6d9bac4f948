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


def test_lbp_histograms_are_normalised_shift_invariant_and_see_texture():
    from utils.baselines import lbp_histograms
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 1, (1, 24, 24))
    stripes = np.tile((np.arange(24) % 4 < 2).astype(float), (24, 1))[None] * 0.8 + 0.1
    h = lbp_histograms(np.concatenate([noise, stripes, np.roll(stripes, 1, axis=2)]))
    assert h.shape == (3, 10 + 18 + 26)
    start = 0
    for bins in (10, 18, 26):                          # one histogram per scale, each sums to 1
        np.testing.assert_allclose(h[:, start:start + bins].sum(1), 1.0)
        start += bins
    np.testing.assert_allclose(h[1], h[2], atol=0.1)   # a shifted texture: (almost) the same histogram
    assert np.abs(h[0] - h[1]).sum() > 0.5             # another texture: a different one
    flat = lbp_histograms(np.full((1, 1, 10, 10), 0.5))
    assert flat[0, 8] >= 0.64                          # flat: every neighbour >= centre (code P), at least
    #                                                    on the 8x8 interior (the border sees outside)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lbp_histograms(np.full((1, 10, 10), 2.0))


def test_standardize_features_uses_the_reference_only():
    from utils.baselines import standardize_features
    rng = np.random.default_rng(1)
    ref, other = rng.normal(3, 2, (50, 4)), rng.normal(0, 1, (5, 4))
    ref[:, 3] = 7.0                                    # a constant feature
    a, b = standardize_features(ref, other)
    np.testing.assert_allclose(a[:, :3].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(a[:, :3].std(0), 1)
    np.testing.assert_allclose(a[:, 3], 0)
    np.testing.assert_allclose(b[:, 0], (other[:, 0] - ref[:, 0].mean()) / ref[:, 0].std())
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        standardize_features(np.zeros(5))


@pytest.mark.parametrize("kind", ["logistic", "rbf_svm"])
def test_fit_tuned_chooses_C_on_validation_and_ignores_test_labels(kind):
    from utils.baselines import C_GRID, fit_tuned
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 6))
    y = np.repeat(np.arange(3), 30)
    X = centres[y] + rng.normal(0, 0.7, (90, 6))
    train, val, test = (X[0::3], y[0::3]), (X[1::3], y[1::3]), (X[2::3], y[2::3])
    fit = fit_tuned(kind, train, val, test)
    assert fit.C in C_GRID and fit.accuracy > 0.8
    shuffled_test = (test[0], rng.permutation(test[1]))          # test labels change the score, not the choice
    again = fit_tuned(kind, train, val, shuffled_test)
    assert again.C == fit.C and again.val_accuracy == fit.val_accuracy and again.accuracy < fit.accuracy
    # the choice is the best validation accuracy: no single C does better on validation
    singles = [fit_tuned(kind, train, val, test, Cs=[C]).val_accuracy for C in C_GRID]
    assert fit.val_accuracy == max(singles) and fit.C == C_GRID[singles.index(max(singles))]
    with pytest.raises(ValueError, match="kind"):
        fit_tuned("knn", train, val, test)
    with pytest.raises(ValueError, match="labels"):
        fit_tuned(kind, (X[:5], y[:4]), val, test)

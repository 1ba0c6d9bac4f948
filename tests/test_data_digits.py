"""utils.data for Part III: the digits splits, label budgets and the generated letters."""
import numpy as np
import pytest

from utils.data import (DIGITS_SPLIT_SIZES, GLYPH_CLASSES, IMAGE_SIZE, load_digits_splits,
                        load_glyph_splits, place_on_canvas, take_per_class)


@pytest.fixture(scope="module")
def digits():
    return load_digits_splits()


@pytest.fixture(scope="module")
def glyphs():
    return load_glyph_splits(n_per_class=20, seed=3)


def test_digits_shapes_dtypes_and_range(digits):
    for name, (X, y) in zip(digits._fields, digits):
        assert X.shape == (DIGITS_SPLIT_SIZES[name], 1, IMAGE_SIZE, IMAGE_SIZE)
        assert X.dtype == np.float32 and y.dtype == np.int64
        assert 0.0 <= X.min() and X.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))


def _image_keys(X):
    return {x.tobytes() for x in X}


def test_digits_splits_are_disjoint_and_cover_the_dataset(digits):
    keys = [_image_keys(X) for X, _ in digits]
    # The digits set contains a handful of exact duplicates, so compare sizes, not only sets.
    assert sum(len(X) for X, _ in digits) == 1797
    assert not keys[0] & keys[2] and not keys[1] & keys[2] and not keys[0] & keys[1]


def test_digits_splits_are_stratified(digits):
    from sklearn.datasets import load_digits
    whole = np.bincount(load_digits().target) / 1797
    for _, y in digits:
        assert np.abs(np.bincount(y) / len(y) - whole).max() < 0.01


def test_digits_splits_are_the_same_every_call_and_copies(digits):
    again = load_digits_splits()
    for (X1, y1), (X2, y2) in zip(digits, again):
        np.testing.assert_array_equal(X1, X2)
        np.testing.assert_array_equal(y1, y2)
    again.train[0][:] = 0  # a learner editing their arrays must not change the next call
    assert load_digits_splits().train[0].max() > 0


@pytest.mark.parametrize("k", [5, 10, 20, 50])
def test_take_per_class_gives_k_per_class_from_the_split(digits, k):
    X, y = take_per_class(digits.train, k, seed=1)
    assert X.shape == (10 * k, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert np.all(np.bincount(y) == k)
    assert _image_keys(X) <= _image_keys(digits.train[0])


def test_take_per_class_budgets_are_nested_and_seeded(digits):
    small, large = take_per_class(digits.train, 5, seed=2), take_per_class(digits.train, 20, seed=2)
    assert _image_keys(small[0]) <= _image_keys(large[0])
    np.testing.assert_array_equal(take_per_class(digits.train, 5, seed=2)[0], small[0])
    assert not np.array_equal(take_per_class(digits.train, 5, seed=3)[0], small[0])


def test_take_per_class_rejects_impossible_budgets(digits):
    with pytest.raises(ValueError, match="smallest class has"):
        take_per_class(digits.train, 10_000)
    with pytest.raises(ValueError, match="X and y disagree"):
        take_per_class((digits.train[0], digits.train[1][:-1]), 5)


def test_glyphs_shapes_classes_and_balance(glyphs):
    total = 0
    for X, y in glyphs:
        assert X.shape[1:] == (1, IMAGE_SIZE, IMAGE_SIZE) and X.dtype == np.float32
        assert y.dtype == np.int64 and 0.0 <= X.min() and X.max() <= 1.0
        total += len(y)
    assert total == 20 * len(GLYPH_CLASSES)
    assert np.all(np.bincount(glyphs.train[1], minlength=26) == 16)


def test_glyphs_are_deterministic_per_seed(glyphs):
    from utils import data
    data._glyph_splits_cached.cache_clear()  # regenerate, do not just read the cache
    again = load_glyph_splits(n_per_class=20, seed=3)
    np.testing.assert_array_equal(again.train[0], glyphs.train[0])
    other = load_glyph_splits(n_per_class=20, seed=4)
    assert not np.array_equal(other.train[0], glyphs.train[0])


def test_glyphs_have_ink_and_differ_within_a_class(glyphs):
    X, y = glyphs.train
    assert X.reshape(len(X), -1).max(1).min() > 0.5  # every image shows a bright letter
    a_images = X[y == 0]
    assert np.abs(a_images[0] - a_images[1]).mean() > 0.01  # jitter: no two copies alike


def test_glyphs_reject_too_few_per_class():
    with pytest.raises(ValueError, match="n_per_class"):
        load_glyph_splits(n_per_class=3)


def _offset_of(image, canvas):
    """Where ``image`` (C, h, w) sits in ``canvas`` (C, H, W), asserting everything else is zero."""
    _, h, w = image.shape
    found = [(r, c) for r in range(canvas.shape[1] - h + 1) for c in range(canvas.shape[2] - w + 1)
             if np.array_equal(canvas[:, r:r + h, c:c + w], image)]
    assert found, "the image is not on the canvas unchanged"
    r, c = found[0]
    rest = canvas.copy()
    rest[:, r:r + h, c:c + w] = 0
    assert not rest.any(), "ink outside the pasted image"
    return r, c


def test_place_on_canvas_copies_each_image_unchanged_onto_zeros(digits):
    X = digits.test[0][:30]
    shifted = place_on_canvas(X, 24, seed=5)
    assert shifted.shape == (30, 1, 24, 24) and shifted.dtype == np.float32
    offsets = [_offset_of(x, s) for x, s in zip(X, shifted)]
    assert all(0 <= r <= 8 and 0 <= c <= 8 for r, c in offsets)
    assert len(set(offsets)) > 10  # positions really vary


def test_place_on_canvas_is_seeded_and_covers_every_offset():
    X = np.ones((400, 1, 3, 2), dtype=np.float32)
    shifted = place_on_canvas(X, 5, seed=1)
    np.testing.assert_array_equal(place_on_canvas(X, 5, seed=1), shifted)
    assert not np.array_equal(place_on_canvas(X, 5, seed=2), shifted)
    offsets = {_offset_of(x, s) for x, s in zip(X, shifted)}
    assert offsets == {(r, c) for r in range(3) for c in range(4)}  # rows 0..5-3, cols 0..5-2


def test_place_on_canvas_same_size_is_a_copy_and_rejects_bad_input(digits):
    X = digits.test[0][:4]
    np.testing.assert_array_equal(place_on_canvas(X, 16), X)
    with pytest.raises(ValueError, match="cannot hold images of size 16x16"):
        place_on_canvas(X, 15)
    with pytest.raises(ValueError, match=r"\(N, C, h, w\)"):
        place_on_canvas(X[:, 0], 24)

"""utils.photo_patches: the patch dataset of chapter 08 (disjoint halves, shapes, determinism)."""
import numpy as np
import pytest

from utils.photo_patches import CLASSES, Box, load_patch_splits, load_source, regions, standardize


@pytest.fixture(scope="module")
def splits():
    return load_patch_splits(patch=64, n_train=6, n_val=3, n_test=5, seed=1)


def test_shapes_labels_and_range(splits):
    for part, n in (("train", 6), ("val", 3), ("test", 5)):
        X, y = getattr(splits, part)
        assert X.shape == (n * len(CLASSES), 64, 64) and X.dtype == np.float32
        assert 0.0 <= X.min() and X.max() <= 1.0
        np.testing.assert_array_equal(np.bincount(y), np.full(len(CLASSES), n))
        np.testing.assert_array_equal(splits.boxes[part][:, 0], y)
    assert splits.classes == CLASSES and len(CLASSES) >= 6


def test_every_patch_is_the_photo_at_its_box(splits):
    raw = load_patch_splits(patch=64, n_train=6, n_val=3, n_test=5, seed=1, standardized=False)
    for patch, raw_patch, (label, top, left) in zip(splits.test[0], raw.test[0], raw.boxes["test"]):
        crop = load_source(CLASSES[label])[top:top + 64, left:left + 64]
        np.testing.assert_array_equal(raw_patch, crop)
        np.testing.assert_array_equal(patch, standardize(crop[None])[0])


def test_standardize_equalises_mean_and_contrast():
    rng = np.random.default_rng(0)
    dark, bright = rng.uniform(0, 0.1, (1, 16, 16)), rng.uniform(0.5, 1.0, (1, 16, 16))
    out = standardize(np.concatenate([dark, bright]))
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.5, atol=1e-3)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 0.2, atol=1e-3)
    # the order of the pixels (the texture) is kept: standardising is increasing per patch
    assert np.array_equal(np.argsort(out[0], axis=None), np.argsort(dark[0], axis=None))
    np.testing.assert_array_equal(standardize(np.full((1, 4, 4), 0.3)), np.full((1, 4, 4), 0.5))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        standardize(np.zeros((4, 4)))


def test_test_pixels_never_appear_in_training_or_validation(splits):
    """The claim of the chapter: train/val patches lie in the left half, test patches in the right half."""
    for label, name in enumerate(CLASSES):
        width = load_source(name).shape[1]
        seen = np.zeros(width, bool)
        for part in ("train", "val"):
            for _, top, left in splits.boxes[part][splits.boxes[part][:, 0] == label]:
                seen[left:left + 64] = True
        tested = np.zeros(width, bool)
        for _, top, left in splits.boxes["test"][splits.boxes["test"][:, 0] == label]:
            tested[left:left + 64] = True
        assert tested.any() and seen.any() and not (seen & tested).any(), name


@pytest.mark.parametrize("shape", [(512, 512), (303, 384), (512, 587)])
def test_regions_are_disjoint_and_cover_the_photo(shape):
    boxes = regions(shape, patch=96)
    mask = np.zeros(shape, int)
    for box in boxes.values():
        assert isinstance(box, Box)
        mask[box.top:box.bottom, box.left:box.right] += 1
    assert mask.max() == 1 and mask[:, : 2 * (shape[1] // 2)].min() == 1
    assert boxes["val"].bottom - boxes["val"].top >= 96


def test_deterministic_per_seed_and_copies():
    a, b = load_patch_splits(patch=32, n_train=2, n_val=1, n_test=2, seed=3), \
        load_patch_splits(patch=32, n_train=2, n_val=1, n_test=2, seed=3)
    np.testing.assert_array_equal(a.train[0], b.train[0])
    a.train[0][:] = 0   # callers get copies: the cache stays intact
    assert load_patch_splits(patch=32, n_train=2, n_val=1, n_test=2, seed=3).train[0].any()
    other = load_patch_splits(patch=32, n_train=2, n_val=1, n_test=2, seed=4)
    assert not np.array_equal(other.train[0], b.train[0])


def test_the_photos_said_to_ship_in_gray_do():
    import skimage.data
    from utils.photo_patches import SOURCES
    gray = {name for name in CLASSES if getattr(skimage.data, SOURCES[name])().ndim == 2}
    assert gray == {"brick", "grass", "gravel", "moon", "coins"}   # the module docstring's list


def test_sources_are_gray_and_at_most_512_on_the_short_side():
    for name in CLASSES:
        image = load_source(name)
        assert image.ndim == 2 and image.dtype == np.float32 and min(image.shape) <= 512
        assert image.std() > 0.02, f"{name} has no texture"


@pytest.mark.parametrize("kwargs, words", [
    ({"patch": 0}, "patch must be a positive integer"),
    ({"n_test": 2.5}, "n_test must be a positive integer"),
    ({"patch": 200}, "too small for 200-pixel patches"),
])
def test_bad_arguments_are_clear_value_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        load_patch_splits(**kwargs)


def test_unknown_source_names_the_choices():
    with pytest.raises(ValueError, match="brick"):
        load_source("marble")

"""utils.baselines.center_by_mass: moves each image's centre of mass to the centre (chapter 9)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from utils.baselines import center_by_mass


def blob_on_canvas(blob, canvas, row, col):
    image = np.zeros((canvas, canvas), np.float32)
    image[row:row + blob.shape[0], col:col + blob.shape[1]] = blob
    return image


blobs = st.integers(0, 2 ** 32 - 1).map(
    lambda seed: np.random.default_rng(seed).uniform(0, 1, (5, 5)).astype(np.float32))


@settings(max_examples=40, deadline=None)
@given(blob=blobs, rows=st.tuples(st.integers(4, 11), st.integers(4, 11)),
       cols=st.tuples(st.integers(4, 11), st.integers(4, 11)))
def test_the_same_pattern_anywhere_gives_the_same_centred_image(blob, rows, cols):
    # Translation invariance, the point of the preprocessing: two copies of one pattern at
    # different integer positions (far enough from the border to stay on the canvas) coincide.
    images = np.stack([blob_on_canvas(blob, 20, r, c) for r, c in zip(rows, cols)])[:, None]
    centred = center_by_mass(images)
    np.testing.assert_allclose(centred[0], centred[1], atol=1e-5)
    for image in centred[:, 0]:
        np.testing.assert_allclose(ndimage.center_of_mass(image), (9.5, 9.5), atol=1e-4)
        assert image.sum() == pytest.approx(blob.sum(), rel=1e-5)   # nothing pushed off the canvas


def test_an_off_centre_digit_is_moved_and_a_centred_one_is_left_alone():
    square = np.zeros((1, 9, 9)); square[0, 3:6, 3:6] = 1          # already centred at (4, 4)
    np.testing.assert_array_equal(center_by_mass(square), square)
    corner = np.zeros((1, 9, 9)); corner[0, 0:3, 0:3] = 1
    np.testing.assert_allclose(center_by_mass(corner), square, atol=1e-12)


def test_shapes_dtypes_and_empty_images():
    x = np.zeros((3, 1, 8, 8), np.float32); x[1, 0, 0, 0] = 1
    out = center_by_mass(x)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], 0)                        # all-zero image unchanged
    assert center_by_mass(x[:, 0]).shape == (3, 8, 8)
    assert center_by_mass(x.astype(np.float64)).dtype == np.float64
    assert center_by_mass(x.astype(np.uint8)).dtype == np.float32


@pytest.mark.parametrize("bad, words", [
    (-np.ones((1, 4, 4)), "non-negative"),
    (np.ones((4, 4)), "(N, 1, H, W)"),
    (np.ones((1, 3, 4, 4)), "single-channel"),
])
def test_bad_input_is_a_clear_value_error(bad, words):
    with pytest.raises(ValueError, match=None) as info:
        center_by_mass(bad)
    assert words in str(info.value)

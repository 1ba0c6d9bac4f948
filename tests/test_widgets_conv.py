"""The convolution explorer without a browser: set control values, check the computed arrays and texts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from utils.widgets import PRESETS, conv_explorer, conv_step_through, conv_view, output_size_formula, preset_kernel


def torch_conv(image, kernel, stride=1, padding=0, dilation=1):
    out = F.conv2d(torch.from_numpy(np.array(image))[None, None], torch.from_numpy(kernel)[None, None],
                   stride=stride, padding=padding, dilation=dilation)
    return out[0, 0].numpy()



@settings(max_examples=25, deadline=None)
@given(h=st.integers(5, 14), w=st.integers(5, 14), k=st.sampled_from([3, 5]), stride=st.integers(1, 3),
       padding=st.integers(0, 2), dilation=st.integers(1, 2), seed=st.integers(0, 100))
def test_conv_view_matches_torch_and_its_formula(h, w, k, stride, padding, dilation, seed):
    rng = np.random.default_rng(seed)
    image = rng.random((h, w), dtype=np.float32)
    kernel = rng.standard_normal((k, k)).astype(np.float32)
    view = conv_view(image, kernel, stride, padding, dilation, position=(99, 99))
    span = dilation * (k - 1) + 1
    if span > min(h, w) + 2 * padding:
        assert view.output is None and "does not fit" in view.formula
        return
    expected = torch_conv(image, kernel, stride, padding, dilation)
    np.testing.assert_allclose(view.output, expected, rtol=1e-4, atol=1e-5)
    assert view.formula.splitlines()[1].endswith(f"= {expected.shape[0]}")   # H: formula, numbers
    assert view.formula.splitlines()[3].endswith(f"= {expected.shape[1]}")   # W: formula, numbers
    row, col = view.position                   # clipped into the output: the last value
    assert (row, col) == (expected.shape[0] - 1, expected.shape[1] - 1)
    assert np.isclose((view.taps * kernel).sum(), expected[row, col], rtol=1e-4, atol=1e-5)
    assert np.isclose(view.value, expected[row, col], rtol=1e-4, atol=1e-5)


def test_formula_text_has_the_numbers_filled_in():
    text, result = output_size_formula("H", 256, 3, stride=2, padding=1, dilation=1)
    assert result == 128
    assert text.endswith("= ⌊(256 + 2·1 − 1·(3 − 1) − 1) / 2⌋ + 1 = ⌊255 / 2⌋ + 1 = 128")
    pool_text, pool_result = output_size_formula("W", 7, 2, stride=2, padding=0, dilation=None)
    assert pool_result == 3 and pool_text.endswith("= ⌊(7 + 2·0 − 2) / 2⌋ + 1 = ⌊5 / 2⌋ + 1 = 3")


def test_presets_do_what_their_names_say():
    step = np.tile(np.repeat(np.array([0.0, 1.0], np.float32), 5), (10, 1))   # dark left, bright right
    for size in (3, 5):
        sums = {name: preset_kernel(name, size).sum() for name in ("Gaussian", "box blur", "sharpen", "Laplacian")}
        np.testing.assert_allclose(list(sums.values()), [1, 1, 1, 0], atol=1e-6)
        np.testing.assert_array_equal(torch_conv(step, preset_kernel("identity", size), padding=size // 2), step)
        assert torch_conv(step, preset_kernel("Sobel x", size)).max() > 0            # brighter to the right
        np.testing.assert_allclose(torch_conv(step, preset_kernel("Sobel y", size)), 0)  # no vertical change
        np.testing.assert_array_equal(preset_kernel("Sobel y", size), preset_kernel("Sobel x", size).T)
    with pytest.raises(ValueError, match="sizes 3 and 5, got size 4"):
        preset_kernel("Gaussian", 4)


def test_conv_explorer_controls_update_output_and_formula():
    ex = conv_explorer("coins")
    assert ex.result.output.shape == (254, 254) and "= 254" in ex.formula_view.value
    before = ex.output_view.value
    ex.stride.value = 2
    assert ex.result.output.shape == (127, 127) and "= 127" in ex.formula_view.value
    assert ex.output_view.value != before
    assert ex.out_row.max == 126 and ex.out_col.max == 126
    assert ex.result.position == (63, 63)                  # the window stays mid-image (was 127, 127)
    ex.padding.value, ex.dilation.value = 2, 3
    np.testing.assert_allclose(ex.result.output, torch_conv(ex.image(), ex.kernel(), 2, 2, 3), atol=1e-5)
    assert repr(ex) == "<ConvExplorer: interactive, run the cell to use it>"


def test_editing_the_kernel_switches_to_custom_and_survives_resizing():
    ex = conv_explorer(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))
    ex.preset.value = "identity"
    np.testing.assert_allclose(ex.result.output, ex.image()[1:-1, 1:-1])
    ex.kernel_boxes[0][0].value = 2.0
    assert ex.preset.value == "custom" and ex.kernel()[0, 0] == 2.0
    ex.kernel_size.value = 5
    assert ex.kernel().shape == (5, 5) and ex.kernel()[1, 1] == 2.0 and ex.kernel()[0, 0] == 0
    assert len(ex.kernel_grid.children) == 25 and ex.result.output.shape == (4, 4)
    ex.preset.value = "Gaussian"
    np.testing.assert_array_equal(ex.kernel(), preset_kernel("Gaussian", 5))


def test_a_failing_learner_conv_fn_is_reported_in_the_widget():
    def broken(input, weight, bias=None, stride=1, padding=0, dilation=1):
        raise IndexError("index 3 is out of bounds for axis 2 with size 3")

    ex = conv_explorer("camera", conv_fn=broken)
    assert ex.result.output is None
    assert "conv_fn raised IndexError: index 3 is out of bounds" in ex.error_view.value
    ex.stride.value = 2                                   # still alive: the formula still updates
    assert "= 127" in ex.formula_view.value


def test_a_learner_conv_fn_ignoring_stride_is_caught_by_the_formula():
    def no_stride(input, weight, bias=None, stride=1, padding=0, dilation=1):
        return F.conv2d(torch.from_numpy(input), torch.from_numpy(weight), padding=padding).numpy()

    ex = conv_explorer(np.zeros((10, 10), np.float32), conv_fn=no_stride)
    assert ex.error_view.value == ""
    ex.stride.value = 2
    assert "returned 8x8 but the formula gives 4x4" in ex.error_view.value


def test_explorers_refuse_colour_images_clearly():
    with pytest.raises(ValueError, match=r"grayscale \(H, W\) image, got shape \(4, 4, 3\)"):
        conv_explorer(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"square \(k, k\) kernel, got \(5, 5\) and \(3, 2\)"):
        conv_step_through(kernel=np.ones((3, 2)))



def test_every_preset_has_a_stable_kernel():
    assert set(PRESETS) == {"identity", "box blur", "Gaussian", "sharpen", "Sobel x", "Sobel y", "Laplacian"}
    for name in PRESETS:
        for size in (3, 5):
            k = preset_kernel(name, size)
            assert k.shape == (size, size) and k.dtype == np.float32

"""The pooling explorer without a browser: the pooled feature map against torch, sliders that only
reach settings torch accepts, no formula result for refused settings, output drawn at the input's scale."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from utils.widgets import pool_explorer, pool_view, preset_kernel
from utils.widgets.pool import blocks_at_input_scale, pool_ranges, relu_feature_map


def torch_pool(x, mode, kernel, stride, padding):
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    return pool(torch.from_numpy(np.array(x))[None, None], kernel, stride, padding)[0, 0].numpy()


@pytest.mark.parametrize("mode, kernel, stride, padding", [("max", 2, 2, 0), ("avg", 3, 2, 1), ("max", 4, 1, 2)])
def test_pool_view_matches_torch(mode, kernel, stride, padding):
    image = np.random.default_rng(0).random((17, 13), dtype=np.float32)
    view = pool_view(image, mode, kernel, stride, padding)
    expected = torch_pool(image, mode, kernel, stride, padding)
    np.testing.assert_allclose(view.output, expected, rtol=1e-6)
    assert view.formula.splitlines()[1].endswith(f"= {expected.shape[0]}") and view.error is None


@pytest.mark.parametrize("kernel, padding", [(4, 3), (2, 2), (5, 3)])
def test_refused_settings_get_no_formula_result(kernel, padding):
    image = np.zeros((20, 20), np.float32)
    with pytest.raises(RuntimeError):                                   # torch refuses them ...
        torch_pool(image, "max", kernel, 2, padding)
    view = pool_view(image, "max", kernel, 2, padding)                  # ... and so do we, without a number
    assert view.output is None and "padding" in view.error
    assert all(line.endswith("→ not allowed") for line in view.formula.splitlines()[1::2])


def test_feature_map_is_relu_of_the_filter_response():
    image = np.random.default_rng(1).random((12, 12), dtype=np.float32)
    expected = F.relu(F.conv2d(torch.from_numpy(image)[None, None],
                               torch.from_numpy(preset_kernel("Laplacian"))[None, None]))[0, 0].numpy()
    np.testing.assert_allclose(relu_feature_map(image, "Laplacian"), expected, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(3, 12), w=st.integers(3, 12), data=st.data())
def test_every_setting_inside_the_ranges_is_one_torch_accepts(h, w, data):
    kernel = data.draw(st.integers(*pool_ranges((h, w), 2)["kernel_size"]))
    ranges = pool_ranges((h, w), kernel)
    stride, padding = data.draw(st.integers(*ranges["stride"])), data.draw(st.integers(*ranges["padding"]))
    mode = data.draw(st.sampled_from(["max", "avg"]))
    x = np.random.default_rng(h * 13 + w).standard_normal((h, w)).astype(np.float32)
    view = pool_view(x, mode, kernel, stride, padding)
    np.testing.assert_allclose(view.output, torch_pool(x, mode, kernel, stride, padding), rtol=1e-5, atol=1e-6)


def test_sliders_follow_each_other_so_no_refused_setting_is_reachable():
    ex = pool_explorer("camera")
    assert ex.result.input.shape == (254, 254) and ex.result.output.shape == (127, 127)
    assert ex.result.input.min() == 0                                 # a ReLU'd feature map, not the photo
    assert ex.padding.max == 1 and "25.0% of the values" in ex.output_caption.value
    ex.kernel_size.value = 5
    assert ex.padding.max == 2
    ex.padding.value = 2
    ex.kernel_size.value = 3                                           # padding 2 > 3 // 2: pulled down
    assert (ex.padding.value, ex.padding.max) == (1, 1) and ex.error_view.value == ""
    for kernel in range(ex.kernel_size.min, ex.kernel_size.max + 1):
        for stride in (1, 3, 8):
            ex.kernel_size.value, ex.stride.value = kernel, stride
            for padding in range(ex.padding.max + 1):
                ex.padding.value = padding
                assert ex.result.output is not None and "not allowed" not in ex.formula_view.value
    ex.kernel_size.value, ex.stride.value, ex.padding.value = 4, 4, 0
    assert "⌊(254 + 2·0 − 4) / 4⌋ + 1 = ⌊250 / 4⌋ + 1 = 63" in ex.formula_view.value


def test_small_image_caps_the_kernel_and_tiny_images_are_refused():
    ex = pool_explorer(np.random.default_rng(2).random((7, 9), dtype=np.float32))   # a 5x7 feature map
    assert ex.kernel_size.max == 5
    with pytest.raises(ValueError, match="at least 3x3"):
        pool_explorer(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="padding"):
        pool_explorer("camera", kernel_size=2, padding=2)


def test_changing_the_filter_pools_its_feature_map():
    ex = pool_explorer("camera")
    ex.preset.value = "Laplacian"
    np.testing.assert_allclose(ex.result.input, relu_feature_map(ex.image(), "Laplacian"))
    np.testing.assert_allclose(ex.result.output, torch_pool(ex.result.input, "max", 2, 2, 0))


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 1), (2, 3), (4, 2)])
def test_output_blocks_sit_over_their_windows(kernel, stride):
    size = 12
    x = np.zeros((size, size), np.float32)
    out = torch_pool(x, "max", kernel, stride, 0)
    indices = np.arange(out.size, dtype=np.uint8).reshape(out.shape)
    canvas = blocks_at_input_scale(indices, kernel, stride, (size, size), fill=255)
    assert canvas.shape == (size, size)
    for i in range(out.shape[0]):
        centre = i * stride + (kernel - 1) / 2          # window i covers rows i*stride ... i*stride+kernel-1
        rows = np.flatnonzero(canvas[:, 0] == indices[i, 0])
        if rows.size:                                     # the block is centred on its window (within 1/2 px)
            assert abs((rows[0] + rows[-1]) / 2 - centre) <= 0.5 and rows.size <= stride


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 1, 1), (5, 3, 2)])
def test_input_and_output_pictures_have_the_same_size(kernel, stride, padding):
    ex = pool_explorer("camera", kernel_size=kernel, stride=stride, padding=padding)
    sizes = [Image.open(io.BytesIO(bytes(v.value))).size for v in (ex.input_view, ex.output_view)]
    assert sizes[0] == sizes[1] == (254 + 2 * padding,) * 2
    assert ex.input_view.layout.width == ex.output_view.layout.width

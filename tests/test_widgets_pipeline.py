"""The layer pipeline explorer without a browser: conv -> ReLU -> pooling against torch, stages
switched off, a learner's conv_fn (right, broken, wrong shape), bad kernels, and what the widget shows."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from utils.widgets import EXPLORERS, pipeline_explorer, pipeline_view, preset_kernel
from utils.widgets.pipeline import DEFAULT_BANK, MAX_FILTERS, bank_kernels, per_filter


def torch_stage(image, weight, relu=True, pool=True, mode="max", size=2):
    x = F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(weight))
    x = F.relu(x) if relu else x
    if pool:
        x = (F.max_pool2d if mode == "max" else F.avg_pool2d)(x, size)
    return x[0].numpy()


def loop_conv(image, kernel):
    """A learner's chapter-02 style single-channel loop."""
    k = kernel.shape[0]
    out = np.zeros((image.shape[0] - k + 1, image.shape[1] - k + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i:i + k, j:j + k] * kernel)
    return out


def png_size(image_widget):
    return Image.open(io.BytesIO(bytes(image_widget.value))).size


def test_default_bank_matches_torch_conv_relu_max_pool():
    image = np.random.default_rng(0).random((30, 26), dtype=np.float32)
    view = pipeline_view(image)
    weight = np.stack([preset_kernel(name) for name in DEFAULT_BANK])[:, None]
    assert view.names == list(DEFAULT_BANK) and view.error is None
    np.testing.assert_allclose(view.conv, torch_stage(image, weight, relu=False, pool=False), atol=1e-5)
    np.testing.assert_allclose(view.relu, torch_stage(image, weight, pool=False), atol=1e-5)
    np.testing.assert_allclose(view.output, torch_stage(image, weight), atol=1e-5)
    assert view.pooled is view.output and view.output.shape == (4, 14, 12)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(8, 20), w=st.integers(8, 20), c=st.integers(1, MAX_FILTERS), k=st.sampled_from([1, 2, 3, 5]),
       size=st.integers(2, 4), mode=st.sampled_from(["max", "avg"]), relu=st.booleans(), pool=st.booleans(),
       seed=st.integers(0, 2**16))
def test_any_bank_and_stages_match_torch(h, w, c, k, size, mode, relu, pool, seed):
    rng = np.random.default_rng(seed)
    image = rng.random((h, w), dtype=np.float32)
    weight = rng.standard_normal((c, 1, k, k)).astype(np.float32)
    view = pipeline_view(image, weight, relu=relu, pool=pool, mode=mode, pool_size=size)
    np.testing.assert_allclose(view.output, torch_stage(image, weight, relu, pool, mode, size), rtol=1e-4, atol=1e-4)
    assert (view.relu is None) == (not relu) and (view.pooled is None) == (not pool)
    assert view.names == [f"filter {i}" for i in range(c)]


def test_conv_off_passes_the_image_on():
    image = np.random.default_rng(1).random((16, 16), dtype=np.float32)
    view = pipeline_view(image, conv=False, pool_size=4)
    assert view.conv is None and view.names == ["image"]
    np.testing.assert_allclose(view.output, F.max_pool2d(torch.from_numpy(image)[None, None], 4)[0].numpy())


def test_learner_conv_drives_it_and_its_errors_are_reported():
    image = np.random.default_rng(2).random((20, 20), dtype=np.float32)
    ours = pipeline_view(image, conv_fn=per_filter(loop_conv))
    np.testing.assert_allclose(ours.output, pipeline_view(image).output, atol=1e-5)

    def broken(x, w):
        raise IndexError("index 3 is out of bounds")
    view = pipeline_view(image, conv_fn=broken)
    assert view.error == "conv_fn raised IndexError: index 3 is out of bounds" and view.output is None
    view = pipeline_view(image, conv_fn=lambda x, w: x[:, :, 1:-1, 1:-1])    # one channel, not 4
    assert "should return shape (1, 4, 18, 18)" in view.error and "(1, 1, 18, 18)" in view.error
    view = pipeline_view(image, conv_fn=lambda x, w: F.conv2d(torch.from_numpy(x), torch.from_numpy(w)))
    assert view.error is None                                                # a tensor is fine too


@pytest.mark.parametrize("kernels, message", [
    (np.zeros((3, 3)), r"shape \(C_out, 1, k, k\)"),
    (np.zeros((2, 3, 3, 3)), "one input channel"),
    (np.zeros((9, 1, 3, 3)), "1 to 8 filters"),
    (np.full((1, 1, 3, 3), np.nan), "NaN"),
    (["Sobel x", "Sobel z"], "unknown preset"),
    ("Sobel x", "list of preset names"),
])
def test_bad_kernels_get_a_clear_error(kernels, message):
    with pytest.raises(ValueError, match=message):
        bank_kernels(kernels)
    with pytest.raises(ValueError, match=message):
        pipeline_explorer(kernels=kernels)


def test_bad_stage_settings_and_images_are_refused():
    image = np.zeros((10, 10), np.float32)
    with pytest.raises(ValueError, match="mode"):
        pipeline_view(image, mode="min")
    with pytest.raises(ValueError, match="pool_size"):
        pipeline_view(image, pool_size=1)
    with pytest.raises(ValueError, match="too small"):
        pipeline_view(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="larger than"):
        pipeline_view(np.zeros((6, 6), np.float32), pool_size=5)


def test_explorer_shows_every_stage_and_hides_the_ones_switched_off():
    ex = pipeline_explorer("camera")
    assert "PipelineExplorer" in EXPLORERS and len(ex.rows) == len(DEFAULT_BANK)
    row = ex.rows[0]
    assert [p.layout.display for p in row.panels] == ["", "", ""]
    assert png_size(row.pictures[0]) == (254, 254) == png_size(row.pictures[2])   # pooled at the input's scale
    assert row.pictures[2].layout.width == "127px"                                # ½x by default
    pooled_before = bytes(row.pictures[2].value)
    ex.use_relu.value = False
    assert row.panels[1].layout.display == "none" and ex.result.relu is None
    assert bytes(row.pictures[2].value) != pooled_before                           # max of signed maps now
    assert "(off: ReLU)" in ex.flow_view.value
    ex.use_pool.value = False
    assert row.panels[2].layout.display == "none" and ex.mode.disabled and ex.pool_size.disabled
    ex.use_conv.value = False
    assert [r.box.layout.display for r in ex.rows] == ["", "none", "none", "none"]
    assert "no filter" in ex.rows[0].label.value
    ex.use_conv.value, ex.use_relu.value, ex.use_pool.value = True, True, True
    ex.mode.value, ex.pool_size.value = "avg", 4
    np.testing.assert_allclose(ex.result.output[1], F.avg_pool2d(torch.from_numpy(ex.result.relu[1])[None], 4)[0])
    ex.zoom.value = 1.0
    assert row.pictures[0].layout.width == "254px"


def test_explorer_shows_the_learners_errors_and_own_kernels():
    ex = pipeline_explorer("coins", conv_fn=lambda x, w: 1 / 0)
    assert "ZeroDivisionError" in ex.error_view.value and all(r.box.layout.display == "none" for r in ex.rows)
    weight = np.random.default_rng(3).standard_normal((2, 1, 5, 5)).astype(np.float32)
    ex = pipeline_explorer(np.random.default_rng(4).random((40, 40), dtype=np.float32), kernels=weight)
    assert len(ex.rows) == 2 and "filter 1" in ex.rows[1].label.value and ex.pool_size.max == 8
    assert ex.image_choice.value == "your image" and ex.result.conv.shape == (2, 36, 36)


def test_reused_pictures_are_the_ones_of_the_current_settings():
    ex = pipeline_explorer("camera")
    first = [bytes(p.value) for p in ex.rows[2].pictures]
    ex.mode.value = "avg"
    assert bytes(ex.rows[2].pictures[2].value) != first[2]
    assert [bytes(p.value) for p in ex.rows[2].pictures[:2]] == first[:2]        # conv and ReLU unchanged
    ex.image_choice.value = "coins"
    assert bytes(ex.rows[2].pictures[0].value) != first[0]
    ex.image_choice.value, ex.mode.value = "camera", "max"
    assert [bytes(p.value) for p in ex.rows[2].pictures] == first                 # back: the same pictures

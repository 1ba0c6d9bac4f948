"""The ReLU explorer without a browser: what is zeroed, leaky ReLU, the activation toggle."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.widgets import feature_map, preset_kernel, relu_explorer, relu_view


def torch_conv(image, kernel, stride=1, padding=0, dilation=1):
    out = F.conv2d(torch.from_numpy(np.array(image))[None, None], torch.from_numpy(kernel)[None, None],
                   stride=stride, padding=padding, dilation=dilation)
    return out[0, 0].numpy()


def test_relu_view_zeroes_exactly_the_negatives():
    image = np.random.default_rng(1).random((20, 20), dtype=np.float32)
    kernel = preset_kernel("Laplacian")
    before = feature_map(image, kernel)
    np.testing.assert_allclose(before, torch_conv(image, kernel), atol=1e-6)
    relu = relu_view(before, "relu")
    np.testing.assert_array_equal(relu.after, np.maximum(relu.before, 0))
    assert relu.zeroed_fraction == pytest.approx(np.mean(relu.before <= 0))
    assert f"{relu.zeroed_fraction:.1%}" in relu.summary
    leaky = relu_view(before, "leaky_relu", 0.2)
    np.testing.assert_allclose(leaky.after, np.where(leaky.before < 0, 0.2 * leaky.before, leaky.before))
    assert "multiplied by 0.2" in leaky.summary


def test_relu_explorer_switches_activation():
    ex = relu_explorer("coins")
    assert "ReLU set" in ex.summary_view.value and ex.slope.layout.visibility == "hidden"
    zeroed = ex.result.zeroed_fraction
    ex.activation.value = "leaky_relu"
    assert ex.slope.layout.visibility == "visible" and ex.result.zeroed_fraction < zeroed
    ex.preset.value = "Gaussian"                        # a blur of an image in [0, 1] is never negative
    assert ex.result.negative_fraction == 0


def picture_rgb(view) -> np.ndarray:
    from io import BytesIO

    from PIL import Image
    return np.asarray(Image.open(BytesIO(bytes(view.value))).convert("RGB")).astype(int)


def test_before_and_after_share_one_diverging_scale_with_zero_white():
    from utils.widgets import colour_limit

    ex = relu_explorer("camera")
    before, after = picture_rgb(ex.before_view), picture_rgb(ex.after_view)
    scale = before.shape[0] // ex.result.before.shape[0]                 # pixels per value
    assert scale >= 1 and before.shape == after.shape
    values = ex.result.before
    lim = colour_limit(values)
    assert f"{-lim:.3g}" in ex.scale_view.value and f"{lim:.3g}" in ex.scale_view.value
    rows, cols = np.nonzero(values < -0.5 * lim)                         # clearly negative: blue, then white
    r, c = rows[0] * scale, cols[0] * scale
    assert before[r, c, 2] > before[r, c, 0] and (after[r, c] > 240).all()
    rows, cols = np.nonzero(values > 0.5 * lim)                          # positive: the same red in both
    r, c = rows[0] * scale, cols[0] * scale
    assert before[r, c, 0] > before[r, c, 2]
    np.testing.assert_array_equal(before[r, c], after[r, c])

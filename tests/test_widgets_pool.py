"""The pooling explorer without a browser: the pooled map against torch, impossible settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.widgets import pool_explorer, pool_view



@pytest.mark.parametrize("mode, kernel, stride, padding", [("max", 2, 2, 0), ("avg", 3, 2, 1), ("max", 4, 1, 2)])
def test_pool_view_matches_torch(mode, kernel, stride, padding):
    image = np.random.default_rng(0).random((17, 13), dtype=np.float32)
    view = pool_view(image, mode, kernel, stride, padding)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    expected = pool(torch.from_numpy(image)[None, None], kernel, stride, padding)[0, 0].numpy()
    np.testing.assert_allclose(view.output, expected, rtol=1e-6)
    assert view.formula.splitlines()[1].endswith(f"= {expected.shape[0]}")


def test_pool_explorer_reports_impossible_padding_and_shrinks():
    ex = pool_explorer("camera")
    assert ex.result.output.shape == (128, 128) and "25.0% of the input values" in ex.output_caption.value
    ex.padding.value = 2                                   # > kernel / 2: torch refuses, so do we
    assert ex.result.output is None and "padding" in ex.error_view.value
    ex.kernel_size.value = 4                              # stride stays 2: overlapping windows
    assert ex.result.output.shape == (129, 129) and ex.error_view.value == ""
    ex.stride.value = 4
    assert ex.result.output.shape == (65, 65) and "⌊256 / 4⌋ + 1 = 65" in ex.formula_view.value

"""The step-through without a browser: each multiply-add, the running sum and the buttons."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.widgets import DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, conv_step_through, step_view


def torch_conv(image, kernel, stride=1, padding=0, dilation=1):
    out = F.conv2d(torch.from_numpy(np.array(image))[None, None], torch.from_numpy(kernel)[None, None],
                   stride=stride, padding=padding, dilation=dilation)
    return out[0, 0].numpy()


def test_step_through_reports_a_failing_conv_fn():
    def broken(*args):
        raise ValueError("weight must be 4D")

    view = step_view(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, index=1, step=9, conv_fn=broken)
    assert view.running_sum == -4 and "conv_fn raised ValueError: weight must be 4D" in view.text



@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_step_through_sums_reach_the_convolution(stride, padding, dilation):
    expected = torch_conv(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, stride, padding, dilation)
    for index in range(expected.size):
        view = step_view(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, stride, padding, dilation, index, step=9)
        assert np.isclose(view.running_sum, expected.flat[index])
        assert view.done.sum() == index + 1
        np.testing.assert_allclose(view.output[view.done], expected[view.done])
    half = step_view(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, stride, padding, dilation, 0, step=4)
    assert len(half.products) == 4 and "step 4 of 9" in half.text


def test_step_through_buttons_roll_over_to_the_next_output_value():
    st_ex = conv_step_through()
    assert st_ex.index.max == 8                            # 5x5 input, 3x3 kernel: 3x3 outputs
    for _ in range(9):
        st_ex.forward.click()
    assert st_ex.result.text.endswith("→ output (0, 0) = -5")
    st_ex.forward.click()
    assert (st_ex.index.value, st_ex.step.value) == (1, 1)
    st_ex.back.click()
    assert (st_ex.index.value, st_ex.step.value) == (1, 0)
    st_ex.back.click()
    assert (st_ex.index.value, st_ex.step.value) == (0, 9)
    st_ex.padding.value = 1
    assert st_ex.index.max == 24 and "blue: zero padding" in st_ex.grids.value

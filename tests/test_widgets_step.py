"""The step-through without a browser: each multiply-add, the running sum, the buttons and Play."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.widgets import DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, conv_step_through, step_view
from utils.widgets.step import input_name, play_frame, play_last_frame, play_position


def torch_conv(image, kernel, stride=1, padding=0, dilation=1):
    out = F.conv2d(torch.from_numpy(np.array(image))[None, None], torch.from_numpy(kernel)[None, None],
                   stride=stride, padding=padding, dilation=dilation)
    return out[0, 0].numpy()


def test_default_kernel_is_the_courses_vertical_edge_kernel():
    np.testing.assert_array_equal(DEFAULT_STEP_KERNEL, [[-1, 0, 1]] * 3)
    ramp = np.tile(np.arange(5, dtype=np.float32), (5, 1))          # brighter to the right
    assert (torch_conv(ramp, DEFAULT_STEP_KERNEL) > 0).all()


def test_step_through_reports_a_failing_conv_fn():
    def broken(*args):
        raise ValueError("weight must be 4D")

    view = step_view(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, index=1, step=9, conv_fn=broken)
    expected = torch_conv(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL)[0, 1]
    assert view.running_sum == expected and "conv_fn raised ValueError: weight must be 4D" in view.text


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


def test_coordinates_are_named_in_the_inputs_own_frame():
    assert input_name((0, 0), 1, (5, 5)) == "input[-1, -1] (padding)"
    assert input_name((1, 1), 1, (5, 5)) == "input[0, 0]"
    assert input_name((6, 3), 1, (5, 5)) == "input[5, 2] (padding)"
    assert input_name((2, 4), 0, (3, 5)) == "input[2, 4]"
    # the last window of a 5x5 input padded by 1: its bottom-right tap is input[5, 5], never input[6, 6]
    view = step_view(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, padding=1, index=24, step=9)
    assert view.names[-1] == "input[5, 5] (padding)" and "input[5, 5] (padding) × kernel[2, 2]" in view.text
    assert view.names[4] == "input[4, 4]"                      # the centre tap is the input's last pixel
    first = step_view(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, padding=1, index=0, step=1)
    assert first.text.startswith("output[0, 0], step 1 of 9: input[-1, -1] (padding) × kernel[0, 0] = 0 × -1")
    start = step_view(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, padding=1, index=0, step=0)
    assert "rows -1 to 1, columns -1 to 1" in start.text
    for name, cell in zip(view.names, view.cells):              # every name points at the value used
        r, c = (int(v) for v in name[len("input["):name.index("]")].split(", "))
        inside = 0 <= r < 5 and 0 <= c < 5
        assert view.padded[cell] == (DEFAULT_STEP_INPUT[r, c] if inside else 0) and inside != ("padding" in name)


@pytest.mark.parametrize("n_outputs, taps", [(1, 1), (9, 9), (25, 9), (4, 25)])
def test_play_visits_every_output_and_every_step_once_in_order(n_outputs, taps):
    frames = [play_position(f, n_outputs, taps) for f in range(play_last_frame(n_outputs, taps) + 1)]
    assert frames[0] == (0, 0)                                  # the start: nothing computed yet
    assert frames[1:] == [(i, s) for i in range(n_outputs) for s in range(1, taps + 1)]
    for frame, (index, step) in enumerate(frames):
        assert play_frame(index, step, taps) == frame            # continuing from here resumes in order
    values = [play_position(f, n_outputs, taps, "value") for f in range(play_last_frame(n_outputs, taps, "value") + 1)]
    assert values == [(i, taps) for i in range(n_outputs)]      # "output value": each finished value once
    assert play_position(10 ** 6, n_outputs, taps) == (n_outputs - 1, taps)
    with pytest.raises(ValueError, match="mode"):
        play_position(0, n_outputs, taps, "fast")


def test_play_in_the_explorer_sweeps_the_whole_convolution():
    st_ex = conv_step_through(padding=1)
    expected = torch_conv(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, padding=1)
    assert st_ex.play.max == expected.size * 9 and st_ex.play.min == 0
    seen = []
    for frame in range(st_ex.play.max + 1):                     # what the browser's timer does
        st_ex.play.value = frame
        seen.append((st_ex.index.value, st_ex.step.value))
        assert st_ex.result.step == st_ex.step.value
    assert seen == [(0, 0)] + [(i, s) for i in range(expected.size) for s in range(1, 10)]
    np.testing.assert_allclose(st_ex.result.output, expected)   # the last frame: every value finished
    st_ex.play_mode.value = "output value"
    assert st_ex.play.max == expected.size - 1
    st_ex.play.value = 3
    assert (st_ex.index.value, st_ex.step.value) == (3, 9)
    st_ex.stride.value = 2                                      # fewer outputs: Play's range follows
    assert st_ex.play.max == torch_conv(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL, 2, 1).size - 1


def test_play_controls_are_labelled_and_drive_the_timer():
    st_ex = conv_step_through(speed=4)
    assert st_ex.play.layout.display == "none"                  # the icon-only widget stays hidden
    assert st_ex.play_button.description == "▶ Play" and st_ex.restart.description == "↺ Start over"
    assert st_ex.back.description == "◀ step back" and st_ex.forward.description == "step ▶"
    assert st_ex.play.interval == 250
    st_ex.speed.value = 10
    assert st_ex.play.interval == 100
    st_ex.play_button.value = True
    assert st_ex.play.playing and st_ex.play_button.description == "‖ Pause"
    st_ex.play.playing = False                                  # the timer stops at the end by itself
    assert st_ex.play_button.description == "▶ Play"
    st_ex.play.value = 20
    st_ex.restart.click()
    assert (st_ex.index.value, st_ex.step.value, st_ex.play.value) == (0, 0, 0)
    with pytest.raises(ValueError, match="speed"):
        conv_step_through(speed=0)


def test_step_through_buttons_roll_over_to_the_next_output_value():
    st_ex = conv_step_through()
    assert st_ex.index.max == 8                            # 5x5 input, 3x3 kernel: 3x3 outputs
    for _ in range(9):
        st_ex.forward.click()
    first = torch_conv(DEFAULT_STEP_INPUT, DEFAULT_STEP_KERNEL)[0, 0]
    assert st_ex.result.text.endswith(f"→ output[0, 0] = {first:.0f}")
    assert st_ex.play.value == 9                           # Play would continue from here
    st_ex.forward.click()
    assert (st_ex.index.value, st_ex.step.value) == (1, 1)
    st_ex.back.click()
    assert (st_ex.index.value, st_ex.step.value) == (1, 0)
    st_ex.back.click()
    assert (st_ex.index.value, st_ex.step.value) == (0, 9)
    st_ex.padding.value = 1
    assert st_ex.index.max == 24 and "blue: zero padding" in st_ex.grids.value
    header = "color:#666;font-size:11px'>{}</td>"              # column headers count in the input's frame
    assert header.format(-1) in st_ex.grids.value and header.format(5) in st_ex.grids.value
    assert header.format(6) not in st_ex.grids.value

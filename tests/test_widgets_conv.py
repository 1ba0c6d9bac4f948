"""The convolution explorer without a browser: set control values, check the computed arrays and texts."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from utils.widgets import PRESETS, conv_explorer, conv_step_through, conv_view, output_size_formula, preset_kernel
from utils.widgets.conv import (coordinates_text, output_click_position, play_index, play_position, screen_to_input,
                                window_at)
from utils.widgets.render import (BACKGROUND_INDEX, EDGE_INDEX, LEVELS, MARGIN, WINDOW_INDEX, colour_hex,
                                  colour_indices, colour_scale, enlarge, frame, imshow_style, picture_xy)


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
    np.testing.assert_allclose(ex.kernel(), preset_kernel("Gaussian", 5), rtol=1e-6)   # boxes show 6 digits


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


# ---------------------------------------------------------------- click-to-place, Play, colours (issue 11)

@settings(max_examples=60, deadline=None)
@given(scale=st.integers(1, 40), padding=st.integers(0, 3), row=st.integers(-3, 40), col=st.integers(-3, 40),
       dy=st.floats(0, 0.999), dx=st.floats(0, 0.999))
def test_every_screen_pixel_of_a_cell_maps_back_to_that_cell_in_the_inputs_own_frame(scale, padding, row, col, dy, dx):
    # cell (row, col) of the input frame is padded cell (row + padding, col + padding), drawn after the margin
    y = MARGIN + (row + padding) * scale + dy * scale
    x = MARGIN + (col + padding) * scale + dx * scale
    assert screen_to_input(x, y, scale, padding) == (row, col)


def test_screen_to_input_names_padding_with_negative_rows():
    assert screen_to_input(MARGIN, MARGIN, scale=1, padding=2) == (-2, -2)       # top-left padding cell
    assert screen_to_input(MARGIN + 2, MARGIN + 3, scale=1, padding=2) == (1, 0)
    assert screen_to_input(MARGIN + 37 * 3 + 36, MARGIN, scale=37, padding=0) == (0, 3)


@settings(max_examples=80, deadline=None)
@given(k=st.sampled_from([3, 5]), stride=st.integers(1, 4), padding=st.integers(0, 3), dilation=st.integers(1, 3),
       h=st.integers(14, 30), w=st.integers(14, 30), data=st.data())
def test_a_click_on_a_window_centre_selects_that_window(k, stride, padding, dilation, h, w, data):
    span = dilation * (k - 1) + 1
    out_shape = ((h + 2 * padding - span) // stride + 1, (w + 2 * padding - span) // stride + 1)
    i = data.draw(st.integers(0, out_shape[0] - 1))
    j = data.draw(st.integers(0, out_shape[1] - 1))
    centre = (span - 1) // 2
    row, col = i * stride + centre - padding, j * stride + centre - padding       # input frame
    assert window_at(row, col, k, stride, padding, dilation, out_shape) == (i, j)
    # any pixel: the chosen window's centre is the nearest one (within half a stride), or it is clipped
    r = data.draw(st.integers(-padding, h + padding - 1))
    oi, _ = window_at(r, 0, k, stride, padding, dilation, out_shape)
    if 0 < oi < out_shape[0] - 1:
        assert abs(oi * stride + centre - padding - r) <= stride / 2


def test_output_clicks_pick_the_value_under_the_mouse_clipped():
    assert output_click_position(MARGIN + 2 * 8 + 7, MARGIN + 3 * 8, scale=8, out_shape=(6, 6)) == (3, 2)
    assert output_click_position(0, 10_000, scale=8, out_shape=(6, 6)) == (5, 0)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (4, 4), (127, 127)])
def test_play_visits_every_output_position_exactly_once_row_by_row(shape):
    positions = [play_position(i, shape) for i in range(shape[0] * shape[1])]
    assert positions == [(r, c) for r in range(shape[0]) for c in range(shape[1])]     # row-major, each once
    assert [play_index(p, shape) for p in positions] == list(range(len(positions)))
    with pytest.raises(ValueError, match="outside"):
        play_position(shape[0] * shape[1], shape)


def test_play_drives_the_explorer_and_follows_the_output_size():
    ex = conv_explorer("camera")
    assert ex.play.max == 254 * 254 - 1 and ex.play.value == play_index(ex.result.position, (254, 254))
    ex.play.value = 254 + 3                               # second row, fourth column
    assert ex.result.position == (1, 3) and (ex.out_row.value, ex.out_col.value) == (1, 3)
    assert "output[1, 3] = " in ex.position_view.value
    ex.stride.value = 2
    assert ex.play.max == 127 * 127 - 1 and ex.play.value == play_index(ex.result.position, (127, 127))
    ex.play.playing = True
    assert ex.play_button.description == "❚❚ Pause"
    ex.first_button.click()
    assert not ex.play.playing and ex.result.position == (0, 0) and ex.play_button.description == "▶ Play"
    ex.speed.value = "20 per s"
    assert ex.play.interval == 50


def test_clicking_the_input_centres_the_window_on_the_clicked_pixel_and_hovering_previews():
    ex = conv_explorer("camera")
    ex.click_input(MARGIN + 100, MARGIN + 50)             # input pixel (50, 100), scale 1
    assert ex.result.position == (49, 99)                  # its 3x3 window covers rows 49..51
    assert "output[49, 99] = " in ex.position_view.value and "rows 49…51, cols 99…101" in ex.position_view.value
    ex.padding.value = 1
    ex.click_input(MARGIN, MARGIN)                          # the top-left padding cell (-1, -1)
    assert ex.result.position == (0, 0)
    assert "rows -1…1, cols -1…1 (row -1; col -1: zero padding)" in ex.position_view.value
    ex._mouse({"type": "mousemove", "buttons": 0, "dataX": MARGIN + 201, "dataY": MARGIN + 201}, "input")
    assert ex.result.position == (200, 200)                # hovering previews the window there ...
    ex._mouse({"type": "mouseleave"}, "input")
    assert ex.result.position == (0, 0)                    # ... and leaving the picture goes back to the click
    ex._mouse({"type": "mousemove", "buttons": 1, "dataX": MARGIN + 201, "dataY": MARGIN + 101}, "input")
    ex._mouse({"type": "mouseleave"}, "input")
    assert ex.result.position == (100, 200)                # a drag pins (pixel (100, 200) + padding 1 - 1)
    ex._mouse({"type": "click", "dataX": MARGIN + 7, "dataY": MARGIN + 3}, "output")
    assert ex.result.position == (3, 7)
    ex._mouse({"type": "mousemove", "buttons": 0, "dataX": MARGIN + 50, "dataY": MARGIN + 60}, "output")
    assert ex.result.position == (60, 50) and ex.out_row.value == 60
    ex.play.playing = True                                 # while Play runs, hovering does not move the window
    ex._mouse({"type": "mousemove", "buttons": 0, "dataX": MARGIN + 9, "dataY": MARGIN + 9}, "output")
    assert ex.result.position == (60, 50)
    ex._mouse({"type": "mouseleave"}, "output")
    assert ex.result.position == (3, 7)


def test_a_mouse_event_during_a_redraw_reads_its_place_in_the_box_not_dataX():
    """While the browser decodes a new PNG the image's natural width is 0 and ipyevents' dataX reads 0:
    the position comes from relativeX/Y in the element's box and the picture's CSS size instead."""
    ex = conv_explorer("camera")
    width = float(ex.input_view.layout.width[:-2])
    height = float(ex.input_view.layout.height[:-2])
    redraw = {"type": "mousemove", "buttons": 0, "dataX": 0, "dataY": 0, "relativeX": MARGIN + 30.5,
              "relativeY": MARGIN + 200.5, "boundingRectWidth": width, "boundingRectHeight": height}
    ex._mouse(redraw, "input")
    assert ex.result.position == (199, 29)
    zoomed = dict(redraw, relativeX=2 * (MARGIN + 30.5), relativeY=2 * (MARGIN + 100.5),
                  boundingRectWidth=2 * width, boundingRectHeight=2 * height)     # browser zoom 200 %
    ex._mouse(zoomed, "input")
    assert ex.result.position == (99, 29)
    assert picture_xy({"type": "mouseleave"}, ex.input_view) is None


def test_coordinates_are_in_the_inputs_own_frame_even_with_dilation():
    image = np.zeros((6, 6), np.float32)
    view = conv_view(image, np.ones((3, 3), np.float32), stride=1, padding=2, dilation=2, position=(0, 1))
    assert coordinates_text(view) == "output[0, 1] = 0 from input rows -2, 0, 2, cols -1, 1, 3 " \
                                     "(row -2; col -1: zero padding)"
    assert view.tap_padding().tolist() == [[True] * 3, [True, False, False], [True, False, False]]
    inner = conv_view(image, np.ones((3, 3), np.float32), position=(2, 3))
    assert coordinates_text(inner) == "output[2, 3] = 0 from input rows 2…4, cols 3…5"


def test_the_colour_rule_scales_non_negative_maps_to_their_own_range_with_zero_white_everywhere():
    ex = conv_explorer("camera")
    ex.preset.value = "box blur"                            # non-negative output, max about 1
    for r in range(3):
        for c in range(3):
            ex.kernel_boxes[r][c].value = 1.0              # all ones: output up to ~9, not a fixed 0-1 scale
    out = ex.result.output
    scale = colour_scale(out)
    assert scale.kind == "positive" and 8.0 < scale.limit <= out.max()
    indices = colour_indices(out, scale)
    assert np.mean(indices == LEVELS - 1) < 0.01            # a 0-1 scale would paint almost all of it the end colour
    assert len(np.unique(indices)) > 100
    signed = colour_scale(np.array([[-2.0, 1.0]]))
    white = "#%02x%02x%02x" % tuple(round(255 * v) for v in matplotlib.colormaps["RdBu_r"](0.5)[:3])
    assert signed.kind == "diverging" and colour_hex(0.0, signed) == colour_hex(0.0, scale) == white
    assert colour_hex(scale.limit, scale) == colour_hex(signed.limit, signed)     # same hue at the top end
    style = imshow_style(out)                               # the same rule for static matplotlib figures
    assert style["vmin"] == 0 and style["vmax"] == scale.limit
    assert np.allclose(style["cmap"](0.0)[:3], matplotlib.colormaps["RdBu_r"](0.5)[:3], atol=1e-6)
    assert imshow_style(np.array([[-1.0, 3.0]]))["vmin"] == -imshow_style(np.array([[-1.0, 3.0]]))["vmax"]
    assert imshow_style(ex.image(), image=True) == {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}


def test_the_saturation_note_counts_the_values_beyond_the_scale():
    calm = np.linspace(0, 1, 10_000).reshape(100, 100)
    assert colour_scale(calm, limit=1.0).note() == ""
    spiky = calm.copy()
    spiky[0, :3] = 50.0
    note = colour_scale(spiky, limit=1.0).note()
    assert note.startswith("3 of 10,000 values (0.03 %) above 1")
    assert colour_scale(spiky - 0.5, limit=1.0).note().startswith("3 of 10,000 values (0.03 %) beyond ±1")
    assert "outside 0…1" in colour_scale(calm * 2, image=True).note()
    ex = conv_explorer(np.full((8, 8), 0.5, np.float32) + np.eye(8, dtype=np.float32))   # values up to 1.5
    assert "input: 8 of 64 values (12 %) outside 0…1" in ex.scale_view.value


def test_the_window_frame_stays_visible_at_the_pictures_edge():
    picture = enlarge(np.zeros((4, 4), np.uint8), scale=1)
    frame(picture, 0, 0, 3, 3, scale=1)
    assert picture.shape == (4 + 2 * MARGIN,) * 2
    assert picture[MARGIN - 1, MARGIN - 1] == EDGE_INDEX and picture[MARGIN - 2, MARGIN] == WINDOW_INDEX
    assert picture[0, 0] == EDGE_INDEX                          # the outermost ring, still inside the picture
    assert (picture[MARGIN:MARGIN + 3, MARGIN:MARGIN + 3] == 0).all()   # the framed values are not covered
    assert picture[-1, -1] == BACKGROUND_INDEX


def test_kernel_boxes_show_short_numbers():
    ex = conv_explorer("camera")
    ex.preset.value = "box blur"
    assert ex.kernel_boxes[0][0].value == 0.111111
    assert ex.details.selected_index is None                    # the number tables start closed

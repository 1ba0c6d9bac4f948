"""What the convolution explorer shows, computed without widgets (chapter 04): :func:`conv_view` for one
setting of the controls, and the pure helpers behind its mouse and Play — :func:`screen_to_input` and
:func:`window_at` (a click to a window), :func:`output_click_position`, :func:`play_position` /
:func:`play_index` (Play's index to an output position and back) and :func:`coordinates_text`
(positions in the input's own frame, where padding cells have rows -1, -2, ... or H, H + 1, ...).
The explorer itself is :mod:`utils.widgets.conv`; the tests check these headlessly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.widgets.base import ConvFn, default_conv, output_size_formula, run_conv
from utils.widgets.render import MARGIN, format_number, screen_to_cell

__all__ = ["ConvView", "conv_view", "coordinates_text", "output_click_position", "play_index", "play_position",
           "screen_to_input", "window_at"]


@dataclass
class ConvView:
    """What the convolution explorer shows for one setting of its controls.  Used first in chapter 04.

    ``padded``: (H + 2p, W + 2p) input with its zero padding; ``output``: (H_out, W_out) or None when
    conv_fn failed; ``window``: (top, left, height, width) of the current window in ``padded``
    coordinates; ``position``: the (row, col) of the output value it produces; ``formula``: two
    lines (H and W); ``error``: a message for the learner or None; ``taps``: the (k, k) input values
    under the kernel taps; ``value``: the output value at ``position``; ``padding``, ``stride``,
    ``dilation``: the settings (to name positions in the input's own frame).
    """
    padded: np.ndarray
    output: np.ndarray | None
    window: tuple[int, int, int, int]
    position: tuple[int, int]
    formula: str
    expected_shape: tuple[int, int] | None
    error: str | None = None
    taps: np.ndarray | None = None           # (k, k) input values under the kernel taps
    value: float | None = None               # the output value at ``position``
    padding: int = 0
    stride: int = 1
    dilation: int = 1

    @property
    def input_shape(self) -> tuple[int, int]:
        """(H, W) of the input without padding."""
        return self.padded.shape[0] - 2 * self.padding, self.padded.shape[1] - 2 * self.padding

    def tap_rows(self) -> list[int]:
        """Rows of the kernel taps in the input's own frame (negative or >= H: zero padding)."""
        top, k = self.window[0] - self.padding, 0 if self.taps is None else self.taps.shape[0]
        return [top + i * self.dilation for i in range(k)]

    def tap_cols(self) -> list[int]:
        """Columns of the kernel taps in the input's own frame (negative or >= W: zero padding)."""
        left, k = self.window[1] - self.padding, 0 if self.taps is None else self.taps.shape[1]
        return [left + i * self.dilation for i in range(k)]

    def tap_padding(self) -> np.ndarray:
        """(k, k) bool: which taps fall on zero padding."""
        H, W = self.input_shape
        rows, cols = np.array(self.tap_rows()), np.array(self.tap_cols())
        return ((rows < 0) | (rows >= H))[:, None] | ((cols < 0) | (cols >= W))[None, :]


def conv_view(image: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0,
              dilation: int = 1, position: tuple[int, int] = (0, 0),
              conv_fn: ConvFn | None = None, computed: tuple[np.ndarray | None, str | None] | None = None
              ) -> ConvView:
    """Compute everything the convolution explorer shows (no widgets involved).  Used first in chapter 04.

    Args:
        image: (H, W) float32 input. kernel: (k, k). stride, padding, dilation: ints as in conv2d.
        position: requested (row, col) of the output value to explain; clipped into the output.
        conv_fn: ``conv_fn(input (1,1,H,W), weight (1,1,k,k), bias, stride, padding, dilation)``;
            default ``utils.functional.conv2d``.
        computed: ``(output, error)`` of an earlier call with the same image, kernel and settings
            (what ``base.run_conv`` returned): moving the window does not run ``conv_fn`` again.
    """
    k = kernel.shape[0]
    padded = np.pad(image, padding)
    lines, sizes = zip(*(output_size_formula(a, n, k, stride, padding, dilation)
                         for a, n in (("H", image.shape[0]), ("W", image.shape[1]))))
    formula = "\n".join(lines)
    if None in sizes:
        return ConvView(padded, None, (0, 0, 0, 0), (0, 0), formula, None,
                        "the dilated kernel is larger than the padded input: lower dilation or add padding",
                        padding=padding, stride=stride, dilation=dilation)
    output, error = computed or run_conv(conv_fn or default_conv(), image, kernel, stride, padding, dilation)
    if output is not None and output.shape != tuple(sizes):
        error = f"your conv_fn returned {output.shape[0]}x{output.shape[1]} but the formula gives " \
                f"{sizes[0]}x{sizes[1]}"
    row, col = (min(max(p, 0), s - 1) for p, s in zip(position, sizes))
    span = dilation * (k - 1) + 1
    top, left = row * stride, col * stride
    taps = padded[top:top + span:dilation, left:left + span:dilation]
    value = float(output[row, col]) if output is not None and output.shape == tuple(sizes) else None
    return ConvView(padded, output, (top, left, span, span), (row, col), formula, tuple(sizes), error,
                    taps, value, padding, stride, dilation)


# ------------------------------------------------------------------------------------ pure helpers

def play_position(index: int, shape: tuple[int, int]) -> tuple[int, int]:
    """Play's ``index`` -> the output (row, col) it shows: row by row, left to right, so that indices
    0 … H_out·W_out − 1 visit every output position exactly once.  Used first in chapter 04."""
    rows, cols = shape
    if not 0 <= index < rows * cols:
        raise ValueError(f"Play index {index} is outside 0..{rows * cols - 1} for a {rows}x{cols} output")
    return divmod(int(index), cols)


def play_index(position: tuple[int, int], shape: tuple[int, int]) -> int:
    """The inverse of :func:`play_position`.  Used first in chapter 04."""
    return int(position[0]) * int(shape[1]) + int(position[1])


def screen_to_input(x: float, y: float, scale: int, padding: int, margin: int = MARGIN) -> tuple[int, int]:
    """A mouse position on the input picture (pixels of the enlarged picture: x right, y down, its
    margin included) -> the (row, col) in the input's own frame: 0 … H − 1 on the image, -1, -2, … or
    H, H + 1, … on its zero padding (or beyond it, in the margin).  Used first in chapter 04."""
    row, col = screen_to_cell(x, y, scale, margin)
    return row - padding, col - padding


def window_at(row: int, col: int, kernel_size: int, stride: int, padding: int, dilation: int,
              out_shape: tuple[int, int]) -> tuple[int, int]:
    """The output position whose window is centred nearest to input pixel (row, col) (input frame),
    clipped into the output.  Output (i, j)'s window centre is input pixel
    (i·stride + c − padding, j·stride + c − padding) with c = dilation·(k − 1) / 2.
    Used first in chapter 04."""
    centre = dilation * (kernel_size - 1) / 2
    return tuple(int(min(max(np.floor((p + padding - centre) / stride + 0.5), 0), n - 1))
                 for p, n in zip((row, col), out_shape))


def output_click_position(x: float, y: float, scale: int, out_shape: tuple[int, int],
                          margin: int = MARGIN) -> tuple[int, int]:
    """A mouse position on the output picture -> the output (row, col) under it, clipped into the output.
    Used first in chapter 04."""
    row, col = screen_to_cell(x, y, scale, margin)
    return min(max(row, 0), out_shape[0] - 1), min(max(col, 0), out_shape[1] - 1)


def _span_text(values: list[int], dilation: int) -> str:
    if len(values) == 1:
        return str(values[0])
    return f"{values[0]}…{values[-1]}" if dilation == 1 else ", ".join(map(str, values)) 


def coordinates_text(view: ConvView) -> str:
    """Where the current value comes from, in the input's own frame (plain text), e.g.
    ``output[0, 0] = 0.25 from input rows -1…1, cols -1…1 (row -1, col -1: zero padding)``.
    Used first in chapter 04."""
    r, c = view.position
    value = "not computed" if view.value is None else format_number(view.value)
    rows, cols = view.tap_rows(), view.tap_cols()
    text = f"output[{r}, {c}] = {value} from input rows {_span_text(rows, view.dilation)}, " \
           f"cols {_span_text(cols, view.dilation)}"
    H, W = view.input_shape
    pad_rows = [str(p) for p in rows if p < 0 or p >= H]
    pad_cols = [str(p) for p in cols if p < 0 or p >= W]
    named = ([("row " if len(pad_rows) == 1 else "rows ") + ", ".join(pad_rows)] if pad_rows else []) + \
            ([("col " if len(pad_cols) == 1 else "cols ") + ", ".join(pad_cols)] if pad_cols else [])
    return text + (f" ({'; '.join(named)}: zero padding)" if named else "")

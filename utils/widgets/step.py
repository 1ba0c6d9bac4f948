"""The step-through (chapter 02): one output value at a time, each multiply-add and the running sum.

Play walks through the whole convolution: every multiply-add of output value 0, then of value 1, and so
on to the last one (or, switched to "output value", one finished value per tick), at a chosen speed.
Coordinates are named in the input's own frame, so a padded cell left of column 0 is ``input[0, -1]
(padding)``, never an index into the padded array.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np

from utils.widgets.base import ConvFn, Explorer, default_conv, output_size_formula, padding_mask, run_conv, slider
from utils.widgets.render import format_number, html_grid

DEFAULT_STEP_INPUT = np.array([[3, 0, 1, 2, 7], [1, 5, 8, 9, 3], [2, 7, 2, 5, 1],
                               [0, 1, 3, 1, 7], [4, 2, 1, 6, 2]], dtype=np.float32)
# the course's vertical-edge kernel: right column minus left column, positive where it gets brighter to the right
DEFAULT_STEP_KERNEL = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float32)

PLAY_MODES = {"multiply-add": "step", "output value": "value"}   # the toggle's label -> play_position's mode
WINDOW_COLOUR, CURRENT_COLOUR, PADDING_COLOUR = "#fff3b0", "#ffb000", "#dde8f5"


def input_name(cell: tuple[int, int], padding: int, shape: tuple[int, int]) -> str:
    """The name of padded-array cell ``cell`` in the input's own frame: ``input[r, c]``, with
    `` (padding)`` appended when it lies outside the (H, W) = ``shape`` input (r or c < 0 or ≥ H, W).

    Used first in chapter 02.
    """
    row, col = cell[0] - padding, cell[1] - padding
    inside = 0 <= row < shape[0] and 0 <= col < shape[1]
    return f"input[{row}, {col}]" + ("" if inside else " (padding)")


def play_position(frame: int, n_outputs: int, taps: int, mode: str = "step") -> tuple[int, int]:
    """(output index, step) that Play shows at ``frame``.

    ``mode="step"``: frame 0 is output 0 before its first product, then frames 1 … n_outputs·taps are
    each multiply-add of output 0, then of output 1, …; ``mode="value"``: frame i is output i finished.
    Used first in chapter 02.
    """
    if mode not in ("step", "value"):
        raise ValueError(f"mode must be 'step' or 'value', got {mode!r}")
    frame = min(max(int(frame), 0), play_last_frame(n_outputs, taps, mode))
    if mode == "value":
        return frame, taps
    if frame == 0:
        return 0, 0
    index, step = divmod(frame - 1, taps)
    return index, step + 1


def play_frame(index: int, step: int, taps: int, mode: str = "step") -> int:
    """The Play frame to continue from after the learner set (index, step) by hand: the next tick
    shows the next multiply-add (``mode="step"``) or the next finished value (``mode="value"``).

    Used first in chapter 02.
    """
    if mode == "value":
        return index if step == taps else max(index - 1, 0)
    return index * taps + step


def play_last_frame(n_outputs: int, taps: int, mode: str = "step") -> int:
    """The last frame of Play (its ``max``): n_outputs·taps multiply-adds, or n_outputs − 1 values.

    Used first in chapter 02.
    """
    return n_outputs * taps if mode == "step" else n_outputs - 1


@dataclass
class StepView:
    """One step of computing one output value.

    ``padded``: the (H + 2p, W + 2p) input; ``cells``: padded (row, col) of every kernel tap of the
    current window, in the order they are visited; ``names``: the same cells named in the input's own
    frame (:func:`input_name`); ``products``: the first ``step`` products input × weight;
    ``running_sum``; ``output``: (H_out, W_out) with the values finished so far (``done`` marks them);
    ``text``: the step explained in words.  Used first in chapter 02.
    """
    padded: np.ndarray
    position: tuple[int, int]
    step: int
    cells: list[tuple[int, int]]
    products: list[float]
    running_sum: float
    output: np.ndarray
    done: np.ndarray
    text: str = ""
    taps: list[tuple[int, int]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def step_view(input: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0, dilation: int = 1,
              index: int = 0, step: int = 0, conv_fn: ConvFn | None = None) -> StepView:
    """The state after ``step`` multiply-adds of output value number ``index`` (row-major).

    Args:
        input: (H, W); kernel: (k, k); index in [0, H_out * W_out); step in [0, k * k] (both clipped).
    Used first in chapter 02.
    """
    k = kernel.shape[0]
    (_, h_out), (_, w_out) = (output_size_formula(a, n, k, stride, padding, dilation)
                              for a, n in (("H", input.shape[0]), ("W", input.shape[1])))
    if h_out is None or w_out is None:
        raise ValueError(f"a {k}x{k} kernel with dilation {dilation} does not fit in the {input.shape} "
                         f"input padded by {padding}")
    index, step = min(max(index, 0), h_out * w_out - 1), min(max(step, 0), k * k)
    row, col = divmod(index, w_out)
    padded = np.pad(input, padding)
    taps = [divmod(s, k) for s in range(k * k)]
    cells = [(row * stride + a * dilation, col * stride + b * dilation) for a, b in taps]
    names = [input_name(cell, padding, input.shape) for cell in cells]
    products = [float(padded[cells[s]] * kernel[taps[s]]) for s in range(step)]
    full, problem = run_conv(conv_fn or default_conv(), input.astype(np.float32), kernel.astype(np.float32),
                             stride, padding, dilation)
    if full is not None and full.shape != (h_out, w_out):
        full, problem = None, f"conv_fn returned shape {full.shape}, the formula gives {(h_out, w_out)}"
    done = np.arange(h_out * w_out).reshape(h_out, w_out) < index
    output = np.where(done, full, 0.0) if full is not None else np.zeros((h_out, w_out))
    if step:
        a, b = taps[step - 1]
        text = (f"output[{row}, {col}], step {step} of {k * k}: {names[step - 1]} × kernel[{a}, {b}] = "
                f"{format_number(padded[cells[step - 1]])} × {format_number(kernel[a, b])} = "
                f"{format_number(products[-1])};  running sum = {format_number(sum(products))}")
    else:
        (top, left), (bottom, right) = cells[0], cells[-1]
        text = (f"output[{row}, {col}]: its window covers input rows {top - padding} to {bottom - padding}, "
                f"columns {left - padding} to {right - padding}; press ‘step ▶’ or ‘▶ Play’")
    if step == k * k:
        output[row, col], done[row, col] = sum(products), True
        text += f"  → output[{row}, {col}] = {format_number(sum(products))}"
    if problem:
        text += f"  (earlier outputs not shown: {problem})"
    return StepView(padded, (row, col), step, cells, products, float(sum(products)), output, done, text, taps,
                    names)


def framed_grid_html(values: np.ndarray, colours: dict[tuple[int, int], str], padding: int, title: str) -> str:
    """The padded input as an HTML table whose row and column headers count in the input's own frame
    (−padding … H + padding − 1), so a padded cell reads as row −1 rather than row 0.

    Used first in chapter 02.
    """
    head = "<td></td>" + "".join(f"<td style='text-align:center;color:#666;font-size:11px'>{c - padding}</td>"
                                 for c in range(values.shape[1]))
    rows = [f"<tr>{head}</tr>"]
    for r in range(values.shape[0]):
        cells = [f"<td style='color:#666;font-size:11px;padding-right:4px;text-align:right'>{r - padding}</td>"]
        for c in range(values.shape[1]):
            cells.append(f"<td style='border:1px solid #999;width:2.6em;height:2em;text-align:center;"
                         f"background:{colours.get((r, c), 'white')};font-family:monospace'>"
                         f"{format_number(values[r, c])}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div style='display:inline-block;margin:0 1em 0 0;vertical-align:top'>"
            f"<div style='font-weight:bold;margin-bottom:2px'>{html.escape(title)}</div>"
            f"<table style='border-collapse:collapse'>{''.join(rows)}</table></div>")


class ConvStepThrough(Explorer):
    """One output value at a time: the window, each product, and the running sum; Play runs them all.

    Used first in chapter 02.
    """

    def __init__(self, input: np.ndarray | None = None, kernel: np.ndarray | None = None,
                 stride: int = 1, padding: int = 0, dilation: int = 1, conv_fn: ConvFn | None = None,
                 speed: int = 3):
        super().__init__()
        if not 1 <= speed <= 20:
            raise ValueError(f"speed is in steps per second, from 1 to 20; got {speed}")
        with self.frozen():
            self.input = np.asarray(DEFAULT_STEP_INPUT if input is None else input, dtype=np.float32)
            self.kernel = np.asarray(DEFAULT_STEP_KERNEL if kernel is None else kernel, dtype=np.float32)
            if self.input.ndim != 2 or self.kernel.ndim != 2 or self.kernel.shape[0] != self.kernel.shape[1]:
                raise ValueError(f"conv_step_through takes an (H, W) input and a square (k, k) kernel, "
                                 f"got {self.input.shape} and {self.kernel.shape}")
            self.conv_fn = conv_fn
            self.stride, self.padding = slider("stride", stride, 1, 3), slider("padding", padding, 0, 2)
            self.dilation = slider("dilation", dilation, 1, 2)
            self.index = slider("output value #", 0, 0, 0)
            self.step = slider("multiply-add", 0, 0, self.kernel.size)
            # the timer: the browser advances play.value every `interval` ms while `playing`; the Play
            # widget's own icon buttons stay hidden, the labelled buttons below drive it
            self.play = widgets.Play(value=0, min=0, max=0, interval=1000 // speed, show_repeat=False,
                                     layout=widgets.Layout(display="none"))
            self.play_button = widgets.ToggleButton(value=False, description="▶ Play", tooltip="play / pause",
                                                    layout=widgets.Layout(width="7.5em"))
            widgets.link((self.play_button, "value"), (self.play, "playing"))
            self.restart = widgets.Button(description="↺ Start over", tooltip="back to output value 0, step 0",
                                          layout=widgets.Layout(width="8.5em"))
            self.back = widgets.Button(description="◀ step back", layout=widgets.Layout(width="8em"))
            self.forward = widgets.Button(description="step ▶", layout=widgets.Layout(width="6.5em"))
            self.speed = slider("speed (per second)", speed, 1, 20)
            self.play_mode = widgets.ToggleButtons(options=list(PLAY_MODES), value="multiply-add",
                                                   description="Play moves by",
                                                   style={"description_width": "initial", "button_width": "8em"})
            self.back.on_click(lambda _b: self.move(-1))
            self.forward.on_click(lambda _b: self.move(+1))
            self.restart.on_click(lambda _b: self.start_over())
            self.play_button.observe(self._label_play, names="value")
            self.speed.observe(lambda change: setattr(self.play, "interval", 1000 // change["new"]), names="value")
            self.play.observe(self._play_moved, names="value")
            self.play_mode.observe(lambda _change: self._sync_play(), names="value")
            self.grids, self.explanation = widgets.HTML(), widgets.HTML()
            self.children = [widgets.HBox([self.stride, self.padding, self.dilation]),
                             widgets.HBox([self.index, self.step]),
                             widgets.HBox([self.back, self.forward, self.play_button, self.restart, self.play]),
                             widgets.HBox([self.speed, self.play_mode]),
                             self.explanation, self.grids]
            self._watch(self.stride, self.padding, self.dilation, self.index, self.step)
        self.update()

    # ---------------------------------------------------------------- controls

    def _mode(self) -> str:
        return PLAY_MODES[self.play_mode.value]

    def _label_play(self, change) -> None:
        self.play_button.description = "‖ Pause" if change["new"] else "▶ Play"

    def _play_moved(self, change) -> None:
        """Play's timer moved: show the (index, step) of its new frame."""
        if self._frozen:
            return
        index, step = play_position(change["new"], self.index.max + 1, self.kernel.size, self._mode())
        with self.frozen():
            self.index.value, self.step.value = index, step
        self.update()

    def _sync_play(self) -> None:
        """Play's range and frame follow the sliders (after a slider moved or the output size changed)."""
        n_outputs, taps, mode = self.index.max + 1, self.kernel.size, self._mode()
        with self.frozen():
            self.play.max = play_last_frame(n_outputs, taps, mode)
            self.play.value = min(play_frame(self.index.value, self.step.value, taps, mode), self.play.max)

    def move(self, delta: int) -> None:
        """One step forward/back, rolling over to the next/previous output value."""
        last = self.kernel.size
        step, index = self.step.value + delta, self.index.value
        if step > last and index < self.index.max:
            index, step = index + 1, 1
        elif step < 0 and index > 0:
            index, step = index - 1, last
        with self.frozen():
            self.index.value, self.step.value = index, min(max(step, 0), last)
        self.update()

    def start_over(self) -> None:
        """Pause and go back to output value 0 before its first product."""
        with self.frozen():
            self.play_button.value = False
            self.index.value, self.step.value = 0, 0
        self.update()

    # ---------------------------------------------------------------- view

    def view(self) -> StepView:
        return step_view(self.input, self.kernel, self.stride.value, self.padding.value, self.dilation.value,
                         self.index.value, self.step.value, self.conv_fn)

    def update(self) -> None:
        try:
            result = self.view()
        except ValueError as exc:
            self.explanation.value = f"<span style='color:#b42318'>⚠ {html.escape(str(exc))}</span>"
            self.grids.value = ""
            return
        self.result = result
        with self.frozen():
            self.index.max = result.output.size - 1
        self._sync_play()
        window = {cell: WINDOW_COLOUR for cell in result.cells}
        if result.step:
            window[result.cells[result.step - 1]] = CURRENT_COLOUR
        pad = self.padding.value
        is_padding = padding_mask(result.padded.shape, pad)
        for r, c in zip(*np.nonzero(is_padding)):
            window.setdefault((int(r), int(c)), PADDING_COLOUR)
        kernel_colours = {tap: WINDOW_COLOUR for tap in result.taps}
        if result.step:
            kernel_colours[result.taps[result.step - 1]] = CURRENT_COLOUR
        products = np.zeros_like(self.kernel)
        shown = np.ones(self.kernel.shape, dtype=bool)
        for s, p in enumerate(result.products):
            products[result.taps[s]], shown[result.taps[s]] = p, False
        out_colours = {result.position: CURRENT_COLOUR}
        self.explanation.value = f"<b>{html.escape(result.text)}</b>"
        title = "input, in its own coordinates" + (" (blue: zero padding)" if pad else "")
        self.grids.value = (framed_grid_html(result.padded, window, pad, title)
                            + html_grid(self.kernel, kernel_colours, "kernel")
                            + html_grid(products, {}, f"products (sum {format_number(result.running_sum)})",
                                        blank=shown)
                            + html_grid(result.output, out_colours, "output", blank=~result.done))


def conv_step_through(input: np.ndarray | None = None, kernel: np.ndarray | None = None, stride: int = 1,
                      padding: int = 0, dilation: int = 1, conv_fn: ConvFn | None = None,
                      speed: int = 3) -> ConvStepThrough:
    """Step through the multiply-adds of each output value, by hand or with Play.

    Args:
        input: a small (H, W) array (default: a 5x5 array of small integers).
        kernel: a (k, k) array (default: the vertical-edge kernel, rows ``[-1, 0, 1]``).
        stride, padding, dilation: starting values of the sliders.
        conv_fn: computes the finished output values (default ``utils.functional.conv2d``).
        speed: Play's starting speed in steps per second (1 to 20).
    Returns:
        the explorer, an ``ipywidgets.VBox``.  Used first in chapter 02.
    """
    return ConvStepThrough(input, kernel, stride, padding, dilation, conv_fn, speed)

"""The step-through (chapter 02): one output value at a time, each multiply-add and the running sum."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np

from utils.widgets.base import ConvFn, Explorer, default_conv, output_size_formula, padding_mask, run_conv, slider
from utils.widgets.render import format_number, html_grid

DEFAULT_STEP_INPUT = np.array([[3, 0, 1, 2, 7], [1, 5, 8, 9, 3], [2, 7, 2, 5, 1],
                               [0, 1, 3, 1, 7], [4, 2, 1, 6, 2]], dtype=np.float32)
DEFAULT_STEP_KERNEL = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float32)


@dataclass
class StepView:
    """One step of computing one output value.

    ``padded``: the (H + 2p, W + 2p) input; ``cells``: padded (row, col) of every kernel tap of the
    current window, in the order they are visited; ``products``: the first ``step`` products
    input × weight; ``running_sum``; ``output``: (H_out, W_out) with the values finished so far
    (``done`` marks them); ``text``: the step explained in words.
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


def step_view(input: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0, dilation: int = 1,
              index: int = 0, step: int = 0, conv_fn: ConvFn | None = None) -> StepView:
    """The state after ``step`` multiply-adds of output value number ``index`` (row-major).

    Args:
        input: (H, W); kernel: (k, k); index in [0, H_out * W_out); step in [0, k * k].
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
    products = [float(padded[cells[s]] * kernel[taps[s]]) for s in range(step)]
    full, problem = run_conv(conv_fn or default_conv(), input.astype(np.float32), kernel.astype(np.float32),
                              stride, padding, dilation)
    if full is not None and full.shape != (h_out, w_out):
        full, problem = None, f"conv_fn returned shape {full.shape}, the formula gives {(h_out, w_out)}"
    done = np.arange(h_out * w_out).reshape(h_out, w_out) < index
    output = np.where(done, full, 0.0) if full is not None else np.zeros((h_out, w_out))
    if step:
        a, b = taps[step - 1]
        text = (f"step {step} of {k * k}: input[{cells[step - 1][0]}, {cells[step - 1][1]}] × "
                f"kernel[{a}, {b}] = {format_number(padded[cells[step - 1]])} × {format_number(kernel[a, b])} = "
                f"{format_number(products[-1])};  running sum = {format_number(sum(products))}")
    else:
        text = f"output ({row}, {col}): press ‘step ▶’ to multiply the first input value by its weight"
    if step == k * k:
        output[row, col], done[row, col] = sum(products), True
        text += f"  → output ({row}, {col}) = {format_number(sum(products))}"
    if problem:
        text += f"  (earlier outputs not shown: {problem})"
    return StepView(padded, (row, col), step, cells, products, float(sum(products)), output, done, text, taps)


class ConvStepThrough(Explorer):
    """One output value at a time: the window, each product, and the running sum."""

    def __init__(self, input: np.ndarray | None = None, kernel: np.ndarray | None = None,
                 stride: int = 1, padding: int = 0, dilation: int = 1, conv_fn: ConvFn | None = None):
        super().__init__()
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
            self.step = slider("step", 0, 0, self.kernel.size)
            self.play = widgets.Play(value=0, min=0, max=self.kernel.size, interval=700, description="play")
            widgets.jslink((self.play, "value"), (self.step, "value"))
            self.back, self.forward = widgets.Button(description="◀ step"), widgets.Button(description="step ▶")
            self.back.on_click(lambda _b: self.move(-1))
            self.forward.on_click(lambda _b: self.move(+1))
            self.grids, self.explanation = widgets.HTML(), widgets.HTML()
            self.children = [widgets.HBox([self.stride, self.padding, self.dilation]),
                             widgets.HBox([self.index, self.step, self.play, self.back, self.forward]),
                             self.explanation, self.grids]
            self._watch(self.stride, self.padding, self.dilation, self.index, self.step)
        self.update()

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
        window = {cell: "#fff3b0" for cell in result.cells}
        if result.step:
            window[result.cells[result.step - 1]] = "#ffb000"
        pad = self.padding.value
        for r in range(result.padded.shape[0]):
            for c in range(result.padded.shape[1]):
                if padding_mask(result.padded.shape, pad)[r, c] and (r, c) not in window:
                    window[(r, c)] = "#dde8f5"
        kernel_colours = {tap: "#fff3b0" for tap in result.taps}
        if result.step:
            kernel_colours[result.taps[result.step - 1]] = "#ffb000"
        products = np.zeros_like(self.kernel)
        shown = np.ones(self.kernel.shape, dtype=bool)
        for s, p in enumerate(result.products):
            products[result.taps[s]], shown[result.taps[s]] = p, False
        out_colours = {result.position: "#ffb000"}
        self.explanation.value = f"<b>{html.escape(result.text)}</b>"
        self.grids.value = (html_grid(result.padded, window, "input" + (" (blue: zero padding)" if pad else ""))
                            + html_grid(self.kernel, kernel_colours, "kernel")
                            + html_grid(products, {}, f"products (sum {format_number(result.running_sum)})",
                                        blank=shown)
                            + html_grid(result.output, out_colours, "output", blank=~result.done))


def conv_step_through(input: np.ndarray | None = None, kernel: np.ndarray | None = None, stride: int = 1,
                      padding: int = 0, dilation: int = 1, conv_fn: ConvFn | None = None) -> ConvStepThrough:
    """Step through the multiply-adds of each output value.

    Args:
        input: a small (H, W) array (default: a 5x5 array of small integers).
        kernel: a (k, k) array (default: a 3x3 vertical-edge kernel).
        stride, padding, dilation: starting values of the sliders.
        conv_fn: computes the finished output values (default ``utils.functional.conv2d``).
    Returns:
        the explorer, an ``ipywidgets.VBox``.
    """
    return ConvStepThrough(input, kernel, stride, padding, dilation, conv_fn)


# ------------------------------------------------------------------------------------ pooling

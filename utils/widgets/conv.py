"""The convolution explorer (chapter 04): an image, a kernel, stride/padding/dilation, the output and its size."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from utils.widgets.base import ConvFn, Explorer, default_conv, output_size_formula, padding_mask, run_conv, slider
from utils.widgets.kernels import PRESETS, preset_kernel
from utils.widgets.render import (BLANK_PNG_INDICES, PADDING_INDEX, TOGGLE_STYLE, colour_limit, colour_scale_html,
                                  display_scale, error_html, formula_html, html_grid, outline, picture_panel,
                                  show_picture, to_indices)

@dataclass
class ConvView:
    """What the convolution explorer shows for one setting of its controls.

    ``padded``: (H + 2p, W + 2p) input with its zero padding; ``output``: (H_out, W_out) or None when
    conv_fn failed; ``window``: (top, left, height, width) of the current window in ``padded``
    coordinates; ``position``: the (row, col) of the output value it produces; ``formula``: two
    lines (H and W); ``error``: a message for the learner or None.
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

def conv_view(image: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0,
              dilation: int = 1, position: tuple[int, int] = (0, 0),
              conv_fn: ConvFn | None = None) -> ConvView:
    """Compute everything the convolution explorer shows (no widgets involved).

    Args:
        image: (H, W) float32 input. kernel: (k, k). stride, padding, dilation: ints as in conv2d.
        position: requested (row, col) of the output value to explain; clipped into the output.
        conv_fn: ``conv_fn(input (1,1,H,W), weight (1,1,k,k), bias, stride, padding, dilation)``;
            default ``utils.functional.conv2d``.
    """
    k = kernel.shape[0]
    padded = np.pad(image, padding)
    lines, sizes = zip(*(output_size_formula(a, n, k, stride, padding, dilation)
                         for a, n in (("H", image.shape[0]), ("W", image.shape[1]))))
    formula = "\n".join(lines)
    if None in sizes:
        return ConvView(padded, None, (0, 0, 0, 0), (0, 0), formula, None,
                        "the dilated kernel is larger than the padded input: lower dilation or add padding")
    output, error = run_conv(conv_fn or default_conv(), image, kernel, stride, padding, dilation)
    if output is not None and output.shape != tuple(sizes):
        error = f"your conv_fn returned {output.shape[0]}x{output.shape[1]} but the formula gives " \
                f"{sizes[0]}x{sizes[1]}"
    row, col = (min(max(p, 0), s - 1) for p, s in zip(position, sizes))
    span = dilation * (k - 1) + 1
    top, left = row * stride, col * stride
    taps = padded[top:top + span:dilation, left:left + span:dilation]
    value = float(output[row, col]) if output is not None and output.shape == tuple(sizes) else None
    return ConvView(padded, output, (top, left, span, span), (row, col), formula, tuple(sizes), error,
                    taps, value)


class ConvExplorer(Explorer):
    """Pick an image and a kernel, move stride/padding/dilation, and watch the output and its size."""

    def __init__(self, image: np.ndarray | str | None = None, conv_fn: ConvFn | None = None):
        super().__init__()
        self.conv_fn = conv_fn
        self._shown_size = 3
        with self.frozen():
            self._image_choice(image)
            self.kernel_size = widgets.ToggleButtons(options=[("3×3", 3), ("5×5", 5)], value=3, style=TOGGLE_STYLE)
            self.scale_view = widgets.HTML()
            self.preset = widgets.Dropdown(options=list(PRESETS) + ["custom"], value="Sobel x", description="preset")
            self.kernel_boxes = [[widgets.FloatText(value=0.0, step=0.1, layout=widgets.Layout(width="4.2em"))
                                  for _ in range(5)] for _ in range(5)]
            self.kernel_grid = widgets.GridBox(layout=widgets.Layout(grid_gap="2px"))
            self.stride, self.padding = slider("stride", 1, 1, 4), slider("padding", 0, 0, 3)
            self.dilation = slider("dilation", 1, 1, 3)
            self.out_row, self.out_col = slider("output row", 128, 0, 255), slider("output col", 128, 0, 255)
            self.input_view, self.output_view = widgets.Image(format="png"), widgets.Image(format="png")
            self.input_caption, self.output_caption = widgets.HTML(), widgets.HTML()
            self.formula_view, self.detail_view, self.error_view = widgets.HTML(), widgets.HTML(), widgets.HTML()
            self._layout_children()
            self._set_kernel(preset_kernel("Sobel x", 3))
            self.preset.observe(lambda _c: self._apply_preset(), names="value")
            self.kernel_size.observe(lambda _c: self._apply_preset(), names="value")
            self._watch(self.image_choice, self.stride, self.padding, self.dilation, self.out_row, self.out_col,
                        *[b for row in self.kernel_boxes for b in row])
            for row in self.kernel_boxes:
                for box in row:
                    box.observe(lambda _c: self._mark_custom(), names="value")
        self.update()

    def _layout_children(self) -> None:
        choices = widgets.HBox([self.image_choice, self.preset])
        sliders = widgets.VBox([self.stride, self.padding, self.dilation, self.out_row, self.out_col])
        pictures = widgets.HBox([picture_panel(self.input_caption, self.input_view),
                                 picture_panel(self.output_caption, self.output_view)])
        kernel = widgets.VBox([widgets.HTML("<b>kernel</b> (type any numbers)"), self.kernel_size,
                               self.kernel_grid], layout=widgets.Layout(margin="0 2em 0 0"))
        self.children = [choices, widgets.HBox([kernel, sliders]), pictures, self.scale_view,
                         self.formula_view, self.error_view, self.detail_view]

    # -- kernel editing
    def kernel(self) -> np.ndarray:
        """The (k, k) float32 kernel currently shown in the number boxes."""
        k = self._shown_size
        return np.array([[b.value for b in row[:k]] for row in self.kernel_boxes[:k]], dtype=np.float32)

    def _set_kernel(self, kernel: np.ndarray) -> None:
        k = kernel.shape[0]
        with self.frozen():
            for r in range(k):
                for c in range(k):
                    self.kernel_boxes[r][c].value = float(kernel[r, c])
            self.kernel_grid.children = [self.kernel_boxes[r][c] for r in range(k) for c in range(k)]
            self.kernel_grid.layout.grid_template_columns = f"repeat({k}, 4.4em)"
            self._shown_size = k

    def _apply_preset(self) -> None:
        k = self.kernel_size.value
        if self.preset.value != "custom":
            self._set_kernel(preset_kernel(self.preset.value, k))
        elif k > self._shown_size:      # a typed 3x3 kernel grows by a ring of zeros ...
            self._set_kernel(np.pad(self.kernel(), 1))
        elif k < self._shown_size:      # ... and a 5x5 one shrinks to its centre
            self._set_kernel(self.kernel()[1:4, 1:4])
        self._maybe_update()

    def _mark_custom(self) -> None:
        if not self._frozen and self.preset.value != "custom":
            with self.frozen():
                self.preset.value = "custom"

    # -- computing and drawing
    def view(self) -> ConvView:
        """The pure result for the current control values."""
        return conv_view(self.image(), self.kernel(), self.stride.value, self.padding.value,
                         self.dilation.value, (self.out_row.value, self.out_col.value), self.conv_fn)

    def update(self) -> None:
        self._rescale_position_sliders()
        result = self.view()
        self.result = result
        self.formula_view.value = formula_html(result.formula)
        self.error_view.value = error_html(result.error)
        self._draw_input(result)
        self._draw_output(result)
        self._draw_detail(result)

    def _rescale_position_sliders(self) -> None:
        """When the output size changes, keep the window at the same place *relative* to the image
        (otherwise a larger stride would push it into the bottom-right corner)."""
        settings = (self._shown_size, self.stride.value, self.padding.value, self.dilation.value)
        sizes = [output_size_formula(axis, n, *settings)[1] for axis, n in zip("HW", self.image().shape)]
        if None in sizes:
            return
        with self.frozen():
            for control, size in zip((self.out_row, self.out_col), sizes):
                if control.max != size - 1:
                    value = round(control.value * (size - 1) / max(control.max, 1))
                    control.max, control.value = size - 1, value

    def _draw_input(self, result: ConvView) -> None:
        picture = to_indices(result.padded, signed=False)
        picture[padding_mask(result.padded.shape, self.padding.value)] = PADDING_INDEX
        scale = display_scale(*result.padded.shape)
        self._scale = scale
        top, left, height, width = result.window
        picture = outline(outline(picture, top, left, height, width), top - 1, left - 1, height + 2, width + 2)
        show_picture(self.input_view, picture, False, scale)  # a 2-pixel outline stays visible at scale 1
        h, w = self.image().shape
        self.input_caption.value = f"<b>input</b> {h}×{w}" + (
            f" + padding {self.padding.value} (blue)" if self.padding.value else "") + ", yellow: window"

    def _draw_output(self, result: ConvView) -> None:
        if result.output is None:
            show_picture(self.output_view, BLANK_PNG_INDICES, False)
            self.output_caption.value, self.scale_view.value = "<b>output</b>: none", ""
            return
        out = result.output
        signed = bool(out.min() < 0)
        lim = colour_limit(out) if signed else 1.0
        picture = outline(to_indices(out, signed, lim), *result.position, 1, 1)
        show_picture(self.output_view, picture, signed, self._scale)  # same scale as the input: sizes compare
        self.output_caption.value = f"<b>output feature map</b> {out.shape[0]}×{out.shape[1]}"
        self.scale_view.value = "output colours: " + colour_scale_html(lim, signed)

    def _draw_detail(self, result: ConvView) -> None:
        if result.taps is None or result.value is None:
            self.detail_view.value = ""
            return
        r, c = result.position
        products = html_grid(result.taps * self.kernel(), title="products")
        self.detail_view.value = (
            f"<b>Output ({r}, {c})</b> = sum of (window values × kernel) = <b>{result.value:.4g}</b><br>"
            + html_grid(result.taps, title="window (input values at the kernel taps)")
            + html_grid(self.kernel(), title="kernel") + products)


def conv_explorer(image: np.ndarray | str | None = None, conv_fn: ConvFn | None = None) -> ConvExplorer:
    """The convolution explorer.

    Args:
        image: a bundled image name (see ``utils.data.IMAGE_NAMES``), an (H, W) array in [0, 1], or
            None for the 256x256 camera man.
        conv_fn: the function computing the output, called as
            ``conv_fn(input (1, 1, H, W), weight (1, 1, k, k), None, stride, padding, dilation)`` and
            expected to return (1, 1, H_out, W_out); default ``utils.functional.conv2d``.  Pass your
            own implementation to see it drive the explorer; its errors are shown in the widget.
    Returns:
        the explorer, an ``ipywidgets.VBox``.
    """
    return ConvExplorer(image, conv_fn)


# ------------------------------------------------------------------------------------ step-through


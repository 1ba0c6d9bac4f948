"""Interactive explorers (ipywidgets 8) for convolution, pooling and ReLU.

Each explorer is an ``ipywidgets.VBox`` subclass: its controls are attributes (``explorer.stride``,
``explorer.kernel_boxes``, ...), and every change of a control calls ``update()``, which

1. calls a *pure* function (``conv_view``, ``step_view``, ``pool_view``, ``relu_view``) from the
   control values to a small result object holding arrays and the texts to show, then
2. draws that result: images become PNG bytes in ``ipywidgets.Image`` (Pillow, nearest-neighbour
   enlarged, so a pixel stays a crisp square) and numbers become HTML tables.

Keeping step 1 free of widgets lets the tests check the numbers and the displayed formula without a
browser, and skipping matplotlib in step 2 keeps one update well under 100 ms for a 256x256 image
(``benchmarks/widget_update.py`` measures it).  Colours follow :mod:`utils.plotting`: gray for images
in [0, 1], a diverging map (red positive, blue negative, white zero) for signed feature maps.
"""
from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import ipywidgets as widgets
import matplotlib
import numpy as np
from PIL import Image as PILImage

from utils.data import IMAGE_NAMES, TEXTURE_NAMES, load_image, to_nchw
from utils.plotting import DIVERGING, _symmetric_limit

IMAGE_SIZE = 256          # explorers work on 256x256 grayscale versions of the bundled images
DISPLAY_PIXELS = 300      # the input is enlarged by an integer factor to about this many pixels
WINDOW_RGB = (255, 200, 0)   # the outline of the current window (yellow, visible on gray and on RdBu)
PADDING_RGB = (170, 200, 235)  # zero padding is drawn light blue so that it is not mistaken for black
LEVELS = 254                   # colour levels of a picture; palette index 254 = outline, 255 = padding
WINDOW_INDEX, PADDING_INDEX = LEVELS, LEVELS + 1

ConvFn = Callable[..., np.ndarray]


# ------------------------------------------------------------------------------------ kernels

def _binomial(size: int) -> np.ndarray:
    """Row ``size - 1`` of Pascal's triangle: (1, 2, 1) or (1, 4, 6, 4, 1), a discrete Gaussian."""
    return np.array([1, 2, 1] if size == 3 else [1, 4, 6, 4, 1], dtype=np.float32)


def _derivative(size: int) -> np.ndarray:
    """Central difference (-1, 0, 1), smoothed to (-1, -2, 0, 2, 1) for 5 taps."""
    return np.array([-1, 0, 1] if size == 3 else [-1, -2, 0, 2, 1], dtype=np.float32)


def _centred(small: np.ndarray, size: int) -> np.ndarray:
    """A 3x3 kernel in the middle of a ``size`` x ``size`` one of zeros."""
    out = np.zeros((size, size), dtype=np.float32)
    m = (size - 3) // 2
    out[m:m + 3, m:m + 3] = small
    return out


LAPLACIAN_3 = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)


def preset_kernel(name: str, size: int = 3) -> np.ndarray:
    """A classic filter as a ``(size, size)`` float32 kernel, ``size`` 3 or 5.

    Names: identity, box blur, Gaussian, sharpen, Sobel x (responds to left-right changes,
    i.e. vertical edges; positive where it gets brighter to the right), Sobel y (top-bottom
    changes), Laplacian (second derivative: spots and thin lines; 5x5 = 3x3 centred in zeros).
    """
    if size not in (3, 5):
        raise ValueError(f"preset kernels come in sizes 3 and 5, got size {size}")
    s, d = _binomial(size), _derivative(size)
    identity = _centred(np.pad(np.ones((1, 1), np.float32), 1), size)
    kernels = {
        "identity": identity,
        "box blur": np.full((size, size), 1.0 / size**2, dtype=np.float32),
        "Gaussian": np.outer(s, s) / np.outer(s, s).sum(),
        "sharpen": identity - _centred(LAPLACIAN_3, size),
        "Sobel x": np.outer(s, d),
        "Sobel y": np.outer(d, s),
        "Laplacian": _centred(LAPLACIAN_3, size),
    }
    if name not in kernels:
        raise ValueError(f"unknown preset {name!r}; choose one of {tuple(kernels)}")
    return kernels[name].astype(np.float32)


PRESETS = ("identity", "box blur", "Gaussian", "sharpen", "Sobel x", "Sobel y", "Laplacian")


@lru_cache(maxsize=16)
def explorer_image(name: str) -> np.ndarray:
    """A bundled image as a (256, 256) float32 grayscale array in [0, 1] (cached; do not modify)."""
    image = load_image(name, size=IMAGE_SIZE, gray=True)
    image.flags.writeable = False
    return image


def _as_image(image: np.ndarray | str | None, default: str = "camera") -> tuple[str, np.ndarray]:
    """(label, (H, W) float32 array) from a bundled image name, an array or None (the default)."""
    if image is None or isinstance(image, str):
        name = image or default
        return name, explorer_image(name)
    array = np.asarray(image, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"explorers take a grayscale (H, W) image, got shape {array.shape}")
    return "your image", array


def _default_conv():
    from utils.functional import conv2d
    return conv2d


# ------------------------------------------------------------------------------------ formulas

def output_size_formula(axis: str, size: int, kernel: int, stride: int, padding: int,
                        dilation: int | None = 1) -> tuple[str, int | None]:
    """PyTorch's output-size formula (first line) with the numbers filled in (second line), and the
    result (None when the window does not fit).

    ``dilation=None`` writes the pooling form ``⌊(H + 2·padding − k) / stride⌋ + 1`` (dilation 1).
    """
    from utils.functional import conv_output_size  # the one place the formula is computed
    numerator = size + 2 * padding - (dilation or 1) * (kernel - 1) - 1   # shown, not recomputed
    try:
        result = conv_output_size(size, kernel, stride, padding, dilation or 1)
    except ValueError:            # the window does not fit in the padded input
        result = None
    if dilation is None:
        text = (f"{axis}_out = ⌊({axis} + 2·padding − k) / stride⌋ + 1\n"
                f"      = ⌊({size} + 2·{padding} − {kernel}) / {stride}⌋ + 1")
        dilation = 1
    else:
        text = (f"{axis}_out = ⌊({axis} + 2·padding − dilation·(k − 1) − 1) / stride⌋ + 1\n"
                f"      = ⌊({size} + 2·{padding} − {dilation}·({kernel} − 1) − 1) / {stride}⌋ + 1")
    if result is None:
        return text + f" → the window ({dilation * (kernel - 1) + 1} wide) does not fit", None
    return text + f" = ⌊{numerator} / {stride}⌋ + 1 = {result}", result


# ------------------------------------------------------------------------------------ drawing

def colour_limit(array: np.ndarray) -> float:
    """Symmetric colour limit for a signed map: the 99.5th percentile of |values|, so that a few
    extreme pixels do not wash out the rest (they saturate instead); 1.0 for an all-zero map."""
    lim = float(np.percentile(np.abs(array), 99.5))
    return lim if lim > 0 else _symmetric_limit(array)


@lru_cache(maxsize=2)
def palette(signed: bool) -> list[int]:
    """The PNG palette: LEVELS colours of the gray or diverging map, then the outline and padding."""
    colours = matplotlib.colormaps[DIVERGING if signed else "gray"](np.linspace(0, 1, LEVELS))[:, :3]
    return (colours * 255).round().astype(np.uint8).ravel().tolist() + [*WINDOW_RGB, *PADDING_RGB]


def to_indices(array: np.ndarray, signed: bool, limit: float | None = None) -> np.ndarray:
    """(H, W) values -> (H, W) uint8 palette indices in [0, LEVELS): [0, 1] images map linearly,
    signed maps are centred on 0 with ``limit`` (default :func:`colour_limit`) at the ends."""
    unit = array / (2 * (limit or colour_limit(array))) + 0.5 if signed else array
    return np.rint(np.clip(unit, 0.0, 1.0) * (LEVELS - 1)).astype(np.uint8)


def _outline(indices: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Draw a 1-pixel rectangle (clipped to the picture) in the outline colour on a copy."""
    out = indices.copy()
    H, W = out.shape
    bottom, right = top + height - 1, left + width - 1
    rows, cols = slice(max(top, 0), min(bottom, H - 1) + 1), slice(max(left, 0), min(right, W - 1) + 1)
    for r in (top, bottom):
        if 0 <= r < H:
            out[r, cols] = WINDOW_INDEX
    for c in (left, right):
        if 0 <= c < W:
            out[rows, c] = WINDOW_INDEX
    return out


def png_bytes(indices: np.ndarray, signed: bool, scale: int = 1) -> bytes:
    """(H, W) uint8 palette indices -> PNG bytes, each pixel enlarged to a ``scale`` x ``scale`` square.

    A palette PNG (one byte per pixel) encodes several times faster than RGB: ~3 ms at 256x256.
    """
    if scale > 1:
        indices = np.repeat(np.repeat(indices, scale, axis=0), scale, axis=1)
    picture = PILImage.fromarray(indices)
    picture.putpalette(palette(signed))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)  # fast beats small here
    return buffer.getvalue()


BLANK_PNG_INDICES = np.full((1, 1), LEVELS - 1, dtype=np.uint8)   # one white pixel


def show_picture(view: widgets.Image, indices: np.ndarray, signed: bool, scale: int = 1) -> None:
    """Put a picture into an Image widget at exactly ``scale`` screen pixels per value, so that
    pictures of different sizes (input vs strided output) keep their true relative size."""
    view.value = png_bytes(indices, signed, scale)
    height, width = indices.shape[0] * scale, indices.shape[1] * scale
    view.layout.width, view.layout.height = f"{width}px", f"{height}px"
    view.layout.min_width, view.layout.min_height = view.layout.width, view.layout.height


def formula_html(formula: str) -> str:
    return f"<b>Output size</b><pre style='margin:0;white-space:pre-wrap'>{html.escape(formula)}</pre>"


def error_html(message: str | None) -> str:
    """A learner-facing warning line ('' when there is nothing to say)."""
    return "" if message is None else f"<div style='color:#b42318;font-weight:bold'>⚠ {html.escape(message)}</div>"


def _picture_panel(caption: widgets.HTML, view: widgets.Image) -> widgets.VBox:
    return widgets.VBox([caption, view], layout=widgets.Layout(margin="0 1.5em 0 0"))


TOGGLE_STYLE = {"description_width": "initial", "button_width": "6em"}


def display_scale(height: int, width: int) -> int:
    """Integer enlargement that brings the larger side near DISPLAY_PIXELS (at least 1)."""
    return max(1, DISPLAY_PIXELS // max(height, width))


def colour_scale_html(limit: float, signed: bool) -> str:
    """A small colour bar with its end values, drawn in HTML."""
    if not signed:
        return ("<span style='font-size:11px'>0 <span style='display:inline-block;width:120px;height:10px;"
                "background:linear-gradient(to right,black,white)'></span> 1</span>")
    return (f"<span style='font-size:11px'>{-limit:.3g} <span style='display:inline-block;width:120px;"
            f"height:10px;background:linear-gradient(to right,#2166ac,#f7f7f7,#b2182b)'></span> "
            f"{limit:.3g} (blue negative, white 0, red positive; beyond ±{limit:.3g} saturated)</span>")


def _fmt(value: float) -> str:
    """Short, stable number text for tables: integers without decimals, else 3 significant digits."""
    value = float(value)
    return str(int(round(value))) if value == round(value) and abs(value) < 1e6 else f"{value:.3g}"


def html_grid(values: np.ndarray, colours: dict[tuple[int, int], str] | None = None,
              title: str = "", blank: np.ndarray | None = None) -> str:
    """An (H, W) array as an HTML table of numbers; ``colours`` maps (row, col) to a CSS colour,
    ``blank`` (bool, same shape) hides cells not computed yet."""
    colours = colours or {}
    rows = []
    for r in range(values.shape[0]):
        cells = []
        for c in range(values.shape[1]):
            text = "" if blank is not None and blank[r, c] else _fmt(values[r, c])
            bg = colours.get((r, c), "white")
            cells.append(f"<td style='border:1px solid #999;width:2.6em;height:2em;text-align:center;"
                         f"background:{bg};font-family:monospace'>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<div style='font-weight:bold;margin-bottom:2px'>{html.escape(title)}</div>" if title else ""
    return f"<div style='display:inline-block;margin:0 1em 0 0;vertical-align:top'>{caption}" \
           f"<table style='border-collapse:collapse'>{''.join(rows)}</table></div>"


class Explorer(widgets.VBox):
    """Base of the explorers: wires every control to ``update`` and gives a stable text repr."""

    def _watch(self, *controls) -> None:
        for control in controls:
            control.observe(lambda _change: self._maybe_update(), names="value")

    def _maybe_update(self) -> None:
        if not getattr(self, "_frozen", False):
            self.update()

    def update(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _image_choice(self, image: np.ndarray | str | None) -> None:
        """The ``image_choice`` dropdown: the bundled images, plus "your image" when one was given."""
        label, array = _as_image(image)
        self._custom_image = array if label == "your image" else None
        options = (["your image"] if self._custom_image is not None else []) + list(IMAGE_NAMES + TEXTURE_NAMES)
        self.image_choice = widgets.Dropdown(options=options, value=label, description="image")

    def image(self) -> np.ndarray:
        """The (H, W) image currently chosen."""
        if self.image_choice.value == "your image":
            return self._custom_image
        return explorer_image(self.image_choice.value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: interactive, run the cell to use it>"


def _slider(description: str, value: int, low: int, high: int) -> widgets.IntSlider:
    return widgets.IntSlider(value=value, min=low, max=high, description=description,
                             continuous_update=True, style={"description_width": "initial"})


# ------------------------------------------------------------------------------------ conv explorer

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


def _padding_mask(shape: tuple[int, int], padding: int) -> np.ndarray:
    mask = np.ones(shape, dtype=bool)
    mask[padding:shape[0] - padding, padding:shape[1] - padding] = False
    return mask


def _run_conv(conv_fn: ConvFn, image: np.ndarray, kernel: np.ndarray, stride: int, padding: int,
              dilation: int) -> tuple[np.ndarray | None, str | None]:
    """(output (H_out, W_out), None) or (None, message) when conv_fn raised or returned nonsense."""
    try:
        out = conv_fn(to_nchw(image), kernel[None, None].astype(image.dtype), None, stride, padding, dilation)
    except Exception as exc:  # noqa: BLE001 - any learner bug must show up in the widget, not crash it
        return None, f"conv_fn raised {type(exc).__name__}: {exc}"
    out = np.asarray(out)
    if out.ndim != 4 or out.shape[:2] != (1, 1):
        return None, f"conv_fn should return shape (1, 1, H_out, W_out) for one image and one filter, " \
                     f"got {out.shape}"
    return out[0, 0].astype(np.float32), None


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
    output, error = _run_conv(conv_fn or _default_conv(), image, kernel, stride, padding, dilation)
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
        self._frozen, self._shown_size = True, 3
        self._image_choice(image)
        self.kernel_size = widgets.ToggleButtons(options=[("3×3", 3), ("5×5", 5)], value=3, style=TOGGLE_STYLE)
        self.scale_view = widgets.HTML()
        self.preset = widgets.Dropdown(options=list(PRESETS) + ["custom"], value="Sobel x", description="preset")
        self.kernel_boxes = [[widgets.FloatText(value=0.0, step=0.1, layout=widgets.Layout(width="4.2em"))
                              for _ in range(5)] for _ in range(5)]
        self.kernel_grid = widgets.GridBox(layout=widgets.Layout(grid_gap="2px"))
        self.stride, self.padding = _slider("stride", 1, 1, 4), _slider("padding", 0, 0, 3)
        self.dilation = _slider("dilation", 1, 1, 3)
        self.out_row, self.out_col = _slider("output row", 128, 0, 255), _slider("output col", 128, 0, 255)
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
        self._frozen = False
        self.update()

    def _layout_children(self) -> None:
        choices = widgets.HBox([self.image_choice, self.preset])
        sliders = widgets.VBox([self.stride, self.padding, self.dilation, self.out_row, self.out_col])
        pictures = widgets.HBox([_picture_panel(self.input_caption, self.input_view),
                                 _picture_panel(self.output_caption, self.output_view)])
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
        frozen, self._frozen = self._frozen, True
        for r in range(k):
            for c in range(k):
                self.kernel_boxes[r][c].value = float(kernel[r, c])
        self.kernel_grid.children = [self.kernel_boxes[r][c] for r in range(k) for c in range(k)]
        self.kernel_grid.layout.grid_template_columns = f"repeat({k}, 4.4em)"
        self._shown_size = k
        self._frozen = frozen

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
            self._frozen = True
            self.preset.value = "custom"
            self._frozen = False

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
        frozen, self._frozen = self._frozen, True
        for slider, size in zip((self.out_row, self.out_col), sizes):
            if slider.max != size - 1:
                value = round(slider.value * (size - 1) / max(slider.max, 1))
                slider.max, slider.value = size - 1, value
        self._frozen = frozen

    def _draw_input(self, result: ConvView) -> None:
        picture = to_indices(result.padded, signed=False)
        picture[_padding_mask(result.padded.shape, self.padding.value)] = PADDING_INDEX
        scale = display_scale(*result.padded.shape)
        self._scale = scale
        top, left, height, width = result.window
        picture = _outline(_outline(picture, top, left, height, width), top - 1, left - 1, height + 2, width + 2)
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
        picture = _outline(to_indices(out, signed, lim), *result.position, 1, 1)
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
    full, problem = _run_conv(conv_fn or _default_conv(), input.astype(np.float32), kernel.astype(np.float32),
                              stride, padding, dilation)
    if full is not None and full.shape != (h_out, w_out):
        full, problem = None, f"conv_fn returned shape {full.shape}, the formula gives {(h_out, w_out)}"
    done = np.arange(h_out * w_out).reshape(h_out, w_out) < index
    output = np.where(done, full, 0.0) if full is not None else np.zeros((h_out, w_out))
    if step:
        a, b = taps[step - 1]
        text = (f"step {step} of {k * k}: input[{cells[step - 1][0]}, {cells[step - 1][1]}] × "
                f"kernel[{a}, {b}] = {_fmt(padded[cells[step - 1]])} × {_fmt(kernel[a, b])} = "
                f"{_fmt(products[-1])};  running sum = {_fmt(sum(products))}")
    else:
        text = f"output ({row}, {col}): press ‘step ▶’ to multiply the first input value by its weight"
    if step == k * k:
        output[row, col], done[row, col] = sum(products), True
        text += f"  → output ({row}, {col}) = {_fmt(sum(products))}"
    if problem:
        text += f"  (earlier outputs not shown: {problem})"
    return StepView(padded, (row, col), step, cells, products, float(sum(products)), output, done, text, taps)


class ConvStepThrough(Explorer):
    """One output value at a time: the window, each product, and the running sum."""

    def __init__(self, input: np.ndarray | None = None, kernel: np.ndarray | None = None,
                 stride: int = 1, padding: int = 0, dilation: int = 1, conv_fn: ConvFn | None = None):
        super().__init__()
        self._frozen = True
        self.input = np.asarray(DEFAULT_STEP_INPUT if input is None else input, dtype=np.float32)
        self.kernel = np.asarray(DEFAULT_STEP_KERNEL if kernel is None else kernel, dtype=np.float32)
        if self.input.ndim != 2 or self.kernel.ndim != 2 or self.kernel.shape[0] != self.kernel.shape[1]:
            raise ValueError(f"conv_step_through takes an (H, W) input and a square (k, k) kernel, "
                             f"got {self.input.shape} and {self.kernel.shape}")
        self.conv_fn = conv_fn
        self.stride, self.padding = _slider("stride", stride, 1, 3), _slider("padding", padding, 0, 2)
        self.dilation = _slider("dilation", dilation, 1, 2)
        self.index = _slider("output value #", 0, 0, 0)
        self.step = _slider("step", 0, 0, self.kernel.size)
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
        self._frozen = False
        self.update()

    def move(self, delta: int) -> None:
        """One step forward/back, rolling over to the next/previous output value."""
        last = self.kernel.size
        step, index = self.step.value + delta, self.index.value
        if step > last and index < self.index.max:
            index, step = index + 1, 1
        elif step < 0 and index > 0:
            index, step = index - 1, last
        self._frozen = True
        self.index.value, self.step.value = index, min(max(step, 0), last)
        self._frozen = False
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
        self._frozen = True
        self.index.max = result.output.size - 1
        self._frozen = False
        window = {cell: "#fff3b0" for cell in result.cells}
        if result.step:
            window[result.cells[result.step - 1]] = "#ffb000"
        pad = self.padding.value
        for r in range(result.padded.shape[0]):
            for c in range(result.padded.shape[1]):
                if _padding_mask(result.padded.shape, pad)[r, c] and (r, c) not in window:
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
                            + html_grid(products, {}, f"products (sum {_fmt(result.running_sum)})", blank=shown)
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

@dataclass
class PoolView:
    """``input`` (H, W); ``output`` (H_out, W_out) or None; ``formula`` with the numbers; ``error``."""
    input: np.ndarray
    output: np.ndarray | None
    formula: str
    error: str | None = None


def pool_view(image: np.ndarray, mode: str = "max", kernel_size: int = 2, stride: int | None = None,
              padding: int = 0) -> PoolView:
    """Pool an (H, W) image with ``utils.functional.max_pool2d`` / ``avg_pool2d`` (stride None = kernel)."""
    from utils.functional import avg_pool2d, max_pool2d
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    stride = kernel_size if stride is None else stride
    lines, sizes = zip(*(output_size_formula(a, n, kernel_size, stride, padding, dilation=None)
                         for a, n in (("H", image.shape[0]), ("W", image.shape[1]))))
    formula = "\n".join(lines)
    pool = max_pool2d if mode == "max" else avg_pool2d
    try:
        output = pool(to_nchw(image), kernel_size, stride, padding)[0, 0]
    except ValueError as exc:
        return PoolView(image, None, formula, str(exc))
    return PoolView(image, output, formula)


class PoolExplorer(Explorer):
    """Max or average pooling of an image: the output shrinks, strong responses survive (max)."""

    def __init__(self, image: np.ndarray | str | None = None, mode: str = "max", kernel_size: int = 2,
                 stride: int | None = None, padding: int = 0):
        super().__init__()
        self._frozen = True
        self._image_choice(image)
        self.mode = widgets.ToggleButtons(options=["max", "avg"], value=mode, description="pooling",
                                          style=TOGGLE_STYLE)
        self.kernel_size = _slider("kernel", kernel_size, 1, 8)
        self.stride = _slider("stride", kernel_size if stride is None else stride, 1, 8)
        self.padding = _slider("padding", padding, 0, 4)
        self.input_view, self.output_view = widgets.Image(format="png"), widgets.Image(format="png")
        self.input_caption, self.output_caption = widgets.HTML(), widgets.HTML()
        self.formula_view, self.error_view = widgets.HTML(), widgets.HTML()
        controls = widgets.HBox([widgets.VBox([self.image_choice, self.mode]),
                                 widgets.VBox([self.kernel_size, self.stride, self.padding])])
        pictures = widgets.HBox([_picture_panel(self.input_caption, self.input_view),
                                 _picture_panel(self.output_caption, self.output_view)])
        self.children = [controls, pictures, self.formula_view, self.error_view]
        self._watch(self.image_choice, self.mode, self.kernel_size, self.stride, self.padding)
        self._frozen = False
        self.update()

    def view(self) -> PoolView:
        return pool_view(self.image(), self.mode.value, self.kernel_size.value, self.stride.value,
                         self.padding.value)

    def update(self) -> None:
        result = self.view()
        self.result = result
        scale = display_scale(*result.input.shape)
        show_picture(self.input_view, to_indices(result.input, signed=False), False, scale)
        self.input_caption.value = f"<b>input</b> {result.input.shape[0]}×{result.input.shape[1]}"
        self.formula_view.value = formula_html(result.formula)
        self.error_view.value = error_html(result.error)
        if result.output is None:
            show_picture(self.output_view, BLANK_PNG_INDICES, False)
            self.output_caption.value = ""
            return
        out = result.output
        show_picture(self.output_view, to_indices(out, signed=False), False, scale)
        kept = out.size / result.input.size
        self.output_caption.value = (f"<b>{self.mode.value}-pooled</b> {out.shape[0]}×{out.shape[1]} "
                                     f"({kept:.1%} of the input values)")


def pool_explorer(image: np.ndarray | str | None = None, mode: str = "max", kernel_size: int = 2,
                  stride: int | None = None, padding: int = 0) -> PoolExplorer:
    """The pooling explorer: mode ``"max"``/``"avg"``, kernel, stride (None = kernel), padding.

    ``image`` is a bundled image name, an (H, W) array in [0, 1] or None (camera man, 256x256).
    Returns the explorer, an ``ipywidgets.VBox``.
    """
    return PoolExplorer(image, mode, kernel_size, stride, padding)


# ------------------------------------------------------------------------------------ ReLU

@dataclass
class ReluView:
    """``before``: (H, W) feature map (conv output); ``after``: activation applied; counts in words."""
    before: np.ndarray
    after: np.ndarray
    zeroed_fraction: float
    negative_fraction: float
    summary: str


def feature_map(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(H, W) image under a (k, k) kernel -> (H - k + 1, W - k + 1) feature map, no padding (zero
    padding would add a frame of strong edges around a bright photo)."""
    return _default_conv()(to_nchw(image), kernel[None, None].astype(image.dtype))[0, 0]


def relu_view(before: np.ndarray, activation: str = "relu", negative_slope: float = 0.01) -> ReluView:
    """A feature map ``before`` (H, W) and after ReLU / leaky ReLU, with what changed in words."""
    from utils.functional import leaky_relu, relu
    if activation not in ("relu", "leaky_relu"):
        raise ValueError(f"activation must be 'relu' or 'leaky_relu', got {activation!r}")
    after = relu(before) if activation == "relu" else leaky_relu(before, negative_slope)
    zeroed, negative = float(np.mean(after == 0)), float(np.mean(before < 0))
    if activation == "relu":
        summary = f"ReLU set {zeroed:.1%} of the {before.size:,} values to zero (the negative ones)."
    else:
        summary = (f"Leaky ReLU kept every value: the {negative:.1%} negative ones were multiplied by "
                   f"{negative_slope:g} instead of being zeroed ({zeroed:.1%} are zero).")
    return ReluView(before, after, zeroed, negative, summary)


class ReluExplorer(Explorer):
    """A feature map before and after ReLU / leaky ReLU, with the fraction of values set to zero."""

    def __init__(self, image: np.ndarray | str | None = None, preset: str = "Sobel x"):
        super().__init__()
        self._frozen = True
        self._image_choice(image)
        self.preset = widgets.Dropdown(options=list(PRESETS), value=preset, description="filter")
        self.activation = widgets.ToggleButtons(options=[("ReLU", "relu"), ("leaky ReLU", "leaky_relu")],
                                                value="relu", description="activation",
                                                style=dict(TOGGLE_STYLE, button_width="8em"))
        self.slope = widgets.FloatSlider(value=0.1, min=0.01, max=0.5, step=0.01, description="negative slope",
                                         style={"description_width": "initial"})
        self.before_view, self.after_view = widgets.Image(format="png"), widgets.Image(format="png")
        self.before_caption, self.after_caption = widgets.HTML(), widgets.HTML()
        self.summary_view, self.scale_view = widgets.HTML(), widgets.HTML()
        controls = widgets.HBox([widgets.VBox([self.image_choice, self.preset]),
                                 widgets.VBox([self.activation, self.slope])])
        pictures = widgets.HBox([_picture_panel(self.before_caption, self.before_view),
                                 _picture_panel(self.after_caption, self.after_view)])
        self.children = [controls, pictures, self.scale_view, self.summary_view]
        self._watch(self.image_choice, self.preset, self.activation, self.slope)
        self._frozen = False
        self.update()

    def view(self) -> ReluView:
        key = (self.image_choice.value, self.preset.value)
        if getattr(self, "_before_key", None) != key:   # the activation alone changes: no new conv
            self._before = feature_map(self.image(), preset_kernel(self.preset.value, 3))
            self._before_key = key
        return relu_view(self._before, self.activation.value, self.slope.value)

    def update(self) -> None:
        result = self.view()
        self.result = result
        self.slope.layout.visibility = "visible" if self.activation.value == "leaky_relu" else "hidden"
        lim = colour_limit(result.before)   # one colour scale for both: what changed is visible
        scale = display_scale(*result.before.shape)
        show_picture(self.before_view, to_indices(result.before, True, lim), True, scale)
        show_picture(self.after_view, to_indices(result.after, True, lim), True, scale)
        self.before_caption.value = "<b>feature map before</b>"
        self.after_caption.value = f"<b>after {'ReLU' if self.activation.value == 'relu' else 'leaky ReLU'}</b>"
        self.scale_view.value = "colours of both: " + colour_scale_html(lim, True)
        self.summary_view.value = f"<b>{html.escape(result.summary)}</b>"


def relu_explorer(image: np.ndarray | str | None = None, preset: str = "Sobel x") -> ReluExplorer:
    """The ReLU explorer: the feature map of ``image`` under a preset filter, before/after (leaky) ReLU.

    ``image`` is a bundled image name, an (H, W) array in [0, 1] or None (camera man, 256x256);
    ``preset`` one of :data:`PRESETS`.  Returns the explorer, an ``ipywidgets.VBox``.
    """
    return ReluExplorer(image, preset)

"""The layer pipeline explorer (chapter 06): one stage of a CNN, an image through a bank of filters ->
ReLU -> pooling, every intermediate map on screen at once (a row per filter), each stage switchable.

:func:`pipeline_view` is the pure part (arrays in, arrays out, no widgets), checked against torch's
``conv2d -> relu -> max_pool2d``; :class:`PipelineExplorer` draws it.  The convolution can be the
learner's own: ``conv_fn(input (1, 1, H, W), weight (C_out, 1, k, k)) -> (1, C_out, H - k + 1, W - k + 1)``,
like ``torch.nn.functional.conv2d`` with stride 1 and no padding; :func:`per_filter` turns a
single-channel ``conv(image (H, W), kernel (k, k)) -> (H - k + 1, W - k + 1)`` (chapter 02's
``conv2d_single``) into one.  Whatever it raises or returns wrongly is shown in the widget.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Callable, Sequence

import ipywidgets as widgets
import numpy as np

from utils.data import to_nchw
from utils.widgets.base import ConvFn, Explorer, default_conv, slider
from utils.widgets.kernels import PRESETS, preset_kernel
from utils.widgets.pool import blocks_at_input_scale
from utils.widgets.render import (TOGGLE_STYLE, colour_indices, colour_limit, colour_scale, encode_png, error_html,
                                  format_number)

__all__ = ["DEFAULT_BANK", "MAX_FILTERS", "PipelineExplorer", "PipelineView", "after_conv", "bank_kernels",
           "per_filter", "pipeline_explorer", "pipeline_view", "run_bank"]

DEFAULT_BANK = ("Sobel x", "Sobel y", "Laplacian", "box blur")   # 3x3 presets, one row each
MAX_FILTERS = 8          # more rows than this do not fit on a screen
MAX_POOL_SIZE = 8


@dataclass
class PipelineView:
    """Every map of one pass through the stage, one row per filter.

    ``input``: the (H, W) image; ``names``: one label per row; ``kernels``: (C, 1, k, k).
    ``conv``: (C, H1, W1) filter responses, or None when the convolution is switched off (then the
    rows are the image itself, C = 1, and ``names == ["image"]``); ``relu``: (C, H1, W1) or None when
    off; ``pooled``: (C, H1 // s, W1 // s) for pool size ``s`` or None when off; ``output``: what the
    last stage that is on produced (C, h, w); ``error``: a message for the learner (a failing
    ``conv_fn``), and then every map is None.  Used first in chapter 06.
    """
    input: np.ndarray
    names: list[str]
    kernels: np.ndarray
    conv: np.ndarray | None
    relu: np.ndarray | None
    pooled: np.ndarray | None
    output: np.ndarray | None
    error: str | None = None


def bank_kernels(kernels: Sequence[str] | np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """(names, (C_out, 1, k, k) float32 weights) from preset names, an array (or CPU tensor) of shape
    (C_out, 1, k, k), or None (:data:`DEFAULT_BANK`).  Bad input raises ValueError saying what is wrong.

    Used first in chapter 06.
    """
    if kernels is None:
        kernels = DEFAULT_BANK
    if isinstance(kernels, str):
        raise ValueError(f"kernels should be a list of preset names, e.g. [{kernels!r}], or an array")
    if isinstance(kernels, (list, tuple)) and kernels and all(isinstance(k, str) for k in kernels):
        unknown = [k for k in kernels if k not in PRESETS]
        if unknown:
            raise ValueError(f"unknown preset(s) {unknown}; choose from {PRESETS}")
        names, weight = list(kernels), np.stack([preset_kernel(k, 3) for k in kernels])[:, None]
    else:
        if hasattr(kernels, "detach"):            # a torch tensor, possibly requiring grad
            kernels = kernels.detach().cpu().numpy()
        try:
            weight = np.asarray(kernels, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"kernels should be preset names or numbers of shape (C_out, 1, k, k): {exc}") from None
        if weight.ndim != 4 or weight.shape[1] != 1 or weight.shape[2] != weight.shape[3]:
            raise ValueError(f"kernels should have shape (C_out, 1, k, k) (one input channel, square "
                             f"k x k filters), got {weight.shape}")
        if not np.all(np.isfinite(weight)):
            raise ValueError("kernels contain NaN or infinite values")
        names = [f"filter {i}" for i in range(weight.shape[0])]
    if not 1 <= weight.shape[0] <= MAX_FILTERS:
        raise ValueError(f"the pipeline shows 1 to {MAX_FILTERS} filters, got {weight.shape[0]}")
    return names, np.ascontiguousarray(weight)


def run_bank(conv_fn: ConvFn | None, image: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """((C, H - k + 1, W - k + 1) float32 maps, None), or (None, message) when ``conv_fn`` raised or
    returned the wrong shape.  ``conv_fn`` None = ``utils.functional.conv2d``.  Used first in chapter 06.
    """
    c, _, k, _ = weight.shape
    expected = (1, c, image.shape[0] - k + 1, image.shape[1] - k + 1)
    try:
        out = (conv_fn or default_conv())(to_nchw(image), weight.astype(image.dtype))
        if hasattr(out, "detach"):
            out = out.detach().cpu().numpy()
        out = np.asarray(out, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - a learner's bug must show up in the widget, not crash it
        return None, f"conv_fn raised {type(exc).__name__}: {exc}"
    if out.shape != expected:
        return None, (f"conv_fn should return shape {expected} (one image, {c} filters, no padding), "
                      f"got {out.shape}")
    return out[0], None


def per_filter(conv_single: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> ConvFn:
    """Wrap a single-channel ``conv_single(image (H, W), kernel (k, k)) -> (H - k + 1, W - k + 1)``
    (chapter 02's ``conv2d_single``) as the pipeline's ``conv_fn``: it is called once per filter.

    Used first in chapter 06.
    """
    def conv_fn(input: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(conv_single(input[0, 0], w[0]), dtype=np.float32) for w in weight])[None]
    conv_fn.__name__ = f"per_filter({getattr(conv_single, '__name__', 'conv')})"
    return conv_fn


def _check_stages(mode: str, pool_size: int) -> None:
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    if not 2 <= int(pool_size) <= MAX_POOL_SIZE:
        raise ValueError(f"pool_size must be 2 to {MAX_POOL_SIZE}, got {pool_size}")


def after_conv(image: np.ndarray, names: list[str], weight: np.ndarray, maps: np.ndarray | None,
               error: str | None, relu: bool, pool: bool, mode: str, pool_size: int) -> PipelineView:
    """The ReLU and pooling stages of :func:`pipeline_view` on already computed filter responses ``maps``
    (C, H1, W1) (None: the convolution is off, the image goes on), or the ``error`` of the conv.
    Used first in chapter 06."""
    from utils.functional import avg_pool2d, max_pool2d
    from utils.functional import relu as relu_fn
    if error is not None:
        return PipelineView(image, names, weight, None, None, None, None, error)
    conv = maps
    current = maps if maps is not None else image[None]
    if maps is None:
        names = ["image"]
    after_relu = relu_fn(current) if relu else None
    current = after_relu if relu else current
    if pool_size > min(current.shape[1:]):
        raise ValueError(f"pool_size {pool_size} is larger than the {current.shape[1]}x{current.shape[2]} maps")
    pooled = None
    if pool:
        pooled = (max_pool2d if mode == "max" else avg_pool2d)(current[None], pool_size)[0]
        current = pooled
    return PipelineView(image, names, weight, conv, after_relu, pooled, current)


def pipeline_view(image: np.ndarray, kernels: Sequence[str] | np.ndarray | None = None,
                  conv_fn: ConvFn | None = None, conv: bool = True, relu: bool = True, pool: bool = True,
                  mode: str = "max", pool_size: int = 2) -> PipelineView:
    """One stage of a CNN on an (H, W) image: conv (stride 1, no padding) -> ReLU -> pooling.

    Args:
        image: (H, W) float32. kernels: see :func:`bank_kernels`. conv_fn: see the module docstring.
        conv, relu, pool: whether each stage is on (an off stage passes its input on unchanged).
        mode: ``"max"`` or ``"avg"`` pooling; pool_size: window and stride, 2-8.
    Returns:
        a :class:`PipelineView`.  Taught in chapter 06.
    """
    _check_stages(mode, pool_size)
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"the pipeline takes a grayscale (H, W) image, got shape {image.shape}")
    names, weight = bank_kernels(kernels)
    if min(image.shape) - weight.shape[2] + 1 < 2:
        raise ValueError(f"the {image.shape[0]}x{image.shape[1]} image is too small for {weight.shape[2]}x"
                         f"{weight.shape[2]} filters")
    maps, error = run_bank(conv_fn, image, weight) if conv else (None, None)
    return after_conv(image, names, weight, maps, error, relu, pool, mode, pool_size)


# ------------------------------------------------------------------------------------ drawing

def _kernel_html(name: str, kernel: np.ndarray, limit: float | None) -> str:
    cells = "".join("<tr>" + "".join(f"<td style='border:1px solid #bbb;padding:0 3px;text-align:right'>"
                                     f"{format_number(v)}</td>" for v in row) + "</tr>" for row in kernel)
    scale = f"<div style='color:#555'>colours ±{limit:.3g}</div>" if limit is not None else ""
    return (f"<div style='font-size:11px;line-height:1.3'><b>{html.escape(name)}</b>"
            f"<table style='border-collapse:collapse;font-family:monospace'>{cells}</table>{scale}</div>")


LEGEND = ("<div style='font-size:11px;line-height:1.4'>Colours: <span style='display:inline-block;width:90px;"
          "height:9px;background:linear-gradient(to right,#2166ac,#f7f7f7,#b2182b)'></span> blue negative, "
          "white 0, red "
          "positive (a map with no negative value uses the white-to-red half); each row has its own scale "
          "±L (under its kernel), shared by its maps, so what a stage removes is visible. Pooled values "
          "are drawn as blocks over their windows, at the input's scale (light blue: no window there). "
          "With the convolution off the image is gray (0 black, 1 white).</div>")


class _Row:
    """The widgets of one row: a kernel label and three (caption, picture) panels."""

    def __init__(self):
        self.label = widgets.HTML(layout=widgets.Layout(width="10.5em"))
        self.captions = [widgets.HTML() for _ in range(3)]
        self.pictures = [widgets.Image(format="png") for _ in range(3)]
        self.panels = [widgets.VBox([c, p], layout=widgets.Layout(margin="0 1em 0 0"))
                       for c, p in zip(self.captions, self.pictures)]
        self.box = widgets.HBox([self.label, *self.panels], layout=widgets.Layout(margin="0 0 0.4em 0"))


class PipelineExplorer(Explorer):
    """An image through a bank of filters -> ReLU -> pooling, every map at once, each stage switchable.

    Used first in chapter 06.
    """

    def __init__(self, image: np.ndarray | str | None = None, conv_fn: ConvFn | None = None,
                 kernels: Sequence[str] | np.ndarray | None = None):
        super().__init__()
        self.conv_fn = conv_fn
        self.names, self.weight = bank_kernels(kernels)
        self._conv_cache: dict[str, tuple[np.ndarray | None, str | None]] = {}
        self._limits: dict[tuple[str, int], float] = {}
        self._pngs: dict[tuple, tuple[bytes, tuple[int, int]]] = {}
        with self.frozen():
            self._image_choice(image)
            if min(self.image().shape) - self.weight.shape[2] + 1 < 2:
                raise ValueError(f"the image is too small for {self.weight.shape[2]}x{self.weight.shape[2]} filters")
            self.use_conv = widgets.Checkbox(value=True, description="convolution", indent=False)
            self.use_relu = widgets.Checkbox(value=True, description="ReLU", indent=False)
            self.use_pool = widgets.Checkbox(value=True, description="pooling", indent=False)
            self.mode = widgets.ToggleButtons(options=["max", "avg"], value="max", description="pooling",
                                              style=TOGGLE_STYLE)
            self.pool_size = slider("pool size", 2, 2, MAX_POOL_SIZE)
            self.zoom = widgets.ToggleButtons(options=[("½×", 0.5), ("1×", 1.0)], value=0.5,
                                              description="map size", style=TOGGLE_STYLE)
            self.flow_view, self.error_view = widgets.HTML(), widgets.HTML()
            self.input_caption, self.input_view = widgets.HTML(), widgets.Image(format="png")
            self.rows = [_Row() for _ in self.names]
            narrow = widgets.Layout(width="17em")
            self.image_choice.layout, self.pool_size.layout = narrow, narrow
            self.image_choice.style.description_width = "4em"
            left = widgets.VBox([self.input_caption, self.input_view, self.image_choice,
                                 widgets.HTML("<b>stages</b> (an off stage passes its input on)"),
                                 self.use_conv, self.use_relu, self.use_pool, self.mode, self.pool_size, self.zoom],
                                layout=widgets.Layout(margin="0 1.5em 0 0", min_width="17em"))
            right = widgets.VBox([self.flow_view, self.error_view, *[row.box for row in self.rows],
                                  widgets.HTML(LEGEND, layout=widgets.Layout(max_width="44em"))])
            self.children = [widgets.HBox([left, right])]
            self._watch(self.image_choice, self.use_conv, self.use_relu, self.use_pool, self.mode,
                        self.pool_size, self.zoom)
        self.update()

    def view(self) -> PipelineView:
        """The pure result for the current controls (the convolution is cached per image)."""
        maps, error = None, None
        if self.use_conv.value:
            if self.image_choice.value not in self._conv_cache:    # a learner's conv_fn may be slow
                self._conv_cache[self.image_choice.value] = run_bank(self.conv_fn, self.image(), self.weight)
            maps, error = self._conv_cache[self.image_choice.value]
        return after_conv(self.image(), self.names, self.weight, maps, error, self.use_relu.value,
                          self.use_pool.value, self.mode.value, self.pool_size.value)

    def _show(self, view: widgets.Image, values: np.ndarray, scale, canvas: tuple[int, int] | None = None,
              pool_size: int = 1, key: tuple | None = None) -> None:
        """Draw ``values`` under a colour ``scale``; pooled maps as blocks on a ``canvas`` the size of
        their input.  The browser scales the picture by the map-size toggle; the PNG keeps every value.
        ``key`` names what the picture depends on: a picture drawn before is reused, not re-encoded."""
        cached = self._pngs.get(key) if key is not None else None
        if cached is None:
            indices = colour_indices(values, scale)
            if canvas is not None:
                indices = blocks_at_input_scale(indices, pool_size, pool_size, canvas)
            cached = (encode_png(np.ascontiguousarray(indices), scale.kind), indices.shape)
            if key is not None:
                if len(self._pngs) > 256:           # a bounded cache: forget everything, start again
                    self._pngs.clear()
                self._pngs[key] = cached
        view.value, (height, width) = cached
        zoom = self.zoom.value
        view.layout.width, view.layout.height = f"{round(width * zoom)}px", f"{round(height * zoom)}px"

    def update(self) -> None:
        side = min(self.image().shape) - (self.weight.shape[2] - 1 if self.use_conv.value else 0)
        with self.frozen():
            self.pool_size.max = min(MAX_POOL_SIZE, side)
        self.mode.disabled = self.pool_size.disabled = not self.use_pool.value
        result = self.view()
        self.result = result
        image = result.input
        self._show(self.input_view, image, colour_scale(image, image=True), key=(self.image_choice.value,))
        self.input_caption.value = f"<b>input</b> {image.shape[0]}×{image.shape[1]}"
        on = [self.use_conv.value, self.use_relu.value, self.use_pool.value]
        size = self.pool_size.value
        stage_names = ["convolution", "ReLU", f"{self.mode.value} pooling {size}×{size}"]
        flow = " → ".join(["input", *(n for n, o in zip(stage_names, on) if o), "output"])
        off = ", ".join(n for n, o in zip(stage_names, on) if not o)
        self.flow_view.value = f"<b>{flow}</b>" + (f" (off: {off})" if off else "")
        self.error_view.value = error_html(result.error)
        for i, row in enumerate(self.rows):
            visible = result.error is None and i < len(result.names)
            row.box.layout.display = "" if visible else "none"
            if visible:
                self._draw_row(row, i, result)

    def _draw_row(self, row: _Row, i: int, result: PipelineView) -> None:
        conv_on = result.conv is not None          # filter responses are feature maps; the image is gray
        limit = None                               # one limit per row, for all its maps (cached per image)
        if conv_on:
            key = (self.image_choice.value, i)
            if key not in self._limits:
                self._limits[key] = colour_limit(result.conv[i])
            limit = self._limits[key]
        row.label.value = (_kernel_html(result.names[i], result.kernels[i, 0], limit) if conv_on else
                           "<div style='font-size:11px'><b>no filter</b>: the image itself</div>")
        before_pool = next(m for m in (result.relu, result.conv, result.input[None]) if m is not None)[i]
        size, mode = self.pool_size.value, self.mode.value
        for stage, maps in enumerate([result.conv, result.relu, result.pooled]):
            row.panels[stage].layout.display = "none" if maps is None else ""
            if maps is None:
                continue
            values = maps[i]
            scale = colour_scale(values, limit=limit) if conv_on else colour_scale(values, image=True)
            if stage == 0:
                text = f"conv: {values.shape[0]}×{values.shape[1]}"
            elif stage == 1:
                text = f"ReLU: {np.mean(values == 0):.0%} zero"
            else:
                text = f"{mode} pool: {values.shape[0]}×{values.shape[1]}"
            row.captions[stage].value = f"<span style='font-size:11px'>{text}</span>"
            settings = (self.image_choice.value, i, stage, conv_on) + (
                (self.use_relu.value, mode, size) if stage == 2 else ())
            self._show(row.pictures[stage], values, scale, before_pool.shape if stage == 2 else None, size, settings)


def pipeline_explorer(image: np.ndarray | str | None = None, conv_fn: ConvFn | None = None,
                      kernels: Sequence[str] | np.ndarray | None = None) -> PipelineExplorer:
    """The layer pipeline explorer: ``image`` -> a bank of filters -> ReLU -> pooling, a row per filter.

    Args:
        image: a bundled image name, an (H, W) array in [0, 1], or None (camera man, 256x256).
        conv_fn: your convolution, ``conv_fn(input (1, 1, H, W), weight (C_out, 1, k, k))`` returning
            (1, C_out, H - k + 1, W - k + 1); default ``utils.functional.conv2d``.  A single-channel
            ``conv(image, kernel)`` works through ``per_filter(conv)``.  Its errors show in the widget.
        kernels: preset names, or your own (C_out, 1, k, k) kernels (1 to 8 of them); default
            :data:`DEFAULT_BANK`.
    Returns:
        the explorer, an ``ipywidgets.VBox``.  Taught in chapter 06.
    """
    return PipelineExplorer(image, conv_fn, kernels)

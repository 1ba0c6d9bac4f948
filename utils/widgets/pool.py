"""The pooling explorer (chapter 06): max or average pooling of a feature map (the ReLU of a preset
filter's response), kernel, stride and padding, the output drawn at the input's scale.

Its sliders only reach settings PyTorch accepts: padding at most kernel // 2, and a window that fits
the padded input (the kernel is never larger than the feature map).  :func:`pool_ranges` says which
settings those are; the explorer moves the sliders' limits with it as the other controls move.
"""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from utils.data import to_nchw
from utils.widgets.base import Explorer, output_size_formula, slider
from utils.widgets.kernels import PRESETS, preset_kernel
from utils.widgets.render import (PADDING_INDEX, TOGGLE_STYLE, colour_indices, colour_scale, display_scale,
                                  error_html, formula_html, picture_panel, show_picture)

__all__ = ["MAX_POOL_KERNEL", "MAX_POOL_STRIDE", "PoolExplorer", "PoolView", "blocks_at_input_scale",
           "pool_explorer", "pool_formula", "pool_ranges", "pool_view", "relu_feature_map"]

MAX_POOL_KERNEL = 8   # the kernel slider's largest value (smaller when the feature map is smaller)
MAX_POOL_STRIDE = 8


@dataclass
class PoolView:
    """What the pooling explorer shows for one setting of its controls.

    ``input``: the (H, W) feature map that is pooled; ``output``: (H_out, W_out), or None when the
    settings are not allowed; ``formula``: PyTorch's output-size formula for H and W with the numbers
    (a result only for allowed settings); ``error``: why the settings are not allowed, else None.
    Used first in chapter 06.
    """
    input: np.ndarray
    output: np.ndarray | None
    formula: str
    error: str | None = None


def pool_ranges(shape: tuple[int, int], kernel_size: int) -> dict[str, tuple[int, int]]:
    """The (min, max) of each pooling slider for an (H, W) feature map and the current kernel.

    Every combination inside these ranges is one PyTorch's ``max_pool2d``/``avg_pool2d`` accept:
    the kernel is at most the map's smaller side (so the window fits even without padding) and the
    padding at most ``kernel_size // 2`` (PyTorch's rule).  Needs a map of at least 3x3.
    Used first in chapter 06.
    """
    side = min(shape)
    if side < 3:
        raise ValueError(f"the pooling explorer needs a feature map of at least 3x3, got {shape[0]}x{shape[1]}")
    kernel_max = min(MAX_POOL_KERNEL, side)
    kernel = min(max(kernel_size, 2), kernel_max)
    return {"kernel_size": (2, kernel_max), "stride": (1, MAX_POOL_STRIDE), "padding": (0, kernel // 2)}


def pool_formula(shape: tuple[int, int], kernel_size: int, stride: int, padding: int) -> tuple[str, str | None]:
    """The output-size formula for H and W with the numbers, and why PyTorch refuses the settings (None
    when it accepts them); refused settings get no result.  Used first in chapter 06."""
    from utils.functional.pool import pool_geometry
    try:
        pool_geometry(shape, kernel_size, stride, padding, 1, False)
    except ValueError as exc:
        reason = str(exc)
    else:
        reason = None
    lines = []
    for axis, size in (("H", shape[0]), ("W", shape[1])):
        text, result = output_size_formula(axis, size, kernel_size, stride, padding, dilation=None)
        if reason is not None and result is not None:   # never show a number for settings torch refuses
            text = text.rsplit(" = ⌊", 1)[0] + " → not allowed"
        lines.append(text)
    return "\n".join(lines), reason


def pool_view(feature_map: np.ndarray, mode: str = "max", kernel_size: int = 2, stride: int | None = None,
              padding: int = 0) -> PoolView:
    """Pool an (H, W) map with ``utils.functional.max_pool2d`` / ``avg_pool2d`` (stride None = kernel).

    Settings PyTorch refuses (padding > kernel // 2, a window larger than the padded map) give
    ``output=None``, the reason in ``error`` and a formula without a result.  Used first in chapter 06.
    """
    from utils.functional import avg_pool2d, max_pool2d
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    stride = kernel_size if stride is None else stride
    feature_map = np.asarray(feature_map, dtype=np.float32)
    formula, reason = pool_formula(feature_map.shape, kernel_size, stride, padding)
    if reason is not None:
        return PoolView(feature_map, None, formula, reason)
    pool = max_pool2d if mode == "max" else avg_pool2d
    return PoolView(feature_map, pool(to_nchw(feature_map), kernel_size, stride, padding)[0, 0], formula)


def relu_feature_map(image: np.ndarray, preset: str, size: int = 3) -> np.ndarray:
    """ReLU of an (H, W) image's response to a preset filter: (H - size + 1, W - size + 1), no padding.

    What the pooling layer of a CNN receives (conv -> ReLU -> pool).  Used first in chapter 06.
    """
    from utils.functional import relu
    from utils.widgets.relu import feature_map
    return relu(feature_map(image, preset_kernel(preset, size)))


def blocks_at_input_scale(pooled: np.ndarray, kernel_size: int, stride: int, canvas: tuple[int, int],
                          fill: int = PADDING_INDEX) -> np.ndarray:
    """Pooled palette indices (H_out, W_out) drawn on a ``canvas`` the size of the padded input.

    Each pooled value becomes a ``stride`` x ``stride`` block centred on its window (window ``i``
    starts at ``i * stride`` in padded coordinates), so the output covers the same screen area as
    the input and a value sits where its window was; what no block covers gets ``fill``.
    Used first in chapter 06.
    """
    big = np.repeat(np.repeat(pooled, stride, axis=0), stride, axis=1)
    out = np.full(canvas, fill, dtype=np.uint8)
    offset = (kernel_size - stride) // 2
    source, target = max(0, -offset), max(0, offset)
    rows = max(0, min(big.shape[0] - source, canvas[0] - target))
    cols = max(0, min(big.shape[1] - source, canvas[1] - target))
    out[target:target + rows, target:target + cols] = big[source:source + rows, source:source + cols]
    return out


class PoolExplorer(Explorer):
    """Max or average pooling of a feature map: the output shrinks, strong responses survive (max).

    Used first in chapter 06.
    """

    def __init__(self, image: np.ndarray | str | None = None, mode: str = "max", kernel_size: int = 2,
                 stride: int | None = None, padding: int = 0, preset: str = "Sobel x"):
        super().__init__()
        with self.frozen():
            self._image_choice(image)
            self.preset = widgets.Dropdown(options=list(PRESETS), value=preset, description="filter")
            self.mode = widgets.ToggleButtons(options=["max", "avg"], value=mode, description="pooling",
                                              style=TOGGLE_STYLE)
            ranges = pool_ranges(self.feature_map().shape, kernel_size)
            if not ranges["kernel_size"][0] <= kernel_size <= ranges["kernel_size"][1]:
                raise ValueError(f"kernel_size must be in {ranges['kernel_size']} for this image, got {kernel_size}")
            stride = kernel_size if stride is None else stride
            if not 1 <= stride <= MAX_POOL_STRIDE:
                raise ValueError(f"stride must be in (1, {MAX_POOL_STRIDE}), got {stride}")
            if not 0 <= padding <= kernel_size // 2:
                raise ValueError(f"padding must be at most kernel_size // 2 = {kernel_size // 2}, got {padding}")
            self.kernel_size = slider("kernel", kernel_size, *ranges["kernel_size"])
            self.stride = slider("stride", stride, *ranges["stride"])
            self.padding = slider("padding", padding, *ranges["padding"])
            for control in (self.kernel_size, self.stride, self.padding):
                control.style.description_width = "4.5em"          # the three tracks line up
            self.padding_note = widgets.HTML()
            self.input_view, self.output_view = widgets.Image(format="png"), widgets.Image(format="png")
            self.input_caption, self.output_caption = widgets.HTML(), widgets.HTML()
            self.formula_view, self.scale_view, self.error_view = widgets.HTML(), widgets.HTML(), widgets.HTML()
            controls = widgets.HBox([widgets.VBox([self.image_choice, self.preset, self.mode]),
                                     widgets.VBox([self.kernel_size, self.stride, self.padding, self.padding_note])])
            pictures = widgets.HBox([picture_panel(self.input_caption, self.input_view),
                                     picture_panel(self.output_caption, self.output_view)])
            self.children = [controls, pictures, self.scale_view, self.formula_view, self.error_view]
            self._watch(self.image_choice, self.preset, self.mode, self.kernel_size, self.stride, self.padding)
        self.update()

    def feature_map(self) -> np.ndarray:
        """The (H, W) map being pooled: ReLU of the chosen filter's response (cached per image and filter)."""
        return self._map_and_scale()[0]

    def _map_and_scale(self):
        """(feature map, its colour scale), computed once per image and filter (a few dozen at most)."""
        key = (self.image_choice.value, self.preset.value)
        cache = self.__dict__.setdefault("_maps", {})
        if key not in cache:
            feature = relu_feature_map(self.image(), self.preset.value)
            cache[key] = (feature, colour_scale(feature))
        return cache[key]

    def _constrain(self) -> None:
        """Move the sliders' limits so that only allowed settings are reachable (values follow)."""
        ranges = pool_ranges(self.feature_map().shape, self.kernel_size.value)
        with self.frozen():
            for name in ("kernel_size", "padding"):
                control, (_low, high) = getattr(self, name), ranges[name]
                if control.max != high:
                    control.value = min(control.value, high)
                    control.max = high
        self.padding_note.value = (f"<span style='font-size:11px;color:#555'>padding ≤ kernel // 2 = "
                                   f"{self.padding.max}</span>")

    def view(self) -> PoolView:
        """The pure result for the current control values."""
        return pool_view(self.feature_map(), self.mode.value, self.kernel_size.value, self.stride.value,
                         self.padding.value)

    def update(self) -> None:
        self._constrain()
        result = self.view()
        self.result = result
        p, k, s = self.padding.value, self.kernel_size.value, self.stride.value
        padded = np.pad(result.input, p)
        scale = self._map_and_scale()[1]            # the colour rule; the output gets the same limit
        picture = colour_indices(padded, scale)
        if p:
            picture[:p], picture[-p:], picture[:, :p], picture[:, -p:] = (PADDING_INDEX,) * 4
        zoom = display_scale(*padded.shape)
        show_picture(self.input_view, picture, scale.kind, zoom)
        h, w = result.input.shape
        self.input_caption.value = (f"<div style='line-height:1.3'><b>feature map</b> ReLU({self.preset.value}) "
                                    f"{h}×{w}" + (f" + padding {p} (light blue)" if p else "") + "</div>")
        self.formula_view.value = formula_html(result.formula)
        self.error_view.value = error_html(result.error)
        if result.output is None:   # not reachable from the sliders; pool_view called with other settings
            show_picture(self.output_view, np.full(padded.shape, PADDING_INDEX, np.uint8), scale.kind, zoom)
            self.output_caption.value = "<b>output</b>: none"
            self.scale_view.value = f"<div style='line-height:1.4'>{scale.html('feature map colours:')}</div>"
            return
        out = result.output
        out_scale = colour_scale(out, limit=scale.limit)
        show_picture(self.output_view, blocks_at_input_scale(colour_indices(out, out_scale), k, s, padded.shape),
                     out_scale.kind, zoom)
        self.output_caption.value = (
            f"<div style='line-height:1.3'><b>{self.mode.value}-pooled</b> {out.shape[0]}×{out.shape[1]} "
            f"({out.size / result.input.size:.1%} of the values), a {s}×{s} block per value</div>")
        edge = " · light blue at the output's edge: no window there" if p or k != s else ""
        self.scale_view.value = f"<div style='line-height:1.4'>{scale.html('colours of both:')}{edge}</div>"


def pool_explorer(image: np.ndarray | str | None = None, mode: str = "max", kernel_size: int = 2,
                  stride: int | None = None, padding: int = 0, preset: str = "Sobel x") -> PoolExplorer:
    """The pooling explorer: pools the feature map ReLU(``preset`` filter response) of ``image``.

    ``image`` is a bundled image name, an (H, W) array in [0, 1] (at least 5x5) or None (camera man,
    256x256); ``mode`` ``"max"``/``"avg"``; ``kernel_size`` 2-8, ``stride`` 1-8 (None = kernel),
    ``padding`` at most ``kernel_size // 2``; ``preset`` one of :data:`~utils.widgets.kernels.PRESETS`.
    Returns the explorer, an ``ipywidgets.VBox``.  Taught in chapter 06.
    """
    return PoolExplorer(image, mode, kernel_size, stride, padding, preset)

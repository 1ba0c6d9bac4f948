"""The pooling explorer (chapter 06): max or average pooling, kernel, stride and padding."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from utils.data import to_nchw
from utils.widgets.base import Explorer, output_size_formula, slider
from utils.widgets.render import (BLANK_PNG_INDICES, TOGGLE_STYLE, display_scale, error_html, formula_html,
                                  picture_panel, show_picture, to_indices)


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
        with self.frozen():
            self._image_choice(image)
            self.mode = widgets.ToggleButtons(options=["max", "avg"], value=mode, description="pooling",
                                              style=TOGGLE_STYLE)
            self.kernel_size = slider("kernel", kernel_size, 1, 8)
            self.stride = slider("stride", kernel_size if stride is None else stride, 1, 8)
            self.padding = slider("padding", padding, 0, 4)
            self.input_view, self.output_view = widgets.Image(format="png"), widgets.Image(format="png")
            self.input_caption, self.output_caption = widgets.HTML(), widgets.HTML()
            self.formula_view, self.error_view = widgets.HTML(), widgets.HTML()
            controls = widgets.HBox([widgets.VBox([self.image_choice, self.mode]),
                                     widgets.VBox([self.kernel_size, self.stride, self.padding])])
            pictures = widgets.HBox([picture_panel(self.input_caption, self.input_view),
                                     picture_panel(self.output_caption, self.output_view)])
            self.children = [controls, pictures, self.formula_view, self.error_view]
            self._watch(self.image_choice, self.mode, self.kernel_size, self.stride, self.padding)
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

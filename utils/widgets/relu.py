"""The ReLU explorer (chapter 05): a feature map before and after ReLU or leaky ReLU, on one colour scale."""
from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from utils.data import to_nchw
from utils.widgets.base import Explorer, default_conv
from utils.widgets.kernels import PRESETS, preset_kernel
from utils.widgets.render import (TOGGLE_STYLE, colour_limit, colour_scale_html, display_scale, picture_panel,
                                  show_picture, to_indices)


@dataclass
class ReluView:
    """``before``: (H, W) feature map (conv output); ``after``: activation applied; counts in words.

    Used first in chapter 05.
    """
    before: np.ndarray
    after: np.ndarray
    zeroed_fraction: float
    negative_fraction: float
    summary: str


def feature_map(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(H, W) image under a (k, k) kernel -> (H - k + 1, W - k + 1) feature map, no padding (zero
    padding would add a frame of strong edges around a bright photo).  Used first in chapter 05."""
    return default_conv()(to_nchw(image), kernel[None, None].astype(image.dtype))[0, 0]


def relu_view(before: np.ndarray, activation: str = "relu", negative_slope: float = 0.01) -> ReluView:
    """A feature map ``before`` (H, W) and after ReLU / leaky ReLU, with what changed in words.

    Used first in chapter 05.
    """
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
    """A feature map before and after ReLU / leaky ReLU, with the fraction of values set to zero.

    Both pictures share one diverging colour scale (white 0, red positive, blue negative, limits
    ±:func:`~utils.widgets.render.colour_limit` of the map before), as chapter 05's static figure does.
    Used first in chapter 05.
    """

    def __init__(self, image: np.ndarray | str | None = None, preset: str = "Sobel x"):
        super().__init__()
        with self.frozen():
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
            pictures = widgets.HBox([picture_panel(self.before_caption, self.before_view),
                                     picture_panel(self.after_caption, self.after_view)])
            self.children = [controls, pictures, self.scale_view, self.summary_view]
            self._watch(self.image_choice, self.preset, self.activation, self.slope)
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
    Used first in chapter 05.
    """
    return ReluExplorer(image, preset)

"""Drawing for the explorers: palettes, colour scales, PNG pictures and HTML number tables.

Images become PNG bytes in ``ipywidgets.Image`` (Pillow, nearest-neighbour enlarged, so a pixel stays a
crisp square) and numbers become HTML tables; skipping matplotlib here keeps one update well under 100 ms
for a 256x256 image (``benchmarks/widget_update.py``).  Colours follow :mod:`utils.plotting`: gray for
images in [0, 1], a diverging map (red positive, blue negative, white zero) for signed feature maps.
"""
from __future__ import annotations

import html
import io
from functools import lru_cache

import ipywidgets as widgets
import matplotlib
import numpy as np
from PIL import Image as PILImage

from utils.plotting import DIVERGING, _symmetric_limit

DISPLAY_PIXELS = 300      # the input is enlarged by an integer factor to about this many pixels
WINDOW_RGB = (255, 200, 0)   # the outline of the current window (yellow, visible on gray and on RdBu)
PADDING_RGB = (170, 200, 235)  # zero padding is drawn light blue so that it is not mistaken for black
LEVELS = 254                   # colour levels of a picture; palette index 254 = outline, 255 = padding
WINDOW_INDEX, PADDING_INDEX = LEVELS, LEVELS + 1


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


def outline(indices: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
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


def picture_panel(caption: widgets.HTML, view: widgets.Image) -> widgets.VBox:
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


def format_number(value: float) -> str:
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
            text = "" if blank is not None and blank[r, c] else format_number(values[r, c])
            bg = colours.get((r, c), "white")
            cells.append(f"<td style='border:1px solid #999;width:2.6em;height:2em;text-align:center;"
                         f"background:{bg};font-family:monospace'>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<div style='font-weight:bold;margin-bottom:2px'>{html.escape(title)}</div>" if title else ""
    return f"<div style='display:inline-block;margin:0 1em 0 0;vertical-align:top'>{caption}" \
           f"<table style='border-collapse:collapse'>{''.join(rows)}</table></div>"


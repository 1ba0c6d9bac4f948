"""Drawing for the explorers: palettes, colour scales, PNG pictures and HTML number tables.

Images become PNG bytes in ``ipywidgets.Image`` (Pillow, nearest-neighbour enlarged, so a pixel stays a
crisp square) and numbers become HTML tables; skipping matplotlib here keeps one update well under 100 ms
for a 256x256 image (``benchmarks/widget_update.py``).

**The colour rule** (every explorer, and the static figures that sit beside them; :func:`imshow_style`
gives the same rule to ``matplotlib.pyplot.imshow``):

* *Images* (an explorer's input, values meant to lie in [0, 1]): gray, 0 black and 1 white, fixed.
* *Feature maps* (anything computed: outputs, products, activations), decided from the data:
  a map with any negative value is **signed** and uses the diverging map ``RdBu_r`` from -L to +L
  (blue negative, **white zero**, red positive); a map with no negative value is **non-negative** and
  uses the upper half of the same map from 0 to L (**white zero**, red positive) — so zero is white on
  every feature map, and a positive value has the same hue whether or not its map has negatives.
* L is the map's own scale: the 99.5th percentile of its absolute values (so that a handful of extreme
  pixels do not wash out the rest), the largest absolute value when that percentile is 0, and 1.0 for an
  all-zero map.  An explorer that compares two maps may give both the same L.
* Values beyond the scale (image values outside [0, 1], map values beyond ±L) are drawn at the end
  colour, and the caption says how many: :meth:`ColourScale.note`.

Pictures get a margin of :data:`MARGIN` background pixels so that the window frame stays visible at the
picture's edge; :func:`screen_to_cell` maps a mouse position on an enlarged picture back to its cell.
"""
from __future__ import annotations

import html
import io
from dataclasses import dataclass
from functools import lru_cache

import ipywidgets as widgets
import matplotlib
import numpy as np
from PIL import Image as PILImage

from utils.plotting import DIVERGING, POSITIVE, colour_limit  # noqa: F401 (colour_limit: re-exported)

DISPLAY_PIXELS = 300      # the input is enlarged by an integer factor to about this many pixels
WINDOW_RGB = (255, 200, 0)   # the frame of the current window (yellow between two dark lines)
PADDING_RGB = (170, 200, 235)  # zero padding is drawn light blue so that it is not mistaken for black
EDGE_RGB = (20, 20, 20)        # the dark lines either side of the yellow frame (visible on white)
BACKGROUND_RGB = (255, 255, 255)  # the margin around a picture
LEVELS = 251                   # colour levels (odd: 0 is exactly the middle one); then four special colours:
WINDOW_INDEX, PADDING_INDEX, EDGE_INDEX, BACKGROUND_INDEX = LEVELS, LEVELS + 1, LEVELS + 2, LEVELS + 3
MARGIN = 5                     # background pixels around every picture drawn by picture_png
FRAME_RINGS = (EDGE_INDEX, WINDOW_INDEX, WINDOW_INDEX, WINDOW_INDEX, EDGE_INDEX)  # inside -> outside
KINDS = ("gray", "diverging", "positive")


# ------------------------------------------------------------------------------------ colour scales

def _kind(signed: bool | str) -> str:
    if signed is True or signed is False:
        return "diverging" if signed else "gray"
    if signed not in KINDS:
        raise ValueError(f"unknown colour kind {signed!r}; choose one of {KINDS}")
    return signed


@dataclass(frozen=True)
class ColourScale:
    """How one picture's values become colours (the module's colour rule).  Used first in chapter 04.

    ``kind``: "gray" (an image, 0..1), "diverging" (a signed map, -limit..limit, white 0) or
    "positive" (a non-negative map, 0..limit, white 0); ``limit``: L (1.0 for images);
    ``saturated``: how many of the ``total`` values lie beyond the scale and get the end colour.
    """
    kind: str
    limit: float
    saturated: int = 0
    total: int = 0

    @property
    def low(self) -> float:
        """The value drawn with the first colour (0 for images and non-negative maps, -L for signed)."""
        return -self.limit if self.kind == "diverging" else 0.0

    def note(self) -> str:
        """'' when nothing saturates, else e.g. '12 of 65,536 values (0.02 %) beyond ±3.1 drawn at the end colours'."""
        if not self.saturated:
            return ""
        share = 100 * self.saturated / max(self.total, 1)
        where = {"gray": "outside 0…1", "diverging": f"beyond ±{self.limit:.3g}",
                 "positive": f"above {self.limit:.3g}"}[self.kind]
        return (f"{self.saturated:,} of {self.total:,} values ({share:.2g} %) {where} "
                f"drawn at the end colour{'s' if self.kind != 'positive' else ''}")

    def html(self, label: str = "") -> str:
        """A small colour bar with its end values, what the colours mean and the saturation note."""
        ends = {"gray": "black,white", "diverging": "#2166ac,#f7f7f7,#b2182b", "positive": "#f7f7f7,#b2182b"}
        meaning = {"gray": "black 0, white 1", "diverging": "blue negative, white 0, red positive",
                   "positive": "white 0, red positive"}[self.kind]
        bar = (f"<span style='display:inline-block;width:100px;height:10px;vertical-align:middle;"
               f"border:1px solid #999;background:linear-gradient(to right,{ends[self.kind]})'></span>")
        note = self.note()
        note = f"; <span style='color:#b54708'>{html.escape(note)}</span>" if note else ""
        head = f"{html.escape(label)} " if label else ""
        return (f"<span style='font-size:11px'>{head}{format_number(self.low)} {bar} "
                f"{format_number(self.limit)} ({meaning}){note}</span>")


def colour_scale(array: np.ndarray, image: bool = False, limit: float | None = None) -> ColourScale:
    """The :class:`ColourScale` the colour rule gives an (H, W) array.

    ``image=True``: an image, gray 0..1.  Otherwise a feature map: signed if any value < 0, its own
    limit :func:`colour_limit` unless ``limit`` is given (to share one scale between maps).
    Used first in chapter 04.
    """
    array = np.asarray(array)
    if image:
        out = np.count_nonzero((array < 0) | (array > 1))
        return ColourScale("gray", 1.0, int(out), int(array.size))
    kind = "diverging" if array.size and float(array.min()) < 0 else "positive"
    lim = float(limit) if limit else colour_limit(array)
    return ColourScale(kind, lim, int(np.count_nonzero(np.abs(array) > lim)), int(array.size))


def colour_indices(array: np.ndarray, scale: ColourScale) -> np.ndarray:
    """(H, W) values -> (H, W) uint8 palette indices in [0, LEVELS) under ``scale``.  Used first in chapter 04."""
    if scale.kind == "gray":
        unit = array
    elif scale.kind == "diverging":
        unit = array / (2 * scale.limit) + 0.5
    else:
        unit = array / scale.limit
    return np.rint(np.clip(unit, 0.0, 1.0) * (LEVELS - 1)).astype(np.uint8)


def to_indices(array: np.ndarray, signed: bool, limit: float | None = None) -> np.ndarray:
    """(H, W) values -> (H, W) uint8 palette indices in [0, LEVELS): [0, 1] images map linearly,
    signed maps are centred on 0 with ``limit`` (default :func:`colour_limit`) at the ends.
    (The older two-kind form of :func:`colour_indices`.)  Used first in chapter 05."""
    unit = array / (2 * (limit or colour_limit(array))) + 0.5 if signed else array
    return np.rint(np.clip(unit, 0.0, 1.0) * (LEVELS - 1)).astype(np.uint8)


@lru_cache(maxsize=4)
def _colours(kind: str) -> np.ndarray:
    if kind == "gray":
        return matplotlib.colormaps["gray"](np.linspace(0, 1, LEVELS))[:, :3]
    if kind == "diverging":
        return matplotlib.colormaps[DIVERGING](np.linspace(0, 1, LEVELS))[:, :3]
    return POSITIVE(np.linspace(0, 1, LEVELS))[:, :3]


@lru_cache(maxsize=4)
def palette(signed: bool | str) -> list[int]:
    """The PNG palette: LEVELS colours of the gray, diverging or positive map (``signed``: False/True or a
    kind name), then the window frame, padding, frame edge and background colours.  Used first in chapter 04."""
    colours = (_colours(_kind(signed)) * 255).round().astype(np.uint8).ravel().tolist()
    return colours + [*WINDOW_RGB, *PADDING_RGB, *EDGE_RGB, *BACKGROUND_RGB]


def imshow_style(array: np.ndarray, image: bool = False, limit: float | None = None) -> dict:
    """``cmap``, ``vmin``, ``vmax`` for ``plt.imshow`` following the same colour rule, so that a static
    figure matches the explorers: ``ax.imshow(m, **imshow_style(m))``.  Taught in chapter 04."""
    scale = colour_scale(array, image, limit)
    if scale.kind == "gray":
        return {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
    if scale.kind == "diverging":
        return {"cmap": DIVERGING, "vmin": -scale.limit, "vmax": scale.limit}
    return {"cmap": POSITIVE, "vmin": 0.0, "vmax": scale.limit}


def colour_hex(value: float, scale: ColourScale) -> str:
    """The CSS colour of one value under ``scale`` (for HTML cells).  Used first in chapter 04."""
    index = int(colour_indices(np.array([value], dtype=np.float64), scale)[0])
    r, g, b = (_colours(scale.kind)[index] * 255).round().astype(int)
    return f"#{r:02x}{g:02x}{b:02x}"


# ------------------------------------------------------------------------------------ pictures

def enlarge(indices: np.ndarray, scale: int, margin: int = MARGIN) -> np.ndarray:
    """(H, W) palette indices -> (H·scale + 2·margin, W·scale + 2·margin): each value a ``scale`` x
    ``scale`` square, inside a background margin.  Used first in chapter 04."""
    H, W = indices.shape
    out = np.full((H * scale + 2 * margin, W * scale + 2 * margin), BACKGROUND_INDEX, dtype=np.uint8)
    block = indices if scale == 1 else np.repeat(np.repeat(indices, scale, axis=0), scale, axis=1)
    out[margin:margin + H * scale, margin:margin + W * scale] = block
    return out


def frame(picture: np.ndarray, top: int, left: int, height: int, width: int, scale: int,
          margin: int = MARGIN, rings: tuple[int, ...] = FRAME_RINGS) -> None:
    """Draw, in place on an :func:`enlarge`-d picture, a frame just outside the cells
    ``[top, top + height) x [left, left + width)``: one screen pixel per ring (dark, yellow x3, dark),
    so the framed values stay visible and the frame shows on light and dark pictures alike.
    Used first in chapter 04."""
    H, W = picture.shape
    y0, x0 = margin + top * scale, margin + left * scale
    y1, x1 = y0 + height * scale - 1, x0 + width * scale - 1          # last pixel inside
    for i, colour in enumerate(rings, start=1):
        t, b, l, r = y0 - i, y1 + i, x0 - i, x1 + i
        cols = slice(max(l, 0), min(r, W - 1) + 1)
        rows = slice(max(t, 0), min(b, H - 1) + 1)
        for y in (t, b):
            if 0 <= y < H:
                picture[y, cols] = colour
        for x in (l, r):
            if 0 <= x < W:
                picture[rows, x] = colour


def screen_to_cell(x: float, y: float, scale: int, margin: int = MARGIN) -> tuple[int, int]:
    """A mouse position (x right, y down, in pixels of a picture drawn by :func:`picture_png`) -> the
    (row, col) of the value under it; may lie outside the picture (in its margin).  Used first in chapter 04."""
    return int(np.floor((y - margin) / scale)), int(np.floor((x - margin) / scale))


def picture_xy(event: dict, view: widgets.Image) -> tuple[float, float] | None:
    """The mouse position of an ipyevents ``event`` on ``view`` in pixels of its PNG (x right, y down),
    or None when the event has no position.

    Computed from the event's place in the element's box and the size :func:`set_size` gave the
    picture, not from ipyevents' ``dataX``: that divides by the image's natural width, which is 0
    while the browser decodes a new PNG, so an event during a redraw read (0, 0).  Used first in chapter 04."""
    box_w, box_h = event.get("boundingRectWidth"), event.get("boundingRectHeight")
    width, height = str(view.layout.width or ""), str(view.layout.height or "")
    if "relativeX" in event and box_w and box_h and width.endswith("px") and height.endswith("px"):
        return (float(event["relativeX"]) * float(width[:-2]) / float(box_w),
                float(event["relativeY"]) * float(height[:-2]) / float(box_h))
    if "dataX" in event:
        return float(event["dataX"]), float(event["dataY"])
    return None


def encode_png(picture: np.ndarray, signed: bool | str) -> bytes:
    """Palette indices, already at screen size -> PNG bytes.  One byte per pixel and no compression:
    0.4 ms at 266x266 (deflate level 1 took 2.4 ms) for ~70 kB, nothing on a local websocket.
    Used first in chapter 04."""
    image = PILImage.fromarray(picture)
    image.putpalette(palette(signed))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=0)  # fast beats small here
    return buffer.getvalue()


def png_bytes(indices: np.ndarray, signed: bool | str, scale: int = 1) -> bytes:
    """(H, W) uint8 palette indices -> PNG bytes, each pixel enlarged to a ``scale`` x ``scale`` square
    (no margin).  ``signed``: False (gray), True (diverging) or a kind name.  Used first in chapter 04."""
    if scale > 1:
        indices = np.repeat(np.repeat(indices, scale, axis=0), scale, axis=1)
    return encode_png(np.ascontiguousarray(indices), signed)


BLANK_PNG_INDICES = np.full((1, 1), LEVELS - 1, dtype=np.uint8)   # one white pixel


def show_picture(view: widgets.Image, indices: np.ndarray, signed: bool | str, scale: int = 1) -> None:
    """Put a picture into an Image widget at exactly ``scale`` screen pixels per value, so that
    pictures of different sizes (input vs strided output) keep their true relative size.
    Used first in chapter 04."""
    view.value = png_bytes(indices, signed, scale)
    set_size(view, indices.shape[0] * scale, indices.shape[1] * scale)


def set_size(view: widgets.Image, height: int, width: int) -> None:
    """Fix an Image widget's CSS size to its PNG's size (one PNG pixel = one screen pixel, so that
    mouse positions are picture pixels).  Used first in chapter 04."""
    view.layout.width, view.layout.height = f"{width}px", f"{height}px"
    view.layout.min_width, view.layout.min_height = view.layout.width, view.layout.height


def show_framed(view: widgets.Image, indices: np.ndarray, signed: bool | str, scale: int,
                frames: tuple[tuple[int, int, int, int], ...] = (), enlarged: bool = False) -> None:
    """Like :func:`show_picture`, inside a :data:`MARGIN` and with a :func:`frame` around each
    (top, left, height, width) of ``frames`` (in value cells).  ``enlarged=True``: ``indices`` is
    already an :func:`enlarge`-d picture at ``scale`` (it is copied, not changed).  Used first in chapter 04."""
    picture = indices.copy() if enlarged else enlarge(indices, scale)
    for box in frames:
        frame(picture, *box, scale)
    view.value = encode_png(picture, signed)
    set_size(view, *picture.shape)


# ------------------------------------------------------------------------------------ HTML

def formula_html(formula: str, font_size: str | None = None) -> str:
    """The output-size formula as a bold heading and preformatted lines (``font_size``: CSS, e.g.
    ``"11px"`` so that a long line fits a narrow column).  Used first in chapter 04."""
    size = f";font-size:{font_size};line-height:1.35" if font_size else ""
    return f"<b>Output size</b><pre style='margin:0;white-space:pre-wrap{size}'>{html.escape(formula)}</pre>"


def text_block(content: str) -> str:
    """HTML ``content`` with normal line spacing (an ipywidgets HTML widget otherwise spaces wrapped
    lines a whole control height apart).  Used first in chapter 04."""
    return f"<div style='line-height:1.35'>{content}</div>"


def error_html(message: str | None) -> str:
    """A learner-facing warning line ('' when there is nothing to say).  Used first in chapter 04."""
    return "" if message is None else f"<div style='color:#b42318;font-weight:bold'>⚠ {html.escape(message)}</div>"


def picture_panel(caption: widgets.HTML, view: widgets.Image) -> widgets.VBox:
    """A caption above a picture.  Used first in chapter 05."""
    return widgets.VBox([caption, view], layout=widgets.Layout(margin="0 1.5em 0 0"))


TOGGLE_STYLE = {"description_width": "initial", "button_width": "6em"}
LABEL_WIDTH = "6.5em"     # one description width for a column of controls, so that tracks line up


def slider_style(width: str = LABEL_WIDTH) -> dict:
    """ipywidgets ``style`` giving every control in a column the same label width (aligned tracks).
    Used first in chapter 04."""
    return {"description_width": width}


def display_scale(height: int, width: int, pixels: int = DISPLAY_PIXELS) -> int:
    """Integer enlargement that brings the larger side near ``pixels`` (at least 1).  Used first in chapter 04."""
    return max(1, pixels // max(height, width))


def colour_scale_html(limit: float, signed: bool) -> str:
    """A small colour bar with its end values, drawn in HTML (gray 0..1 or diverging ±limit; the older
    form of :meth:`ColourScale.html`).  Used first in chapter 05."""
    if not signed:
        return ("<span style='font-size:11px'>0 <span style='display:inline-block;width:120px;height:10px;"
                "background:linear-gradient(to right,black,white)'></span> 1</span>")
    return (f"<span style='font-size:11px'>{-limit:.3g} <span style='display:inline-block;width:120px;"
            f"height:10px;background:linear-gradient(to right,#2166ac,#f7f7f7,#b2182b)'></span> "
            f"{limit:.3g} (blue negative, white 0, red positive; beyond ±{limit:.3g} saturated)</span>")


def format_number(value: float) -> str:
    """Short, stable number text for tables: integers without decimals, else 3 significant digits.
    Used first in chapter 02."""
    value = float(value)
    return str(int(round(value))) if value == round(value) and abs(value) < 1e6 else f"{value:.3g}"


def html_grid(values: np.ndarray, colours: dict[tuple[int, int], str] | None = None,
              title: str = "", blank: np.ndarray | None = None) -> str:
    """An (H, W) array as an HTML table of numbers; ``colours`` maps (row, col) to a CSS colour,
    ``blank`` (bool, same shape) hides cells not computed yet.  Used first in chapter 02."""
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


def zoom_html(values: np.ndarray, scale: ColourScale, padding: np.ndarray | None = None,
              cell: str = "2.6em", title: str = "") -> str:
    """A small (k, k) patch enlarged as coloured HTML cells with each value written in: the zoomed inset
    of a window.  ``padding`` (bool, same shape) marks cells of zero padding (drawn light blue).
    Used first in chapter 04."""
    pad_css = "#%02x%02x%02x" % PADDING_RGB
    rows = []
    for r in range(values.shape[0]):
        cells = []
        for c in range(values.shape[1]):
            v = float(values[r, c])
            is_pad = padding is not None and bool(padding[r, c])
            bg = pad_css if is_pad else colour_hex(v, scale)
            level = (v - scale.low) / (scale.limit - scale.low) if scale.limit != scale.low else 0.5
            dark = not is_pad and ((scale.kind == "gray" and level < 0.5) or
                                   (scale.kind != "gray" and abs(v) > 0.6 * scale.limit))
            cells.append(f"<td style='min-width:{cell};height:{cell};padding:0 2px;text-align:center;"
                         f"font:11px monospace;"
                         f"border:1px solid #777;background:{bg};color:{'white' if dark else 'black'}'>"
                         f"{format_number(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<div style='font-size:12px;margin-bottom:2px'>{title}</div>" if title else ""
    return f"<div>{caption}<table style='border-collapse:collapse'>{''.join(rows)}</table></div>"

"""The convolution explorer (chapter 04): an image, a kernel, stride/padding/dilation, the output and its size.

Two columns that fit a 1400x900 screen: the controls on the left (image, kernel, sliders with aligned
labels, Play with its speed, the output-size formula), the pictures on the right (input with a framed
window, output with a framed value, the window zoomed with its numbers); the kernel and products tables
are in a closed accordion below.  A click (or a drag) on the input places the window around the clicked
pixel, one on the output picks that output value; hovering previews a place (leaving the picture goes
back to the clicked one); Play sweeps every output position row by row.

The pure parts (no widgets) live in :mod:`utils.widgets.conv_view` and are re-exported here:
:func:`conv_view` (everything shown for one setting), the click, Play and coordinate helpers.
"""
from __future__ import annotations

import ipyevents
import ipywidgets as widgets
import numpy as np

from utils.widgets.base import ConvFn, Explorer, output_size_formula, padding_mask, slider
from utils.widgets.conv_view import (ConvView, conv_view, coordinates_text, output_click_position,  # noqa: F401
                                     play_index, play_position, screen_to_input, window_at)
from utils.widgets.kernels import PRESETS, preset_kernel
from utils.widgets.render import (BLANK_PNG_INDICES, LABEL_WIDTH, PADDING_INDEX, colour_indices, colour_scale,
                                  display_scale, enlarge, error_html, formula_html, html_grid, picture_xy,
                                  show_framed, show_picture, slider_style, text_block, zoom_html)

__all__ = ["ConvExplorer", "ConvView", "PLAY_SPEEDS", "conv_explorer", "conv_view", "coordinates_text",
           "output_click_position", "play_index", "play_position", "screen_to_input", "window_at"]

# Play's speeds: label -> milliseconds between two output positions (the label is the control's value,
# so that the web edition's static picture reads "speed 5 per s")
PLAY_SPEEDS = {"1 per s": 1000, "2 per s": 500, "5 per s": 200, "10 per s": 100, "20 per s": 50}
BOX_WIDTH = "6em"          # a kernel box: room for "-0.111111" and "0.0234375" without clipping
# a smaller monospace font in the kernel boxes, so that 0.0234375 or -0.111111 shows whole in a narrow box
# and no spin arrows (typing is how a learner edits a kernel; the arrows hid the last digits)
KERNEL_BOX_CSS = ("<style>.convcourse-kernel-box input {font-family: monospace; font-size: 10px !important; "
                  "padding-left: 2px !important; padding-right: 1px !important; -moz-appearance: textfield; "
                  "appearance: textfield}"
                  ".convcourse-kernel-box input::-webkit-inner-spin-button, .convcourse-kernel-box "
                  "input::-webkit-outer-spin-button {-webkit-appearance: none; margin: 0}</style>")
PICTURE_PIXELS = 250       # small inputs are enlarged to about this size (input and output side by side)


# ------------------------------------------------------------------------------------ the explorer

class ConvExplorer(Explorer):
    """Pick an image and a kernel, move stride/padding/dilation, click the pictures or press Play, and
    watch the output, its size and where each output value comes from.  Used first in chapter 04."""

    def __init__(self, image: np.ndarray | str | None = None, conv_fn: ConvFn | None = None):
        super().__init__()
        self.conv_fn = conv_fn
        self._shown_size = 3
        self._scale = 1
        self._computed = None      # (settings, (output, error)) of the last convolution
        self._hovering = False     # the window shows a hover preview; leaving the picture goes back ...
        self._pinned = (0, 0)      # ... to this position (the last one clicked, dragged, slid or played)
        self._generation = 0       # counts the convolutions run (keys the output picture)
        self._pictures = {}        # "input"/"output" -> (key, enlarged palette indices, ColourScale)
        with self.frozen():
            self._image_choice(image)
            self.image_choice.style = slider_style()
            self.preset = widgets.Dropdown(options=list(PRESETS) + ["custom"], value="Sobel x", description="preset",
                                           style=slider_style())
            self.kernel_size = widgets.ToggleButtons(options=[("3×3", 3), ("5×5", 5)], value=3, description="kernel",
                                                     style={"description_width": LABEL_WIDTH, "button_width": "4.5em"})
            self.kernel_boxes = [[widgets.FloatText(value=0.0, step=0.1, layout=widgets.Layout(width=BOX_WIDTH))
                                  for _ in range(5)] for _ in range(5)]
            for row in self.kernel_boxes:
                for box in row:
                    box.add_class("convcourse-kernel-box")
            self.kernel_grid = widgets.GridBox(layout=widgets.Layout(grid_gap="2px", margin="2px 0 6px 0"))
            self.stride, self.padding = slider("stride", 1, 1, 4, LABEL_WIDTH), slider("padding", 0, 0, 3, LABEL_WIDTH)
            self.dilation = slider("dilation", 1, 1, 3, LABEL_WIDTH)
            self.out_row = slider("output row", 128, 0, 255, LABEL_WIDTH)
            self.out_col = slider("output col", 128, 0, 255, LABEL_WIDTH)
            self.play = widgets.Play(value=0, min=0, max=0, step=1, interval=200, show_repeat=False,
                                     layout=widgets.Layout(display="none"))   # driven by the text buttons
            self.play_button = widgets.Button(description="▶ Play", tooltip="sweep every output position, row by row",
                                              layout=widgets.Layout(width="7em"))
            self.first_button = widgets.Button(description="Back to output[0, 0]", layout=widgets.Layout(width="13em"))
            self.speed = widgets.Dropdown(options=list(PLAY_SPEEDS), value="5 per s", description="speed",
                                          style=slider_style(),
                                          layout=widgets.Layout(width="14em"))
            self.input_view, self.output_view = widgets.Image(format="png"), widgets.Image(format="png")
            self.input_caption, self.output_caption = widgets.HTML(), widgets.HTML()
            self.scale_view, self.position_view, self.zoom_view = widgets.HTML(), widgets.HTML(), widgets.HTML()
            self.formula_view, self.detail_view, self.error_view = widgets.HTML(), widgets.HTML(), widgets.HTML()
            self.details = widgets.Accordion(children=[self.detail_view],
                                             titles=("the window, kernel and products as numbers",))
            self.details.selected_index = None                       # closed until the learner opens it
            self._layout_children()
            self._set_kernel(preset_kernel("Sobel x", 3))
            self.preset.observe(lambda _c: self._apply_preset(), names="value")
            self.kernel_size.observe(lambda _c: self._apply_preset(), names="value")
            self._watch(self.image_choice, self.stride, self.padding, self.dilation, self.out_row, self.out_col,
                        *[b for row in self.kernel_boxes for b in row])
            for row in self.kernel_boxes:
                for box in row:
                    box.observe(lambda _c: self._mark_custom(), names="value")
            self.play.observe(lambda change: self._play_moved(change["new"]), names="value")
            self.play.observe(lambda change: self._show_playing(change["new"]), names="playing")
            self.speed.observe(lambda change: setattr(self.play, "interval", PLAY_SPEEDS[change["new"]]),
                               names="value")
            self.play_button.on_click(lambda _b: setattr(self.play, "playing", not self.play.playing))
            self.first_button.on_click(lambda _b: self._back_to_start())
            # mouse events on the pictures (ipywidgets.Image has none of its own): clicks and leaving
            # unthrottled, moves at most every 40 ms (a hover preview or a drag costs ~3 ms of CPU)
            self._events = []
            for name, view in (("input", self.input_view), ("output", self.output_view)):
                for events, wait in ((["click", "mouseleave"], 0), (["mousemove"], 40)):
                    watcher = ipyevents.Event(source=view, watched_events=events, prevent_default_action=True,
                                              **({"wait": wait, "throttle_or_debounce": "throttle"} if wait else {}))
                    watcher.on_dom_event(lambda event, name=name: self._mouse(event, name))
                    self._events.append(watcher)
        self.update()

    def _layout_children(self) -> None:
        column = widgets.Layout(width="405px", min_width="405px", margin="0 8px 0 0")
        controls = widgets.VBox([
            self.image_choice, self.preset, self.kernel_size,
            widgets.HTML(KERNEL_BOX_CSS + "<span style='font-size:12px'>kernel values (type any numbers)</span>"),
            self.kernel_grid,
            self.stride, self.padding, self.dilation, self.out_row, self.out_col,
            widgets.HBox([self.play_button, self.speed, self.play]), self.first_button, self.formula_view],
            layout=column)
        pictures = widgets.HBox([widgets.VBox([self.input_caption, self.input_view],
                                              layout=widgets.Layout(margin="0 8px 0 0")),
                                 widgets.VBox([self.output_caption, self.output_view])])
        window = widgets.HBox([self.zoom_view, self.position_view])
        self.zoom_view.layout.margin = "0 12px 0 0"
        self.position_view.layout.max_width = "330px"
        right = widgets.VBox([self.error_view, pictures, self.scale_view, window])
        self.children = [widgets.HBox([controls, right]), self.details]

    # -- kernel editing
    def kernel(self) -> np.ndarray:
        """The (k, k) float32 kernel currently shown in the number boxes."""
        k = self._shown_size
        return np.array([[b.value for b in row[:k]] for row in self.kernel_boxes[:k]], dtype=np.float32)

    def _set_kernel(self, kernel: np.ndarray) -> None:
        k = kernel.shape[0]
        with self.frozen():
            for r in range(k):
                for c in range(k):   # 6 significant digits: 1/9 shows as 0.111111, not 0.1111111119389534
                    self.kernel_boxes[r][c].value = float(f"{float(kernel[r, c]):.6g}")
            self.kernel_grid.children = [self.kernel_boxes[r][c] for r in range(k) for c in range(k)]
            self.kernel_grid.layout.grid_template_columns = f"repeat({k}, {BOX_WIDTH})"
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

    # -- placing the window: sliders, clicks, Play
    def place(self, position: tuple[int, int]) -> None:
        """Show output value ``position`` (row, col), clipped into the output (what a click does)."""
        with self.frozen():
            self.out_row.value = min(max(int(position[0]), self.out_row.min), self.out_row.max)
            self.out_col.value = min(max(int(position[1]), self.out_col.min), self.out_col.max)
        self.update()

    def input_position(self, x: float, y: float) -> tuple[int, int] | None:
        """The output position whose window is centred nearest to (x, y) pixels of the input picture."""
        shape = self.result.expected_shape
        if shape is None:
            return None
        row, col = screen_to_input(x, y, self._scale, self.padding.value)
        return window_at(row, col, self._shown_size, self.stride.value, self.padding.value,
                         self.dilation.value, shape)

    def output_position(self, x: float, y: float) -> tuple[int, int] | None:
        """The output position under (x, y) pixels of the output picture."""
        shape = self.result.expected_shape
        return None if shape is None else output_click_position(x, y, self._scale, shape)

    def click_input(self, x: float, y: float) -> None:
        """A click at (x, y) pixels of the input picture: the window moves to be centred there."""
        self._hovering = False
        position = self.input_position(x, y)
        if position is not None:
            self.place(position)

    def click_output(self, x: float, y: float) -> None:
        """A click at (x, y) pixels of the output picture: that output value is explained."""
        self._hovering = False
        position = self.output_position(x, y)
        if position is not None:
            self.place(position)

    def _mouse(self, event: dict, picture: str) -> None:
        kind = event.get("type")
        if kind == "mouseleave":                     # end of a hover preview: back to the pinned place
            if self._hovering:
                self._hovering = False
                self.place(self._pinned)
            return
        xy = picture_xy(event, self.input_view if picture == "input" else self.output_view)
        if xy is None:
            return
        x, y = xy
        if kind == "click" or (kind == "mousemove" and int(event.get("buttons", 0)) & 1):   # click or drag
            (self.click_input if picture == "input" else self.click_output)(x, y)
        elif kind == "mousemove" and not self.play.playing:                                # hover: preview
            position = (self.input_position if picture == "input" else self.output_position)(x, y)
            if position is not None and position != self.result.position:
                self._hovering = True
                self.place(position)

    def _play_moved(self, index: int) -> None:
        shape = self.result.expected_shape if hasattr(self, "result") else None
        if self._frozen or shape is None or not 0 <= index < shape[0] * shape[1]:
            return
        self.place(play_position(index, shape))

    def _show_playing(self, playing: bool) -> None:
        self.play_button.description = "❚❚ Pause" if playing else "▶ Play"

    def _back_to_start(self) -> None:
        self.play.playing = False
        self.place((0, 0))

    # -- computing and drawing
    def view(self) -> ConvView:
        """The pure result for the current control values (the convolution is run again only when the
        image, kernel, stride, padding or dilation changed, not when the window moves)."""
        image, kernel = self.image(), self.kernel()
        key = (self.image_choice.value, id(image), id(self.conv_fn), kernel.tobytes(), kernel.shape,
               self.stride.value, self.padding.value, self.dilation.value)
        computed = self._computed[1] if self._computed and self._computed[0] == key else None
        result = conv_view(image, kernel, self.stride.value, self.padding.value, self.dilation.value,
                           (self.out_row.value, self.out_col.value), self.conv_fn, computed)
        if computed is None and result.expected_shape is not None:   # keep conv_fn's own result and error
            self._computed = (key, (result.output, None if result.output is not None else result.error))
            self._generation += 1
        return result

    def update(self) -> None:
        """Recompute and redraw everything for the current control values."""
        self._rescale_position_sliders()
        result = self.view()
        self.result = result
        if not self._hovering:
            self._pinned = result.position
        self._sync_play(result)
        self.formula_view.value = formula_html(result.formula.replace(" + 1 = ⌊", " + 1\n      = ⌊"), "10.5px")
        self.error_view.value = error_html(result.error)
        self._draw_input(result)
        self._draw_output(result)
        self._draw_window(result)
        self._draw_detail(result)

    def _sync_play(self, result: ConvView) -> None:
        if result.expected_shape is None:
            return
        last, index = result.expected_shape[0] * result.expected_shape[1] - 1, \
            play_index(result.position, result.expected_shape)
        with self.frozen():
            if last >= self.play.max:
                self.play.max, self.play.value = last, index
            else:
                self.play.value, self.play.max = index, last

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

    def _picture(self, name: str, key, draw) -> tuple[np.ndarray, object]:
        """The enlarged palette picture and colour scale of ``name``, redrawn only when ``key`` changed
        (moving the window only re-frames and re-encodes it)."""
        cached = self._pictures.get(name)
        if cached is None or cached[0] != key:
            indices, scale = draw()
            cached = self._pictures[name] = (key, enlarge(indices, self._scale), scale)
        return cached[1], cached[2]

    def _draw_input(self, result: ConvView) -> None:
        def draw():
            scale = colour_scale(result.padded, image=True)
            picture = colour_indices(result.padded, scale)
            picture[padding_mask(result.padded.shape, result.padding)] = PADDING_INDEX
            return picture, scale

        self._scale = display_scale(*result.padded.shape, PICTURE_PIXELS)
        key = (self.image_choice.value, id(self.image()), result.padding, self._scale)
        picture, scale = self._picture("input", key, draw)
        frames = (result.window,) if result.expected_shape is not None else ()
        show_framed(self.input_view, picture, "gray", self._scale, frames, enlarged=True)
        h, w = result.input_shape
        self.input_caption.value = text_block(f"<b>input</b> {h}×{w}" + (f" + padding {result.padding} (blue)"
                                              if result.padding else "") + " · yellow: the window<br>"
                                              "<i>click or drag to move it, hover to preview</i>")
        self._input_note = scale.note()

    def _draw_output(self, result: ConvView) -> None:
        if result.output is None:
            show_picture(self.output_view, BLANK_PNG_INDICES, False)
            self.output_caption.value = text_block("<b>output</b>: none<br>&nbsp;")
            self.scale_view.value = error_html(f"input: {self._input_note}") if self._input_note else ""
            return
        out = result.output

        def draw():
            scale = colour_scale(out)
            return colour_indices(out, scale), scale

        picture, scale = self._picture("output", (self._generation, self._scale), draw)  # same scale: sizes compare
        frames = ((*result.position, 1, 1),) if out.shape == result.expected_shape else ()
        show_framed(self.output_view, picture, scale.kind, self._scale, frames, enlarged=True)
        self.output_caption.value = text_block(f"<b>output feature map</b> {out.shape[0]}×{out.shape[1]}<br>"
                                               "<i>click or hover: where a value comes from</i>")
        notes = [scale.html("output colours:")]
        if self._input_note:
            notes.append(f"<span style='font-size:11px;color:#b54708'>input: {self._input_note}</span>")
        self.scale_view.value = text_block("<br>".join(notes))

    def _draw_window(self, result: ConvView) -> None:
        if result.taps is None or result.expected_shape is None:
            self.zoom_view.value = self.position_view.value = ""
            return
        k = result.taps.shape[0]
        title = text_block(f"<b>the window, zoomed</b><br>{k}×{k} input values under the kernel" +
                           (f",<br>every {result.dilation}th pixel" if result.dilation > 1 else ""))
        self.zoom_view.value = zoom_html(result.taps, colour_scale(result.taps, image=True),
                                         result.tap_padding(), "3.6em" if k == 3 else "3.2em", title)
        self.position_view.value = (
            f"<div style='font-size:13px;line-height:1.35'><b>{coordinates_text(result)}</b><br>"
            f"<span style='font-size:12px;color:#444'>coordinates are the input's own: row 0 is its top row, "
            f"padding cells have rows -1, -2, … above and {result.input_shape[0]}, … below. "
            f"Play position {play_index(result.position, result.expected_shape) + 1:,} of "
            f"{result.expected_shape[0] * result.expected_shape[1]:,}.</span></div>")

    def _draw_detail(self, result: ConvView) -> None:
        if result.taps is None or result.value is None:
            self.detail_view.value = ""
            return
        r, c = result.position
        products = html_grid(result.taps * self.kernel(), title="products")
        self.detail_view.value = (
            f"<div style='line-height:1.35'><b>output[{r}, {c}]</b> = sum of (window values × kernel) = "
            f"<b>{result.value:.4g}</b></div>"
            + html_grid(result.taps, title="window (input values at the kernel taps)")
            + html_grid(self.kernel(), title="kernel") + products)


def conv_explorer(image: np.ndarray | str | None = None, conv_fn: ConvFn | None = None) -> ConvExplorer:
    """The convolution explorer.  Taught in chapter 04.

    Args:
        image: a bundled image name (see ``utils.data.IMAGE_NAMES``), an (H, W) array in [0, 1], or
            None for the 256x256 camera man.
        conv_fn: the function computing the output, called as
            ``conv_fn(input (1, 1, H, W), weight (1, 1, k, k), None, stride, padding, dilation)`` and
            expected to return (1, 1, H_out, W_out); default ``utils.functional.conv2d``.  Pass your
            own implementation to see it drive the explorer; its errors are shown in the widget.
    Returns:
        the explorer, an ``ipywidgets.VBox``: controls on the left, pictures on the right; click or
        drag on the input to place the window, click the output to pick a value, Play to sweep.
    """
    return ConvExplorer(image, conv_fn)

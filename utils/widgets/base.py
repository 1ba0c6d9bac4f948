"""What every explorer shares: the bundled images, PyTorch's output-size formula, running a
(possibly broken) learner ``conv_fn``, sliders, and the :class:`Explorer` base class."""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from typing import Callable, Iterator

import ipywidgets as widgets
import numpy as np

from utils.data import IMAGE_NAMES, TEXTURE_NAMES, load_image, to_nchw

EXPLORER_IMAGE_SIZE = 256   # explorers work on 256x256 grayscale versions of the bundled images

ConvFn = Callable[..., np.ndarray]


@lru_cache(maxsize=16)
def explorer_image(name: str) -> np.ndarray:
    """A bundled image as a (256, 256) float32 grayscale array in [0, 1] (cached; do not modify).
    Used first in chapter 04."""
    image = load_image(name, size=EXPLORER_IMAGE_SIZE, gray=True)
    image.flags.writeable = False
    return image


def as_image(image: np.ndarray | str | None, default: str = "camera") -> tuple[str, np.ndarray]:
    """(label, (H, W) float32 array) from a bundled image name, an array or None (the default).
    Used first in chapter 02."""
    if image is None or isinstance(image, str):
        name = image or default
        return name, explorer_image(name)
    array = np.asarray(image, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"explorers take a grayscale (H, W) image, got shape {array.shape}")
    return "your image", array


def default_conv():
    """``utils.functional.conv2d``, imported on first use (the explorers' default ``conv_fn``).
    Used first in chapter 02."""
    from utils.functional import conv2d
    return conv2d


# ------------------------------------------------------------------------------------ formulas

def output_size_formula(axis: str, size: int, kernel: int, stride: int, padding: int,
                        dilation: int | None = 1) -> tuple[str, int | None]:
    """PyTorch's output-size formula (first line) with the numbers filled in (second line), and the
    result (None when the window does not fit).

    ``dilation=None`` writes the pooling form ``⌊(H + 2·padding − k) / stride⌋ + 1`` (dilation 1).
    Used first in chapter 02.
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


class Explorer(widgets.VBox):
    """Base of the explorers: wires every control to ``update`` and gives a stable text repr.

    A subclass builds its controls inside ``with self.frozen():`` and calls ``self.update()`` once at
    the end; code that sets several controls at once does the same, so that ``update`` runs once with
    consistent values instead of once per control (and never on a half-built explorer).
    Used first in chapter 02.
    """

    _frozen = False

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Within the block, control changes do not call ``update`` (nests; restores the old state)."""
        before, self._frozen = self._frozen, True
        try:
            yield
        finally:
            self._frozen = before

    def _watch(self, *controls) -> None:
        for control in controls:
            control.observe(lambda _change: self._maybe_update(), names="value")

    def _maybe_update(self) -> None:
        if not self._frozen:
            self.update()

    def update(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _image_choice(self, image: np.ndarray | str | None) -> None:
        """The ``image_choice`` dropdown: the bundled images, plus "your image" when one was given."""
        label, array = as_image(image)
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


def slider(description: str, value: int, low: int, high: int, width: str | None = None) -> widgets.IntSlider:
    """An integer slider that updates while dragged; ``width`` (CSS, e.g. ``"6.5em"``) fixes its label
    width so that a column of sliders lines up (default: the label's own width).  Used first in chapter 02."""
    return widgets.IntSlider(value=value, min=low, max=high, description=description,
                             continuous_update=True, style={"description_width": width or "initial"})

def padding_mask(shape: tuple[int, int], padding: int) -> np.ndarray:
    """(H + 2p, W + 2p) bool mask, True on the ``padding`` outer rings.  Used first in chapter 02."""
    mask = np.ones(shape, dtype=bool)
    mask[padding:shape[0] - padding, padding:shape[1] - padding] = False
    return mask


def run_conv(conv_fn: ConvFn, image: np.ndarray, kernel: np.ndarray, stride: int, padding: int,
              dilation: int) -> tuple[np.ndarray | None, str | None]:
    """(output (H_out, W_out), None) or (None, message) when conv_fn raised or returned nonsense.
    Used first in chapter 02."""
    try:
        out = conv_fn(to_nchw(image), kernel[None, None].astype(image.dtype), None, stride, padding, dilation)
    except Exception as exc:  # noqa: BLE001 - any learner bug must show up in the widget, not crash it
        return None, f"conv_fn raised {type(exc).__name__}: {exc}"
    out = np.asarray(out)
    if out.ndim != 4 or out.shape[:2] != (1, 1):
        return None, f"conv_fn should return shape (1, 1, H_out, W_out) for one image and one filter, " \
                     f"got {out.shape}"
    return out[0, 0].astype(np.float32), None


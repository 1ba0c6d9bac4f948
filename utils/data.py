"""Images and datasets that ship with installed packages: nothing is downloaded, ever.

Photographs and textures come from ``skimage.data`` (which keeps these files inside the
package) and matplotlib's bundled sample data.  Every loader returns ``float32`` values in
``[0, 1]``:

* grayscale images: shape ``(H, W)``
* colour images: shape ``(H, W, 3)``, channels last, as image files store them.

Convolution code uses channels first (NCHW, as PyTorch); :func:`to_nchw` converts.
"""
from __future__ import annotations

import numpy as np

# name -> (loader, is_colour); loaders are looked up lazily so importing this module is fast.
_PHOTOS = {
    "camera": ("skimage", "camera"),          # 512x512 gray, a photographer with a camera
    "astronaut": ("skimage", "astronaut"),    # 512x512x3 colour portrait (Eileen Collins)
    "coins": ("skimage", "coins"),            # 303x384 gray, coins on a background
    "coffee": ("skimage", "coffee"),          # 400x600x3 colour, a cup of coffee
    "chelsea": ("skimage", "chelsea"),        # 300x451x3 colour, a cat
    "grace_hopper": ("matplotlib", "grace_hopper.jpg"),  # 600x512x3 colour portrait
}
_TEXTURES = ("brick", "grass", "gravel")      # 512x512 gray texture photographs

IMAGE_NAMES: tuple[str, ...] = tuple(_PHOTOS)
TEXTURE_NAMES: tuple[str, ...] = _TEXTURES


def _read(source: str, name: str) -> np.ndarray:
    if source == "skimage":
        import skimage.data
        return getattr(skimage.data, name)()
    import matplotlib.cbook
    import matplotlib.image
    with matplotlib.cbook.get_sample_data(name) as f:
        return matplotlib.image.imread(f, format="jpg")


def _to_unit_float(raw: np.ndarray) -> np.ndarray:
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0
    return np.clip(raw.astype(np.float32), 0.0, 1.0)


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour -> (H, W) luminance with the ITU-R BT.709 weights; (H, W) unchanged."""
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    return (image @ np.array([0.2126, 0.7152, 0.0722], dtype=image.dtype)).astype(image.dtype)


def _resize(image: np.ndarray, size: int | tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return image
    import skimage.transform
    shape = (size, size) if isinstance(size, int) else tuple(size)
    out = skimage.transform.resize(image, shape + image.shape[2:], anti_aliasing=True,
                                   preserve_range=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def load_image(name: str, size: int | tuple[int, int] | None = None, gray: bool = False) -> np.ndarray:
    """A bundled photograph as float32 in [0, 1].

    Args:
        name: one of :data:`IMAGE_NAMES` or :data:`TEXTURE_NAMES`.
        size: resize to ``(size, size)`` or ``(height, width)``; ``None`` keeps the original.
        gray: convert a colour photo to luminance.

    Returns:
        ``(H, W)`` for grayscale images (or ``gray=True``), ``(H, W, 3)`` for colour ones.
    """
    if name in _PHOTOS:
        raw = _read(*_PHOTOS[name])
    elif name in _TEXTURES:
        raw = _read("skimage", name)
    else:
        raise ValueError(f"unknown image {name!r}; choose one of {IMAGE_NAMES + TEXTURE_NAMES}")
    image = _to_unit_float(raw)
    if gray:
        image = to_gray(image)
    return _resize(image, size)


def load_texture(name: str, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """A bundled texture photograph (``brick``, ``grass``, ``gravel``) as (H, W) float32 in [0, 1]."""
    if name not in _TEXTURES:
        raise ValueError(f"unknown texture {name!r}; choose one of {TEXTURE_NAMES}")
    return load_image(name, size=size)


def to_nchw(image: np.ndarray) -> np.ndarray:
    """An image as a batch of one for conv2d: (H, W) -> (1, 1, H, W); (H, W, C) -> (1, C, H, W)."""
    if image.ndim == 2:
        return image[None, None]
    if image.ndim == 3:
        return np.ascontiguousarray(image.transpose(2, 0, 1))[None]
    raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")


def from_nchw(batch: np.ndarray, index: int = 0) -> np.ndarray:
    """One image of an (N, C, H, W) batch back to (H, W) (one channel) or (H, W, C)."""
    if batch.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) batch, got shape {batch.shape}")
    image = batch[index]
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


# --------------------------------------------------------------------------------------------
# Part III datasets: the target task (handwritten digits) and a generated source task (glyphs)
# --------------------------------------------------------------------------------------------
#
# API summary (chapters 07-09):
#   load_digits_splits()                  -> Splits(train, val, test), each (X, y)
#   take_per_class(data, k, seed=0)       -> (X, y) with k labelled images per class
#   place_on_canvas(X, canvas_size, seed) -> X pasted at random positions on a larger canvas
#   load_glyph_splits(n_per_class=400)    -> Splits of the generated source dataset
#   GLYPH_CLASSES, IMAGE_SIZE             -> class names of the source task, model resolution
# X is float32 (N, 1, 16, 16) in [0, 1] (ink = 1, background = 0); y is int64 (N,).

from functools import lru_cache
from typing import NamedTuple

IMAGE_SIZE = 16
"""Resolution of every Part III image.  The digits are 8x8; they are upsampled (bilinear) to
16x16 because the CNN has three conv -> ReLU -> 2x2-pool blocks: an 8x8 input would shrink
to 1x1 after three poolings, leaving nothing to look at in the deeper feature maps and no
room for a receptive field to grow.  At 16x16 the maps are 16 -> 8 -> 4 -> 2 pixels wide."""

DIGITS_SPLIT_SIZES = {"train": 1077, "val": 360, "test": 360}
"""Fixed sizes of the digits splits (60 / 20 / 20 % of the 1,797 images)."""


class Splits(NamedTuple):
    """Train / validation / test parts of a dataset; each part is a tuple ``(X, y)``."""
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def _upsample(images: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w) float images -> (N, 1, size, size) by bilinear interpolation."""
    import torch
    import torch.nn.functional as F
    batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    out = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
    return out.clamp(0.0, 1.0).numpy()


def _stratified_split(n_items: int, labels: np.ndarray, sizes: tuple[int, int, int], seed: int):
    """Index arrays (train, val, test) of the given sizes, each with the class proportions of
    ``labels`` (shape (n_items,)); seeded, so the same call always gives the same split."""
    from sklearn.model_selection import train_test_split
    index = np.arange(n_items)
    rest, test = train_test_split(index, test_size=sizes[2], stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=sizes[1], stratify=labels[rest],
                                  random_state=seed + 1)
    return np.sort(train), np.sort(val), np.sort(test)


@lru_cache(maxsize=1)
def _digits_splits_cached() -> Splits:
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = _upsample(digits.images / 16.0, IMAGE_SIZE)  # raw values are ink counts 0..16
    labels = digits.target.astype(np.int64)
    sizes = (DIGITS_SPLIT_SIZES["train"], DIGITS_SPLIT_SIZES["val"], DIGITS_SPLIT_SIZES["test"])
    parts = _stratified_split(len(labels), labels, sizes, seed=0)
    return Splits(*((images[idx], labels[idx]) for idx in parts))


def _copy_splits(splits: Splits) -> Splits:
    # The cache must not be changed by a learner who edits the arrays they were given.
    return Splits(*((X.copy(), y.copy()) for X, y in splits))


def load_digits_splits() -> Splits:
    """The handwritten digits of scikit-learn (1,797 images, 10 classes), split once and forever.

    The split is stratified (every part has the class proportions of the whole set) and seeded
    (``random_state=0``), so every chapter and every learner sees the same images:
    train 1,077 / val 360 / test 360 images (:data:`DIGITS_SPLIT_SIZES`).

    Returns:
        ``Splits(train, val, test)``; each part is ``(X, y)`` with ``X`` float32 of shape
        ``(N, 1, 16, 16)`` in [0, 1] (the 8x8 originals upsampled, see :data:`IMAGE_SIZE`)
        and ``y`` int64 of shape ``(N,)`` with the digit 0..9.
    """
    return _copy_splits(_digits_splits_cached())


def take_per_class(data: tuple[np.ndarray, np.ndarray], k: int, seed: int = 0):
    """A labelled subset with exactly ``k`` images of every class (a "label budget").

    Args:
        data: ``(X, y)`` with ``X`` of shape (N, ...) and ``y`` int labels of shape (N,).
        k: images per class, at least 1 and at most the size of the smallest class.
        seed: which images are taken.  For one seed the subsets are nested: the 5 images of a
            class with ``k=5`` are among its 10 with ``k=10``, so budgets compare fairly.

    Returns:
        ``(X_k, y_k)`` of shapes (k * n_classes, ...) and (k * n_classes,), classes in order.
    """
    X, y = data
    if len(X) != len(y):
        raise ValueError(f"X and y disagree: X has {len(X)} items, y has shape {np.shape(y)}")
    classes, counts = np.unique(y, return_counts=True)
    if not 1 <= k <= counts.min():
        raise ValueError(f"k={k} images per class is impossible: the smallest class has "
                         f"{counts.min()} images (k must be in 1..{counts.min()})")
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(y == c))[:k] for c in classes]
    index = np.concatenate(chosen)
    return X[index], y[index]


def place_on_canvas(X: np.ndarray, canvas_size: int, seed: int = 0) -> np.ndarray:
    """Paste every image at a random position on a larger, empty (zero) canvas.

    Turns centred digits into digits that may be anywhere: the test of whether a classifier
    recognises a pattern *wherever* it appears (chapter 9).

    Args:
        X: images of shape (N, C, h, w).
        canvas_size: side of the square canvas, at least max(h, w).
        seed: the random offsets; the same seed always gives the same positions.

    Returns:
        float32 array (N, C, canvas_size, canvas_size): zeros except image ``i`` copied unchanged
        at a top-left offset drawn uniformly from 0..canvas_size - h (rows), 0..canvas_size - w
        (columns).
    """
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, h, w), got {X.shape}")
    n, channels, h, w = X.shape
    if canvas_size < max(h, w):
        raise ValueError(f"a {canvas_size}x{canvas_size} canvas cannot hold images of size {h}x{w}")
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, canvas_size - h + 1, n), rng.integers(0, canvas_size - w + 1, n)
    canvas = np.zeros((n, channels, canvas_size, canvas_size), dtype=np.float32)
    for i, (r, c) in enumerate(zip(rows, cols)):
        canvas[i, :, r:r + h, c:c + w] = X[i]
    return canvas


# --- the source dataset: letters rendered from the fonts matplotlib ships ------------------

GLYPH_CLASSES: tuple[str, ...] = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
"""The 26 classes of the source task: capital letters."""

GLYPH_FONTS: tuple[str, ...] = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique",
    "DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic",
    "STIXGeneral", "STIXGeneralBol", "STIXGeneralItalic", "STIXGeneralBolIta",
    "cmr10", "cmss10", "cmtt10", "cmb10", "cmti10",
)
"""Font files (``.ttf`` in matplotlib's ``mpl-data/fonts/ttf``) the letters are drawn in."""

_TEMPLATE = 64   # glyphs are drawn on a 64x64 canvas, then warped and shrunk to IMAGE_SIZE
_GLYPH_BOX = 48  # the longer side of a glyph on that canvas before jitter


def _render_glyph(font, char: str) -> np.ndarray:
    """One character, ink = 1, scaled so its longer side is _GLYPH_BOX and centred on the canvas."""
    font.clear()
    font.set_size(96, 72)
    font.set_text(char)
    font.draw_glyphs_to_bitmap(antialiased=True)
    ink = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    rows, cols = np.flatnonzero(ink.max(1) > 0), np.flatnonzero(ink.max(0) > 0)
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = _GLYPH_BOX / max(ink.shape)
    h, w = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    canvas = np.zeros((_TEMPLATE, _TEMPLATE), np.float32)
    top, left = (_TEMPLATE - h) // 2, (_TEMPLATE - w) // 2
    canvas[top:top + h, left:left + w] = _resize(ink, (h, w))
    return canvas


@lru_cache(maxsize=1)
def _glyph_templates() -> np.ndarray:
    """All (font, letter) drawings, shape (len(GLYPH_FONTS), len(GLYPH_CLASSES), 64, 64)."""
    import os
    import matplotlib
    from matplotlib.ft2font import FT2Font
    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    fonts = [FT2Font(os.path.join(folder, name + ".ttf")) for name in GLYPH_FONTS]
    return np.stack([[_render_glyph(font, c) for c in GLYPH_CLASSES] for font in fonts])


def _random_affines(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random 2x3 affine maps (output -> input coordinates in [-1, 1]), shape (n, 2, 3):
    rotation +-12 degrees, scale 0.8..1.15, shear +-0.25, shift +-10 % of the image."""
    angle = np.deg2rad(rng.uniform(-12, 12, n))
    scale = rng.uniform(0.8, 1.15, n)
    shear = rng.uniform(-0.25, 0.25, n)
    shift = rng.uniform(-0.1, 0.1, (n, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    # grid_sample maps *output* pixels to input positions, so dividing by scale enlarges.
    a = np.stack([np.stack([cos, -sin + shear], 1), np.stack([sin, cos], 1)], 1) / scale[:, None, None]
    return np.concatenate([a, shift[:, :, None]], axis=2).astype(np.float32)


def _thicken_strokes(batch, widths: np.ndarray):
    """Thicker strokes for a (N, 1, 64, 64) tensor: ``widths[i]`` (shape (N,), values 0..2)
    steps of a 3x3 maximum filter (a dilation).  No thinning: the thin serif fonts break."""
    import torch
    import torch.nn.functional as F
    out = batch.clone()
    for step in (1, 2):
        grow = torch.from_numpy(widths >= step)
        out[grow] = F.max_pool2d(out[grow], 3, stride=1, padding=1)
    return out


def _draw_glyphs(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random renderings of the letters ``labels`` (shape (N,)) -> float32 (N, 1, 16, 16)."""
    import torch
    import torch.nn.functional as F
    templates = _glyph_templates()
    fonts = rng.integers(len(GLYPH_FONTS), size=len(labels))
    widths = rng.choice([0, 1, 1, 2], size=len(labels))
    affines = torch.from_numpy(_random_affines(rng, len(labels)))
    clean = torch.from_numpy(templates[fonts, labels][:, None])
    clean = _thicken_strokes(clean, widths)
    grid = F.affine_grid(affines, [len(labels), 1, 2 * IMAGE_SIZE, 2 * IMAGE_SIZE], align_corners=False)
    warped = F.grid_sample(clean, grid, mode="bilinear", align_corners=False)
    small = F.avg_pool2d(warped, 2)  # area-average 32 -> 16
    # Half the images take the digits' path (8x8, then bilinear up to 16x16): softer edges.
    soft = torch.from_numpy(rng.random(len(labels)) < 0.5)
    small[soft] = F.interpolate(F.avg_pool2d(small[soft], 2), scale_factor=2, mode="bilinear",
                                align_corners=False)
    # Full ink is 1 in every image, as in the digits (thin strokes lose brightness when shrunk).
    small = (small / small.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)).numpy()
    noise = rng.normal(0.0, rng.uniform(0.0, 0.08, (len(labels), 1, 1, 1)), small.shape)
    return np.clip(small + noise, 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=2)
def _glyph_splits_cached(n_per_class: int, seed: int) -> Splits:
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(len(GLYPH_CLASSES), dtype=np.int64), n_per_class)
    images = np.concatenate([_draw_glyphs(labels[i:i + 4096], rng)
                             for i in range(0, len(labels), 4096)])
    n_val = n_test = len(labels) // 10
    parts = _stratified_split(len(labels), labels, (len(labels) - 2 * n_val, n_val, n_test), seed)
    return Splits(*((images[idx], labels[idx]) for idx in parts))


def load_glyph_splits(n_per_class: int = 400, seed: int = 0) -> Splits:
    """The *source* dataset of Part III: capital letters drawn from matplotlib's fonts.

    Why letters?  Transfer learning needs a large source task that is different from the
    target (digits: other classes, printed rather than handwritten) but related (dark
    background, bright strokes of similar width, curves, corners and line ends at the same
    16x16 scale), so that the edge and stroke detectors learned on it are useful for digits.
    Everything needed is already installed (20 font files of DejaVu, STIX and Computer Modern
    inside matplotlib) and generation is deterministic, so nothing is downloaded or stored.

    Each image: one of :data:`GLYPH_CLASSES` in one of :data:`GLYPH_FONTS`, a random stroke
    width (as drawn, thicker, much thicker), a random affine jitter (rotation +-12 deg,
    scale 0.8-1.15, shear, shift), area-averaged to 16x16 (half of them through 8x8 and
    bilinear upsampling, exactly like the digits), plus Gaussian pixel noise of a
    random strength (sigma <= 0.08), clipped to [0, 1].  Generating the default 10,400 images
    takes 2-3 s on two cores; results are cached in memory for the session.

    Args:
        n_per_class: images generated per letter; 80 / 10 / 10 % go to train / val / test
            (stratified).
        seed: the random stream; the same ``(n_per_class, seed)`` always gives the same arrays.

    Returns:
        ``Splits(train, val, test)``; each part ``(X, y)`` with ``X`` float32 (N, 1, 16, 16)
        in [0, 1] and ``y`` int64 (N,) indexing :data:`GLYPH_CLASSES`.
    """
    if n_per_class < 10:
        raise ValueError(f"n_per_class must be at least 10 (for 10 % val/test), got {n_per_class}")
    return _copy_splits(_glyph_splits_cached(int(n_per_class), int(seed)))

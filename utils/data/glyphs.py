"""The generated source dataset of Part III: capital letters drawn from the fonts matplotlib
ships, jittered and shrunk to the digits' 16x16 (chapter 07's transfer experiment, the
pretrained checkpoint ``utils/assets/source_cnn.pt``).  Nothing is downloaded or stored.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .digits import DIGIT_IMAGE_SIZE
from .photos import resize
from .splits import Splits, stratified_split

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

_TEMPLATE = 64   # glyphs are drawn on a 64x64 canvas, then warped and shrunk to DIGIT_IMAGE_SIZE
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
    canvas[top:top + h, left:left + w] = resize(ink, (h, w))
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
    side = 2 * DIGIT_IMAGE_SIZE
    grid = F.affine_grid(affines, [len(labels), 1, side, side], align_corners=False)
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
    parts = stratified_split(len(labels), labels, (len(labels) - 2 * n_val, n_val, n_test), seed)
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

    Used first in chapter 07.
    """
    if n_per_class < 10:
        raise ValueError(f"n_per_class must be at least 10 (for 10 % val/test), got {n_per_class}")
    return _glyph_splits_cached(int(n_per_class), int(seed)).copy()

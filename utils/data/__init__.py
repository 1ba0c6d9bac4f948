"""The course's images and datasets; everything ships with an installed package, nothing is downloaded.

One module per kind of data, every public name re-exported here (``from utils.data import X``):

* :mod:`utils.data.photos` -- the bundled photographs and textures (``load_image``,
  ``load_texture``, ``IMAGE_NAMES``, ``TEXTURE_NAMES``) and layout conversions (``to_gray``,
  ``to_nchw``, ``from_nchw``, ``resize``); chapters 00-05 and 10.
* :mod:`utils.data.digits` -- Part III's target task, the handwritten digits at
  ``DIGIT_IMAGE_SIZE`` = 16 (``load_digits_splits``, ``DIGITS_SPLIT_SIZES``); chapters 06-09.
* :mod:`utils.data.glyphs` -- the generated source task, letters in matplotlib's fonts
  (``load_glyph_splits``, ``GLYPH_CLASSES``, ``GLYPH_FONTS``); chapter 07.
* :mod:`utils.data.splits` -- what those datasets share: ``Splits``, ``stratified_split``,
  ``take_per_class`` (label budgets), ``place_on_canvas`` (digits anywhere, chapter 09).

Photos are ``(H, W)`` or ``(H, W, 3)`` float32 in [0, 1]; datasets are ``(X, y)`` with ``X``
float32 ``(N, 1, 16, 16)`` in [0, 1] and ``y`` int64 ``(N,)``.
"""
from .digits import DIGIT_IMAGE_SIZE, DIGITS_SPLIT_SIZES, IMAGE_SIZE, load_digits_splits
from .glyphs import GLYPH_CLASSES, GLYPH_FONTS, _glyph_splits_cached, load_glyph_splits
from .photos import (IMAGE_NAMES, TEXTURE_NAMES, from_nchw, load_image, load_texture, resize, to_gray,
                     to_nchw)
from .splits import Splits, place_on_canvas, stratified_split, take_per_class

# IMAGE_SIZE (= DIGIT_IMAGE_SIZE) and _glyph_splits_cached stay reachable here for
# tests/test_data_digits.py, which imports the first and clears the second's cache.
__all__ = ["DIGIT_IMAGE_SIZE", "DIGITS_SPLIT_SIZES", "GLYPH_CLASSES", "GLYPH_FONTS", "IMAGE_NAMES",
           "TEXTURE_NAMES", "Splits", "from_nchw", "load_digits_splits", "load_glyph_splits", "load_image",
           "load_texture", "place_on_canvas", "resize", "stratified_split", "take_per_class", "to_gray",
           "to_nchw"]

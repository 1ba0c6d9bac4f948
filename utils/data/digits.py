"""The target task of Part III: scikit-learn's handwritten digits, upsampled to 16x16 and split
once and forever (chapters 06-09).

``X`` is float32 ``(N, 1, 16, 16)`` in [0, 1] (ink = 1, background = 0); ``y`` int64 ``(N,)``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .splits import Splits, stratified_split

DIGIT_IMAGE_SIZE = 16
"""Side of every Part III image (the digits, and the generated letters that imitate them).
The digits are 8x8; they are upsampled (bilinear) to
16x16 because the CNN has three conv -> ReLU -> 2x2-pool blocks: an 8x8 input would shrink
to 1x1 after three poolings, leaving nothing to look at in the deeper feature maps and no
room for a receptive field to grow.  At 16x16 the maps are 16 -> 8 -> 4 -> 2 pixels wide.
(Not to be confused with ``utils.widgets.EXPLORER_IMAGE_SIZE``, the explorers' photographs.)"""

IMAGE_SIZE = DIGIT_IMAGE_SIZE
"""Old name of :data:`DIGIT_IMAGE_SIZE`, kept for tests/test_data_digits.py."""

DIGITS_SPLIT_SIZES = {"train": 1077, "val": 360, "test": 360}
"""Fixed sizes of the digits splits (60 / 20 / 20 % of the 1,797 images)."""


def _upsample(images: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w) float images -> (N, 1, size, size) by bilinear interpolation."""
    import torch
    import torch.nn.functional as F
    batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    out = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
    return out.clamp(0.0, 1.0).numpy()


@lru_cache(maxsize=1)
def _digits_splits_cached() -> Splits:
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = _upsample(digits.images / 16.0, DIGIT_IMAGE_SIZE)  # raw values are ink counts 0..16
    labels = digits.target.astype(np.int64)
    sizes = (DIGITS_SPLIT_SIZES["train"], DIGITS_SPLIT_SIZES["val"], DIGITS_SPLIT_SIZES["test"])
    parts = stratified_split(len(labels), labels, sizes, seed=0)
    return Splits(*((images[idx], labels[idx]) for idx in parts))


def load_digits_splits() -> Splits:
    """The handwritten digits of scikit-learn (1,797 images, 10 classes), split once and forever.

    The split is stratified (every part has the class proportions of the whole set) and seeded
    (``random_state=0``), so every chapter and every learner sees the same images:
    train 1,077 / val 360 / test 360 images (:data:`DIGITS_SPLIT_SIZES`).

    Returns:
        ``Splits(train, val, test)``; each part is ``(X, y)`` with ``X`` float32 of shape
        ``(N, 1, 16, 16)`` in [0, 1] (the 8x8 originals upsampled, see :data:`DIGIT_IMAGE_SIZE`)
        and ``y`` int64 of shape ``(N,)`` with the digit 0..9.

    Used first in chapter 06.
    """
    return _digits_splits_cached().copy()

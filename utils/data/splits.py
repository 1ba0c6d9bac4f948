"""What the Part III datasets have in common: train/val/test ``Splits``, stratified splitting,
label budgets (``take_per_class``) and random placement on a larger canvas (``place_on_canvas``).

Images are float32 ``(N, C, H, W)`` in [0, 1]; labels int64 ``(N,)``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Splits(NamedTuple):
    """Train / validation / test parts of a dataset; each part is a tuple ``(X, y)``.

    Used first in chapter 06.
    """
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]

    def copy(self) -> "Splits":
        """A copy of every array (a cached dataset must not change when a learner edits theirs)."""
        return Splits(*((X.copy(), y.copy()) for X, y in self))


def stratified_split(n_items: int, labels: np.ndarray, sizes: tuple[int, int, int], seed: int):
    """Index arrays ``(train, val, test)`` of the given sizes, each with the class proportions of
    ``labels`` (shape (n_items,)); seeded, so the same call always gives the same split.

    Used first in chapter 06.  (:func:`utils.data.load_digits_splits` calls it.)
    """
    from sklearn.model_selection import train_test_split
    index = np.arange(n_items)
    rest, test = train_test_split(index, test_size=sizes[2], stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=sizes[1], stratify=labels[rest],
                                  random_state=seed + 1)
    return np.sort(train), np.sort(val), np.sort(test)


def take_per_class(data: tuple[np.ndarray, np.ndarray], k: int, seed: int = 0):
    """A labelled subset with exactly ``k`` images of every class (a "label budget").

    Args:
        data: ``(X, y)`` with ``X`` of shape (N, ...) and ``y`` int labels of shape (N,).
        k: images per class, at least 1 and at most the size of the smallest class.
        seed: which images are taken.  For one seed the subsets are nested: the 5 images of a
            class with ``k=5`` are among its 10 with ``k=10``, so budgets compare fairly.

    Returns:
        ``(X_k, y_k)`` of shapes (k * n_classes, ...) and (k * n_classes,), classes in order.

    Used first in chapter 06.
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

    Used first in chapter 09.
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

"""A small real-photo classification task built offline: patches cut from bundled photographs.

Chapter 08 (transfer learning) uses it as the *target* task that an ImageNet network has never
seen: which photograph does a 64 x 64 patch come from?  Every source ships inside scikit-image
(nothing is downloaded); each one is one class:

    class    skimage.data name       what a patch shows
    brick    brick                   a brick wall (mortar lines, rough surface)
    grass    grass                   blades of grass
    gravel   gravel                  small stones
    moon     moon                    the lunar surface: smooth, a few craters
    tissue   immunohistochemistry    stained tissue: cells and fibres
    stars    hubble_deep_field       a Hubble deep field: galaxies on black
    retina   retina                  the back of an eye: blood vessels (centre crop, no border)
    coins    coins                   old coins on a background

Design decisions (each is visible in the returned data):

* **Gray.**  Every photo is converted to luminance, because brick, grass, gravel, moon and coins
  ship in gray only: with colour, "is it coloured?" alone would separate the classes.
* **Same brightness and contrast.**  Each patch is standardised (:func:`standardize`: mean 0.5,
  standard deviation 0.2, clipped to [0, 1]), because the photos differ in brightness: the stars
  are mostly black, so "how dark is it?" alone would tell several classes apart.  What is left
  to learn is the *texture* (the shape of the histogram still helps: see chapter 08's baselines
  on intensity statistics and local binary patterns).
* **Similar scale.**  Each photo is resized so that its shorter side is at most 512 pixels
  (the retina is first cropped to its central 800 x 800 pixels, inside the black border).
* **Disjoint halves.**  Training and validation patches come from the left half of each photo,
  test patches from the right half, so no test pixel was ever seen in training.  Patches are
  random crops: two crops from the *same* area overlap, and a split that mixed them would let a
  method score by recognising pixels it has memorised rather than the texture.  The left half is
  cut again: its top part gives the training pool, its bottom rows (a quarter of the height, at
  least one patch) the validation patches used to tune learning rates.

API (chapter 08):

    splits = load_patch_splits()          # PatchSplits(train, val, test, classes, boxes)
    X, y = splits.train                   # X (N, 64, 64) float32 in [0, 1], y (N,) int64
    regions(shape, patch=64)              # {'train': box, 'val': box, 'test': box} of one photo
    load_source("brick")                  # the (H, W) gray photo the patches are cut from

``take_per_class(splits.train, k, seed)`` from :mod:`utils.data` picks k labelled patches per class.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

SOURCES: dict[str, str] = {
    "brick": "brick", "grass": "grass", "gravel": "gravel", "moon": "moon",
    "tissue": "immunohistochemistry", "stars": "hubble_deep_field", "retina": "retina",
    "coins": "coins",
}
"""Class name -> the ``skimage.data`` function whose photo the class's patches are cut from."""

CLASSES: tuple[str, ...] = tuple(SOURCES)
MAX_SIDE = 512
_CROPS = {"retina": (slice(300, 1100), slice(300, 1100))}   # inside the fundus' black border


class Box(NamedTuple):
    """A rectangle of a photo: rows ``[top, bottom)``, columns ``[left, right)``.

    Used first in chapter 08.
    """
    top: int
    bottom: int
    left: int
    right: int


class PatchSplits(NamedTuple):
    """The patch dataset.

    Attributes:
        train, val, test: ``(X, y)`` with X (N, patch, patch) float32 in [0, 1], y (N,) int64,
            sorted by class.
        classes: the class names, index = label.
        boxes: for each part, an (N, 3) int array ``(label, top, left)``: where each patch was cut.

    Used first in chapter 08.
    """
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    classes: tuple[str, ...]
    boxes: dict[str, np.ndarray]


@lru_cache(maxsize=None)
def _source_cached(name: str) -> np.ndarray:
    import skimage.data
    import skimage.transform
    from skimage.color import rgb2gray

    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; choose one of {CLASSES}")
    raw = getattr(skimage.data, SOURCES[name])()
    image = rgb2gray(raw) if raw.ndim == 3 else raw.astype(np.float64) / 255.0
    if name in _CROPS:
        image = image[_CROPS[name]]
    scale = MAX_SIDE / min(image.shape)
    if scale < 1:
        shape = tuple(round(s * scale) for s in image.shape)
        image = skimage.transform.resize(image, shape, anti_aliasing=True)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    image.setflags(write=False)
    return image


def load_source(name: str) -> np.ndarray:
    """The gray photo of class ``name`` (see :data:`SOURCES`), (H, W) float32 in [0, 1] (a copy).

    Used first in chapter 08.
    """
    return _source_cached(name).copy()


def regions(shape: tuple[int, int], patch: int = 64) -> dict[str, Box]:
    """Where the patches of a photo of ``shape`` (H, W) come from: disjoint train / val / test boxes.

    ``test`` is the right half; the left half is split into ``train`` (top) and ``val`` (the
    bottom ``max(patch, H // 4)`` rows).  Raises ValueError if a box cannot hold one patch.

    Used first in chapter 08.
    """
    height, width = shape
    half = width // 2
    val_rows = max(patch, height // 4)
    boxes = {"train": Box(0, height - val_rows, 0, half), "val": Box(height - val_rows, height, 0, half),
             "test": Box(0, height, half, width)}
    for part, box in boxes.items():
        if box.bottom - box.top < patch or box.right - box.left < patch:
            raise ValueError(f"a {height}x{width} photo is too small for {patch}-pixel patches: the "
                             f"{part} box {tuple(box)} cannot hold one")
    return boxes


def _crops(image: np.ndarray, box: Box, n: int, patch: int, rng: np.random.Generator):
    tops = rng.integers(box.top, box.bottom - patch + 1, n)
    lefts = rng.integers(box.left, box.right - patch + 1, n)
    return np.stack([image[t:t + patch, l:l + patch] for t, l in zip(tops, lefts)]), tops, lefts


def standardize(patches: np.ndarray, mean: float = 0.5, std: float = 0.2) -> np.ndarray:
    """Give every patch of ``patches`` (N, H, W) the same ``mean`` and ``std``, clipped to [0, 1].

    A flat patch (standard deviation 0) becomes a constant ``mean``.

    Used first in chapter 08.
    """
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim != 3:
        raise ValueError(f"expected patches of shape (N, H, W), got {patches.shape}")
    centred = patches - patches.mean(axis=(1, 2), keepdims=True)
    spread = centred.std(axis=(1, 2), keepdims=True)
    scaled = np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)
    return np.clip(mean + std * scaled, 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=4)
def _splits_cached(patch: int, n_train: int, n_val: int, n_test: int, seed: int,
                   standardized: bool) -> PatchSplits:
    rng = np.random.default_rng(seed)
    parts = {"train": n_train, "val": n_val, "test": n_test}
    X = {p: [] for p in parts}
    boxes = {p: [] for p in parts}
    for label, name in enumerate(CLASSES):
        image = _source_cached(name)
        for part, box in regions(image.shape, patch).items():
            crops, tops, lefts = _crops(image, box, parts[part], patch, rng)
            X[part].append(crops)
            boxes[part].append(np.stack([np.full(len(tops), label), tops, lefts], axis=1))
    out = {}
    for part, n in parts.items():
        labels = np.repeat(np.arange(len(CLASSES)), n).astype(np.int64)
        patches = np.concatenate(X[part]).astype(np.float32)
        out[part] = (standardize(patches) if standardized else patches, labels)
    return PatchSplits(out["train"], out["val"], out["test"], CLASSES,
                       {p: np.concatenate(b).astype(np.int64) for p, b in boxes.items()})


def load_patch_splits(patch: int = 64, n_train: int = 30, n_val: int = 10, n_test: int = 30,
                      seed: int = 0, standardized: bool = True) -> PatchSplits:
    """Random ``patch`` x ``patch`` crops of every source: ``n_train`` / ``n_val`` / ``n_test`` per class.

    ``standardized=False`` keeps the raw pixels (each patch then equals the photo at its box).
    Deterministic for a given ``seed`` (which only picks the crop positions).  The arrays are
    fresh copies, so callers may modify them.

    Used first in chapter 08.
    """
    for name, value in (("patch", patch), ("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    cached = _splits_cached(int(patch), int(n_train), int(n_val), int(n_test), int(seed),
                            bool(standardized))
    copy = lambda xy: (xy[0].copy(), xy[1].copy())   # noqa: E731
    return PatchSplits(copy(cached.train), copy(cached.val), copy(cached.test), cached.classes,
                       {p: b.copy() for p, b in cached.boxes.items()})

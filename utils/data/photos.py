"""The bundled photographs and textures, and the conversions between image layouts.

Nothing is downloaded, ever: photographs and textures come from ``skimage.data`` (which keeps these files inside the
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
    """(H, W, 3) colour -> (H, W) luminance with the ITU-R BT.709 weights; (H, W) unchanged.

    Used first in chapter 04.
    """
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    return (image @ np.array([0.2126, 0.7152, 0.0722], dtype=image.dtype)).astype(image.dtype)


def resize(image: np.ndarray, size: int | tuple[int, int] | None) -> np.ndarray:
    """An (H, W) or (H, W, C) float image in [0, 1] resized (anti-aliased) to ``(size, size)`` or
    ``(height, width)``, float32 in [0, 1]; ``size=None`` returns ``image`` unchanged.

    Used first in chapter 00.  (:func:`load_image` calls it.)
    """
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

    Used first in chapter 00.
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
    return resize(image, size)


def load_texture(name: str, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """A bundled texture photograph (``brick``, ``grass``, ``gravel``) as (H, W) float32 in [0, 1].

    Used first in chapter 04.
    """
    if name not in _TEXTURES:
        raise ValueError(f"unknown texture {name!r}; choose one of {TEXTURE_NAMES}")
    return load_image(name, size=size)


def to_nchw(image: np.ndarray) -> np.ndarray:
    """An image as a batch of one for conv2d: (H, W) -> (1, 1, H, W); (H, W, C) -> (1, C, H, W).

    Taught in chapter 01.
    """
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

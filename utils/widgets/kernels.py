"""The explorers' preset kernels: classic 3x3 and 5x5 filters by name (chapter 04 teaches them)."""
from __future__ import annotations

import numpy as np

__all__ = ["LAPLACIAN_3", "PRESETS", "preset_kernel"]


def _binomial(size: int) -> np.ndarray:
    """Row ``size - 1`` of Pascal's triangle: (1, 2, 1) or (1, 4, 6, 4, 1), a discrete Gaussian."""
    return np.array([1, 2, 1] if size == 3 else [1, 4, 6, 4, 1], dtype=np.float32)


def _derivative(size: int) -> np.ndarray:
    """Central difference (-1, 0, 1), smoothed to (-1, -2, 0, 2, 1) for 5 taps."""
    return np.array([-1, 0, 1] if size == 3 else [-1, -2, 0, 2, 1], dtype=np.float32)


def _centred(small: np.ndarray, size: int) -> np.ndarray:
    """A 3x3 kernel in the middle of a ``size`` x ``size`` one of zeros."""
    out = np.zeros((size, size), dtype=np.float32)
    m = (size - 3) // 2
    out[m:m + 3, m:m + 3] = small
    return out


LAPLACIAN_3 = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)


def preset_kernel(name: str, size: int = 3) -> np.ndarray:
    """A classic filter as a ``(size, size)`` float32 kernel, ``size`` 3 or 5.

    Names: identity, box blur, Gaussian, sharpen, Sobel x (responds to left-right changes,
    i.e. vertical edges; positive where it gets brighter to the right), Sobel y (top-bottom
    changes), Laplacian (second derivative: spots and thin lines; 5x5 = 3x3 centred in zeros).
    (Chapter 02 builds the first ones by hand; the explorers offer these.)  Used first in chapter 04.
    """
    if size not in (3, 5):
        raise ValueError(f"preset kernels come in sizes 3 and 5, got size {size}")
    s, d = _binomial(size), _derivative(size)
    identity = _centred(np.pad(np.ones((1, 1), np.float32), 1), size)
    kernels = {
        "identity": identity,
        "box blur": np.full((size, size), 1.0 / size**2, dtype=np.float32),
        "Gaussian": np.outer(s, s) / np.outer(s, s).sum(),
        "sharpen": identity - _centred(LAPLACIAN_3, size),
        "Sobel x": np.outer(s, d),
        "Sobel y": np.outer(d, s),
        "Laplacian": _centred(LAPLACIAN_3, size),
    }
    if name not in kernels:
        raise ValueError(f"unknown preset {name!r}; choose one of {tuple(kernels)}")
    return kernels[name].astype(np.float32)


PRESETS = ("identity", "box blur", "Gaussian", "sharpen", "Sobel x", "Sobel y", "Laplacian")


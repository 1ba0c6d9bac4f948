"""Figures used across the chapters: image grids, kernels with their values, feature maps.

Conventions (the colour rule of the explorers too, see :mod:`utils.widgets.render`): images in
[0, 1] are shown in gray (or RGB for (H, W, 3)); *signed* arrays (kernels, feature maps before ReLU,
gradients) use a diverging colour map centred on zero so that white means 0, red positive and blue
negative; *non-negative* feature maps (after ReLU, pooled) use the upper half of the same map, so zero
is white and a positive value has the same red on every map.  A feature map's scale is
:func:`colour_limit` (values beyond it saturate and the colour bar shows an arrow); every feature map
gets a labelled colour bar.  Each function returns the matplotlib ``Figure`` so that a notebook can
save or tweak it.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

DIVERGING = "RdBu_r"  # red = positive, blue = negative, white = zero
# non-negative maps: white (zero) to red, the upper half of DIVERGING
POSITIVE = ListedColormap(matplotlib.colormaps[DIVERGING](np.linspace(0.5, 1.0, 256)), name="RdBu_r_upper")


def _grid(n: int, ncols: int | None, panel: float):
    ncols = min(n, ncols or 4)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, panel * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat[:n]


def _finish(fig, axes, titles, suptitle):
    """Hide ticks, set titles and the figure title, tighten the layout; returns the figure."""
    for i, ax in enumerate(axes):
        ax.set_xticks([]), ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def _is_signed(a: np.ndarray) -> bool:
    return bool(np.nanmin(a) < 0)


def symmetric_limit(a: np.ndarray) -> float:
    """The largest |value| of ``a`` (NaNs ignored), 1.0 for an all-zero array: the colour limit of
    a kernel, whose every weight is shown.  Used first in chapter 02."""
    lim = float(np.nanmax(np.abs(a)))
    return lim if lim > 0 else 1.0


def colour_limit(array: np.ndarray) -> float:
    """Colour limit L of a feature map: the 99.5th percentile of |values|, so that a few
    extreme pixels do not wash out the rest (they saturate instead); the largest |value| when that
    percentile is 0; 1.0 for an all-zero map.  Used first in chapter 02."""
    lim = float(np.nanpercentile(np.abs(array), 99.5))
    return lim if lim > 0 else symmetric_limit(array)


def show_images(images: Sequence[np.ndarray], titles: Sequence[str] | None = None,
                ncols: int | None = None, panel: float = 3.0, suptitle: str | None = None):
    """A grid of images: (H, W) arrays in gray, (H, W, 3) arrays as RGB, values in [0, 1].

    Used first in chapter 00.
    """
    images = list(images)
    fig, axes = _grid(len(images), ncols, panel)
    for ax, img in zip(axes, images):
        img = np.asarray(img)
        if img.ndim == 2:
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(np.clip(img, 0, 1))
    return _finish(fig, axes, titles, suptitle)


def show_kernel(kernel: np.ndarray, title: str | None = None, ax=None, fmt: str = "{:.2g}",
                limit: float | None = None):
    """A 2D kernel as coloured cells with each value written in its cell (diverging, centred on 0).

    ``limit``: the colour scale runs from -limit to +limit (default: the largest |value|); give
    several panels the same limit so that equal values get equal colours (chapter 02's windows).

    Used first in exercise set ex01.
    """
    kernel = np.asarray(kernel, dtype=float)
    if kernel.ndim != 2:
        raise ValueError(f"show_kernel expects a 2D (kH, kW) kernel, got shape {kernel.shape}")
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(0.6 * kernel.shape[1] + 1, 0.6 * kernel.shape[0] + 0.8))
    lim = symmetric_limit(kernel) if limit is None else float(limit)
    ax.imshow(kernel, cmap=DIVERGING, vmin=-lim, vmax=lim)
    for (r, c), v in np.ndenumerate(kernel):
        ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=9,
                color="white" if abs(v) > 0.6 * lim else "black")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)
    if own:
        fig.tight_layout()
        return fig
    return ax.figure


def show_kernels(kernels: Sequence[np.ndarray], titles: Sequence[str] | None = None,
                 ncols: int | None = None, panel: float = 2.2, fmt: str = "{:.2g}"):
    """Several 2D kernels side by side, each with its values written in the cells (``fmt``, as in show_kernel).

    Used first in chapter 02.
    """
    kernels = list(kernels)
    fig, axes = _grid(len(kernels), ncols, panel)
    for i, (ax, k) in enumerate(zip(axes, kernels)):
        show_kernel(k, title=None if titles is None else titles[i], ax=ax, fmt=fmt)
    fig.tight_layout()
    return fig


def show_feature_maps(maps: Sequence[np.ndarray] | np.ndarray, titles: Sequence[str] | None = None,
                      ncols: int | None = None, panel: float = 3.0, signed: bool | None = None,
                      label: str = "activation", suptitle: str | None = None):
    """Feature maps with labelled colour bars.

    Args:
        maps: a sequence of (H, W) arrays, or an array (C, H, W) / (1, C, H, W).
        signed: diverging colour map centred on zero; ``None`` decides per map from its values.
        label: the colour bar's label (what the numbers are).

    Used first in chapter 02.
    """
    if isinstance(maps, np.ndarray):
        if maps.ndim == 4 and maps.shape[0] == 1:
            maps = maps[0]
        if maps.ndim == 2:
            maps = maps[None]
        if maps.ndim != 3:
            raise ValueError(f"expected maps of shape (C, H, W) or (1, C, H, W), got {maps.shape}")
    maps = [np.asarray(m, dtype=float) for m in maps]
    fig, axes = _grid(len(maps), ncols, panel)
    for ax, m in zip(axes, maps):
        lim = colour_limit(m)
        beyond = bool(np.nanmax(np.abs(m)) > lim)
        if signed if signed is not None else _is_signed(m):
            im = ax.imshow(m, cmap=DIVERGING, vmin=-lim, vmax=lim)
            extend = "both" if beyond else "neither"
        else:
            im = ax.imshow(m, cmap=POSITIVE, vmin=0.0, vmax=lim)
            extend = "max" if beyond else "neither"
        cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, extend=extend)
        cbar.set_label(label)
    return _finish(fig, axes, titles, suptitle)

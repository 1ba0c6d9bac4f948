"""Looking inside a trained CNN, with controls: which image patches excite a unit (and whether
its window runs into the zero padding), how selective units are, class activation maps, and
the input that maximises a channel.

Chapter 07 uses the patch functions on the digits CNN; chapter 10 uses all of them on
EfficientNet-Lite0.  Every function takes NumPy activations (N, C, H, W) that the notebook
computed, so the same code runs on a trained network and on its random-init control.

Geometry: a unit ``i`` of a map whose receptive field is ``size`` pixels with ``jump`` and
``start`` (see ``utils.models.receptive_field``) sees input rows
``start + i * jump - (size - 1) / 2`` ... ``start + i * jump + (size - 1) / 2``.  When that
window leaves the image, part of what the unit sees is the zero padding, and a "pattern"
there may be nothing but the image border.

API summary:

* ``efficientnet_receptive_fields(input_size)`` the same table for EfficientNet-Lite0.
* ``unit_windows(rf, map_size) -> (lo, hi)`` first and one-past-last input pixel of each
  unit's window along one axis;
  ``border_units(rf, map_shape, image_shape) -> bool (H', W')`` True where a window leaves
  the image.
* ``top_units(acts, channel, n, exclude=None, distinct_images=True) -> list[Unit]`` the ``n``
  strongest units of one channel; ``cut_patch(images, unit, rf)`` the input window of a unit
  (``NaN`` outside the image, so that padding can be drawn in its own colour).
* ``border_share(acts, rf, image_shape, n)`` how many of each channel's top-``n`` units touch
  the border; ``label_purity(acts, labels, n)`` how many of a channel's top-``n`` images share
  one label; ``sparseness(acts)`` how few units of a channel are active.
* ``show_patch_rows(rows, ...)`` draws rows of patches, padding in orange.
* ``class_activation_map(features, weights, cls)`` (chapter 10) and
  ``maximise(objective, count, ...)`` / ``maximise_channel(layers, channel, ...)`` (gradient
  ascent on the input with jitter and blur).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

PADDING_COLOUR = "tab:orange"


# --------------------------------------------------------------------------------------------
# Geometry: where a unit looks
# --------------------------------------------------------------------------------------------


def _geometry(rf) -> tuple[int, int, float]:
    try:
        size, jump, start = int(rf.size), int(rf.jump), float(rf.start)
    except AttributeError as exc:
        raise TypeError(f"rf must have .size, .jump and .start (a utils.models.ReceptiveField), "
                        f"got {type(rf).__name__}") from exc
    if size < 1 or jump < 1:
        raise ValueError(f"receptive field size and jump must be >= 1, got {size} and {jump}")
    return size, jump, start


def unit_windows(rf, map_size: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last input pixel seen by each of ``map_size`` units along one axis.

    Returns:
        ``(lo, hi)``, int arrays of shape (map_size,); ``lo`` may be negative and ``hi`` may
        exceed the image size (the window then covers padding).

    Used first in chapter 07.
    """
    size, jump, start = _geometry(rf)
    lo = np.rint(start + np.arange(map_size) * jump - (size - 1) / 2).astype(int)
    return lo, lo + size


def border_units(rf, map_shape: tuple[int, int], image_shape: tuple[int, int]) -> np.ndarray:
    """bool (H', W'): True for the units whose window extends beyond the (H, W) image.

    Used first in chapter 07.
    """
    masks = []
    for m, n in zip(map_shape, image_shape):
        lo, hi = unit_windows(rf, m)
        masks.append((lo < 0) | (hi > n))
    return masks[0][:, None] | masks[1][None, :]


def efficientnet_receptive_fields(input_size: int = 224) -> dict:
    """Receptive field of every feature map of EfficientNet-Lite0 (chapter 10), by the formula
    of ``utils.models.receptive_field`` with TensorFlow "SAME" padding (which pads less on the
    top/left of a stride-2 conv, so it moves ``start``).  1x1 convs change nothing.

    Returns:
        {name: ReceptiveField(name, size, jump, start)} for the names of
        ``utils.efficientnet.LAYER_NAMES`` ('stem', 'block0', ..., 'block15', 'head'), for a
        square ``input_size`` input.

    Taught in chapter 10.
    """
    from utils.efficientnet import BLOCKS, tf_same_padding
    from utils.models import ReceptiveField
    size, jump, start, side, rows = 1, 1, 0.0, int(input_size), {}
    for name, k, s in [("stem", 3, 2)] + [(f"block{i}", b.kernel, b.stride) for i, b in enumerate(BLOCKS)]:
        top = tf_same_padding(side, side, k, s)[2]
        size, start, jump = size + (k - 1) * jump, start + ((k - 1) / 2 - top) * jump, jump * s
        side = -(-side // s)
        rows[name] = ReceptiveField(name, size, jump, start)
    rows["head"] = ReceptiveField("head", size, jump, start)
    return rows


# --------------------------------------------------------------------------------------------
# Top-activating units and their patches
# --------------------------------------------------------------------------------------------


class Unit(NamedTuple):
    """One unit of a feature map: image, position and activation (:func:`top_units`).

    Used first in chapter 07.
    """
    image: int    # index into the batch
    row: int      # position in the feature map
    col: int
    value: float  # the activation


def _check_acts(acts) -> np.ndarray:
    acts = np.asarray(acts)
    if acts.ndim != 4:
        raise ValueError(f"activations must be (N, C, H, W), got shape {acts.shape}")
    return acts


def top_units(acts: np.ndarray, channel: int, n: int = 6, exclude: np.ndarray | None = None,
              distinct_images: bool = True) -> list[Unit]:
    """The ``n`` largest activations of one channel over a batch.

    Args:
        acts: (N, C, H, W) activations.
        exclude: optional bool (H, W) mask of positions never to pick (e.g. ``border_units``).
        distinct_images: at most one unit per image (otherwise neighbouring positions of one
            image fill the list with near-copies of the same patch).

    Returns:
        up to ``n`` :class:`Unit`, strongest first, only units with an activation > 0.

    Used first in chapter 07.
    """
    a = _check_acts(acts)[:, channel].astype(float).copy()
    if exclude is not None:
        if exclude.shape != a.shape[1:]:
            raise ValueError(f"exclude mask {exclude.shape} does not match the map {a.shape[1:]}")
        a[:, exclude] = -np.inf
    units = []
    for flat in np.argsort(a.ravel(), kind="stable")[::-1]:
        image, row, col = np.unravel_index(flat, a.shape)
        if not a[image, row, col] > 0 or len(units) == n:   # silent units excite nothing
            break
        if distinct_images and any(u.image == image for u in units):
            continue
        units.append(Unit(int(image), int(row), int(col), float(a[image, row, col])))
    return units


def cut_patch(images: np.ndarray, unit: Unit, rf) -> np.ndarray:
    """The input window that ``unit`` sees, ``NaN`` where it lies outside the image.

    Args:
        images: (N, H, W) gray or (N, C, H, W) images (the batch the activations came from).

    Returns:
        (size, size) for gray / one channel, else (size, size, C) (ready for ``imshow``).

    Used first in chapter 07.
    """
    images = np.asarray(images, dtype=float)
    if images.ndim == 4:
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got {images.shape}")
    size = _geometry(rf)[0]
    height, width = images.shape[1:3]
    top = int(unit_windows(rf, unit.row + 1)[0][-1])
    left = int(unit_windows(rf, unit.col + 1)[0][-1])
    patch = np.full((size, size) + images.shape[3:], np.nan)
    r0, r1 = max(top, 0), min(top + size, height)
    c0, c1 = max(left, 0), min(left + size, width)
    if r0 < r1 and c0 < c1:
        patch[r0 - top:r1 - top, c0 - left:c1 - left] = images[unit.image, r0:r1, c0:c1]
    return patch


# --------------------------------------------------------------------------------------------
# Measures: border, label purity, sparseness
# --------------------------------------------------------------------------------------------


def active_channels(acts: np.ndarray) -> np.ndarray:
    """Indices of the channels that are > 0 somewhere in the batch (dead ReLU channels say nothing).

    Used first in chapter 07.
    """
    return np.flatnonzero((_check_acts(acts) > 0).any(axis=(0, 2, 3)))


def border_share(acts: np.ndarray, rf, image_shape: tuple[int, int], n: int = 6) -> float:
    """Share of the top-``n`` units (one per image) of every active channel whose window
    leaves the image, pooled over the active channels (0 to 1; NaN if no channel is active).

    Used first in chapter 07.
    """
    acts = _check_acts(acts)
    border = border_units(rf, acts.shape[2:], image_shape)
    hits = [border[u.row, u.col] for c in active_channels(acts) for u in top_units(acts, c, n)]
    return float(np.mean(hits)) if hits else float("nan")


def label_purity(acts: np.ndarray, labels: np.ndarray, n: int = 20) -> np.ndarray:
    """For every active channel: the share of its ``n`` most-activating images (peak over
    positions) that carry the most common label among them.  A unit that responds to one
    class's shape scores near 1; chance is about ``1 / number of classes``.

    Returns:
        (number of active channels,) floats in [1/n, 1].

    Used first in chapter 07.
    """
    acts, labels = _check_acts(acts), np.asarray(labels)
    if len(labels) != len(acts):
        raise ValueError(f"{len(labels)} labels for {len(acts)} images")
    peak = acts.max(axis=(2, 3))
    purity = []
    for c in active_channels(acts):
        best = np.argsort(peak[:, c], kind="stable")[::-1][:n]
        purity.append(np.bincount(labels[best]).max() / len(best))
    return np.array(purity)


def sparseness(acts: np.ndarray) -> np.ndarray:
    """For every active channel: the share of its units (images x positions) that are 0 or
    less, i.e. silent after ReLU.  Selective units are silent almost everywhere."""
    acts = _check_acts(acts)
    channels = active_channels(acts)
    return (acts[:, channels] <= 0).mean(axis=(0, 2, 3))


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def show_patch_rows(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str],
                    titles: Sequence[Sequence[str]] | None = None, panel: float = 1.0,
                    suptitle: str | None = None, vmin: float = 0.0, vmax: float = 1.0):
    """Rows of patches (gray (h, w) or RGB (h, w, 3)), the parts outside the image (NaN) in
    orange.  Patches in one row may have any size; each row gets a label on its left.

    Used first in chapter 07.
    """
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(panel * ncols, panel * len(rows) + 0.4),
                             squeeze=False)
    cmap = plt.get_cmap("gray").with_extremes(bad=PADDING_COLOUR)
    for i, (row_axes, patches) in enumerate(zip(axes, rows)):
        for j, ax in enumerate(row_axes):
            ax.set_xticks([]), ax.set_yticks([])
            if j >= len(patches):
                ax.axis("off")
                continue
            p = np.asarray(patches[j], dtype=float)
            if p.ndim == 2:
                ax.imshow(np.ma.masked_invalid(p), cmap=cmap, vmin=vmin, vmax=vmax)
            else:
                outside = np.isnan(p).any(axis=2)
                rgb = np.clip(np.nan_to_num(p), 0, 1)
                rgb[outside] = plt.matplotlib.colors.to_rgb(PADDING_COLOUR)
                ax.imshow(rgb)
            if titles is not None and titles[i][j]:
                ax.set_title(titles[i][j], fontsize=8, loc="left")
        row_axes[0].set_ylabel(labels[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Class activation maps (chapter 10)
# --------------------------------------------------------------------------------------------


def class_activation_map(features: np.ndarray, weights: np.ndarray, cls: int) -> np.ndarray:
    """CAM of class ``cls`` for a network whose head is global average pooling + linear.

    logit_k = b_k + sum_c w_kc * mean_ij f_cij = b_k + mean_ij (sum_c w_kc f_cij), so the map
    M_k(i, j) = sum_c w_kc f_cij is the class's logit spread over positions: its mean plus
    b_k is exactly the logit.

    Args:
        features: (C, h, w) the last feature maps of one image (after the final activation).
        weights: (K, C) the linear head's weight matrix.
        cls: the class.

    Returns:
        (h, w) float map (not normalised, can be negative).

    Taught in chapter 10.
    """
    features, weights = np.asarray(features, dtype=float), np.asarray(weights, dtype=float)
    if features.ndim != 3 or weights.ndim != 2 or weights.shape[1] != features.shape[0]:
        raise ValueError(f"features must be (C, h, w) and weights (K, C) with the same C, "
                         f"got {features.shape} and {weights.shape}")
    if not 0 <= cls < weights.shape[0]:
        raise ValueError(f"class {cls} out of range 0..{weights.shape[0] - 1}")
    return np.tensordot(weights[cls], features, axes=1)


# --------------------------------------------------------------------------------------------
# The input that maximises a channel (chapter 10)
# --------------------------------------------------------------------------------------------


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def maximise(objective, count: int, size: int = 64, steps: int = 40, lr: float = 0.05,
             jitter: int = 2, blur_every: int = 4, sigma: float = 0.5, seed: int = 0,
             preprocess=None) -> np.ndarray:
    """Gradient ascent on a batch of ``count`` images (in [0, 1]) that maximises ``objective``.

    Regularised as in Olah et al. (2017), kept small: a random shift of up to ``jitter``
    pixels before every step, a Gaussian blur every ``blur_every`` steps, values clipped to
    [0, 1].  The images start as gray plus a little seeded noise.

    Args:
        objective: maps the (count, 3, size, size) batch (after ``preprocess``) to (count,)
            scores, one per image; their sum is maximised (so each image its own score).
        preprocess: applied to the [0, 1] images first (e.g. the network's input
            normalisation); default identity.

    Returns:
        (count, size, size, 3) float images in [0, 1].

    Taught in chapter 10.
    """
    generator = torch.Generator().manual_seed(seed)
    x = (0.5 + 0.02 * torch.randn(count, 3, size, size, generator=generator)).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    prep = preprocess if preprocess is not None else (lambda t: t)
    for step in range(steps):
        dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
        scores = objective(prep(torch.roll(x, shifts=(dy, dx), dims=(2, 3))))
        if scores.shape != (count,):
            raise ValueError(f"objective must return one score per image, shape ({count},), got {tuple(scores.shape)}")
        optimizer.zero_grad()
        (-scores.sum()).backward()
        optimizer.step()
        with torch.no_grad():
            if blur_every and (step + 1) % blur_every == 0:
                x.copy_(_blur(x, sigma))
            x.clamp_(0, 1)
    return x.detach().permute(0, 2, 3, 1).numpy()


def maximise_channel(layers: torch.nn.Module, channel: int | Sequence[int], size: int = 64,
                     **options) -> np.ndarray:
    """The image that maximises the mean activation of ``channel`` at the output of ``layers``
    (a module mapping (B, 3, size, size) to (B, C', h, w)); see :func:`maximise` for the
    regularisation and ``options`` (steps, lr, jitter, blur_every, sigma, seed, preprocess).
    A list of channels is optimised in one batch, one image per channel.

    Returns:
        (size, size, 3) float image in [0, 1], or (len(channel), size, size, 3) for a list.
    """
    channels = [int(channel)] if np.ndim(channel) == 0 else [int(c) for c in channel]
    index = torch.arange(len(channels))
    images = maximise(lambda x: layers(x)[index, channels].mean(dim=(1, 2)), len(channels), size, **options)
    return images[0] if np.ndim(channel) == 0 else images

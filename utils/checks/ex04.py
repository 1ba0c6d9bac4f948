"""Exercise set 04 (filters and feature maps): edge_filters, feature_maps, multichannel_conv."""
from __future__ import annotations

from typing import Callable

import numpy as np

import utils.functional as F

from .rules import require_from_scratch
from .engine import learner_check, Case, CheckFailed, Suspect, _as_array, _call, _exceeds, _ints, _rng, passed, verify
from .convolution import _conv_suspects, _reference_conv_view

#: The functions of this exercise set (they may call each other).
SET_FUNCTIONS = ('edge_filters', 'feature_maps', 'multichannel_conv')



def _edge_images(size: int = 8, at: int | None = None, low: float = 0.0, high: float = 1.0) -> dict[str, np.ndarray]:
    """Synthetic (1, 1, size, size) images: dark left/bright right, dark top/bright bottom, flat.

    The edge lies between pixels ``at - 1`` and ``at`` (default ``size // 2``); dark is ``low``, bright ``high``."""
    at = size // 2 if at is None else at
    ramp = np.where(np.arange(size) >= at, high, low).astype(np.float64)
    return {"vertical edge (dark left, bright right)": np.tile(ramp, (size, 1))[None, None],
            "horizontal edge (dark top, bright bottom)": np.tile(ramp[:, None], (1, size))[None, None],
            "flat grey image": np.full((1, 1, size, size), (low + high) / 2)}


@learner_check
def check_edge_filters(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn() -> (2, 1, 3, 3)`` filters: 0 detects vertical edges, 1 horizontal ones (dark to bright > 0).

    The bank is tried on an 8x8 edge image of each direction and a flat one; ``hidden=True`` adds a
    second set (13x13, the edge off-centre, a weak edge 0.2 -> 0.45 on a grey background).
    Used first in exercise set ex04."""
    bank = _as_array(_call(fn, Case("no arguments", ()), "edge_filters", ()), "edge_filters")
    if bank.shape != (2, 1, 3, 3):
        raise CheckFailed(f"✗ edge_filters returned shape {bank.shape}; a filter bank for conv2d has shape "
                          f"(C_out, C_in, kH, kW) = (2, 1, 3, 3).")
    if not np.all(np.isfinite(bank)):
        raise CheckFailed("✗ edge_filters returned NaN or infinite weights; every weight must be a finite number.")
    image_sets = [_edge_images()] + ([_edge_images(13, at=4, low=0.2, high=0.45)] if hidden else [])
    for images in image_sets:
        _check_edge_bank(bank, images)
    passed("edge_filters: filter 0 finds vertical edges, filter 1 horizontal ones, flat regions give 0")


def _check_edge_bank(bank: np.ndarray, images: dict[str, np.ndarray]) -> None:
    """Raise :class:`CheckFailed` unless ``bank`` finds the edges of ``images`` (see :func:`_edge_images`)."""
    maps = {name: F.conv2d(image, bank.astype(np.float64))[0] for name, image in images.items()}
    vertical, horizontal, flat = maps.values()
    scale = max(np.ptp(image) for image in images.values())       # the edge's contrast
    if _exceeds(np.abs(flat).max(), 1e-6):
        raise CheckFailed("✗ your filters respond to a flat grey image: an edge detector's weights must sum "
                          "to zero, so that a constant region gives 0.")
    detectors = [("filter 0", "vertical", vertical[0], horizontal[0]),
                 ("filter 1", "horizontal", horizontal[1], vertical[1])]
    for label, kind, on_edge, off_edge in detectors:
        strongest, leak = on_edge.max() / scale, np.abs(off_edge).max() / scale
        if not _exceeds(strongest, 1e-6) and on_edge.min() < -1e-6:
            raise CheckFailed(f"✗ {label} responds negatively to a {kind} dark-to-bright edge: flip its sign "
                              f"(remember conv2d does not flip the kernel, so the positive weights go on the "
                              f"bright side).")
        if _exceeds(leak, 1e-6) and not _exceeds(strongest, 1e-6):
            raise CheckFailed(f"✗ {label} responds to the other edge direction but not to {kind} edges: are "
                              f"filters 0 and 1 swapped, or is the kernel transposed?")
        if not _exceeds(strongest, 1e-6):
            raise CheckFailed(f"✗ {label} does not respond to a {kind} edge.")
        if _exceeds(leak, 0.1 * strongest):
            raise CheckFailed(f"✗ {label} also responds to edges of the other direction; a {kind}-edge "
                              f"detector should give 0 there (make each row/column of weights symmetric "
                              f"along the edge).")


@learner_check
def check_feature_maps(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(image, filters) -> (F, H - kH + 1, W - kW + 1)``: one feature map per filter.

    image (H, W), filters (F, kH, kW); stride 1, no padding, cross-correlation.
    Used first in exercise set ex04.
    """
    require_from_scratch(fn, "feature_maps", SET_FUNCTIONS)
    rng = _rng(8)
    cases = [Case("one filter", (np.arange(12.0).reshape(3, 4), np.array([[[1.0, 2.0], [0.0, -1.0]]]))),
             Case("three 2x2 filters", (_ints(rng, 4, 5), _ints(rng, 3, 2, 2))),
             Case("two 3x3 filters", (_ints(rng, 5, 6), _ints(rng, 2, 3, 3)))]
    if hidden:
        cases.append(Case("random real values", (rng.normal(size=(10, 9)), rng.normal(size=(4, 3, 2)))))
    to_nchw = lambda image, filters: (image[None, None], filters[:, None], None, {})
    view = lambda out: out[0]
    suspects = _conv_suspects(view, to_nchw) + [
        Suspect("feature maps stacked last: return (F, H_out, W_out), one map per filter along axis 0.",
                lambda im, fs: _reference_conv_view(to_nchw, lambda o: o[0].transpose(1, 2, 0))(im, fs)),
        Suspect("only the first filter used: loop over all filters.",
                lambda im, fs: _reference_conv_view(to_nchw, lambda o: o[0, :1])(im, fs))]
    verify(fn, "feature_maps", ("image", "filters"), cases, _reference_conv_view(to_nchw, view), suspects,
           check_dtype=False)
    passed(f"feature_maps returns one correct map per filter on {len(cases)} inputs")


@learner_check
def check_multichannel_conv(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(x, weight, bias) -> (C_out, H_out, W_out)`` for one image x (C_in, H, W).

    weight (C_out, C_in, kH, kW), bias (C_out,); stride 1, no padding.
    Used first in exercise set ex04.
    """
    require_from_scratch(fn, "multichannel_conv", SET_FUNCTIONS)
    rng = _rng(9)
    cases = [Case("two channels, one filter", (_ints(rng, 2, 3, 3), _ints(rng, 1, 2, 2, 2), np.array([1.0]))),
             Case("three channels, two filters", (_ints(rng, 3, 4, 5), _ints(rng, 2, 3, 2, 2), np.array([2.0, 3.0]))),
             Case("two channels, three 3x3 filters", (_ints(rng, 2, 5, 4), _ints(rng, 3, 2, 3, 3),
                                                      np.array([1.0, -2.0, 3.0])))]
    if hidden:
        cases.append(Case("random real values", (rng.normal(size=(4, 8, 7)), rng.normal(size=(5, 4, 3, 2)),
                                                 rng.normal(size=5))))
    to_nchw = lambda x, weight, bias: (x[None], weight, bias, {})
    view = lambda out: out[0]
    suspects = _conv_suspects(view, to_nchw) + [
        Suspect("channels not summed: every filter sees all input channels and adds their products "
                "into *one* map.", lambda x, w, b: (w.shape[0] * w.shape[1],) + view(
                    F.conv2d(x[None], w, None)).shape[1:])]
    verify(fn, "multichannel_conv", ("x", "weight", "bias"), cases, _reference_conv_view(to_nchw, view), suspects,
           check_dtype=False)
    passed(f"multichannel_conv sums over input channels and adds each filter's bias on {len(cases)} inputs")

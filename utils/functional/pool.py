"""Pooling in NumPy with the semantics of ``torch.nn.functional`` (max, average, adaptive average).

Shapes (NCHW like PyTorch): ``input`` (N, C, H, W) or unbatched (C, H, W) -> output
(N, C, H_out, W_out) (or unbatched).  Pooling works on each channel plane separately; a window of
``kernel_size`` moves by ``stride`` (default: ``kernel_size``, so windows tile the plane).

``H_out = floor((H + 2*padding - dilation*(kH - 1) - 1) / stride) + 1`` (``ceil`` instead of
``floor`` with ``ceil_mode=True``, where a last window must still start inside the input or its
left/top padding).  Padding counts as ``-inf`` for max pooling and as 0 for average pooling.
"""
from __future__ import annotations

import numpy as np

from ._max_search import (max_and_indices_separable, max_pool2d_backward_pairs,
                          max_pool2d_backward_separable, scatter_to_indices, tiles_in_pairs)
from .validate import batched, batched_grad, non_negative_pair, positive_pair, unbatch
from ._windows import (WindowGeometry, add_windows, crop_nchw, output_length, pad_nchw,
                       window_view)

__all__ = ["max_pool2d", "avg_pool2d", "max_pool2d_backward", "avg_pool2d_backward",
           "adaptive_avg_pool2d"]


# ----------------------------------------------------------------------------- geometry

def pool_output_length(size: int, kernel: int, stride: int, padding: int, dilation: int,
                       ceil_mode: bool, axis: str = "size") -> int:
    """Output length of one spatial axis of a pooling layer (PyTorch's rule, incl. ceil_mode).

    Used first in chapter 06.
    """
    if not ceil_mode:
        return output_length(size, kernel, stride, 2 * padding, dilation, axis)
    span = dilation * (kernel - 1) + 1
    length = -((size + 2 * padding - span) // -stride) + 1     # ceil division
    if (length - 1) * stride >= size + padding:   # last window would start in the right padding
        length -= 1
    if length < 1:
        raise ValueError(f"kernel {axis} {kernel} (dilation {dilation}) does not fit in the input "
                         f"{axis} {size} with padding {padding}: output {axis} would be {length}")
    return length


def pool_geometry(input_hw: tuple[int, int], kernel_size, stride, padding, dilation,
                  ceil_mode: bool) -> WindowGeometry:
    """Validate pooling arguments and compute where the windows sit.

    The returned bottom/right padding includes the extra rows/columns that ``ceil_mode`` windows
    hang over the padded input, so every window can be read from one padded array.

    Used first in chapter 06.
    """
    kernel = positive_pair(kernel_size, "kernel_size")
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    stride = kernel if no_stride else positive_pair(stride, "stride")
    padding, dilation = non_negative_pair(padding, "padding"), positive_pair(dilation, "dilation")
    pads, out_hw = [], []
    for size, k, s, p, d, axis in zip(input_hw, kernel, stride, padding, dilation, ("height", "width")):
        if p > k // 2:   # PyTorch's rule; it ignores dilation here
            raise ValueError(f"padding {p} must be at most half of the kernel {axis} "
                             f"(kernel_size {k}, so padding <= {k // 2})")
        length = pool_output_length(size, k, s, p, d, ceil_mode, axis)
        overhang = max(0, (length - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
        pads.append((p, p + overhang))
        out_hw.append(length)
    return WindowGeometry(kernel, stride, dilation, pads[0], pads[1], tuple(out_hw))


def _pool_windows(x: np.ndarray, geo: WindowGeometry, fill: float) -> np.ndarray:
    """(N, C, H, W) -> window view (N, C, kH, kW, H_out, W_out) of the input padded with ``fill``."""
    return window_view(pad_nchw(x, geo.pad_h, geo.pad_w, fill), geo)


# ----------------------------------------------------------------------------- max pooling

def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Maximum of every window, per channel; same contract as ``F.max_pool2d``.

    Inputs:
    - input: (N, C, H, W) or unbatched (C, H, W), float32 or float64
    - kernel_size: int or (kH, kW); stride: int, pair or None (= kernel_size)
    - padding: int or pair, at most kernel_size // 2 (padding counts as -inf)
    - dilation: int or pair, spacing between window taps; ceil_mode: see the module docstring
    - return_indices: also return where each maximum came from
    Returns: output (N, C, H_out, W_out) (unbatched for an unbatched input), and with
    ``return_indices`` also int64 indices of the same shape: ``h * W + w`` of the maximum in its
    (unpadded) H x W input plane, as PyTorch's.  Ties go to the first maximum in row-major order.

    Taught in chapter 06.
    """
    x, was_unbatched = batched(input)
    geo = pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    padded = pad_nchw(x, geo.pad_h, geo.pad_w, -np.inf)
    if not return_indices:
        return unbatch(_window_max(window_view(padded, geo)), was_unbatched)
    top, left = _window_origins(geo)
    found = max_and_indices_separable(padded, geo, top[:, None] * x.shape[3] + left[None, :],
                                      x.shape[3])
    if found is None:                  # a NaN or a window of -inf only: PyTorch's literal scan
        found = _max_and_indices(window_view(padded, geo), geo, x.shape[3])
    return unbatch(found[0], was_unbatched), unbatch(found[1], was_unbatched)


def _max_and_indices(windows: np.ndarray, geo: WindowGeometry, width: int):
    """Windows (N, C, kH, kW, H_out, W_out) -> (max, flat input index of the max), (N, C, H_out, W_out).

    Like PyTorch, a window with nothing above -inf (only padding, or -inf inputs) reports the
    first of its taps that lies at or below/right of the input's top-left corner.
    """
    kw = windows.shape[3]
    output, tap = _running_max(windows)
    top, left = _window_origins(geo)
    rows = top[:, None] + (tap // kw) * geo.dilation[0]
    cols = left[None, :] + (tap % kw) * geo.dilation[1]
    first_row, first_col = (_first_tap_inside(start, d) for start, d in zip((top, left), geo.dilation))
    empty = output == -np.inf
    if empty.any():                                # rare: skip two full passes when there is none
        rows = np.where(empty, first_row[:, None], rows)
        cols = np.where(empty, first_col[None, :], cols)
    return output, (rows * width + cols).astype(np.int64)


def _window_max(windows: np.ndarray) -> np.ndarray:
    """Windows (N, C, kH, kW, H_out, W_out) -> their maxima (N, C, H_out, W_out), NaN propagating.

    One in-place ``np.maximum`` per tap: much faster than reducing over the two small, strided
    kernel axes, and no bookkeeping of where the maximum was (see :func:`_running_max`).
    """
    best = windows[:, :, 0, 0].copy()
    for i, j in list(np.ndindex(*windows.shape[2:4]))[1:]:
        np.maximum(best, windows[:, :, i, j], out=best)
    return best


def _running_max(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows (N, C, kH, kW, H_out, W_out) -> (max, tap index i * kW + j of the max), (N, C, H_out, W_out).

    Scans the taps in row-major order as PyTorch's kernel does: a tap takes over when it is larger
    (so ties keep the first) or NaN (so NaN propagates).  One vectorised step per tap, into
    preallocated arrays (no masked copies or boolean indexing); the NaN test only when there is one.
    (Between equal values +0.0 and -0.0 the returned zero's sign may differ from PyTorch's.)
    """
    kw = windows.shape[3]
    best = windows[:, :, 0, 0].copy()
    best_tap = np.zeros(best.shape, dtype=np.int32)
    takes_over = np.empty(best.shape, dtype=bool)
    tap_or_zero = np.empty(best.shape, dtype=np.int32)
    has_nan = bool(np.isnan(_window_max(windows)).any())      # a window holds a NaN iff its max is NaN
    for tap in range(1, windows.shape[2] * kw):
        values = windows[:, :, tap // kw, tap % kw]
        np.greater(values, best, out=takes_over)
        if has_nan:
            takes_over |= np.isnan(values)
        np.maximum(best, values, out=best)     # = values where it takes over (NaN propagates); a masked copy is 8x slower
        # taps come in increasing order, so "tap where it takes over" is a running maximum
        np.multiply(takes_over, tap, out=tap_or_zero)
        np.maximum(best_tap, tap_or_zero, out=best_tap)
    return best, best_tap.astype(np.int64)


def _window_origins(geo: WindowGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Input coordinates (may be negative, in the padding) of the windows' first row and column."""
    return tuple(np.arange(length) * s - pad
                 for length, s, pad in zip(geo.out_hw, geo.stride, (geo.pad_h[0], geo.pad_w[0])))


def _first_tap_inside(start: np.ndarray, dilation: int) -> np.ndarray:
    """First coordinate ``start + m * dilation`` (m >= 0) that is >= 0."""
    steps = -(np.minimum(start, 0) // dilation)             # ceil(-start / dilation) for start < 0
    return start + steps * dilation


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, indices=None):
    """Gradient of :func:`max_pool2d` with respect to its input.

    Inputs: ``grad_output`` (N, C, H_out, W_out) (unbatched if input is), then the arguments given
    to :func:`max_pool2d`; optionally ``indices``, the integer array (grad_output's shape) that
    ``max_pool2d(..., return_indices=True)`` returned with the same arguments.  Returns grad_input
    with the input's shape: each output's gradient goes to the one input pixel that was the maximum
    of its window (summed where windows overlap); on a tie, to the first maximum in row-major
    order, as PyTorch.  Taught in chapter 06.

    With ``indices`` (as PyTorch's backward, which reuses the positions its forward saved) the
    gradient is scattered to those positions without looking at the input's values
    (:func:`~utils.functional._max_search.scatter_to_indices`).  Without, the fast path finds each
    window's maximum again in two passes, along rows then along columns
    (:func:`~utils.functional._max_search.max_pool2d_backward_separable`); windows with a NaN or
    nothing above -inf, and non-finite gradients, take the reference path
    (:func:`_max_pool2d_backward_scatter`), which follows PyTorch's scan literally.
    """
    x, was_unbatched = batched(input)
    geo = pool_geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    grad = batched_grad(grad_output, x, x.shape[1:2] + geo.out_hw, was_unbatched)
    if indices is not None:
        positions = _checked_indices(indices, grad_output.shape)
        positions = positions[np.newaxis] if was_unbatched else positions
        return unbatch(scatter_to_indices(grad, positions, x.shape), was_unbatched)
    padded = pad_nchw(x, geo.pad_h, geo.pad_w, -np.inf)
    grad_input = None
    if np.isfinite(np.sum(grad)):     # any inf or NaN makes the sum non-finite
        if tiles_in_pairs(x, padded, geo):
            grad_input = max_pool2d_backward_pairs(np.ascontiguousarray(grad), padded, geo)
        else:
            grad_input = max_pool2d_backward_separable(grad, padded, geo)
    if grad_input is None:            # a NaN or an empty window, or a non-finite gradient
        grad_input = _max_pool2d_backward_scatter(grad, x, window_view(padded, geo), geo)
    return unbatch(grad_input, was_unbatched)


def _checked_indices(indices, expected_shape: tuple) -> np.ndarray:
    """``indices`` of max_pool2d_backward: an integer array of grad_output's shape (the values are
    checked while they are scattered)."""
    if not isinstance(indices, np.ndarray) or not np.issubdtype(indices.dtype, np.integer):
        kind = indices.dtype if isinstance(indices, np.ndarray) else type(indices).__name__
        raise ValueError(f"indices must be the integer array max_pool2d(..., return_indices=True) "
                         f"returned, got {kind}")
    if indices.shape != tuple(expected_shape):
        raise ValueError(f"indices must have grad_output's shape {tuple(expected_shape)}, "
                         f"got {indices.shape}: pass the indices of the same max_pool2d call")
    return indices


def _max_pool2d_backward_scatter(grad: np.ndarray, x: np.ndarray, windows: np.ndarray,
                                 geo: WindowGeometry) -> np.ndarray:
    """Reference backward: PyTorch's argmax scan, then one ``np.bincount`` scatter of the gradients.

    Readable and exact in every case (NaN windows credit their last NaN, a window of -inf
    credits its first tap inside the input), but 10-30x slower than PyTorch on a CNN's map.
    """
    _, indices = _max_and_indices(windows, geo, x.shape[3])
    n, c, height, width = x.shape
    plane_start = (np.arange(n * c) * height * width).reshape(n, c, 1, 1)
    # A window that saw only padding has no input pixel to credit (torch writes out of bounds).
    inside = (indices >= 0) & (indices < height * width)
    targets, weights = indices + plane_start, grad
    if not inside.all():                           # boolean indexing is slow: only when needed
        targets, weights = targets[inside], grad[inside]
    flat = np.bincount(targets.ravel(), weights=weights.ravel(), minlength=n * c * height * width)
    return flat.reshape(x.shape).astype(x.dtype)


# ----------------------------------------------------------------------------- average pooling

def _avg_divisors(input_hw: tuple[int, int], geo: WindowGeometry, count_include_pad: bool) -> np.ndarray:
    """(H_out, W_out) number of values each window averages, PyTorch's rule.

    A window is clipped to the padded input (``ceil_mode`` windows may hang over it); with
    ``count_include_pad=False`` it is clipped to the input itself.
    """
    counts = []
    for size, k, s, pad, length in zip(input_hw, geo.kernel, geo.stride, (geo.pad_h[0], geo.pad_w[0]),
                                       geo.out_hw):
        start = np.arange(length) * s - pad                 # in input coordinates
        end = np.minimum(start + k, size + pad)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        counts.append(end - start)
    return np.outer(counts[0], counts[1])


def _window_sums(windows: np.ndarray) -> np.ndarray:
    """Windows (N, C, kH, kW, H_out, W_out) -> their sums (N, C, H_out, W_out).

    Added tap by tap: one vectorised add per tap is much faster than reducing over the two
    small, strided kernel axes.
    """
    taps = list(np.ndindex(*windows.shape[2:4]))
    sums = windows[:, :, 0, 0].copy()
    for i, j in taps[1:]:
        sums += windows[:, :, i, j]
    return sums


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean of every window, per channel; same contract as ``F.avg_pool2d``.

    Inputs:
    - input: (N, C, H, W) or unbatched (C, H, W), float32 or float64
    - kernel_size: int or (kH, kW); stride: int, pair or None (= kernel_size)
    - padding: int or pair, at most kernel_size // 2 (zeros)
    - ceil_mode: see the module docstring
    - count_include_pad: whether padded zeros count in the mean's denominator
    Returns: (N, C, H_out, W_out), or unbatched for an unbatched input; the input's dtype.

    Taught in chapter 06.
    """
    x, was_unbatched = batched(input)
    geo = pool_geometry(x.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    sums = _window_sums(_pool_windows(x, geo, 0.0))
    output = sums / _avg_divisors(x.shape[2:], geo, count_include_pad).astype(x.dtype)
    return unbatch(output, was_unbatched)


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True):
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Inputs: ``grad_output`` (N, C, H_out, W_out) (unbatched if input is), then the arguments given
    to :func:`avg_pool2d`.  Returns grad_input with the input's shape: each output's gradient is
    shared equally (divided by the window's divisor) among the pixels of its window.

    No chapter calls it: exercise set 06's checks use it to recognise a max-pooling backward that
    spreads the gradient over the window as average pooling does.  Used first in exercise set ex06.
    """
    x, was_unbatched = batched(input)
    geo = pool_geometry(x.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    grad = batched_grad(grad_output, x, x.shape[1:2] + geo.out_hw, was_unbatched)
    shares = grad / _avg_divisors(x.shape[2:], geo, count_include_pad).astype(x.dtype)
    window_grads = np.broadcast_to(shares[:, :, None, None], shares.shape[:2] + geo.kernel + geo.out_hw)
    padded_hw = (x.shape[2] + sum(geo.pad_h), x.shape[3] + sum(geo.pad_w))
    grad_input = crop_nchw(add_windows(window_grads, padded_hw, geo), geo.pad_h, geo.pad_w)
    return unbatch(grad_input, was_unbatched)


# ----------------------------------------------------------------------------- adaptive pooling

def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size, whatever the input size; as ``F.adaptive_avg_pool2d``.

    Inputs:
    - input: (N, C, H, W) or unbatched (C, H, W), float32 or float64
    - output_size: int or (H_out, W_out); an entry None keeps that input size.  ``1`` is *global*
      average pooling: one mean per channel.
    Returns: (N, C, H_out, W_out) (unbatched for an unbatched input).  Output row ``i`` averages
    input rows ``floor(i * H / H_out)`` to ``ceil((i + 1) * H / H_out)`` (exclusive), PyTorch's
    rule, so windows may overlap when H is not a multiple of H_out.

    Taught in chapter 06.
    """
    x, was_unbatched = batched(input)
    out_h, out_w = _adaptive_output_size(output_size, x.shape[2:])
    rows_averaged = _adaptive_mean(x, out_h, axis=2)            # (N, C, H_out, W)
    return unbatch(_adaptive_mean(rows_averaged, out_w, axis=3), was_unbatched)


def _adaptive_output_size(output_size, input_hw: tuple[int, int]) -> tuple[int, int]:
    """int, pair, or pair with None entries (= keep that input size) -> (H_out, W_out), each >= 1."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(size if entry is None else entry
                            for entry, size in zip(output_size, input_hw))
    return positive_pair(output_size, "output_size")


def _adaptive_mean(x: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Average ``x`` along ``axis`` into ``length`` (possibly overlapping) bins, PyTorch's bounds."""
    size = x.shape[axis]
    starts = [i * size // length for i in range(length)]
    ends = [-((i + 1) * size // -length) for i in range(length)]   # ceil((i+1) * size / length)
    bins = [x.take(np.arange(start, end), axis=axis).mean(axis=axis, keepdims=True)
            for start, end in zip(starts, ends)]
    return np.concatenate(bins, axis=axis)

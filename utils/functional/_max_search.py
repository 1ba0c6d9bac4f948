"""Fast first-maximum searches of max pooling (private helpers of :mod:`.pool`).

PyTorch's max pooling credits each window's *first* maximum in row-major order.  Searching all
``kH * kW`` taps one by one costs several NumPy passes per tap, so these helpers search in two
steps instead: along each padded row (its ``kW`` column taps), then down each window (its ``kH``
row maxima).  The forward with indices (:func:`max_and_indices_separable`) and the backward
without indices (:func:`max_pool2d_backward_separable`, :func:`max_pool2d_backward_pairs`) use
them; :func:`scatter_to_indices` is the backward *with* the forward's indices, which needs no
search at all.  Shapes: NCHW, ``padded`` is the input padded with -inf (N, C, Hp, Wp).
"""
from __future__ import annotations

import sys

import numpy as np

from ._windows import WindowGeometry, crop_nchw

# The separable backward works on blocks of images of about this many bytes of input, so that its
# intermediate arrays stay small and in the CPU's cache.
POOL_BLOCK_BYTES = 1 << 18


def max_pool2d_backward_separable(grad: np.ndarray, padded: np.ndarray,
                                   geo: WindowGeometry) -> np.ndarray | None:
    """Fast backward on the -inf-padded input (N, C, Hp, Wp) -> grad_input (N, C, H, W), or None
    when a window holds a NaN or nothing above -inf (the caller then takes the reference path).

    PyTorch's choice, the first maximum of the window in row-major order, is found in two steps:
    for every padded row and output column, the first maximum among the row's ``kW`` taps
    (its value and its column tap); then, for every window, the first maximum among its ``kH``
    row maxima.  The row that wins holds the window's first maximum, and within that row the
    column tap found first.  Each step is ``kW`` (or ``kH``) strided NumPy passes over arrays of
    one axis's output size, instead of the ``kH * kW`` passes of a tap-by-tap search.  The
    gradient goes back the same two steps, each tap adding into a zeroed array (so taps of
    overlapping windows sum, and a negative gradient times "not chosen" gives +0.0, as torch).

    Used first in chapter 06.
    """
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    out_h, out_w = geo.out_hw
    n, c, hp, wp = padded.shape
    grad_padded = np.zeros(padded.shape, dtype=grad.dtype)
    step = max(1, POOL_BLOCK_BYTES // max(1, c * hp * wp * padded.itemsize))
    for start in range(0, n, step):
        images = slice(start, min(start + step, n))
        block = padded[images]
        # step 1, along each row: (nb, C, Hp, W_out) first maximum of the kW column taps
        row_max, col_tap = _first_max([_lattice(block, (0, j * dw), (1, sw), (hp, out_w))
                                       for j in range(kw)])
        # step 2, down each window's kH row maxima: (nb, C, H_out, W_out)
        window_max, row_tap = _first_max([_lattice(row_max, (i * dh, 0), (sh, 1), (out_h, out_w))
                                          for i in range(kh)])
        if not (window_max > -np.inf).all():      # NaN > -inf and -inf > -inf are both False
            return None
        grad_rows = np.zeros(row_max.shape, dtype=grad.dtype)      # (nb, C, Hp, W_out)
        _route(grad[images], row_tap, [_lattice(grad_rows, (i * dh, 0), (sh, 1), (out_h, out_w))
                                       for i in range(kh)])
        _route(grad_rows, col_tap, [_lattice(grad_padded[images], (0, j * dw), (1, sw), (hp, out_w))
                                    for j in range(kw)])
    return crop_nchw(grad_padded, geo.pad_h, geo.pad_w)


def tiles_in_pairs(x: np.ndarray, padded: np.ndarray, geo: WindowGeometry) -> bool:
    """2x2 windows, stride 2, that tile the padded float32 plane exactly (CNNs' usual pooling).

    Used first in chapter 06.
    """
    return (geo.kernel == geo.stride == (2, 2) and geo.dilation == (1, 1)
            and x.dtype == np.float32 and sys.byteorder == "little"
            and padded.shape[2:] == (2 * geo.out_hw[0], 2 * geo.out_hw[1]))


def max_pool2d_backward_pairs(grad: np.ndarray, padded: np.ndarray,
                               geo: WindowGeometry) -> np.ndarray | None:
    """2x2/stride-2 backward -> grad_input, or None if a pair of neighbours holds a NaN, or
    only infinities (the caller then takes the reference path).

    The same two steps as :func:`max_pool2d_backward_separable`, with two tricks that save
    NumPy passes: a choice between two values is one comparison (no running index), and the
    gradient is placed without arithmetic (so it stays exact and +0.0 where nothing arrives):
    down the rows with a bit mask (``grad & 0xFFFFFFFF`` or ``& 0``), and along the row by viewing
    each pair of horizontal neighbours as one 64-bit integer and shifting the gradient's 32 bits
    into its low half (left pixel) or high half (right pixel, on a little-endian CPU).

    Used first in chapter 06.
    """
    n, c, hp, wp = padded.shape
    grad_padded = np.empty(padded.shape, dtype=np.float32)
    step = max(1, POOL_BLOCK_BYTES // max(1, c * hp * wp * 4))
    for start in range(0, n, step):
        images = slice(start, min(start + step, n))
        block = padded[images]
        left, right = block[..., 0::2], block[..., 1::2]                   # (nb, C, Hp, W_out)
        right_wins = np.greater(right, left)                               # ties: the left pixel
        row_max = np.maximum(left, right)
        # min and max propagate NaN: both finite means no NaN and no +-inf pair maximum
        if row_max.size and not (np.isfinite(row_max.min()) and np.isfinite(row_max.max())):
            return None
        lower_wins = np.greater(row_max[:, :, 1::2], row_max[:, :, 0::2])  # (nb, C, H_out, W_out)
        mask = np.multiply(lower_wins, np.uint32(0xFFFFFFFF), dtype=np.uint32)
        grad_bits = grad[images].view(np.uint32)
        rows = np.empty(row_max.shape, dtype=np.uint32)                    # gradient per row max
        np.bitwise_and(grad_bits, mask, out=rows[:, :, 1::2])
        np.bitwise_and(grad_bits, np.invert(mask, out=mask), out=rows[:, :, 0::2])
        shift = np.left_shift(right_wins.view(np.uint8), 5)                # 0 or 32 bits
        np.left_shift(rows, shift, out=grad_padded[images].view(np.uint64), dtype=np.uint64)
    return crop_nchw(grad_padded, geo.pad_h, geo.pad_w)


def _first_max(taps: list) -> tuple[np.ndarray, np.ndarray | None]:
    """Running maximum over same-shaped views in order -> (max, index of the first maximum).

    A later tap takes over only when strictly larger, so ties keep the first (PyTorch's rule);
    the index is uint8 (None for a single tap)."""
    if len(taps) == 1:
        return taps[0].copy(), None
    index = np.empty(taps[0].shape, dtype=np.uint8)
    np.greater(taps[1], taps[0], out=index.view(np.bool_))
    best = np.maximum(taps[0], taps[1])
    takes_over = np.empty(best.shape, dtype=bool) if len(taps) > 2 else None
    for t, values in enumerate(taps[2:], start=2):
        np.greater(values, best, out=takes_over)
        np.maximum(best, values, out=best)
        # taps come in increasing order: "t where it takes over" is a running maximum
        np.maximum(index, np.multiply(takes_over, t, dtype=np.uint8), out=index)
    return best, index


def _route(grad: np.ndarray, index: np.ndarray | None, targets: list) -> None:
    """Add ``grad`` into ``targets[t]`` where ``index == t`` (into ``targets[0]`` if index is None)."""
    if index is None:
        np.add(targets[0], grad, out=targets[0])
        return
    chosen = np.empty(grad.shape, dtype=bool)
    share = np.empty_like(grad)
    for t, target in enumerate(targets):
        np.equal(index, t, out=chosen)
        np.multiply(grad, chosen, out=share)       # exact: the gradient is finite here
        np.add(target, share, out=target)


def _lattice(padded: np.ndarray, start: tuple[int, int], stride: tuple[int, int],
             size: tuple[int, int]) -> np.ndarray:
    """Writable view of ``padded[:, :, start_h + stride_h * r, start_w + stride_w * c]``, r, c < size."""
    (a, b), (sh, sw), (rows, cols) = start, stride, size
    return padded[:, :, a:a + sh * (rows - 1) + 1:sh, b:b + sw * (cols - 1) + 1:sw]




def max_and_indices_separable(padded: np.ndarray, geo: WindowGeometry, origins: np.ndarray,
                              width: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Forward with indices: -inf-padded input (N, C, Hp, Wp) -> (max, int64 flat index ``h * W + w``
    of the first maximum in the unpadded plane), both (N, C, H_out, W_out); or None when a window
    holds a NaN or nothing above -inf (the caller then scans tap by tap, PyTorch's literal rule).

    ``origins`` (H_out, W_out) int64 is ``top * W + left`` of every window's first tap.  Step 1 finds,
    for every padded row and output column, the first maximum of the ``kW`` column taps and its
    tap ``j``; step 2 runs down the ``kH`` row maxima keeping the code ``i * kW + j`` of the first
    maximum: a later row takes over only when strictly larger, and its codes are all above the
    earlier rows', so (as in :func:`_first_max`) the code is a running maximum of ``takes_over * code``.

    Used first in chapter 06.
    """
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    out_h, out_w = geo.out_hw
    n, c, hp, wp = padded.shape
    code_type = np.min_scalar_type(kh * kw - 1)
    if code_type.kind != "u" or code_type.itemsize > 2:      # kernels of over 65536 taps
        return None
    output = np.empty((n, c, out_h, out_w), dtype=padded.dtype)
    codes = np.empty(output.shape, dtype=code_type)
    step = max(1, POOL_BLOCK_BYTES // max(1, c * hp * wp * padded.itemsize))
    for start in range(0, n, step):
        images = slice(start, min(start + step, n))
        row_max, col_tap = _first_max([_lattice(padded[images], (0, j * dw), (1, sw), (hp, out_w))
                                       for j in range(kw)])                # (nb, C, Hp, W_out)
        best, code = output[images], codes[images]
        rows = [_lattice(row_max, (i * dh, 0), (sh, 1), (out_h, out_w)) for i in range(kh)]
        cols = [None if col_tap is None else _lattice(col_tap, (i * dh, 0), (sh, 1), (out_h, out_w))
                for i in range(kh)]
        np.copyto(best, rows[0])
        if cols[0] is None:
            code.fill(0)
        else:
            np.copyto(code, cols[0], casting="unsafe")
        takes_over = np.empty(best.shape, dtype=bool)
        row_code = np.empty(best.shape, dtype=code_type)
        for i in range(1, kh):
            np.greater(rows[i], best, out=takes_over)
            np.maximum(best, rows[i], out=best)
            if cols[i] is None:
                row_code.fill(i * kw)
            else:
                np.add(cols[i], i * kw, out=row_code, casting="unsafe")
            np.multiply(row_code, takes_over, out=row_code)
            np.maximum(code, row_code, out=code)
        if best.size and not best.min() > -np.inf:    # a NaN (min propagates it), or -inf only
            return None
    taps = np.arange(kh * kw)
    offsets = (taps // kw) * dh * width + (taps % kw) * dw                 # code -> flat offset
    indices = np.take(offsets.astype(np.int64), codes)
    indices += origins
    return output, indices


def scatter_to_indices(grad: np.ndarray, indices: np.ndarray, input_shape: tuple) -> np.ndarray:
    """Backward with the forward's indices: grad (N, C, H_out, W_out) -> grad_input ``input_shape``
    (N, C, H, W), each output's gradient added at its flat position ``indices`` in its (H, W) plane.

    No search: ``np.add.at`` into a zeroed array (NumPy >= 1.25 has a fast path for it, as fast
    here as a plain assignment, see benchmarks/README.md), which also sums the gradients of
    windows that share a pixel.  Blocks of about 32768 outputs keep the int64 positions in the
    whole array (plane offset + index) in the CPU's cache.  Indices at or past ``H * W`` (a window of
    padding only, whose PyTorch index lies outside the plane) credit nothing, as in the search
    path; a negative index raises ValueError.

    Used first in chapter 06.
    """
    n, c, height, width = input_shape
    plane = height * width
    plane_start = (np.arange(n * c, dtype=np.int64) * plane).reshape(n, c, 1, 1)
    grad_input = np.zeros(n * c * plane, dtype=grad.dtype)
    step = max(1, SCATTER_BLOCK // max(1, c * indices.shape[2] * indices.shape[3]))
    targets = np.empty((min(step, n),) + indices.shape[1:], dtype=np.int64)
    for start in range(0, n, step):
        images = slice(start, min(start + step, n))
        block, weights, positions = targets[:images.stop - start], grad[images], indices[images]
        if positions.size and positions.min() < 0:
            raise ValueError(f"indices must be flat positions h * W + w in the (H, W) = "
                             f"({height}, {width}) input plane, got {positions.min()}: "
                             "pass the indices of the same max_pool2d call")
        np.add(positions, plane_start[images], out=block, casting="unsafe")
        if positions.size and positions.max() >= plane:        # rare: boolean indexing is slow
            inside = positions < plane
            block, weights = block[inside], weights[inside]
        np.add.at(grad_input, block.ravel(), weights.ravel())
    return grad_input.reshape(input_shape)


# Outputs per np.add.at call of scatter_to_indices (256 KB of int64 positions).
SCATTER_BLOCK = 1 << 15

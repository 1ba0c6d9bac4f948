"""Sliding-window plumbing shared by convolution and pooling.

Both ops look at the same thing: for every output position ``(oh, ow)`` a ``kH x kW`` window of
a padded input, whose top-left corner is at ``(oh * stride_h, ow * stride_w)`` and whose taps are
``dilation`` apart.  This module builds those windows as a zero-copy strided *view*, and does the
reverse for backward passes: adds per-window gradients back onto the (padded) input.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class WindowGeometry(NamedTuple):
    """Where the windows of a conv/pool layer sit on one ``H x W`` input plane.

    ``pad_h = (top, bottom)`` and ``pad_w = (left, right)`` may differ (``padding='same'`` with an
    even kernel, pooling with ``ceil_mode``); ``out_hw`` is the output's ``(H_out, W_out)``.

    Used first in chapter 02.
    """
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad_h: tuple[int, int]
    pad_w: tuple[int, int]
    out_hw: tuple[int, int]


def output_length(size: int, kernel: int, stride: int, pad_total: int, dilation: int,
                  axis: str = "size") -> int:
    """Output length of one spatial axis; ValueError when the window does not fit even once.

    Used first in chapter 02.
    """
    span = dilation * (kernel - 1) + 1      # extent of a dilated kernel
    if span > size + pad_total:
        raise ValueError(f"kernel {axis} {kernel} (dilation {dilation}, so it spans {span}) is larger "
                         f"than the padded input {axis} {size} + {pad_total} padding = "
                         f"{size + pad_total}")
    return (size + pad_total - span) // stride + 1


def pad_nchw(x: np.ndarray, pad_h: tuple[int, int], pad_w: tuple[int, int],
             value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of ``x`` (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).

    Returns ``x`` itself (no copy) when there is nothing to pad.

    Used first in chapter 02.
    """
    if pad_h == (0, 0) and pad_w == (0, 0):
        return x
    n, c, h, w = x.shape
    padded = np.full((n, c, h + sum(pad_h), w + sum(pad_w)), value, dtype=x.dtype)
    padded[:, :, pad_h[0]:pad_h[0] + h, pad_w[0]:pad_w[0] + w] = x
    return padded


def block_windows(x: np.ndarray, geometry: "WindowGeometry", step: int):
    """Windows of ``step`` images of ``x`` (N, C, H, W) at a time, from one reused padded buffer.

    Returns ``windows(start)``: the read-only view (count, C, kH, kW, H_out, W_out) (see
    :func:`window_view`) of images ``start:start + step`` (fewer in a short last block).  With
    padding, the images are first copied into the interior of a (step, C, Hp, Wp) buffer whose zero
    border is written once: one copy of the block, in cache, instead of a padded copy of the whole
    batch (allocated, zeroed, and mostly out of cache again when the windows are read).  The
    returned view is valid until the next call.

    Used first in chapter 02.
    """
    n, c, h, w = x.shape
    pad_h, pad_w = geometry.pad_h, geometry.pad_w
    if pad_h == (0, 0) and pad_w == (0, 0):
        every = window_view(x, geometry)
        return lambda start: every[start:start + step]
    buffer = np.zeros((min(step, n), c, h + sum(pad_h), w + sum(pad_w)), dtype=x.dtype)
    interior = buffer[:, :, pad_h[0]:pad_h[0] + h, pad_w[0]:pad_w[0] + w]
    view = window_view(buffer, geometry)

    def windows(start: int) -> np.ndarray:
        images = x[start:start + step]
        np.copyto(interior[:images.shape[0]], images)
        return view[:images.shape[0]]
    return windows


def crop_nchw(padded: np.ndarray, pad_h: tuple[int, int], pad_w: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`pad_nchw`: (N, C, Hp, Wp) -> (N, C, Hp - top - bottom, Wp - left - right).

    Used first in chapter 03.
    """
    height, width = padded.shape[2:]
    return padded[:, :, pad_h[0]:height - pad_h[1], pad_w[0]:width - pad_w[1]]


def window_view(padded: np.ndarray, geometry: WindowGeometry) -> np.ndarray:
    """Read-only view (N, C, kH, kW, H_out, W_out) of the windows of ``padded`` (N, C, Hp, Wp).

    ``view[n, c, i, j, oh, ow] == padded[n, c, oh*sh + i*dh, ow*sw + j*dw]``.  Kernel axes come
    before output axes so that one ``ascontiguousarray`` copy yields the im2col matrix in the
    order a single matmul wants: rows ``(c, i, j)``, columns ``(oh, ow)``.

    Used first in chapter 02.
    """
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.stride, geometry.dilation
    n_stride, c_stride, h_stride, w_stride = padded.strides
    shape = padded.shape[:2] + (kh, kw) + tuple(geometry.out_hw)
    strides = (n_stride, c_stride, dh * h_stride, dw * w_stride, sh * h_stride, sw * w_stride)
    return np.lib.stride_tricks.as_strided(padded, shape, strides, writeable=False)


def add_windows(window_grads: np.ndarray, padded_hw: tuple[int, int],
                geometry: WindowGeometry, out: np.ndarray | None = None) -> np.ndarray:
    """Adjoint of :func:`window_view`: sum window gradients back onto the padded input.

    ``window_grads`` has shape (N, C, kH, kW, H_out, W_out); returns (N, C, Hp, Wp) where every
    input pixel receives the sum over all windows (and taps) that read it.  One vectorised add per
    kernel tap (kH*kW Python iterations), because overlapping windows make a single scatter ambiguous.
    ``out``: an (N, C, Hp, Wp) array to add into instead of a new zero array.

    Used first in chapter 03.
    """
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.stride, geometry.dilation
    out_h, out_w = geometry.out_hw
    n, c = window_grads.shape[:2]
    padded = np.zeros((n, c) + tuple(padded_hw), dtype=window_grads.dtype) if out is None else out
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh)
        for j in range(kw):
            cols = slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw)
            padded[:, :, rows, cols] += window_grads[:, :, i, j]
    return padded

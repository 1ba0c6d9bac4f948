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


def im2col_filler(x: np.ndarray, geometry: "WindowGeometry", groups: int, step: int):
    """How to copy the im2col columns of ``step`` images of ``x`` (N, C, H, W) at a time.

    Returns ``fill(start, target)``, which writes the windows of images ``start:start + count``
    into ``target`` (count, G, C/G, kH, kW, H_out, W_out), any view whose last two axes are
    contiguous: ``target[n, g, c, i, j, oh, ow] == padded[start + n, g*C/G + c, oh*sh + i*dh,
    ow*sw + j*dw]``, zeros where the window is over the padding.  Images are copied into one
    reused buffer whose zero border is written once (not a padded copy of the whole batch).

    Two ways, the same numbers:

    * stride 1 with ``W_out == W`` (a 'same' width): the buffer pads the planes only above and
      below, flattened, so tap (i, j)'s values for a whole image are *one* run of ``H_out * W``
      values (shifted by ``j*dw - left``); the ``|j*dw - left|`` values per row that wrap into the
      neighbouring row are then set to zero (one strided assignment per such column).  NumPy
      copies ``C*kH*kW`` long runs instead of ``C*kH*kW*H_out`` rows of ``W_out`` values, which
      on 32x32 maps cost more per row than the copying itself.
    * otherwise: the window view (:func:`window_view`) of a padded block, copied row by row.

    Used first in chapter 02.
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.stride, geometry.dilation
    (top, bottom), (left, right) = geometry.pad_h, geometry.pad_w
    out_h, out_w = geometry.out_hw
    step = min(step, n)
    split = (groups, c // groups)
    if (sh, sw) == (1, 1) and out_w == w and h * w > 0:
        guard = max(left, right)
        pitch = (h + top + bottom) * w + 2 * guard
        rows = np.zeros((step, c, pitch), dtype=x.dtype)
        interior = rows[:, :, guard + top * w:guard + (top + h) * w]
        s_n, s_c, s_x = rows.strides
        runs = np.lib.stride_tricks.as_strided(
            rows[:, :, guard - left:], (step,) + split + (kh, kw, out_h * w),
            (s_n, s_c * split[1], s_c, dh * w * s_x, dw * s_x, s_x), writeable=False)
        # columns of tap j that wrap into the row above (offset < 0) or below (offset > 0)
        wrapped = [(j, col) for j in range(kw) for offset in [j * dw - left]
                   for col in (range(min(-offset, w)) if offset < 0 else range(max(w - offset, 0), w))]

        def fill(start: int, target: np.ndarray) -> None:
            images = x[start:start + step]
            count = images.shape[0]
            np.copyto(interior[:count], images.reshape(count, c, h * w))
            np.copyto(np.reshape(target, target.shape[:5] + (out_h * w,), copy=False), runs[:count])
            for j, col in wrapped:
                target[:, :, :, :, j, :, col] = 0
        return fill
    if geometry.pad_h == (0, 0) and geometry.pad_w == (0, 0):
        every = window_view(x, geometry)
        return lambda start, target: np.copyto(
            target, every[start:start + step].reshape((-1,) + split + every.shape[2:]))
    buffer = np.zeros((step, c, h + top + bottom, w + left + right), dtype=x.dtype)
    interior = buffer[:, :, top:top + h, left:left + w]
    view = window_view(buffer, geometry)
    view = view.reshape((step,) + split + view.shape[2:])

    def fill(start: int, target: np.ndarray) -> None:
        images = x[start:start + step]
        np.copyto(interior[:images.shape[0]], images)
        np.copyto(target, view[:images.shape[0]])
    return fill


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

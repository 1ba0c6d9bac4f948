"""Stride-1 convolution backward on flattened padded planes ("wide" rows), for few input channels.

Flatten each zero-padded plane (Hp, Wp) into one row of ``Hp * Wp`` values.  For a stride-1
convolution, output pixel ``(oh, ow)`` reads tap ``(i, j)`` at flat position
``(oh + i*dh) * Wp + (ow + j*dw) = shift(i, j) + oh * Wp + ow``: the tap's values for a whole image
are *one contiguous run* of that row, starting at ``shift(i, j) = i*dh*Wp + j*dw``, if the output
is computed on "wide" rows of ``Wp`` pixels instead of ``W_out``.  The ``Wp - W_out`` extra pixels
per row are garbage (they wrap into the next row) and are cropped away.

Why: the im2col copy of the windows then moves runs of ``H_out * Wp`` values instead of
``C * kH * kW * H_out`` short rows of ``W_out`` values, and the backward pass adds the window
gradients back (col2im) with ``kH * kW`` long contiguous adds: NumPy's per-row overhead, which
dominated both on 32x32 maps, disappears.  The price is ``Wp / W_out`` times the matrix-product
work (6 % for a 3x3 kernel on a 32x32 map), so :mod:`conv` uses this path only where that is small.

Shapes, for a block of ``nb`` images: padded input rows (N, C, Hp * Wp + tail); columns
(C, kH, kW, nb, H_out * Wp), i.e. the im2col matrix (C*kH*kW, nb * H_out * Wp) with the block's
images side by side, so that one matrix product covers the block.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._windows import WindowGeometry


def padded_rows(x: np.ndarray, geo: WindowGeometry) -> tuple[np.ndarray, int]:
    """x (N, C, H, W) -> (zero-padded planes flattened to rows (N, C, Hp * Wp + tail), Wp).

    The tail of ``(kW - 1) * dW`` zeros lets the last tap's run of the last row stay in the array.

    Used first in chapter 03.
    """
    n, c, h, w = x.shape
    hp, wp = h + sum(geo.pad_h), w + sum(geo.pad_w)
    rows = np.zeros((n, c, hp * wp + _tail(geo)), dtype=x.dtype)
    planes = rows[:, :, :hp * wp].reshape(n, c, hp, wp)
    planes[:, :, geo.pad_h[0]:geo.pad_h[0] + h, geo.pad_w[0]:geo.pad_w[0] + w] = x
    return rows, wp


def crop_rows(rows: np.ndarray, x_shape: tuple, geo: WindowGeometry) -> np.ndarray:
    """Inverse of :func:`padded_rows`: rows (N, C, Hp * Wp + tail) -> a view (N, C, H, W).

    Used first in chapter 03.
    """
    n, c, h, w = x_shape
    hp, wp = h + sum(geo.pad_h), w + sum(geo.pad_w)
    planes = rows[:, :, :hp * wp].reshape(n, c, hp, wp)
    return planes[:, :, geo.pad_h[0]:geo.pad_h[0] + h, geo.pad_w[0]:geo.pad_w[0] + w]


def _tail(geo: WindowGeometry) -> int:
    return (geo.kernel[1] - 1) * geo.dilation[1]


def _shift(geo: WindowGeometry, wp: int, i: int, j: int) -> int:
    return i * geo.dilation[0] * wp + j * geo.dilation[1]


def tap_runs(rows: np.ndarray, start: int, count: int, geo: WindowGeometry, wp: int,
             i: int, j: int) -> np.ndarray:
    """View (C, count, H_out * Wp) of images ``start:start+count``: tap (i, j)'s run per plane.

    Used first in chapter 03.
    """
    length = geo.out_hw[0] * wp
    base = rows[start:start + count, :, _shift(geo, wp, i, j):]
    return as_strided(base, (rows.shape[1], count, length), (rows.strides[1], rows.strides[0],
                                                              rows.strides[2]))


def all_tap_runs(rows: np.ndarray, start: int, count: int, geo: WindowGeometry,
                 wp: int) -> np.ndarray:
    """Read-only view (C, kH, kW, count, H_out * Wp) of every tap's run: the wide im2col matrix.

    Used first in chapter 03.
    """
    (kh, kw), (dh, dw) = geo.kernel, geo.dilation
    s_n, s_c, s_x = rows.strides
    return as_strided(rows[start:], (rows.shape[1], kh, kw, count, geo.out_hw[0] * wp),
                      (s_c, dh * wp * s_x, dw * s_x, s_n, s_x), writeable=False)


def images_per_block(rows_k: int, geo: WindowGeometry, wp: int, n: int, itemsize: int,
                     block_bytes: int) -> int:
    """How many images' wide columns (rows_k x H_out * Wp each) fit in ``block_bytes`` (>= 1).

    Used first in chapter 03.
    """
    per_image = rows_k * geo.out_hw[0] * wp * itemsize
    return max(1, min(n, block_bytes // per_image))


def backward(grad: np.ndarray, x: np.ndarray, weight_matrix: np.ndarray, geo: WindowGeometry,
             block_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(grad_input (N, C_in, H, W), grad_weight (G, C_out/G, K/G)) for stride 1.

    The gradient is placed on wide rows with zeros in the ``Wp - W_out`` garbage columns, so the
    garbage contributes nothing: to grad_weight (0 x input value) and to grad_input
    (weight x 0).  That needs a finite input and weight (0 x inf is NaN), which the caller checks.

    Used first in chapter 03.
    """
    n = x.shape[0]
    groups, out_per_group, k_per_group = weight_matrix.shape
    out_channels, channels = groups * out_per_group, x.shape[1]
    out_h, out_w = geo.out_hw
    grad_weight = np.zeros(weight_matrix.transpose(0, 2, 1).shape, dtype=x.dtype)   # transposed
    rows, wp = padded_rows(x, geo)
    grad_rows = np.zeros_like(rows)
    if n == 0:
        return crop_rows(grad_rows, x.shape, geo), grad_weight.transpose(0, 2, 1)
    matrix_t = weight_matrix.transpose(0, 2, 1)                            # (G, K/G, C_out/G)
    step = images_per_block(groups * k_per_group, geo, wp, n, x.itemsize, block_bytes)
    length = out_h * wp
    columns = np.empty((channels,) + geo.kernel + (step, length), dtype=x.dtype)
    grad_columns = np.empty_like(columns)
    wide_grad = np.zeros((out_channels, step, out_h, wp), dtype=x.dtype)   # garbage columns stay 0
    block_weight = np.empty_like(grad_weight)
    for start in range(0, n, step):
        count = min(step, n - start)
        if count < step:                                                   # the last, short block
            columns, grad_columns = columns[:, :, :, :count], grad_columns[:, :, :, :count]
            wide_grad = np.ascontiguousarray(wide_grad[:, :count])
        np.copyto(columns, all_tap_runs(rows, start, count, geo, wp))
        np.copyto(wide_grad[..., :out_w], grad[start:start + count].transpose(1, 0, 2, 3))
        grad_matrix = wide_grad.reshape(groups, out_per_group, count * length)
        cols = columns.reshape(groups, k_per_group, count * length)
        # grad_weight^T = columns @ grad^T: this orientation is 1.3-1.6x faster in OpenBLAS
        # than grad @ columns^T when C_out is small (benchmarks/README.md)
        np.matmul(cols, grad_matrix.transpose(0, 2, 1), out=block_weight)
        grad_weight += block_weight
        np.matmul(matrix_t, grad_matrix, out=grad_columns.reshape(groups, k_per_group, -1))
        for i, j in np.ndindex(*geo.kernel):                               # col2im: one add per tap
            target = tap_runs(grad_rows, start, count, geo, wp, i, j)
            np.add(target, grad_columns[:, i, j], out=target)
    return crop_rows(grad_rows, x.shape, geo), grad_weight.transpose(0, 2, 1)

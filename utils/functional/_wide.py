"""Stride-1 convolution backward on flattened padded planes ("wide" rows).

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
(A wide-row *forward*, cropping the output, was measured too: no faster than im2col, whose
output needs no crop.)

Shapes, for a block of ``nb`` images: padded rows (nb, C, Hp * Wp + tail); columns
(C, kH, kW, nb, H_out * Wp), i.e. the im2col matrix (C*kH*kW, nb * H_out * Wp) with the block's
images side by side, so that one matrix product covers the block.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._windows import WindowGeometry


def _padded_block(x: np.ndarray, geo: WindowGeometry, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero rows (step, C, Hp * Wp + tail) for a block of images and the view (step, C, H, W) of
    their interior: copying a block of ``x`` there pads it (the border is written once).

    The tail of ``(kW - 1) * dW`` zeros lets the last tap's run of the last row stay in the array.
    """
    n, c, h, w = x.shape
    rows = np.zeros((step, c, (h + sum(geo.pad_h)) * (w + sum(geo.pad_w)) + _tail(geo)),
                    dtype=x.dtype)
    return rows, _interior(rows, (step, c, h, w), geo)


def _interior(rows: np.ndarray, x_shape: tuple, geo: WindowGeometry) -> np.ndarray:
    """Rows (n, C, Hp * Wp + tail) -> the view (n, C, H, W) of the unpadded planes in them."""
    c, h, w = x_shape[1:]
    hp, wp = h + sum(geo.pad_h), w + sum(geo.pad_w)
    planes = rows[:, :, :hp * wp].reshape(rows.shape[0], c, hp, wp)
    return planes[:, :, geo.pad_h[0]:geo.pad_h[0] + h, geo.pad_w[0]:geo.pad_w[0] + w]


def _tail(geo: WindowGeometry) -> int:
    return (geo.kernel[1] - 1) * geo.dilation[1]


def _shift(geo: WindowGeometry, wp: int, i: int, j: int) -> int:
    return i * geo.dilation[0] * wp + j * geo.dilation[1]


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
             block_bytes: int, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(grad_input (N, C_in, H, W) (into ``out`` if given), grad_weight (G, C_out/G, K/G)) for
    stride 1.

    Per block of images: the wide im2col (as in :func:`forward`) and the gradient on wide rows
    (zeros in the ``Wp - W_out`` garbage columns); grad_weight^T += columns @ grad^T (that
    orientation is 1.3-1.6x faster in OpenBLAS than grad @ columns^T when C_out is small); then
    per image the tap gradients weight^T @ grad, with rows ordered (tap, channel) and ``pitch``
    (one padded plane) apart, so that adding them back (col2im) is one long add per tap over all
    of a group's planes, not one per plane (NumPy's 2-D adds of 1-2 K-value rows run ~3x slower
    than 1-D ones).  The values between two planes' runs are zeros, so those adds change nothing.
    The garbage columns contribute nothing (0 x input value, weight x 0), which needs a finite
    input and weight (0 x inf is NaN): the caller checks.

    Used first in chapter 03.
    """
    n, channels, h, w = x.shape
    groups, out_per_group, k_per_group = weight_matrix.shape
    per_group, taps = channels // groups, geo.kernel[0] * geo.kernel[1]
    out_h, out_w = geo.out_hw
    wp = w + sum(geo.pad_w)
    pitch = (h + sum(geo.pad_h)) * wp + _tail(geo)
    length = out_h * wp
    grad_input = np.empty_like(x) if out is None else out
    grad_weight = np.zeros((groups, k_per_group, out_per_group), dtype=x.dtype)    # transposed
    if n == 0:
        return grad_input, grad_weight.transpose(0, 2, 1)
    # the columns and the tap gradients are each about one wide im2col block
    step = images_per_block(groups * k_per_group, geo, wp, n, x.itemsize, block_bytes // 2)
    rows, interior = _padded_block(x, geo, step)
    grad_rows = np.empty_like(rows)
    columns = np.empty((channels,) + geo.kernel + (step, length), dtype=x.dtype)
    wide_grad = np.zeros((groups * out_per_group, step, out_h, wp), dtype=x.dtype)
    tap_grads = np.zeros((step, groups, taps, per_group, pitch), dtype=x.dtype)
    matrix_t = weight_matrix.reshape(groups, out_per_group, per_group, taps).transpose(0, 3, 2, 1)
    matrix_t = np.ascontiguousarray(matrix_t).reshape(groups, taps * per_group, out_per_group)
    block_weight = np.empty_like(grad_weight)
    shifts = [_shift(geo, wp, i, j) for i, j in np.ndindex(*geo.kernel)]
    span = (per_group - 1) * pitch + length          # from the first plane's run to the last's end
    for start in range(0, n, step):
        count = min(step, n - start)
        np.copyto(interior[:count], x[start:start + count])
        block, wide = columns[:, :, :, :count], wide_grad[:, :count]
        np.copyto(block, all_tap_runs(rows, 0, count, geo, wp))
        np.copyto(wide[..., :out_w], grad[start:start + count].transpose(1, 0, 2, 3))
        if count < step:                                                   # the last, short block
            block, wide = np.ascontiguousarray(block), np.ascontiguousarray(wide)
        grad_matrix = wide.reshape(groups, out_per_group, count * length)
        np.matmul(block.reshape(groups, k_per_group, count * length),
                  grad_matrix.transpose(0, 2, 1), out=block_weight)
        grad_weight += block_weight
        np.matmul(matrix_t, wide.reshape(groups, out_per_group, count, length).transpose(2, 0, 1, 3),
                  out=tap_grads[:count].reshape(count, groups, taps * per_group, pitch)[..., :length])
        target = grad_rows[:count]
        target.fill(0)
        planes = target.reshape(count, groups, per_group * pitch)
        for g in range(groups):                                  # col2im: one add per tap and group
            for tap, shift in enumerate(shifts):
                run = planes[:, g, shift:shift + span]
                np.add(run, tap_grads[:count, g, tap].reshape(count, -1)[:, :span], out=run)
        np.copyto(grad_input[start:start + count], _interior(target, x.shape, geo))
    return grad_input, grad_weight.transpose(0, 2, 1)

"""Depthwise convolution (groups == C_in), conv2d's path for it: no matrix product, one pass per kernel tap.

A depthwise layer has one small kernel per channel, so there is no matrix product to hand to BLAS:
the work is ``kH * kW`` multiply-adds per output value, and what NumPy can do fast is long
contiguous elementwise passes. At stride 1 (:func:`forward`, :func:`backward`) every zero-padded
plane (Hp, Wp) of a block of images is laid out as one run of ``Hp * Wp`` values, the planes of all
the block's channels one after another, and kernel tap ``(i, j)`` becomes *one shift* of that whole
flat array by ``i * dh * Wp + j * dw``: output value ``(oh, ow)`` of a plane sits at flat position
``oh * Wp + ow``, and its tap at that position plus the shift, inside the same plane. Each tap is
then one multiply and one add over the whole block, with NumPy's inner loop running over ``C * Hp *
Wp`` contiguous values. Positions with ``oh >= H_out`` or ``ow >= W_out`` are garbage (they read
into the next row or plane) and are cropped away, ``1 - H_out*W_out / (Hp*Wp)`` of the work (21 %
for 3x3 on 16x16).

Shapes: weight (C * m, 1, kH, kW) for a channel multiplier m (output channel ``c * m + k`` filters
input channel ``c``); the flat block (n_b, C, Hp * Wp) plus a zero tail of the largest shift.

Other strides (:func:`forward_strided`, :func:`backward_strided`) use channels-last blocks and one
strided view of the padded block per tap.
"""
from __future__ import annotations

import numpy as np

from ._windows import WindowGeometry

# Per-channel weights are repeated along each plane (one contiguous operand per tap, the fastest
# NumPy loop) when that copy is at most this many bytes; otherwise they are broadcast.
TILED_WEIGHT_BYTES = 8 << 20


class _Layout:
    """Flat layout of one block of padded planes (see the module docstring)."""

    def __init__(self, x_shape: tuple, geo: WindowGeometry, itemsize: int, block_bytes: int):
        n, self.channels, self.height, self.width = x_shape
        self.hp, self.wp = self.height + sum(geo.pad_h), self.width + sum(geo.pad_w)
        self.plane = self.hp * self.wp
        self.top, self.left = geo.pad_h[0], geo.pad_w[0]
        self.out_hw = geo.out_hw
        (dh, dw) = geo.dilation
        self.shifts = [i * dh * self.wp + j * dw for i, j in np.ndindex(*geo.kernel)]
        per_image = self.channels * self.plane * itemsize
        self.step = max(1, min(n, block_bytes // per_image))

    def new_rows(self, dtype) -> np.ndarray:
        """Zeroed flat block (step * C * Hp * Wp + largest shift,)."""
        return np.zeros(self.step * self.channels * self.plane + max(self.shifts), dtype=dtype)

    def planes(self, rows: np.ndarray, count: int) -> np.ndarray:
        """View (count, C, Hp, Wp) of a flat block."""
        return rows[:count * self.channels * self.plane].reshape(count, self.channels, self.hp,
                                                                 self.wp)

    def inside(self, planes: np.ndarray) -> np.ndarray:
        """The unpadded input region (count, C, H, W) of padded planes."""
        return planes[:, :, self.top:self.top + self.height, self.left:self.left + self.width]

    def shifted(self, rows: np.ndarray, shift: int, count: int) -> np.ndarray:
        """View (count, C, Hp * Wp) of the flat block moved by ``shift`` values."""
        size = count * self.channels * self.plane
        return rows[shift:shift + size].reshape(count, self.channels, self.plane)

    def valid(self, wide: np.ndarray) -> np.ndarray:
        """Output pixels (count, C, H_out, W_out) of a wide result (count, C, Hp * Wp)."""
        count = wide.shape[0]
        return wide.reshape(count, self.channels, self.hp, self.wp)[:, :, :self.out_hw[0],
                                                                    :self.out_hw[1]]


def _tap_weights(weight: np.ndarray, layout: _Layout) -> np.ndarray:
    """(C*m, 1, kH, kW) -> (m, taps, C, Hp*Wp) repeated along each plane, or (m, taps, C, 1)."""
    channels = layout.channels
    taps = weight.reshape(channels, -1, len(layout.shifts)).transpose(1, 2, 0)[..., None]
    if taps.size * layout.plane * weight.itemsize <= TILED_WEIGHT_BYTES:
        return np.ascontiguousarray(np.broadcast_to(taps, taps.shape[:3] + (layout.plane,)))
    return taps


def forward(x: np.ndarray, weight: np.ndarray, geo: WindowGeometry,
            block_bytes: int) -> np.ndarray:
    """Depthwise convolution, stride 1: (N, C, H, W) -> (N, C*m, H_out, W_out).

    Used first in chapter 02.
    """
    n, channels = x.shape[:2]
    multiplier = weight.shape[0] // channels
    out = np.empty((n, weight.shape[0]) + geo.out_hw, dtype=x.dtype)
    if n == 0:
        return out
    layout = _Layout(x.shape, geo, x.itemsize, block_bytes)
    taps = _tap_weights(weight, layout)
    rows = layout.new_rows(x.dtype)
    total = np.empty((layout.step, channels, layout.plane), dtype=x.dtype)
    product = np.empty_like(total)
    for start in range(0, n, layout.step):
        count = min(layout.step, n - start)
        layout.inside(layout.planes(rows, count))[...] = x[start:start + count]
        acc, tmp = total[:count], product[:count]
        for k in range(multiplier):
            for t, shift in enumerate(layout.shifts):
                source = layout.shifted(rows, shift, count)
                if t == 0:
                    np.multiply(source, taps[k, t], out=acc)
                else:
                    np.multiply(source, taps[k, t], out=tmp)
                    acc += tmp
            out[start:start + count, k::multiplier] = layout.valid(acc)
    return out


def backward(grad: np.ndarray, x: np.ndarray, weight: np.ndarray, geo: WindowGeometry,
             block_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(grad_input (N, C, H, W), grad_weight (C*m, 1, kH, kW)) of a stride-1 depthwise layer.

    The gradient sits on wide planes with zeros at the garbage positions, so those add nothing
    (0 x weight to grad_input, 0 x input to grad_weight): that needs a finite input and weight,
    which the caller checks.  Per tap: grad_weight gets one contraction of the gradient with
    the shifted input, grad_input one multiply-add of the gradient into the shifted planes.

    Used first in chapter 03.
    """
    n, channels = x.shape[:2]
    multiplier = weight.shape[0] // channels
    grad_input = np.empty_like(x)
    grad_weight = np.zeros((channels, multiplier, geo.kernel[0] * geo.kernel[1]), dtype=x.dtype)
    if n == 0:
        return grad_input, grad_weight.reshape(weight.shape)
    layout = _Layout(x.shape, geo, x.itemsize, block_bytes)
    taps = _tap_weights(weight, layout)
    rows, grad_rows = layout.new_rows(x.dtype), layout.new_rows(x.dtype)
    wide = np.zeros((layout.step, channels, layout.plane), dtype=x.dtype)   # garbage stays 0
    product = np.empty_like(wide)
    for start in range(0, n, layout.step):
        count = min(layout.step, n - start)
        layout.inside(layout.planes(rows, count))[...] = x[start:start + count]
        grad_rows[...] = 0
        grad_wide, tmp = wide[:count], product[:count]
        for k in range(multiplier):
            layout.valid(grad_wide)[...] = grad[start:start + count, k::multiplier]
            for t, shift in enumerate(layout.shifts):
                grad_weight[:, k, t] += np.einsum("ncp,ncp->c", grad_wide,
                                                  layout.shifted(rows, shift, count))
                np.multiply(grad_wide, taps[k, t], out=tmp)
                target = layout.shifted(grad_rows, shift, count)
                target += tmp
        grad_input[start:start + count] = layout.inside(layout.planes(grad_rows, count))
    return grad_input, grad_weight.reshape(weight.shape)


# ------------------------------------------------- any stride: channels-last blocks, one view per tap

def _tap_slices(geo: WindowGeometry, i: int, j: int) -> tuple[slice, slice]:
    """Rows and columns of the padded input that kernel tap (i, j) reads, one per output pixel."""
    (sh, sw), (dh, dw), (out_h, out_w) = geo.stride, geo.dilation, geo.out_hw
    return (slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw))


def _channels_last_blocks(x: np.ndarray, geo: WindowGeometry, block_bytes: int):
    """Yield ``(images, padded)``: a cache-sized block of ``x`` zero-padded and channels-last
    (n_block, Hp, Wp, C), in a buffer reused from block to block (its zero border stays zero)."""
    n, channels, height, width = x.shape
    padded_hw = (height + sum(geo.pad_h), width + sum(geo.pad_w))
    step = max(1, block_bytes // (padded_hw[0] * padded_hw[1] * channels * x.itemsize))
    buffer = np.zeros((min(step, n),) + padded_hw + (channels,), dtype=x.dtype)
    inside = (slice(geo.pad_h[0], geo.pad_h[0] + height), slice(geo.pad_w[0], geo.pad_w[0] + width))
    for start in range(0, n, step):
        images = slice(start, min(start + step, n))
        block = buffer[:images.stop - start]
        block[(slice(None),) + inside] = x[images].transpose(0, 2, 3, 1)
        yield images, block


def _tiled_taps(weight: np.ndarray, channels: int, geo: WindowGeometry) -> np.ndarray:
    """Depthwise weight (C*m, 1, kH, kW) -> (kH, kW, W_out, C, m), each tap repeated along W_out.

    Repeating the (small) weight along the output width lets NumPy run the multiply over W_out * C
    contiguous values in one inner loop instead of one loop of C values per output pixel.
    """
    taps = weight.reshape(channels, -1, *geo.kernel).transpose(2, 3, 0, 1)    # (kH, kW, C, m)
    return np.ascontiguousarray(np.broadcast_to(taps[:, :, None], geo.kernel + (geo.out_hw[1],)
                                                + taps.shape[2:]))


def forward_strided(x: np.ndarray, weight: np.ndarray, geo: WindowGeometry,
                    block_bytes: int) -> np.ndarray:
    """groups == C_in: out[n, c*m + k] = sum over taps of weight[c*m + k, 0, i, j] * shifted input.

    One multiply and one add of a shifted view per kernel tap (kH * kW Python steps), in place, a
    cache-sized block of images at a time.  Channels-last, so that the channel axis is the
    contiguous inner loop: in NCHW it would be one short row of W_out values, and NumPy's per-row
    overhead would dominate.  (N, C, H, W) -> (N, C*m, H_out, W_out).

    Used first in chapter 02.
    """
    n, channels = x.shape[:2]
    multiplier = weight.shape[0] // channels
    taps = _tiled_taps(weight, channels, geo)                               # (kH, kW, Wo, C, m)
    out = np.empty((n, weight.shape[0]) + geo.out_hw, dtype=x.dtype)
    total = product = None
    for images, padded in _channels_last_blocks(x, geo, block_bytes):
        if total is None or total.shape[0] != padded.shape[0]:
            total = np.empty((padded.shape[0],) + geo.out_hw + (channels, multiplier), dtype=x.dtype)
            product = np.empty_like(total)
        padded = padded[..., None]                                           # (n_b, Hp, Wp, C, 1)
        for tap, (i, j) in enumerate(np.ndindex(*geo.kernel)):
            rows, cols = _tap_slices(geo, i, j)
            np.multiply(padded[:, rows, cols], taps[i, j], out=total if tap == 0 else product)
            if tap:
                total += product
        out[images] = total.reshape(total.shape[:3] + (-1,)).transpose(0, 3, 1, 2)
    return out


def backward_strided(grad: np.ndarray, x: np.ndarray, weight: np.ndarray, geo: WindowGeometry,
                     block_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(grad_input (N, C, H, W), grad_weight (C*m, 1, kH, kW)) of a depthwise layer of any stride:
    channels-last blocks and one shifted view per tap, like :func:`forward_strided`.

    Used first in chapter 03.
    """
    n, channels, height, width = x.shape
    multiplier = weight.shape[0] // channels
    taps = _tiled_taps(weight, channels, geo)                               # (kH, kW, Wo, C, m)
    grad_taps = np.zeros(geo.kernel + (channels, multiplier), dtype=x.dtype)
    grad_input = np.empty_like(x)
    inside = (slice(None), slice(geo.pad_h[0], geo.pad_h[0] + height),
              slice(geo.pad_w[0], geo.pad_w[0] + width))
    for images, padded in _channels_last_blocks(x, geo, block_bytes):
        # (n_b, Ho, Wo, C, m): the gradient of each output channel beside its input channel
        per_input = grad[images].transpose(0, 2, 3, 1).reshape(
            (padded.shape[0],) + geo.out_hw + (channels, multiplier))
        per_input = np.ascontiguousarray(per_input)
        grad_padded = np.zeros_like(padded)
        for i, j in np.ndindex(*geo.kernel):
            rows, cols = _tap_slices(geo, i, j)
            # d out / d weight[c, k, i, j] is the shifted input; d out / d input is the tap's weight.
            grad_taps[i, j] += np.einsum("nhwck,nhwc->ck", per_input, padded[:, rows, cols])
            if multiplier == 1:
                grad_padded[:, rows, cols] += per_input[..., 0] * taps[i, j, ..., 0]
            else:
                grad_padded[:, rows, cols] += np.einsum("nhwck,wck->nhwc", per_input, taps[i, j])
        grad_input[images] = grad_padded[inside].transpose(0, 3, 1, 2)
    return grad_input, grad_taps.transpose(2, 3, 0, 1)

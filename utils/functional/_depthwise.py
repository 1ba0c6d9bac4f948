"""Depthwise convolution (groups == C_in), conv2d's path for it.

A depthwise layer has one small kernel per channel, so there is no matrix product over channels
to hand to BLAS, and done tap by tap in NumPy it is ``kH * kW`` multiplies and as many adds, each a
full pass over the data (NumPy has no fused multiply-add).  At stride 1 (:func:`forward`,
:func:`backward`) each channel's convolution is instead written as ``kH`` small matrix products
with a *banded (Toeplitz) matrix*: for kernel row ``i`` and a tile of output columns,

    out[row r, ow] += sum_q rows[r + i*dh, q] * B_i[q, ow],   B_i[ow + j*dw - pad_left, ow] = w[i, j]

where ``rows`` holds the input rows of all images of one channel stacked into one tall matrix
(N * Hp rows of W values, channels-major, zero rows for the top/bottom padding, no padding
columns: taps that fall on them are simply left out of the band).  Kernel row ``i`` is then a
shift of ``i * dh`` rows of it: a strided view, no im2col copy, and one matrix product
(N * Hp, W) @ (W, W_out) per channel, batched over a cache-sized block of channels.  The band
multiplies about ``W / kW`` times more values than the kernel has taps (5x for 3x3 on 16
columns), but BLAS does a multiply-add ~30x faster than a NumPy pass.  Rows ``oh >= H_out`` of
each image are garbage (they read into the next image) and are dropped.  Planes wider than
MAX_TILE are cut into tiles of TILE output columns (a band per tile).  The backward is the same
band transposed: grad_input rows get ``grad @ B_i.T``, and grad_weight is the diagonals of
``rows_i.T @ grad``.

The zeros of the band multiply every value of a row, so an inf or NaN input would spread NaN to
outputs that never see it; such inputs take :func:`forward_strided` (exact, any stride), and the
caller only calls :func:`backward` for finite inputs.

Other strides (:func:`forward_strided`, :func:`backward_strided`) use channels-last blocks and one
strided view of the padded block per tap.
"""
from __future__ import annotations

import numpy as np

from ._windows import WindowGeometry

# Output columns per band matrix: one band for W_out <= MAX_TILE, else tiles of TILE columns.
# Measured (1 thread, forward, N16 128 channels 16x16): one band of 16 columns 1.8-2.0 ms, tiles of
# 8 columns 3.9-4.8 ms, of 4 columns 6.6-9.5 ms.  On 56x56-112x112 planes tiles of 16-64 columns
# were within the (large) noise of each other and of the tap-by-tap code this replaced.
MAX_TILE, TILE = 48, 32

# Largest stacked-planes block (bytes; the caller's block size if smaller).  Measured, backward
# called alone in a loop: blocks of 16 channels (350 kB) left ~4 MB of temporaries + result to
# free at each return, which glibc gives back to the system, so every call page-faulted ~1000
# fresh pages (8.4 ms); blocks of 9 channels (180 kB): no page faults, 4.2 ms.
MAX_BLOCK_BYTES = 192 << 10


class _Rows:
    """Channels-major stacked planes (channels, N * Hp + (kH-1)*dh, W) of one block of channels:
    rows zero-padded (top, bottom), columns not (the band leaves out the padding columns)."""

    def __init__(self, x_shape: tuple, weight_shape: tuple, geo: WindowGeometry, itemsize: int,
                 block_bytes: int):
        self.n, self.channels, self.height, self.width = x_shape
        self.multiplier = weight_shape[0] // self.channels
        self.hp, self.top, self.left = self.height + sum(geo.pad_h), geo.pad_h[0], geo.pad_w[0]
        self.out_hw, self.kernel, self.dilation = geo.out_hw, geo.kernel, geo.dilation
        self.rows = self.n * self.hp                          # output rows, garbage ones included
        self.tail = (self.kernel[0] - 1) * self.dilation[0]  # the last image's garbage rows read here
        out_w, span = self.out_hw[1], (self.kernel[1] - 1) * self.dilation[1]
        tile = out_w if out_w <= MAX_TILE else TILE
        # (first output column, columns, input columns [low, high) the tile reads)
        self.tiles = [(t, min(tile, out_w - t), max(0, t - self.left),
                       min(self.width, t - self.left + min(tile, out_w - t) + span))
                      for t in range(0, out_w, tile)]
        per_channel = (self.rows + self.tail) * self.width * itemsize
        self.step = max(1, min(self.channels, min(block_bytes, MAX_BLOCK_BYTES) // per_channel))

    def new_planes(self, dtype) -> np.ndarray:
        """Zeroed stacked planes of one block of channels (step, N*Hp + tail, W)."""
        return np.zeros((self.step, self.rows + self.tail, self.width), dtype=dtype)

    def inside(self, planes: np.ndarray) -> np.ndarray:
        """View (count, N, H, W) of the image rows of stacked planes (count, rows, W): each image's
        plane one contiguous run of H * W values (a fast copy; padded columns would cut it into rows)."""
        images = planes[:, :self.rows].reshape(planes.shape[0], self.n, self.hp, self.width)
        return images[:, :, self.top:self.top + self.height]

    def valid(self, wide: np.ndarray) -> np.ndarray:
        """View (count*m, N, H_out, W_out) of the real output rows of (count, m, N*Hp, W_out)."""
        count = wide.shape[0] * wide.shape[1]
        return wide.reshape(count, self.n, self.hp, self.out_hw[1])[:, :, :self.out_hw[0]]

    def band_input(self, planes: np.ndarray, i: int, tile: tuple) -> np.ndarray:
        """View (count, 1, N*Hp, high - low) of the rows kernel row ``i`` reads for ``tile``."""
        shift, (_, _, low, high) = i * self.dilation[0], tile
        return planes[:, None, shift:shift + self.rows, low:high]

    def diagonal(self, tile: tuple, j: int) -> int:
        """Row offset of tap j in a tile's band: input column ``low + ow + offset`` (see _bands)."""
        first, _, low, _ = tile
        return first - self.left + j * self.dilation[1] - low


def _bands(weight: np.ndarray, rows: _Rows) -> list[np.ndarray]:
    """(C*m, 1, kH, kW) -> per tile the band matrices (C, m, kH, high - low, columns):
    ``B[c, k, i, ow + diagonal(j), ow] = weight[c*m + k, 0, i, j]`` where that input column
    exists, zero elsewhere (the taps that fall on padding columns are left out)."""
    kh, kw = rows.kernel
    taps = weight.reshape(rows.channels, rows.multiplier, kh, kw)
    bands = []
    for tile in rows.tiles:
        _, cols, low, high = tile
        depth = max(0, high - low)
        band = np.zeros(taps.shape[:3] + (depth, cols), dtype=weight.dtype)
        flat = band.reshape(taps.shape[:3] + (depth * cols,))
        for j in range(kw):
            # entries (ow + d, ow) of the flattened (depth, cols) matrix: one strided slice
            d = rows.diagonal(tile, j)
            first, last = max(0, -d), min(cols, depth - d)       # the columns ow that exist
            if first < last:
                start = d * cols + first * (cols + 1)
                flat[..., start:start + (last - first - 1) * (cols + 1) + 1:cols + 1] = taps[..., j, None]
        bands.append(band)
    return bands


def _finite(*arrays: np.ndarray) -> bool:
    """No inf or NaN: the dot product of an array with itself is inf or NaN if any value is (or if
    it overflows, which only costs speed).  A BLAS dot: 0.06 ms for the sweep's 2 MB input, where
    ``np.sum`` takes 0.14 ms and ``np.isfinite(x).all()`` 0.10 ms."""
    return all(np.isfinite(np.dot(flat, flat)) for flat in (a.reshape(-1) for a in arrays))


def forward(x: np.ndarray, weight: np.ndarray, geo: WindowGeometry, block_bytes: int,
            bias: np.ndarray | None = None) -> np.ndarray:
    """Depthwise convolution, stride 1: (N, C, H, W) -> (N, C*m, H_out, W_out), band products;
    ``bias`` (C*m,) is added to each block while it is in cache (a pass over the whole output
    after it took 0.09 ms of 1.1 in the sweep's layer, in the block 0.05).

    Used first in chapter 02.
    """
    n, channels = x.shape[:2]
    if n == 0 or not _finite(x, weight):
        return forward_strided(x, weight, geo, block_bytes, bias)
    rows = _Rows(x.shape, weight.shape, geo, x.itemsize, block_bytes)
    m = rows.multiplier
    bands = _bands(weight, rows)
    out = np.empty((n, weight.shape[0]) + geo.out_hw, dtype=x.dtype)
    planes = rows.new_planes(x.dtype)
    wide = np.empty((rows.step, m, rows.rows, geo.out_hw[1]), dtype=x.dtype)
    product = np.empty((rows.step, m, rows.rows, rows.tiles[0][1]), dtype=x.dtype)
    for start in range(0, channels, rows.step):
        stop = min(channels, start + rows.step)
        block = planes[:stop - start]
        rows.inside(block)[...] = x[:, start:stop].transpose(1, 0, 2, 3)
        for tile, band in zip(rows.tiles, bands):
            first, cols, low, high = tile
            target = wide[:stop - start, :, :, first:first + cols]
            if high <= low:                         # output columns that see padding only
                target[...] = 0
                continue
            for i in range(rows.kernel[0]):
                if i == 0:
                    np.matmul(rows.band_input(block, i, tile), band[start:stop, :, i], out=target)
                else:
                    tmp = product[:stop - start, :, :, :cols]
                    np.matmul(rows.band_input(block, i, tile), band[start:stop, :, i], out=tmp)
                    target += tmp
        if bias is not None:
            wide[:stop - start] += bias[start * m:stop * m].reshape(stop - start, m, 1, 1)
        out[:, start * m:stop * m] = rows.valid(wide[:stop - start]).transpose(1, 0, 2, 3)
    return out


def backward(grad: np.ndarray, x: np.ndarray, weight: np.ndarray, geo: WindowGeometry,
             block_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(grad_input (N, C, H, W), grad_weight (C*m, 1, kH, kW)) of a stride-1 depthwise layer.

    The gradient sits on the stacked rows with zeros at the garbage rows, so those add nothing
    (0 x band to grad_input, 0 x input to grad_weight): that needs a finite input and weight,
    which the caller checks, and a finite gradient (checked here; else the exact channels-last
    path).  Per kernel row ``i`` and tile: grad_input rows += grad @ band_i.T,
    and grad_weight[i, j] is the j-th diagonal of (input rows shifted by i).T @ grad, summed
    over ow at the end.

    Used first in chapter 03.
    """
    n, channels, height, width = x.shape
    (kh, kw), m = geo.kernel, weight.shape[0] // channels
    if n == 0 or not _finite(grad):     # an inf in grad times the band's zeros: NaN elsewhere
        return backward_strided(grad, x, weight, geo, block_bytes)
    grad_input = np.empty_like(x)
    rows = _Rows(x.shape, weight.shape, geo, x.itemsize, block_bytes)
    bands = _bands(weight, rows)
    through = [np.zeros(band.shape, dtype=x.dtype) for band in bands]   # input.T @ grad per tile
    planes = rows.new_planes(x.dtype)
    grad_rows = np.empty((rows.step, rows.rows + rows.tail, width), dtype=x.dtype)
    wide = np.zeros((rows.step, m, rows.rows, geo.out_hw[1]), dtype=x.dtype)  # garbage rows stay 0
    product = np.empty((rows.step, m, rows.rows, width), dtype=x.dtype)
    one_shot = len(rows.tiles) == 1 and m == 1       # the first product can go straight in
    for start in range(0, channels, rows.step):
        stop = min(channels, start + rows.step)
        count = stop - start
        block, targets = planes[:count], grad_rows[:count]
        rows.inside(block)[...] = x[:, start:stop].transpose(1, 0, 2, 3)
        rows.valid(wide[:count])[...] = grad[:, start * m:stop * m].transpose(1, 0, 2, 3)
        if one_shot:
            targets[:, rows.rows:] = 0
        else:
            targets[...] = 0
        for tile, band, tile_through in zip(rows.tiles, bands, through):
            first, cols, low, high = tile
            if high <= low:
                continue                            # a tile that reads padding only
            grad_tile = wide[:count, :, :, first:first + cols]
            for i in range(kh):
                source = rows.band_input(block, i, tile)                   # (b, 1, rows, high-low)
                np.matmul(source.swapaxes(-1, -2), grad_tile, out=tile_through[start:stop, :, i])
                band_t = band[start:stop, :, i].swapaxes(-1, -2)           # (b, m, cols, high-low)
                shift = i * rows.dilation[0]
                target = targets[:, shift:shift + rows.rows, low:high]
                if one_shot and i == 0:
                    np.matmul(grad_tile, band_t, out=target[:, None])
                    continue
                back = np.matmul(grad_tile, band_t, out=product[:count, :, :, :high - low])
                target += back.sum(axis=1) if m > 1 else back[:, 0]
        grad_input[:, start:stop] = rows.inside(targets).transpose(1, 0, 2, 3)
    # tap j: the diagonal through[..., ow + diagonal(j), ow] of each tile, summed over ow
    grad_weight = sum(np.stack([np.diagonal(t, -rows.diagonal(tile, j), -2, -1).sum(axis=-1)
                                for j in range(kw)], axis=-1)
                      for tile, t in zip(rows.tiles, through))             # (C, m, kH, kW)
    return grad_input, np.asarray(grad_weight).reshape(weight.shape)


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


def forward_strided(x: np.ndarray, weight: np.ndarray, geo: WindowGeometry, block_bytes: int,
                    bias: np.ndarray | None = None) -> np.ndarray:
    """groups == C_in: out[n, c*m + k] = sum over taps of weight[c*m + k, 0, i, j] * shifted input
    (+ bias[c*m + k]).

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
    if bias is not None:
        out += bias[:, None, None]
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

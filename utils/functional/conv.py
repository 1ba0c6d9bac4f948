"""2-D convolution in NumPy with exactly the semantics of ``torch.nn.functional.conv2d``.

Shapes follow PyTorch (NCHW, channels first):

* ``input``  (N, C_in, H, W), or unbatched (C_in, H, W) which gives an unbatched output
* ``weight`` (C_out, C_in / groups, kH, kW)
* ``bias``   (C_out,) or None
* output     (N, C_out, H_out, W_out) with
  ``H_out = floor((H + pad_top + pad_bottom - dilation_h * (kH - 1) - 1) / stride_h) + 1``
  (see :func:`conv_output_size`), likewise for W.

Like PyTorch (and every deep-learning library) this is *cross-correlation*: the kernel is not
flipped.  Three versions live here:

* :func:`conv2d_naive`: explicit loops over every output value, the readable definition;
* :func:`conv2d`: the same numbers, vectorised: im2col (strided copies of the windows, a cache-sized
  block of images at a time) + matmul; depthwise layers add one shifted view per kernel tap;
* :func:`conv2d_backward`: the gradients with respect to input, weight and bias.
"""
from __future__ import annotations

import numpy as np

from .validate import (batched, batched_grad, float_array, non_negative_pair, positive_int,
                        positive_pair, same_dtype, same_shape, unbatch)
from . import _depthwise, _parallel, _wide
from ._windows import (WindowGeometry, add_windows, crop_nchw, output_length, pad_nchw,
                       im2col_filler)

__all__ = ["conv2d", "conv2d_naive", "conv2d_backward", "conv_output_size"]


# ----------------------------------------------------------------------------- geometry

def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int | str = 0,
                     dilation: int = 1) -> int:
    """Length of a convolution's output along one axis.

    ``floor((size + 2*padding - dilation*(kernel_size - 1) - 1) / stride) + 1``.
    ``padding`` may also be ``'valid'`` (0) or ``'same'`` (output length == ``size``, stride 1 only).
    Raises ValueError for non-positive sizes/strides/dilations, negative padding, or a kernel that
    does not fit in the padded input.

    >>> conv_output_size(32, 5)            # 5x5 kernel, no padding: 28
    28
    >>> conv_output_size(32, 3, stride=2, padding=1)
    16

    Used first in chapter 02.
    """
    size, kernel_size = positive_int(size, "size"), positive_int(kernel_size, "kernel_size")
    stride, dilation = positive_int(stride, "stride"), positive_int(dilation, "dilation")
    if not isinstance(padding, str):
        positive_int(padding, "padding", minimum=0)
    pad_h, _ = resolve_conv_padding(padding, (kernel_size, kernel_size), (stride, stride),
                                    (dilation, dilation))
    return output_length(size, kernel_size, stride, sum(pad_h), dilation)


def resolve_conv_padding(padding, kernel: tuple[int, int], stride: tuple[int, int],
                         dilation: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """``padding`` (int, pair, 'valid' or 'same') -> ``((top, bottom), (left, right))``.

    'same' pads ``dilation * (k - 1)`` in total per axis; when that is odd the extra row/column
    goes at the bottom/right, as in PyTorch.  Like PyTorch, 'same' refuses strides > 1 (the output
    could not have the input's size).

    Used first in chapter 02.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"padding must be an int, a pair of ints, 'valid' or 'same', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"padding='same' is not supported for strided convolutions "
                             f"(stride={stride})")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((total // 2, total - total // 2) for total in totals)
    pad_h, pad_w = non_negative_pair(padding, "padding")
    return (pad_h, pad_h), (pad_w, pad_w)


def conv_geometry(input_hw: tuple[int, int], kernel: tuple[int, int], stride, padding,
                  dilation) -> WindowGeometry:
    """Validate stride/padding/dilation and compute where the windows sit (see WindowGeometry).

    Used first in chapter 02.
    """
    stride, dilation = positive_pair(stride, "stride"), positive_pair(dilation, "dilation")
    pad_h, pad_w = resolve_conv_padding(padding, kernel, stride, dilation)
    out_hw = tuple(output_length(size, k, s, sum(pad), d, axis)
                   for size, k, s, pad, d, axis in zip(input_hw, kernel, stride, (pad_h, pad_w),
                                                       dilation, ("height", "width")))
    return WindowGeometry(kernel, stride, dilation, pad_h, pad_w, out_hw)


# ----------------------------------------------------------------------------- validation

def _check_operands(x: np.ndarray, weight: np.ndarray, bias, groups) -> None:
    """Validate shapes/dtypes of a batched input (N, C_in, H, W), weight and bias against groups."""
    float_array(weight, "weight")
    same_dtype(x, weight, "input", "weight")
    if weight.ndim != 4 or min(weight.shape) < 1:
        raise ValueError(f"weight must be 4-D (C_out, C_in/groups, kH, kW) with no empty axis, "
                         f"got shape {weight.shape}")
    groups = positive_int(groups, "groups")
    out_channels, in_per_group = weight.shape[:2]
    if out_channels % groups:
        raise ValueError(f"out_channels (weight.shape[0] = {out_channels}) must be divisible by "
                         f"groups = {groups}")
    if x.shape[1] != in_per_group * groups:
        raise ValueError(f"input has {x.shape[1]} channels (shape {x.shape}) but weight {weight.shape} "
                         f"with groups={groups} expects {in_per_group} x {groups} = "
                         f"{in_per_group * groups} channels")
    if bias is not None:
        float_array(bias, "bias")
        same_dtype(x, bias, "input", "bias")
        same_shape(bias, (out_channels,), "bias")


def _prepare(input, weight, bias, stride, padding, dilation, groups):
    """Shared front of every conv op -> (x4d, was_unbatched, geometry)."""
    x, was_unbatched = batched(input)
    _check_operands(x, weight, bias, groups)
    return x, was_unbatched, conv_geometry(x.shape[2:], weight.shape[2:], stride, padding, dilation)


# ----------------------------------------------------------------------------- forward

def conv2d_naive(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Reference 2-D convolution with explicit loops (slow; for reading and testing).

    Inputs:
    - input: (N, C_in, H, W) or unbatched (C_in, H, W), float32 or float64
    - weight: (C_out, C_in / groups, kH, kW), same dtype
    - bias: (C_out,) or None
    - stride, dilation: int or (h, w) pair, >= 1
    - padding: int, (h, w) pair, 'valid' or 'same' (zeros added around H and W)
    - groups: input and output channels are split into ``groups`` independent convolutions
    Returns: (N, C_out, H_out, W_out), or (C_out, H_out, W_out) for an unbatched input.

    Taught in chapter 02.
    """
    x, was_unbatched, geo = _prepare(input, weight, bias, stride, padding, dilation, groups)
    padded = pad_nchw(x, geo.pad_h, geo.pad_w)
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    out_channels, in_per_group = weight.shape[:2]
    out_per_group = out_channels // groups
    out = np.zeros((x.shape[0], out_channels) + geo.out_hw, dtype=x.dtype)
    for n in range(x.shape[0]):
        for co in range(out_channels):
            group = co // out_per_group             # which slice of input channels this filter sees
            channels = slice(group * in_per_group, (group + 1) * in_per_group)
            for oh in range(geo.out_hw[0]):
                for ow in range(geo.out_hw[1]):
                    top, left = oh * sh, ow * sw
                    window = padded[n, channels, top:top + dh * (kh - 1) + 1:dh,
                                    left:left + dw * (kw - 1) + 1:dw]
                    out[n, co, oh, ow] = np.sum(window * weight[co])
    if bias is not None:
        out += bias[:, None, None]
    return unbatch(out, was_unbatched)


# Columns of im2col are built a few images at a time, into a buffer of about this many bytes, and
# multiplied at once: a block that stays in the CPU's cache multiplies several times faster than
# one im2col matrix of the whole batch streamed from main memory (benchmarks/layer_sweep.py).
BLOCK_BYTES = 1 << 20


# ... but at least this many output pixels per block: with small maps (8x8) one image per block
# would mean many tiny matrix products and Python steps.
MIN_BLOCK_COLUMNS = 256


def _images_per_block(x: np.ndarray, geo: WindowGeometry) -> int:
    """How many images' im2col columns fit in BLOCK_BYTES (at least one, and MIN_BLOCK_COLUMNS pixels)."""
    pixels = geo.out_hw[0] * geo.out_hw[1]
    per_image = x.shape[1] * geo.kernel[0] * geo.kernel[1] * pixels
    shares = _parallel.shares()                 # threads splitting the batch share the budget
    return max(1, BLOCK_BYTES // shares // (per_image * x.itemsize),
               -(-MIN_BLOCK_COLUMNS // (pixels * shares)))


# Stride-1 backward passes use the wide-row path (see _wide) when its extra matrix-product work,
# the fraction (Wp - W_out) / W_out of garbage columns, is at most this (3x3 kernels on 32x32 and
# 64x64 maps: 6 % and 3 %; at 12.5 %, 16x16 maps or dilation 2 on 32x32, the transposed
# convolution below was as fast or faster).
WIDE_MAX_WASTE = 0.1


def _use_wide(x: np.ndarray, geo: WindowGeometry) -> bool:
    """Stride 1, not pointwise, few garbage columns."""
    if geo.stride != (1, 1) or _is_pointwise(geo):
        return False
    padded_width = x.shape[3] + sum(geo.pad_w)
    return (padded_width - geo.out_hw[1]) <= WIDE_MAX_WASTE * geo.out_hw[1]


def _is_pointwise(geo: WindowGeometry) -> bool:
    """1x1 kernel, stride 1, no padding: the input itself is the im2col matrix."""
    return geo.kernel == (1, 1) and geo.stride == (1, 1) and geo.pad_h == geo.pad_w == (0, 0)


def _column_blocks(x: np.ndarray, geo: WindowGeometry, groups: int, ones_row: bool = False):
    """Yield ``(images, columns)``: columns (n_block, G, C_in/G * kH * kW, H_out * W_out).

    Rows are ordered (channel, i, j) like a flattened weight and columns (oh, ow), so one batched
    matmul with the (G, C_out/G, K) weight gives the output block already in NCHW order.  The
    buffers are reused from block to block: the temporary memory is one block, not the whole batch.
    ``ones_row``: one more row of ones per group (K + 1 rows), so that a bias column appended to
    the weight adds the bias inside the product, saving a pass over the output.
    """
    n, channels = x.shape[:2]
    rows = channels // groups * geo.kernel[0] * geo.kernel[1]
    length = geo.out_hw[0] * geo.out_hw[1]
    if _is_pointwise(geo) and not ones_row:
        yield slice(0, n), x.reshape(n, groups, rows, length)
        return
    step = _images_per_block(x, geo)
    fill = im2col_filler(x, geo, groups, step)
    buffer = np.empty((min(step, n), groups, rows + ones_row, length), dtype=x.dtype)
    buffer[:, :, rows:] = 1
    for start in range(0, n, step):
        images = slice(start, min(start + step, n))
        block = buffer[:images.stop - start]
        fill(start, block[:, :, :rows].reshape((block.shape[0], groups, channels // groups)
                                               + geo.kernel + geo.out_hw))
        yield images, block


def _weight_matrix(weight: np.ndarray, groups: int) -> np.ndarray:
    """(C_out, C_in/groups, kH, kW) -> (groups, C_out/groups, C_in/groups * kH * kW), a view."""
    return weight.reshape(groups, weight.shape[0] // groups, -1)


def _is_depthwise(x: np.ndarray, groups: int) -> bool:
    """One group per input channel (C_out a multiple of C_in): chapter 04's depthwise layer."""
    return groups > 1 and groups == x.shape[1]


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation), vectorised; same contract as ``F.conv2d``.

    Inputs:
    - input: (N, C_in, H, W) or unbatched (C_in, H, W), float32 or float64
    - weight: (C_out, C_in / groups, kH, kW), same dtype as input
    - bias: (C_out,) or None
    - stride, dilation: int or (h, w) pair, >= 1
    - padding: int, (h, w) pair, 'valid' or 'same'
    - groups: number of independent channel groups (must divide C_in and C_out)
    Returns: (N, C_out, H_out, W_out), or (C_out, H_out, W_out) for an unbatched input; the input's
    dtype.  H_out, W_out: see :func:`conv_output_size`.

    How (chapter 02 section 7 times each step): im2col a block of images at a time, one batched
    matmul per block straight into the NCHW output, the bias inside the product; with several BLAS
    threads the batch is split between that many Python threads (``_parallel``); depthwise layers
    (``groups == C_in``) instead do one multiply-add per kernel tap (stride 1: over flattened
    padded planes, ``_depthwise``), because their im2col matrix would be mostly copying.

    Taught in chapter 02.
    """
    x, was_unbatched, geo = _prepare(input, weight, bias, stride, padding, dilation, groups)
    n, out_channels = x.shape[0], weight.shape[0]
    if _is_depthwise(x, groups) and geo.stride == (1, 1):
        out = _depthwise.forward(x, weight, geo, BLOCK_BYTES // 3, bias)
    elif _is_depthwise(x, groups):
        out = _depthwise.forward_strided(x, weight, geo, BLOCK_BYTES, bias)
    else:
        out = np.empty((n, out_channels) + geo.out_hw, dtype=x.dtype)
        matrix = _forward_matrix(weight, groups, geo, bias)
        _parallel.map_images(lambda images: _gemm_forward(x[images], matrix, geo, groups, bias,
                                                          out=out[images]), n, _macs(x, weight, geo))
    return unbatch(out, was_unbatched)


def _macs(x: np.ndarray, weight: np.ndarray, geo: WindowGeometry) -> int:
    """Multiply-adds of the forward convolution (the backward does twice as many)."""
    return x.shape[0] * geo.out_hw[0] * geo.out_hw[1] * weight.size


def _bias_in_product(bias, geo: WindowGeometry) -> bool:
    """A bias becomes a last weight column against a row of ones in the im2col block (no extra
    pass over the output), except for 1x1 layers, whose columns are the input itself."""
    return bias is not None and not _is_pointwise(geo)


def _forward_matrix(weight: np.ndarray, groups: int, geo: WindowGeometry, bias=None) -> np.ndarray:
    """(G, C_out/G, K), with the bias as column K + 1 when it goes inside the product."""
    matrix = _weight_matrix(weight, groups)
    if _bias_in_product(bias, geo):
        matrix = np.concatenate([matrix, bias.reshape(groups, -1, 1)], axis=2)
    return matrix


def _gemm_forward(x: np.ndarray, matrix: np.ndarray, geo: WindowGeometry, groups: int,
                  bias: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """im2col blocks times ``matrix`` (:func:`_forward_matrix`), straight into the NCHW output
    (N, C_out, H_out, W_out) (``out`` if given)."""
    n, out_channels = x.shape[0], matrix.shape[0] * matrix.shape[1]
    if out is None:
        out = np.empty((n, out_channels) + geo.out_hw, dtype=x.dtype)
    flat = out.reshape(n, groups, out_channels // groups, geo.out_hw[0] * geo.out_hw[1])  # view
    in_product = _bias_in_product(bias, geo)
    for images, columns in _column_blocks(x, geo, groups, ones_row=in_product):
        np.matmul(matrix, columns, out=flat[images])
    if bias is not None and not in_product:
        out += bias[:, None, None]
    return out


# ----------------------------------------------------------------------------- backward

def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of ``conv2d(input, weight, bias, ...)`` given ``grad_output`` = dLoss/dOutput.

    Inputs:
    - grad_output: (N, C_out, H_out, W_out), or (C_out, H_out, W_out) for an unbatched input
    - input, weight, stride, padding, dilation, groups: exactly as passed to :func:`conv2d`
    Returns ``(grad_input, grad_weight, grad_bias)``:
    - grad_input: same shape as input
    - grad_weight: (C_out, C_in / groups, kH, kW)
    - grad_bias: (C_out,), the gradient a bias would receive (sum of grad_output over N, H, W)

    Chapter 03 derives the three formulas; this is the same im2col blocks as :func:`conv2d`:
    grad_weight = grad (C_out, L) @ columns.T (computed as its transpose, the faster orientation),
    grad_columns = weight.T @ grad, added back onto the windows they came from (col2im).  Stride-1
    layers with few garbage columns do this on wide rows (``_wide``: col2im is one long add per
    tap), other stride-1 layers get grad_input as a transposed convolution; stride-1 depthwise layers tap by tap on flattened planes (``_depthwise``); an input or weight with an
    inf or NaN takes the exact im2col path.  With several BLAS threads, regular layers split the
    batch between Python threads (``_parallel``) and add up their grad_weight.

    Taught in chapter 03.
    """
    x, was_unbatched, geo = _prepare(input, weight, None, stride, padding, dilation, groups)
    grad = batched_grad(grad_output, x, (weight.shape[0],) + geo.out_hw, was_unbatched)
    grad_bias = grad.sum(axis=(0, 2, 3))
    def finite() -> bool:    # any inf or NaN makes a sum non-finite: those take the exact paths
        return bool(np.isfinite(np.sum(x)) and np.isfinite(np.sum(weight)))

    if _is_depthwise(x, groups) and geo.stride == (1, 1) and finite():
        grad_input, grad_weight = _depthwise.backward(grad, x, weight, geo, BLOCK_BYTES // 3)
    elif _is_depthwise(x, groups):
        grad_input, grad_weight = _depthwise.backward_strided(grad, x, weight, geo, BLOCK_BYTES)
    else:
        path = _gemm_backward_path(x, weight, geo, groups, finite)
        grad_input = np.empty_like(x)

        def share(images: slice) -> np.ndarray:
            return path(grad[images], x[images], grad_input[images])
        # each share sums its own grad_weight (two weight-sized arrays): weights over half a
        # block (128->128 3x3: 0.6 MB) stay serial, their products long enough for BLAS threads
        work = 2 * _macs(x, weight, geo) if 2 * weight.nbytes <= BLOCK_BYTES else 0
        grad_weight = sum(_parallel.map_images(share, x.shape[0], work))
    return unbatch(grad_input, was_unbatched), grad_weight.reshape(weight.shape), grad_bias


def _gemm_backward_path(x, weight, geo, groups, finite):
    """The backward of a regular (not depthwise) layer, for any share of the batch:
    ``path(grad, x, grad_input) -> grad_weight``, writing grad_input into the array given."""
    if _use_wide(x, geo) and finite():
        return lambda grad, x, grad_input: _wide.backward(
            grad, x, _weight_matrix(weight, groups), geo, BLOCK_BYTES // _parallel.shares(),
            out=grad_input)[1]
    transposed = _transposed_geometry(x, geo)
    if BACKWARD_BY_TRANSPOSED_CONV and weight.shape[1] >= TRANSPOSED_MIN_CHANNELS and transposed:
        flipped = _weight_matrix(_transposed_weight(weight, groups), groups)

        def by_transposed_convolution(grad, x, grad_input):
            _gemm_forward(np.ascontiguousarray(grad), flipped, transposed, groups, out=grad_input)
            return _gemm_weight_gradient(grad, x, weight, geo, groups)
        return by_transposed_convolution

    def by_col2im(grad, x, grad_input):
        grad_input[...], grad_weight = _gemm_backward(grad, x, weight, geo, groups)
        return grad_weight
    return by_col2im


# Stride-1 layers compute grad_input as the forward convolution of the gradient with the flipped,
# transposed kernel ("full" padding): one im2col + product straight into NCHW, no col2im.
# With very few input channels per group (a first layer: 3) that product has only C_in rows and
# the wide-row backward is faster (measured: 3->16 channels 1.2x torch instead of 2.2x).
BACKWARD_BY_TRANSPOSED_CONV = True
TRANSPOSED_MIN_CHANNELS = 8


def _transposed_geometry(x: np.ndarray, geo: WindowGeometry) -> WindowGeometry | None:
    """Windows of the stride-1 convolution grad (N, C_out, H_out, W_out) -> grad_input (N, C_in,
    H, W): padding ``dilation * (k - 1) - pad`` on each side; None when not stride 1 or a padding
    exceeds the kernel's span (then the gradient is not one plain convolution)."""
    if geo.stride != (1, 1):
        return None
    spans = [d * (k - 1) for k, d in zip(geo.kernel, geo.dilation)]
    pad_h = tuple(spans[0] - p for p in geo.pad_h)
    pad_w = tuple(spans[1] - p for p in geo.pad_w)
    if min(pad_h + pad_w) < 0:
        return None
    return WindowGeometry(geo.kernel, (1, 1), geo.dilation, pad_h, pad_w, tuple(x.shape[2:]))


def _transposed_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """(C_out, C_in/G, kH, kW) -> (C_in, C_out/G, kH, kW), flipped in both spatial axes: the kernel
    of the convolution that maps grad_output to grad_input."""
    out_channels, in_per_group = weight.shape[:2]
    per_group = weight[:, :, ::-1, ::-1].reshape(groups, out_channels // groups, in_per_group,
                                                  *weight.shape[2:])
    return np.ascontiguousarray(per_group.transpose(0, 2, 1, 3, 4)).reshape(
        in_per_group * groups, out_channels // groups, *weight.shape[2:])


def _gemm_weight_gradient(grad, x, weight, geo, groups) -> np.ndarray:
    """grad_weight (G, C_out/G, K) = sum over images of grad @ columns.T, computed as its transpose
    columns @ grad.T (the faster orientation) with a block's images side by side: the im2col copy
    writes them in that order directly, so each block is one product without any reshuffle."""
    n, channels = x.shape[:2]
    out_per_group, length = weight.shape[0] // groups, geo.out_hw[0] * geo.out_hw[1]
    rows = channels // groups * geo.kernel[0] * geo.kernel[1]
    grad_weight = np.zeros((groups, rows, out_per_group), dtype=x.dtype)          # transposed
    grad = grad.reshape(n, groups, out_per_group, length)
    step = _images_per_block(x, geo)
    fill = im2col_filler(x, geo, groups, step)
    buffer = np.empty((groups, channels // groups) + geo.kernel + (min(step, n),) + geo.out_hw,
                      dtype=x.dtype)
    for start in range(0, n, step):
        count = min(step, n - start)
        block = buffer[:, :, :, :, :count]
        fill(start, block.transpose(4, 0, 1, 2, 3, 5, 6))
        side = np.ascontiguousarray(grad[start:start + count].transpose(1, 2, 0, 3))
        grad_weight += np.matmul(block.reshape(groups, rows, count * length),
                                 side.reshape(groups, out_per_group, count * length).transpose(0, 2, 1))
    return grad_weight.transpose(0, 2, 1)


def _gemm_backward(grad, x, weight, geo, groups):
    """grad_input (N, C_in, H, W) and grad_weight (G, C_out/G, K), block by block of images."""
    n, out_channels = x.shape[0], weight.shape[0]
    grad_matrix = np.ascontiguousarray(grad).reshape(n, groups, out_channels // groups,
                                                     geo.out_hw[0] * geo.out_hw[1])
    matrix_t = _weight_matrix(weight, groups).transpose(0, 2, 1)             # (G, K, C_out/G)
    grad_weight = np.zeros(matrix_t.shape[:1] + matrix_t.shape[:0:-1], dtype=x.dtype)
    padded_hw = (x.shape[2] + sum(geo.pad_h), x.shape[3] + sum(geo.pad_w))
    grad_padded = np.zeros(x.shape[:2] + padded_hw, dtype=x.dtype)
    for images, columns in _column_blocks(x, geo, groups):
        block = grad_matrix[images]                                         # (n_b, G, C_out/G, L)
        grad_weight += _block_weight_gradient(block, columns)
        grad_columns = np.matmul(matrix_t, block)                           # (n_b, G, K, L)
        window_grads = grad_columns.reshape((grad_columns.shape[0], x.shape[1]) + geo.kernel
                                            + geo.out_hw)
        add_windows(window_grads, padded_hw, geo, out=grad_padded[images])
    return crop_nchw(grad_padded, geo.pad_h, geo.pad_w), grad_weight


def _block_weight_gradient(block: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """sum over the block's images of grad (G, C_out/G, L) @ columns.T (G, L, K) -> (G, C_out/G, K).

    With several images the block's pixels are laid side by side first, so that this is *one*
    product per group with n_b * L terms in each sum (per-image products of small maps are slow,
    and their stack before the sum would be n_b times the size of the weight).  Computed as its
    transpose, columns @ grad.T (G, K, C_out/G): in OpenBLAS that orientation is 1.3-1.6x faster
    when C_out is small (benchmarks/README.md).
    """
    n_block, groups, out_per_group, length = block.shape
    if n_block == 1:
        return np.matmul(columns[0], block[0].transpose(0, 2, 1)).transpose(0, 2, 1)
    side_by_side = block.transpose(1, 2, 0, 3).reshape(groups, out_per_group, n_block * length)
    columns_side = columns.transpose(1, 2, 0, 3).reshape(groups, columns.shape[2], n_block * length)
    return np.matmul(columns_side, side_by_side.transpose(0, 2, 1)).transpose(0, 2, 1)

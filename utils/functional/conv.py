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
* :func:`conv2d`: the same numbers, vectorised: im2col (one strided copy of all windows) + matmul;
* :func:`conv2d_backward`: the gradients with respect to input, weight and bias.
"""
from __future__ import annotations

import numpy as np

from ._validate import (batched, batched_grad, float_array, non_negative_pair, positive_int,
                        positive_pair, same_dtype, same_shape, unbatch)
from ._windows import (WindowGeometry, add_windows, crop_nchw, output_length, pad_nchw,
                       window_view)

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
    """Validate stride/padding/dilation and compute where the windows sit (see WindowGeometry)."""
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


def _im2col(x: np.ndarray, geo: WindowGeometry, groups: int) -> np.ndarray:
    """(N, C_in, H, W) -> the window matrix (groups, C_in/groups * kH * kW, N * H_out * W_out).

    One contiguous copy of the strided window view.  Rows are ordered (channel, i, j) like a
    flattened weight and columns (n, oh, ow), so a whole batch is *one* matrix product per group:
    a few large BLAS calls are much faster than one small call per image.
    """
    windows = window_view(pad_nchw(x, geo.pad_h, geo.pad_w), geo)     # (N, C, kH, kW, Ho, Wo)
    columns = np.ascontiguousarray(windows.transpose(1, 2, 3, 0, 4, 5))  # (C, kH, kW, N, Ho, Wo)
    return columns.reshape(groups, x.shape[1] // groups * geo.kernel[0] * geo.kernel[1], -1)


def _weight_matrix(weight: np.ndarray, groups: int) -> np.ndarray:
    """(C_out, C_in/groups, kH, kW) -> (groups, C_out/groups, C_in/groups * kH * kW), a view."""
    return weight.reshape(groups, weight.shape[0] // groups, -1)


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
    """
    x, was_unbatched, geo = _prepare(input, weight, bias, stride, padding, dilation, groups)
    products = np.matmul(_weight_matrix(weight, groups), _im2col(x, geo, groups))  # (G, Co/G, N*L)
    channels_first = products.reshape((weight.shape[0], x.shape[0]) + geo.out_hw)  # (C_out, N, Ho, Wo)
    out = np.empty((x.shape[0], weight.shape[0]) + geo.out_hw, dtype=x.dtype)
    # Reordering to NCHW costs one pass over the output; the bias add rides along in that pass.
    source = channels_first.transpose(1, 0, 2, 3)
    if bias is None:
        np.copyto(out, source)
    else:
        np.add(source, bias[:, None, None], out=out)
    return unbatch(out, was_unbatched)


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
    """
    x, was_unbatched, geo = _prepare(input, weight, None, stride, padding, dilation, groups)
    grad = batched_grad(grad_output, x, (weight.shape[0],) + geo.out_hw, was_unbatched)
    # Reorder to (C_out, N, Ho, Wo), the layout of the forward's product, viewed as (G, C_out/G, N*L).
    channels_first = np.ascontiguousarray(grad.transpose(1, 0, 2, 3))
    grad_matrix = channels_first.reshape(groups, weight.shape[0] // groups, -1)
    columns = _im2col(x, geo, groups)                                              # (G, K, N*L)
    # (G, K, Co/G): with the long N*L axis contiguous in both operands BLAS runs fastest.
    grad_weight = np.matmul(columns, grad_matrix.transpose(0, 2, 1)).transpose(0, 2, 1)
    grad_columns = np.matmul(_weight_matrix(weight, groups).transpose(0, 2, 1), grad_matrix)
    grad_input = _col2im(grad_columns, x.shape, geo)
    grad_bias = grad_matrix.sum(axis=2).reshape(-1)
    return unbatch(grad_input, was_unbatched), grad_weight.reshape(weight.shape), grad_bias


def _col2im(grad_columns: np.ndarray, input_shape: tuple[int, ...], geo: WindowGeometry) -> np.ndarray:
    """Adjoint of :func:`_im2col`: (G, K, N*L) window gradients -> (N, C_in, H, W) input gradient."""
    n, channels, height, width = input_shape
    window_grads = grad_columns.reshape((channels,) + geo.kernel + (n,) + geo.out_hw)
    padded_hw = (height + sum(geo.pad_h), width + sum(geo.pad_w))
    added = add_windows(window_grads.transpose(3, 0, 1, 2, 4, 5), padded_hw, geo)
    return crop_nchw(added, geo.pad_h, geo.pad_w)

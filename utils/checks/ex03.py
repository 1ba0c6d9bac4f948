"""Exercise set 03 (NumPy vs PyTorch): nhwc_to_nchw, conv2d_backward."""
from __future__ import annotations

from typing import Callable

import numpy as np

import utils.functional as F

from .rules import require_from_scratch
from .engine import learner_check, Case, CheckFailed, Suspect, _as_array, _ints, _pair, _rng, passed, verify
from .convolution import conv2d_cases

#: The functions of this exercise set (they may call each other).
SET_FUNCTIONS = ('nhwc_to_nchw', 'conv2d_vectorized', 'conv2d_backward', 'conv_output_size', 'zero_pad', 'conv2d_loops')



@learner_check
def check_nhwc_to_nchw(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(batch) -> batch`` converting (N, H, W, C) to (N, C, H, W). Used first in exercise set ex03."""
    rng = _rng(3)
    cases = [Case("one 2x3 RGB image", (np.arange(18.0).reshape(1, 2, 3, 3),)),
             Case("a batch of two 3x4 images with 2 channels", (_ints(rng, 2, 3, 4, 2),)),
             Case("float32 keeps its dtype", (_ints(rng, 1, 2, 2, 3, dtype=np.float32),))]
    if hidden:
        cases.append(Case("a larger batch", (rng.normal(size=(4, 5, 6, 3)),)))
    suspects = [Suspect("reshape is not a transpose: `reshape` keeps the memory order and scrambles "
                        "pixels; move the channel axis with `transpose` (or np.moveaxis).",
                        lambda b: b.reshape(b.shape[0], b.shape[3], b.shape[1], b.shape[2])),
                Suspect("height and width swapped: the result must be (N, C, H, W), not (N, C, W, H).",
                        lambda b: b.transpose(0, 3, 2, 1)),
                Suspect("the batch axis moved: only the channel axis moves, N stays first.",
                        lambda b: b.transpose(3, 0, 1, 2))]
    verify(fn, "nhwc_to_nchw", ("batch",), cases, lambda b: b.transpose(0, 3, 1, 2), suspects)
    passed(f"nhwc_to_nchw moves the channel axis correctly on {len(cases)} batches")


def _unpack_gradients(name: str):
    def unpack(value):
        if not isinstance(value, (tuple, list)) or len(value) != 3:
            raise CheckFailed(f"✗ {name} must return a tuple (grad_input, grad_weight, grad_bias); "
                              f"it returned a {type(value).__name__}"
                              + (f" of length {len(value)}" if isinstance(value, (tuple, list)) else "") + ".")
        return [_as_array(v, name) for v in value]
    return unpack


def _backward_stride_ignored(grad_output, input, weight, stride=1, padding=0):
    """(grad_input, grad_weight) of a backward pass whose window (i, j) starts at (i, j), not (i*sH, j*sW)."""
    if _pair(stride) == (1, 1):
        return None
    ph, pw = _pair(padding)
    kh, kw = weight.shape[2:]
    padded = np.pad(input, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    grad_padded, grad_weight = np.zeros_like(padded), np.zeros_like(weight)
    for i in range(grad_output.shape[2]):
        for j in range(grad_output.shape[3]):
            g = grad_output[:, :, i, j]
            grad_weight += np.einsum("nf,nchw->fchw", g, padded[:, :, i:i + kh, j:j + kw])
            grad_padded[:, :, i:i + kh, j:j + kw] += np.einsum("nf,fchw->nchw", g, weight)
    return grad_padded[:, :, ph:ph + input.shape[2], pw:pw + input.shape[3]], grad_weight


def _backward_suspects(part: int) -> list[Suspect]:
    stride_ignored = ("stride ignored: output (i, j) came from the window starting at (i * stride, j * stride); "
                      "send its gradient there (and take that window for grad_weight).")

    def ref(grad_output, input, weight, **kw):
        return F.conv2d_backward(grad_output, input, weight, **kw)
    if part == 0:
        return [Suspect("grad_input used the kernel without flipping it: the gradient w.r.t. the input is "
                        "a *full* convolution of grad_output with the flipped kernel (or scatter "
                        "`grad_output[n, f, i, j] * weight[f]` back onto each window).",
                        lambda g, x, w, **kw: ref(g, x, w[..., ::-1, ::-1].copy(), **kw)[0]),
                Suspect("grad_input still has the padding: crop the padded border off at the end.",
                        lambda g, x, w, **kw: None if _pair(kw.get("padding", 0)) == (0, 0) else
                        (x.shape[0], x.shape[1], x.shape[2] + 2 * _pair(kw["padding"])[0],
                         x.shape[3] + 2 * _pair(kw["padding"])[1])),
                Suspect(stride_ignored, lambda g, x, w, **kw: (_backward_stride_ignored(g, x, w, **kw) or [None])[0])]
    if part == 1:
        return [Suspect("grad_weight is not summed over the batch: every image contributes to the "
                        "gradient of the shared weights.", lambda g, x, w, **kw: ref(g[:1], x[:1], w, **kw)[1]
                        if x.shape[0] > 1 else None),
                Suspect("grad_weight averaged over the batch: it is the *sum* over images.",
                        lambda g, x, w, **kw: ref(g, x, w, **kw)[1] / x.shape[0] if x.shape[0] > 1 else None),
                Suspect("grad_weight flipped: it is the cross-correlation of the input with grad_output.",
                        lambda g, x, w, **kw: ref(g, x, w, **kw)[1][..., ::-1, ::-1]),
                Suspect("grad_weight axes swapped: it has the weight's shape (C_out, C_in, kH, kW).",
                        lambda g, x, w, **kw: ref(g, x, w, **kw)[1].transpose(1, 0, 2, 3)),
                Suspect(stride_ignored, lambda g, x, w, **kw: (_backward_stride_ignored(g, x, w, **kw) or [None, None])[1])]
    return [Suspect("grad_bias not summed over the batch: sum grad_output over axes (0, 2, 3).",
                    lambda g, x, w, **kw: g.sum(axis=(2, 3))),
            Suspect("grad_bias not summed over height and width: sum grad_output over axes (0, 2, 3).",
                    lambda g, x, w, **kw: g.sum(axis=0)),
            Suspect("grad_bias averaged: it is the *sum* of grad_output over axes (0, 2, 3).",
                    lambda g, x, w, **kw: g.mean(axis=(0, 2, 3))),
            Suspect("grad_bias has extra axes: it has the bias's shape (C_out,); sum without `keepdims`.",
                    lambda g, x, w, **kw: (1, g.shape[1], 1, 1))]


def conv2d_backward_cases(hidden: bool = False) -> list[Case]:
    """(grad_output, input, weight) cases for conv2d backward, smallest first. Used first in exercise set ex03."""
    cases = []
    for case in conv2d_cases(hidden):
        x, w, _ = case.args
        if "dilation" in case.kwargs or x.dtype != np.float64:
            continue                                 # the backward task covers stride and padding
        out_shape = F.conv2d(x, w, None, **case.kwargs).shape
        grad = _ints(_rng(len(cases)), *out_shape)
        cases.append(Case(case.label, (grad, x, w), case.kwargs))
    # the task allows (height, width) pairs for stride and padding: tested visibly, not only in hidden tests
    rng = _rng(4)
    x, w = _ints(rng, 2, 2, 6, 5), _ints(rng, 3, 2, 3, 2)
    pairs = {"stride": (2, 1), "padding": (1, 0)}
    grad = _ints(_rng(len(cases)), *F.conv2d(x, w, None, **pairs).shape)
    cases.insert(min(len(cases), 6), Case("(height, width) pairs for stride and padding", (grad, x, w), pairs))
    return cases


@learner_check
def check_conv2d_backward(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(grad_output, input, weight, stride=1, padding=0) -> (grad_input, grad_weight, grad_bias)``.

    Shapes: grad_output (N, C_out, H_out, W_out), input (N, C_in, H, W), weight (C_out, C_in, kH, kW);
    the gradients have the shapes of input, weight and (C_out,).
    Used first in exercise set ex03.
    """
    require_from_scratch(fn, "conv2d_backward", SET_FUNCTIONS)
    name, args = "conv2d_backward", ("grad_output", "input", "weight")
    cases = conv2d_backward_cases(hidden)
    for part, what in enumerate(("grad_input", "grad_weight", "grad_bias")):
        verify(fn, f"{name} ({what})", args, cases,
               lambda *a, **kw: F.conv2d_backward(*a, **kw)[part], _backward_suspects(part),
               rtol=1e-4, atol=1e-4, output=lambda v: _unpack_gradients(name)(v)[part])
    passed(f"{name}: grad_input, grad_weight and grad_bias match the reference on {len(cases)} inputs")

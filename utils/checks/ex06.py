"""Exercise set 06 (pooling): max_pool2d, avg_pool2d, max_pool2d_backward."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import utils.functional as F

from .rules import require_from_scratch
from .engine import learner_check, Case, Suspect, _distinct, _ints, _pair, _rng, passed, verify

#: The functions of this exercise set (they may call each other).
SET_FUNCTIONS = ('max_pool2d', 'avg_pool2d', 'max_pool2d_backward')



_POOL_ARGS = ("input", "kernel_size")


def _pool_cases(hidden: bool, padding: bool) -> list[Case]:
    rng = _rng(12)
    cases = [Case("a 4x4 map, 2x2 windows", (_distinct(rng, 1, 1, 4, 4), 2)),
             Case("a 4x6 map", (_distinct(rng, 1, 1, 4, 6), 2)),
             Case("a batch of 2 with 3 channels", (_distinct(rng, 2, 3, 4, 4), 2)),
             Case("odd size: the last row/column is dropped", (_distinct(rng, 1, 1, 5, 5), 2)),
             Case("3x3 windows with stride 1 (overlapping)", (_distinct(rng, 1, 2, 4, 5), 3), {"stride": 1}),
             Case("3x3 windows with stride 2", (_distinct(rng, 1, 1, 5, 7), 3), {"stride": 2}),
             Case("a (2, 3) window", (_distinct(rng, 1, 1, 4, 6), (2, 3)))]
    if padding:
        cases.append(Case("padding 1 on negative values", (_distinct(rng, 1, 1, 4, 4) - 20, 3),
                          {"stride": 2, "padding": 1}))
    cases.append(Case("float32 keeps its dtype", (_distinct(rng, 1, 2, 4, 4, dtype=np.float32), 2)))
    if hidden:
        cases += [Case("random real values, stride (1, 2)", (rng.normal(size=(2, 3, 7, 8)), (3, 2)),
                       {"stride": (1, 2)}),
                  Case("window as large as the map", (_distinct(rng, 2, 2, 3, 3), 3))]
    return cases


def _pool_suspects(forward: Callable, other: Callable, other_name: str) -> list[Suspect]:
    return [
        Suspect("stride=None must mean stride = kernel_size (non-overlapping windows), not 1.",
                lambda x, k, stride=None, padding=0: forward(x, k, stride=1, padding=padding) if stride is None else None),
        Suspect("stride ignored: the windows move `stride` pixels at a time.",
                lambda x, k, stride=None, padding=0: None if stride is None else forward(x, k, None, padding)),
        Suspect(f"{other_name} instead: this task pools with the other statistic.",
                lambda x, k, stride=None, padding=0: other(x, k, stride, padding)),
        Suspect("padded with zeros: max pooling pads with -inf so that padding never wins.",
                lambda x, k, stride=None, padding=0: None if not padding else forward(
                    np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))), k, stride, 0)),
        Suspect("ceil instead of floor: a window that does not fit entirely is dropped.",
                lambda x, k, stride=None, padding=0: F.max_pool2d(x, k, stride, padding, ceil_mode=True).shape),
        Suspect("pooled across channels: pooling works on each channel separately, the output keeps C.",
                lambda x, k, stride=None, padding=0: (x.shape[0], 1) + forward(x, k, stride, padding).shape[2:]),
        Suspect("output in NHWC layout: keep (N, C, H_out, W_out).",
                lambda x, k, stride=None, padding=0: forward(x, k, stride, padding).transpose(0, 2, 3, 1)),
        Suspect("height and width of the window swapped: kernel_size=(kH, kW).",
                lambda x, k, stride=None, padding=0: None if isinstance(k, int) else forward(x, tuple(reversed(k)), stride, padding)),
    ]


def _stride_none_hint(exc: Exception, case: Case, arg_names: Sequence[str]) -> str | None:
    if "NoneType" in str(exc) and case.kwargs.get("stride") is None:
        return ("`stride` is None here (its default), which means stride = kernel_size: replace None "
                "before computing with it.")
    return None


def _avg(x, k, stride=None, padding=0):
    return F.avg_pool2d(x, k, stride, padding)


def _max(x, k, stride=None, padding=0):
    return F.max_pool2d(x, k, stride, padding)


@learner_check
def check_max_pool2d(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(input, kernel_size, stride=None, padding=0)`` against max_pool2d (NCHW, per channel).
    Used first in exercise set ex06."""
    require_from_scratch(fn, "max_pool2d", SET_FUNCTIONS)
    cases = _pool_cases(hidden, padding=True)
    suspects = _pool_suspects(_max, _avg, "average pooling") + [
        Suspect("minimum instead of maximum.", lambda x, k, stride=None, padding=0: -_max(-x, k, stride, padding))]
    verify(fn, "max_pool2d", _POOL_ARGS, cases, _max, suspects, crash_hints=[_stride_none_hint])
    passed(f"max_pool2d matches the reference on {len(cases)} inputs (stride, windows, padding, dtype)")


@learner_check
def check_avg_pool2d(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(input, kernel_size, stride=None)`` against avg_pool2d (no padding).
    Used first in exercise set ex06."""
    require_from_scratch(fn, "avg_pool2d", SET_FUNCTIONS)
    cases = _pool_cases(hidden, padding=False)
    area = lambda k: int(np.prod(_pair(k)))
    suspects = _pool_suspects(_avg, _max, "max pooling") + [
        Suspect("sum instead of mean: divide by the number of pixels in the window.",
                lambda x, k, stride=None, padding=0: _avg(x, k, stride) * area(k)),
        Suspect("divided by the window's side: a kH x kW window holds kH * kW pixels.",
                lambda x, k, stride=None, padding=0: _avg(x, k, stride) * area(k) / _pair(k)[0]),
        Suspect("floor division `//` rounds the mean down; divide with `/`.",
                lambda x, k, stride=None, padding=0: np.round(_avg(x, k, stride) * area(k)) // area(k))]
    verify(fn, "avg_pool2d", _POOL_ARGS, cases, _avg, suspects, crash_hints=[_stride_none_hint])
    passed(f"avg_pool2d matches the reference on {len(cases)} inputs")


def _max_pool_scatter(grad_output, x, kernel_size, stride=None, accumulate=True):
    """Send each window's gradient to its argmax; ``accumulate=False`` overwrites where windows overlap."""
    _, indices = F.max_pool2d(x, kernel_size, stride, return_indices=True)
    n, c, h, w = x.shape
    grad = np.zeros((n, c, h * w), dtype=x.dtype)
    rows, chans = np.indices(indices.shape)[:2]
    if accumulate:
        np.add.at(grad, (rows, chans, indices), grad_output)
    else:
        grad[rows, chans, indices] = grad_output   # repeated indices: the last write wins
    return grad.reshape(x.shape)


def _max_pool_all_ties(grad_output, x, kernel_size, stride=None):
    """Max-pool backward that feeds every pixel equal to its window's maximum (ties all win)."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    grad = np.zeros_like(x)
    for i in range(grad_output.shape[2]):
        for j in range(grad_output.shape[3]):
            window = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            top = window == window.max(axis=(2, 3), keepdims=True)
            grad[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += top * grad_output[:, :, i:i + 1, j:j + 1]
    return grad


def _max_pool_routed(grad_output, x, kernel_size, stride=None, offset=True, row_width=None):
    """Max-pool backward with the argmax located by hand, optionally wrong: ``offset=False`` forgets the
    window's top-left corner, ``row_width`` unravels the flat argmax with another row width."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    width = row_width(kh, kw) if row_width else kw
    grad = np.zeros_like(x)
    n_images, channels, h_out, w_out = grad_output.shape
    for n in range(n_images):
        for c in range(channels):
            for i in range(h_out):
                for j in range(w_out):
                    flat = int(np.argmax(x[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw]))
                    top, left = (i * sh, j * sw) if offset else (0, 0)
                    row, col = top + flat // width, left + flat % width
                    if row >= x.shape[2] or col >= x.shape[3]:
                        return None                     # this mistake would crash, not return
                    grad[n, c, row, col] += grad_output[n, c, i, j]
    return grad


@learner_check
def check_max_pool2d_backward(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(grad_output, input, kernel_size, stride=None) -> grad_input`` (input's shape).
    Used first in exercise set ex06."""
    require_from_scratch(fn, "max_pool2d_backward", SET_FUNCTIONS)
    cases = []
    for i, case in enumerate(_pool_cases(hidden, padding=False)):
        x, k = case.args
        out_shape = F.max_pool2d(x, k, **case.kwargs).shape
        cases.append(Case(case.label, (_ints(_rng(30 + i), *out_shape, dtype=x.dtype) + 5, x, k), case.kwargs))
    # ties: PyTorch sends a window's gradient to one maximum, the first in row-major order (np.argmax)
    ties = np.array([[[[1.0, 3, 3, 0], [3, 2, 1, 1], [0, 0, 2, 2], [0, 1, 2, 2]]]])
    cases.insert(1, Case("ties: several pixels share a window's maximum", (np.array([[[[1.0, 2], [3, 4]]]]), ties, 2)))
    cases.insert(5, Case("ties in overlapping windows", (_ints(_rng(29), 1, 1, 3, 3) + 5, ties, 2), {"stride": 1}))

    def reference(g, x, k, stride=None):
        return F.max_pool2d_backward(g, x, k, stride)
    suspects = [Suspect("gradient spread over the whole window (that is average pooling's backward): "
                        "only the maximum influenced the output, so only it gets the gradient.",
                        lambda g, x, k, stride=None: F.avg_pool2d_backward(g, x, k, stride)),
                Suspect("every pixel of the window got the full gradient: only the maximum gets it.",
                        lambda g, x, k, stride=None: F.avg_pool2d_backward(g, x, k, stride) * np.prod(_pair(k))),
                Suspect("every tied maximum got the gradient: when several pixels share a window's maximum, "
                        "only one of them (the first, row by row, as `np.argmax` finds it) receives it, as in "
                        "PyTorch.", _max_pool_all_ties),
                Suspect("overlapping windows overwrite each other: a pixel that is the maximum of several "
                        "windows receives the *sum* of their gradients, not only the last one written.",
                        lambda g, x, k, stride=None: _max_pool_scatter(g, x, k, stride, accumulate=False)),
                Suspect("the argmax is a position *inside the window*: add the window's top-left corner "
                        "(i * stride, j * stride) to get the position in the input.",
                        lambda g, x, k, stride=None: _max_pool_routed(g, x, k, stride, offset=False)),
                Suspect("flat argmax unravelled with the wrong row width: in the flattened window, one row "
                        "of the window holds kW values (the window's width, not its height).",
                        lambda g, x, k, stride=None: None if _pair(k)[0] == _pair(k)[1] else
                        _max_pool_routed(g, x, k, stride, row_width=lambda kh, kw: kh))]
    verify(fn, "max_pool2d_backward", ("grad_output", "input", "kernel_size"), cases, reference, suspects,
           crash_hints=[_stride_none_hint])
    passed(f"max_pool2d_backward routes every gradient to its window's maximum on {len(cases)} inputs")

"""Misconceptions and inputs shared by the convolution checks (exercise sets 01-04)."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import utils.functional as F

from .engine import Case, Suspect, _ints, _pair, _rng



def _conv_suspects(view: Callable = lambda out: out, to_nchw: Callable | None = None) -> list[Suspect]:
    """Misconceptions about conv2d, each computed with the reference conv2d on altered arguments.

    ``to_nchw(*args, **kwargs) -> (x, w, b, kwargs)`` maps the learner's arguments to conv2d's and
    ``view`` maps conv2d's NCHW output back to the learner's layout (both identity for conv2d itself).
    """
    to_nchw = to_nchw or (lambda input, weight, bias=None, **kw: (input, weight, bias, kw))

    def suspect(hint, alter):
        def wrong(*args, **kwargs):
            x, w, b, kw = to_nchw(*args, **kwargs)
            altered = alter(x, w, b, dict(kw))
            if altered is None:
                return None
            # a shape-only suspect: push an empty array of that shape through the layout too
            return view(np.zeros(altered)).shape if isinstance(altered, tuple) else view(altered)
        return Suspect(hint, wrong)

    def conv(x, w, b, kw, **changes):
        return F.conv2d(x, w, b, **{**kw, **changes})

    def one_side(x, w, b, kw, before):
        ph, pw = _pair(kw.get("padding", 0))
        if ph == pw == 0:
            return None
        widths = ((0, 0), (0, 0), (ph, 0), (pw, 0)) if before else ((0, 0), (0, 0), (0, ph), (0, pw))
        return conv(np.pad(x, widths), w, b, kw, padding=0)

    def bias_added(how):
        return lambda x, w, b, kw: None if b is None else how(conv(x, w, None, kw), b, x)

    def crop_to_output(x, w, b, kw, **changes):
        """The right output size, but the windows taken as if ``changes`` held (a slice that forgot them)."""
        h_out, w_out = conv(x, w, b, kw).shape[2:]
        return conv(x, w, b, kw, **changes)[..., :h_out, :w_out]

    def channels_averaged(x, w, b, kw):
        if x.shape[1] < 2:
            return None
        out = conv(x, w, None, kw) / x.shape[1]
        return out if b is None else out + b[None, :, None, None]

    def shape_of(change):
        def shape(x, w, b, kw):
            n, f, h, wd = conv(x, w, b, kw).shape
            return change(n, f, h, wd, x.shape[0])
        return shape

    return [
        suspect("kernel flipped: conv2d (like torch) is a cross-correlation, the kernel slides "
                "*without* being flipped.", lambda x, w, b, kw: conv(x, w[..., ::-1, ::-1].copy(), b, kw)),
        suspect("bias ignored: add bias[f] to every value of output channel f.", bias_added(lambda o, b, x: o)),
        suspect("bias not broadcast per output channel: bias[f] belongs to output channel f only "
                "(shape it as (1, C_out, 1, 1)).", bias_added(lambda o, b, x: o + b.sum())),
        suspect("bias added once per input channel: add it once, after summing over channels.",
                bias_added(lambda o, b, x: o + x.shape[1] * b[None, :, None, None])),
        suspect("bias broadcast along the last axis (width) instead of the channel axis 1.",
                bias_added(lambda o, b, x: o + b if o.shape[-1] == b.shape[0] else None)),
        suspect("only the first input channel is used: sum the products over *all* input channels.",
                lambda x, w, b, kw: conv(x[:, :1], w[:, :1], b, kw) if x.shape[1] > 1 else None),
        suspect("channels averaged instead of summed: output channel f is the *sum* over the input "
                "channels of their products with weight[f], not their mean.", channels_averaged),
        suspect("every output channel uses filter 0: output channel f is computed with its own filter "
                "weight[f].", lambda x, w, b, kw: None if w.shape[0] < 2 else conv(x, w[[0] * w.shape[0]], b, kw)),
        suspect("stride ignored in the window slice: the output size accounts for the stride, but output "
                "(i, j) reads the window starting at (i, j) instead of (i * stride_h, j * stride_w).",
                lambda x, w, b, kw: None if _pair(kw.get("stride", 1)) == (1, 1) else crop_to_output(x, w, b, kw, stride=1)),
        suspect("dilation ignored in the window slice: the output size accounts for the dilation, but the "
                "window's taps are read next to each other instead of `dilation` pixels apart.",
                lambda x, w, b, kw: None if _pair(kw.get("dilation", 1)) == (1, 1) else crop_to_output(x, w, b, kw, dilation=1)),
        suspect("only the first image of the batch is processed.",
                lambda x, w, b, kw: conv(x[:1], w, b, kw) if x.shape[0] > 1 else None),
        suspect("stride ignored: move the window `stride` pixels at a time.",
                lambda x, w, b, kw: None if _pair(kw.get("stride", 1)) == (1, 1) else conv(x, w, b, kw, stride=1)),
        suspect("padding ignored: zero-pad height and width before sliding the window.",
                lambda x, w, b, kw: None if _pair(kw.get("padding", 0)) == (0, 0) else conv(x, w, b, kw, padding=0)),
        suspect("padding on one side only: pad `padding` zeros before and after.",
                lambda x, w, b, kw: one_side(x, w, b, kw, before=True)),
        suspect("padding on one side only: pad `padding` zeros before and after.",
                lambda x, w, b, kw: one_side(x, w, b, kw, before=False)),
        suspect("dilation ignored: with dilation d the kernel taps are d pixels apart.",
                lambda x, w, b, kw: None if _pair(kw.get("dilation", 1)) == (1, 1) else conv(x, w, b, kw, dilation=1)),
        suspect("height and width settings swapped: a pair means (height, width).",
                lambda x, w, b, kw: conv(x, w, b, {k: tuple(reversed(_pair(v))) for k, v in kw.items()})),
        suspect("output in NHWC layout: conv2d returns (N, C_out, H_out, W_out).",
                lambda x, w, b, kw: conv(x, w, b, kw).transpose(0, 2, 3, 1)),
        suspect("padding on the wrong axes: pad only height and width (axes 2 and 3), not N or C.",
                lambda x, w, b, kw: None if _pair(kw.get("padding", 0))[0] == 0
                else (x.shape[0] + 2 * _pair(kw["padding"])[0],) + conv(x, w, b, kw).shape[1:]),
        suspect("output as large as the input: the output's height and width come from the "
                "output-size formula (H - kH + 1 without padding), not from the input's size.",
                lambda x, w, b, kw: tuple(conv(x, w, b, kw).shape[:2]) + tuple(x.shape[2:])),
        suspect("off-by-one window range: the last window position is missing (the `+ 1` of the "
                "output-size formula, or `range(H_out)` vs `range(H_out - 1)`).",
                shape_of(lambda n, f, h, wd, n_in: (n, f, h - 1, wd - 1))),
        suspect("off-by-one window range: one window position too many (or a window sticking out).",
                shape_of(lambda n, f, h, wd, n_in: (n, f, h + 1, wd + 1))),
    ]


_CONV_ARGS = ("input", "weight", "bias")


def _bias_broadcast_hint(exc: Exception, case: Case, arg_names: Sequence[str]) -> str | None:
    """A (C_out,) bias added to an (N, C_out, H, W) output lines up with the width axis and crashes."""
    bias = dict(zip(arg_names, case.args)).get("bias")
    if bias is not None and "broadcast" in str(exc) and f"({len(bias)},)" in str(exc):
        return ("bias not broadcast per output channel: `out + bias` lines a (C_out,) bias up with the "
                "*last* axis (width), while bias[f] belongs to channel f (axis 1).")
    return None


def _unpadded_hint(exc: Exception, case: Case, arg_names: Sequence[str]) -> str | None:
    """Windows at the border cut short: the output size counted the padding, the input was not padded."""
    padding = {**dict(zip(arg_names, case.args)), **case.kwargs}.get("padding", 0)
    if padding in (None, 0) or _pair(padding) == (0, 0) or "broadcast" not in str(exc):
        return None
    return ("missing padding: the output size counts the `padding` zeros, but the windows were cut from "
            "the unpadded input, so those at the bottom/right border come out smaller than the kernel.")


def _conv_case(rng, label, x_shape, w_shape, bias=False, dtype=np.float64, **kwargs) -> Case:
    x, w = _ints(rng, *x_shape, dtype=dtype), _ints(rng, *w_shape, dtype=dtype)
    # positive biases: their sum is never 0, so "bias ignored" and "biases summed" stay distinguishable
    b = rng.integers(1, 4, size=w_shape[0]).astype(dtype) if bias else None
    return Case(label, (x, w, b), kwargs)


def conv2d_cases(hidden: bool = False, large: bool = False) -> list[Case]:
    """Inputs for conv2d-like functions, smallest first; each case adds one feature. Course infrastructure."""
    rng = _rng(0)
    cases = [Case("one channel, one filter", (np.arange(12.0).reshape(1, 1, 3, 4),
                                              np.array([[[[1.0, 2.0], [0.0, -1.0]]]]), None)),
             _conv_case(rng, "two filters with a bias", (1, 1, 3, 4), (2, 1, 2, 2), bias=True),
             _conv_case(rng, "three input channels", (1, 3, 4, 4), (2, 3, 2, 2), bias=True),
             _conv_case(rng, "a batch of two images", (2, 2, 4, 5), (3, 2, 3, 3), bias=True),
             _conv_case(rng, "stride 2", (1, 1, 5, 6), (1, 1, 2, 2), stride=2),
             _conv_case(rng, "padding 1", (1, 2, 3, 4), (3, 2, 3, 3), bias=True, padding=1),
             _conv_case(rng, "dilation 2", (1, 1, 5, 6), (1, 1, 2, 2), dilation=2),
             _conv_case(rng, "stride, padding and dilation together", (2, 2, 7, 6), (3, 2, 3, 2),
                        bias=True, stride=2, padding=1, dilation=2),
             _conv_case(rng, "float32 input", (1, 2, 4, 4), (2, 2, 3, 3), bias=True, dtype=np.float32),
             # the task allows (height, width) pairs: tested visibly, so the grader holds no surprise
             _conv_case(rng, "pairs for stride, padding and dilation", (1, 1, 6, 5), (1, 1, 3, 2),
                        stride=(1, 2), padding=(2, 0), dilation=(2, 1))]
    if hidden:
        cases += [_conv_case(rng, "pairs with a batch, channels and bias", (2, 3, 8, 7), (4, 3, 3, 2),
                             bias=True, stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
                  _conv_case(rng, "1x1 kernel", (2, 4, 3, 5), (3, 4, 1, 1), bias=True),
                  _conv_case(rng, "kernel as large as the padded input", (1, 2, 3, 4), (2, 2, 5, 6),
                             bias=True, padding=1),
                  Case("random real values", (rng.normal(size=(3, 3, 9, 8)), rng.normal(size=(4, 3, 3, 3)),
                                              rng.normal(size=4)), {"stride": (2, 1), "padding": (1, 2)})]
    if large:
        cases.append(Case("a larger batch", (rng.normal(size=(8, 3, 32, 32)).astype(np.float32),
                                             rng.normal(size=(16, 3, 3, 3)).astype(np.float32),
                                             rng.normal(size=16).astype(np.float32)), {"padding": 1}))
    return cases


def _reference_conv_view(to_nchw: Callable, view: Callable) -> Callable:
    """The reference conv2d seen through another argument layout (e.g. one 2D image and one kernel)."""
    def reference(*args, **kwargs):
        x, w, b, kw = to_nchw(*args, **kwargs)
        return view(F.conv2d(x, w, b, **kw))
    return reference

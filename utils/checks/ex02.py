"""Exercise set 02 (convolution from scratch): conv_output_size, zero_pad, conv2d (loops and vectorized)."""
from __future__ import annotations

from typing import Callable

import numpy as np

import utils.functional as F

from .rules import require_from_scratch
from .engine import (learner_check, Case, Suspect, _ints, _integer_output, _pair, _rng, expect_value_error, passed, verify)
from .convolution import _CONV_ARGS, _bias_broadcast_hint, _conv_suspects, _unpadded_hint, conv2d_cases
from .rules import require_no_position_loops

#: The functions of this exercise set (they may call each other).
SET_FUNCTIONS = ('conv_output_size', 'zero_pad', 'conv2d_loops', 'conv2d_vectorized', 'conv2d_backward')



_SIZE_ARGS = ("size", "kernel_size")
_SIZE_PARAMS = ("size", "kernel_size", "stride", "padding", "dilation")


def _size_call(size, kernel_size, stride=1, padding=0, dilation=1) -> dict:
    return dict(zip(_SIZE_PARAMS, (size, kernel_size, stride, padding, dilation)))


def _has_pair(args: dict) -> bool:
    return any(isinstance(v, (tuple, list)) for v in args.values())


def _per_axis(one_axis: Callable) -> Callable:
    """``one_axis(size, kernel_size, stride, padding, dilation)`` on ints -> the task's function on
    ints or (height, width) pairs (a pair anywhere: the answer is the pair (h_out, w_out))."""
    def answer(*args, **kwargs):
        call = _size_call(*args, **kwargs)
        if not _has_pair(call):
            return np.asarray(one_axis(**call))
        axes = [{k: (v[axis] if isinstance(v, (tuple, list)) else v) for k, v in call.items()} for axis in (0, 1)]
        return np.array([one_axis(**a) for a in axes])
    return answer


def _size_reference(*args, **kwargs):
    return _per_axis(lambda **a: F.conv_output_size(**a))(*args, **kwargs)


def _size_suspects() -> list[Suspect]:
    def formula(pad_factor=2, plus_one=1, use_stride=True, span=lambda k, d: d * (k - 1) + 1, ceil=False):
        def wrong(size, kernel_size, stride=1, padding=0, dilation=1):
            padding = 0 if padding == "valid" else padding
            if padding == "same":
                return size
            room = size + pad_factor * padding - span(kernel_size, dilation)
            s = stride if use_stride else 1
            return (-(-room // s) if ceil else room // s) + plus_one
        return _per_axis(wrong)

    def swapped(*args, **kwargs):
        call = _size_call(*args, **kwargs)
        if not _has_pair(call):
            return None
        return _size_reference(**{k: tuple(reversed(v)) if isinstance(v, (tuple, list)) else v
                                  for k, v in call.items()})

    def first_only(*args, **kwargs):
        call = _size_call(*args, **kwargs)
        if not _has_pair(call):
            return None
        return _size_reference(**{k: (v[0], v[0]) if isinstance(v, (tuple, list)) else v
                                  for k, v in call.items()})

    def same_as_half_kernel(size, kernel_size, stride=1, padding=0, dilation=1):
        if padding != "same":
            return None
        return F.conv_output_size(size, kernel_size, stride, kernel_size // 2, dilation)

    def no_pair_returned(*args, **kwargs):
        return () if _has_pair(_size_call(*args, **kwargs)) else None

    return [
        Suspect("off by one: the first window position counts too (the `+ 1`).", formula(plus_one=0)),
        Suspect("padding counted once: it is added on both sides, `2 * padding`.", formula(pad_factor=1)),
        Suspect("stride ignored: the window jumps `stride` pixels, so divide the room by the stride.",
                formula(use_stride=False)),
        Suspect("dilation ignored: a dilated kernel spans `dilation * (kernel_size - 1) + 1` pixels.",
                formula(span=lambda k, d: k)),
        Suspect("dilated span wrong: it is `dilation * (kernel_size - 1) + 1`, not `dilation * kernel_size`.",
                formula(span=lambda k, d: d * k)),
        Suspect("rounded up: a window that does not fit entirely is dropped (floor, not ceil).",
                formula(ceil=True)),
        Suspect("pair order swapped: a pair is (height, width), and the answer is (h_out, w_out), the "
                "height first, as in torch.", swapped),
        Suspect("only the first number of each pair is used: the second one belongs to the width.", first_only),
        Suspect("padding='same' taken as `kernel_size // 2` zeros per side: that keeps the size only for an "
                "odd kernel without dilation; 'same' means the output is exactly as long as the input "
                "(torch pads `dilation * (kernel_size - 1)` zeros in total, the extra one at the end).",
                _per_axis(same_as_half_kernel)),
        Suspect("a single number returned although an argument is a (height, width) pair: then return the "
                "pair (h_out, w_out).", no_pair_returned),
    ]


def _string_padding_hint(exc: Exception, case: Case, arg_names) -> str | None:
    if isinstance(case.kwargs.get("padding"), str) and isinstance(exc, TypeError):
        return ("padding is a string here ('valid' or 'same'): turn it into a number of zeros (or answer "
                "'same' directly) before the arithmetic.")
    if isinstance(exc, TypeError) and _has_pair(_size_call(*case.args, **case.kwargs)):
        return ("an argument is a (height, width) pair here: compute each axis with its own numbers "
                "(an int counts for both axes) and return (h_out, w_out).")
    return None


def _size_output(value):
    """An int, or a pair of ints (tuple, list or array of two), as an array; anything else fails clearly."""
    one = _integer_output("conv_output_size")
    if isinstance(value, (tuple, list, np.ndarray)) and np.ndim(value) == 1:
        return np.array([one(v) for v in value]).astype(int)
    return one(value)


@learner_check
def check_output_size(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(size, kernel_size, stride=1, padding=0, dilation=1)`` (the output-size formula).

    Every argument is an int or a (height, width) pair, ``padding`` also ``'valid'`` or ``'same'``;
    returns an int, or the pair (h_out, w_out) when any argument is a pair.  ValueError when the kernel
    does not fit, and for ``padding='same'`` with a stride other than 1 (as torch).
    Used first in exercise set ex02.
    """
    require_from_scratch(fn, "conv_output_size", SET_FUNCTIONS)
    cases = [Case("no padding, stride 1", (5, 3)),
             Case("a 1-wide kernel", (4, 1)),
             Case("stride 2", (7, 3), {"stride": 2}),
             Case("stride 2, last window does not fit", (6, 3), {"stride": 2}),
             Case("padding 1", (5, 3), {"padding": 1}),
             Case("padding 2", (4, 5), {"padding": 2}),
             Case("dilation 2", (7, 3), {"dilation": 2}),
             Case("everything at once", (11, 3), {"stride": 2, "padding": 1, "dilation": 2}),
             Case("padding='valid' (no padding)", (6, 3), {"padding": "valid"}),
             Case("padding='same', odd kernel", (5, 3), {"padding": "same"}),
             Case("padding='same', even kernel", (6, 4), {"padding": "same"}),
             Case("padding='same' with dilation 2", (7, 3), {"padding": "same", "dilation": 2}),
             Case("kernel_size as a (height, width) pair", (6, (3, 1))),
             Case("size as a (height, width) pair", ((6, 9), 3)),
             Case("pairs for every argument", ((11, 9), (3, 2)),
                  {"stride": (2, 1), "padding": (1, 0), "dilation": (2, 3)}),
             Case("padding='same' with pairs", ((6, 5), (3, 2)), {"padding": "same", "dilation": (1, 2)})]
    if hidden:
        cases += [Case("large input", (224, 7), {"stride": 2, "padding": 3}),
                  Case("stride 3", (10, 2), {"stride": 3, "padding": 1}),
                  Case("kernel as big as the padded input", (3, 5), {"padding": 1}),
                  Case("padding='same', kernel larger than the input", ((3, 4), 5), {"padding": "same"}),
                  Case("padding='valid' with pairs", ((8, 7), (3, 5)), {"padding": "valid", "stride": (1, 2)}),
                  Case("pairs given as lists", ([12, 10], [5, 3]), {"stride": [3, 2], "padding": [2, 1]})]
    verify(fn, "conv_output_size", _SIZE_ARGS, cases, _size_reference, _size_suspects(),
           check_dtype=False, output=_size_output,
           crash_hints=[_string_padding_hint])
    # the task asks for these ValueErrors, so the visible check tests them too (not only the grader)
    bad = [(Case("kernel too big", (2, 5)), "the kernel does not fit in the padded input"),
           (Case("padding='same' with stride 2", (8, 3), {"stride": 2, "padding": "same"}),
            "torch refuses padding='same' for a stride other than 1")]
    if hidden:
        bad += [(Case("dilated kernel too big", (5, 3), {"dilation": 3}), "the kernel does not fit in the padded input"),
                (Case("kernel too wide (pairs)", ((5, 3), (3, 4))), "the kernel does not fit in the padded input"),
                (Case("padding='same' with stride (1, 2)", ((8, 8), 3), {"stride": (1, 2), "padding": "same"}),
                 "torch refuses padding='same' for a stride other than 1")]
    for case, why in bad:
        expect_value_error(fn, "conv_output_size", _SIZE_ARGS, case, why)
    passed(f"conv_output_size agrees with the formula on {len(cases)} configurations "
           f"(ints, pairs, 'valid', 'same') and refuses {len(bad)} bad ones")


def _pad_reference(x, padding):
    ph, pw = _pair(padding)
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _pad_suspects() -> list[Suspect]:
    def pad(widths, **kw):
        def wrong(x, padding):
            ph, pw = _pair(padding)
            return np.pad(x, widths(ph, pw), **kw)
        return wrong
    return [
        Suspect("padding on the wrong axes: in NCHW only axes 2 and 3 (height, width) are padded, "
                "not the batch or channel axes.", pad(lambda h, w: ((h, h), (h, h), (h, h), (w, w)))),
        Suspect("padding on the wrong axes: you padded axes 1 and 2 as if the layout were NHWC; "
                "NCHW has height and width on axes 2 and 3.", pad(lambda h, w: ((0, 0), (h, h), (w, w), (0, 0)))),
        Suspect("padding on one side only: add `padding` zeros before *and* after.",
                pad(lambda h, w: ((0, 0), (0, 0), (h, 0), (w, 0)))),
        Suspect("padding on one side only: add `padding` zeros before *and* after.",
                pad(lambda h, w: ((0, 0), (0, 0), (0, h), (0, w)))),
        Suspect("height and width padding swapped: `padding=(ph, pw)` pads the height by ph.",
                pad(lambda h, w: ((0, 0), (0, 0), (w, w), (h, h)))),
        Suspect("padding doubled: `padding` is the number of zeros on *each* side.",
                pad(lambda h, w: ((0, 0), (0, 0), (2 * h, 2 * h), (2 * w, 2 * w)))),
        Suspect("padded with the edge values instead of zeros.",
                pad(lambda h, w: ((0, 0), (0, 0), (h, h), (w, w)), mode="edge")),
        Suspect("padded with ones instead of zeros.",
                pad(lambda h, w: ((0, 0), (0, 0), (h, h), (w, w)), constant_values=1)),
    ]


@learner_check
def check_zero_pad(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(x, padding) -> x`` zero-padded on height and width; x is (N, C, H, W), padding int or pair.
    Used first in exercise set ex02."""
    require_from_scratch(fn, "zero_pad", SET_FUNCTIONS)
    rng = _rng(2)
    cases = [Case("one image, one channel, padding 1", (_ints(rng, 1, 1, 2, 3) + 4, 1)),
             Case("padding 0 changes nothing", (_ints(rng, 1, 1, 2, 2) + 4, 0)),
             Case("batch of 2, 3 channels, padding 2", (_ints(rng, 2, 3, 2, 2) + 4, 2)),
             Case("padding given as (height, width)", (_ints(rng, 1, 2, 3, 2) + 4, (1, 2))),
             Case("float32 input keeps its dtype", (_ints(rng, 1, 1, 2, 2, dtype=np.float32) + 4, 1))]
    if hidden:
        cases += [Case("larger batch", (rng.normal(size=(3, 4, 5, 6)), (2, 1))),
                  Case("padding (0, 3)", (rng.normal(size=(1, 2, 4, 1)), (0, 3)))]
    verify(fn, "zero_pad", ("x", "padding"), cases, _pad_reference, _pad_suspects())
    passed(f"zero_pad pads height and width with zeros on {len(cases)} inputs")


@learner_check
def check_conv2d(fn: Callable, hidden: bool = False, name: str = "conv2d", large: bool = False,
                 vectorized: bool | None = None) -> None:
    """Check ``fn(input, weight, bias=None, stride=1, padding=0, dilation=1)`` against conv2d.

    input (N, C_in, H, W), weight (C_out, C_in, kH, kW), bias (C_out,) or None; stride, padding and
    dilation int or (height, width); returns (N, C_out, H_out, W_out) with the input's dtype.
    ``large=True`` adds a (8, 3, 32, 32) batch (for vectorized versions).  Rules read from the source
    (:mod:`utils.checks.rules`): from scratch always; no loops over output positions when ``vectorized``
    (default: when ``name`` is ``"conv2d_vectorized"``, exercise set 03).
    Used first in exercise set ex02.
    """
    require_from_scratch(fn, name, SET_FUNCTIONS)
    cases = conv2d_cases(hidden, large)
    if vectorized if vectorized is not None else name == "conv2d_vectorized":
        require_no_position_loops(fn, name)
    # the chapter's section 7b batch tensordot (stride 1, padding 1, no bias) copied with its settings fixed
    chapter = Suspect("the settings of chapter 02's batch `tensordot` (section 7b) are fixed in your function: "
                      "it ignores `stride`, `dilation` and `bias` and always pads 1; the task asks for every "
                      "stride, dilation and padding (int or pair) and the bias.",
                      lambda x, w, b=None, **kw: F.conv2d(x, w, padding=1))
    verify(fn, name, _CONV_ARGS, cases, F.conv2d, [chapter, *_conv_suspects()], rtol=1e-4, atol=1e-4,
           crash_hints=[_bias_broadcast_hint, _unpadded_hint])
    passed(f"{name} matches the reference conv2d on {len(cases)} inputs "
           f"(bias, channels, batch, stride, padding, dilation, dtype)")

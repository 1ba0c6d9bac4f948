"""Exercise set 09 (efficiency and accuracy): conv_params, conv_macs, dense_params, median_time."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .rules import require_own_code
from .engine import Case, CheckFailed, Suspect, _integer_output, learner_check, passed, verify



def _cost(**kw):
    from utils.efficiency import conv2d_cost
    return conv2d_cost(**kw)


@learner_check
def check_conv_params(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(in_channels, out_channels, kernel_size, bias=True) -> int`` (learnable numbers of a Conv2d).
    Used first in exercise set ex09."""
    require_own_code(fn, "conv_params")
    cases = [Case("1 -> 1 channel, 3x3", (1, 1, 3)), Case("3 -> 16 channels, 3x3", (3, 16, 3)),
             Case("16 -> 32 channels, 5x5", (16, 32, 5)), Case("without bias", (8, 4, 3), {"bias": False})]
    if hidden:
        cases += [Case("1x1 kernel", (64, 128, 1)), Case("large", (256, 512, 3))]

    def params(c_in, c_out, k, bias=True, **_):
        return np.asarray(_cost(in_channels=c_in, out_channels=c_out, kernel_size=k, input_size=k,
                                bias=bias).params)
    suspects = [Suspect("bias forgotten: each output channel has one bias.",
                        lambda ci, co, k, bias=True: np.asarray(ci * co * k * k) if bias else None),
                Suspect("`bias=False` ignored: without bias the layer has only its weights.",
                        lambda ci, co, k, bias=True: None if bias else np.asarray(ci * co * k * k + co)),
                Suspect("input channels forgotten: each filter has C_in * k * k weights.",
                        lambda ci, co, k, bias=True: np.asarray(co * k * k + co * bias)),
                Suspect("kernel size not squared: a k x k kernel has k * k weights.",
                        lambda ci, co, k, bias=True: np.asarray(ci * co * k + co * bias)),
                Suspect("one bias per input channel: there is one bias per *output* channel.",
                        lambda ci, co, k, bias=True: np.asarray(ci * co * k * k + ci * bias))]
    verify(fn, "conv_params", ("in_channels", "out_channels", "kernel_size"), cases, params, suspects,
           check_dtype=False, output=_integer_output("conv_params"))
    passed(f"conv_params counts weights and biases right for {len(cases)} layers")


@learner_check
def check_conv_macs(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(in_channels, out_channels, kernel_size, input_size, stride=1, padding=0) -> int`` MACs.
    Used first in exercise set ex09."""
    require_own_code(fn, "conv_macs")
    cases = [Case("1 -> 1 channel, 3x3 on 5x5", (1, 1, 3, 5)), Case("3 -> 8 channels", (3, 8, 3, 6)),
             Case("padding 1", (2, 4, 3, 6), {"padding": 1}), Case("stride 2", (2, 4, 3, 7), {"stride": 2})]
    if hidden:
        cases += [Case("a 224x224 image", (3, 64, 7, 224), {"stride": 2, "padding": 3})]

    def macs(ci, co, k, size, stride=1, padding=0, **_):
        return np.asarray(_cost(in_channels=ci, out_channels=co, kernel_size=k, input_size=size,
                                stride=stride, padding=padding).macs)

    def out(size, k, stride=1, padding=0):
        return (size + 2 * padding - k) // stride + 1
    suspects = [Suspect("input size used for the number of outputs: count the output positions (the "
                        "output-size formula), each costs C_in * k * k MACs per filter.",
                        lambda ci, co, k, size, stride=1, padding=0: np.asarray(co * size * size * ci * k * k)),
                Suspect("input channels forgotten: each output value sums over C_in * k * k products.",
                        lambda ci, co, k, size, stride=1, padding=0: np.asarray(co * out(size, k, stride, padding) ** 2 * k * k)),
                Suspect("multiplications and additions counted separately: one MAC is one multiply-add.",
                        lambda ci, co, k, size, stride=1, padding=0: 2 * macs(ci, co, k, size, stride, padding)),
                Suspect("padding ignored: the window slides over the padded input, `input_size + 2 * padding` wide.",
                        lambda ci, co, k, size, stride=1, padding=0: macs(ci, co, k, size, stride) if padding else None),
                Suspect("stride ignored: with stride s there are about s * s times fewer output positions.",
                        lambda ci, co, k, size, stride=1, padding=0: macs(ci, co, k, size, 1, padding) if stride > 1 else None)]
    verify(fn, "conv_macs", ("in_channels", "out_channels", "kernel_size", "input_size"), cases, macs,
           suspects, check_dtype=False, output=_integer_output("conv_macs"))
    passed(f"conv_macs counts multiply-adds right for {len(cases)} layers")


@learner_check
def check_dense_params(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(input_shape, output_shape) -> int``: parameters of a dense layer mapping (C, H, W) to (C', H', W').
    Used first in exercise set ex09."""
    require_own_code(fn, "dense_params")
    from utils.efficiency import linear_cost
    cases = [Case("1x3x3 to 1x1x1", ((1, 3, 3), (1, 1, 1))), Case("1x8x8 to 4x6x6", ((1, 8, 8), (4, 6, 6)))]
    if hidden:
        cases.append(Case("3x32x32 to 16x32x32", ((3, 32, 32), (16, 32, 32))))

    def params(shape_in, shape_out):
        return np.asarray(linear_cost(int(np.prod(shape_in)), int(np.prod(shape_out))).params)
    suspects = [Suspect("bias forgotten: one bias per output value.",
                        lambda a, b: np.asarray(int(np.prod(a)) * int(np.prod(b)))),
                Suspect("one bias per input value: there is one bias per *output* value.",
                        lambda a, b: np.asarray(int(np.prod(a)) * int(np.prod(b)) + int(np.prod(a)))),
                Suspect("only the channels counted: a dense layer connects every input *value* (C * H * W) "
                        "to every output value.", lambda a, b: np.asarray(a[0] * b[0] + b[0]))]
    verify(fn, "dense_params", ("input_shape", "output_shape"), cases, params, suspects, check_dtype=False,
           output=_integer_output("dense_params"))
    passed(f"dense_params counts the dense layer's parameters right for {len(cases)} shapes")


@learner_check
def check_median_time(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(seconds, warmup) -> float``: the median of ``seconds[warmup:]`` (a timing of one call).

    ``seconds`` holds the wall-clock time of consecutive forward passes, warm-up calls first.
    Used first in exercise set ex09.
    """
    require_own_code(fn, "median_time")
    rng = np.random.default_rng(9)
    cold = np.array([0.52, 0.21, 0.09])                        # warm-up: allocation, kernel choice
    cases = [Case("3 warm-up calls, then 7 calls, one interrupted",
                  (np.concatenate([cold, [0.010, 0.011, 0.012, 0.300, 0.010, 0.013, 0.011]]), 3)),
             Case("no warm-up", (np.array([0.020, 0.022, 0.021, 0.400, 0.019]), 0)),
             Case("2 warm-up calls, then an even number of calls (6)",
                  (np.concatenate([cold[:2], [0.030, 0.050, 0.040, 0.035, 0.045, 0.900]]), 2))]
    if hidden:
        timed = rng.lognormal(np.log(0.004), 0.1, 40)
        timed[rng.choice(40, 6, replace=False)] *= rng.uniform(5, 50, 6)
        cases += [Case("5 warm-up calls, then 40 calls, several interrupted",
                       (np.concatenate([rng.uniform(0.05, 0.5, 5), timed]), 5)),
                  Case("1 warm-up call, then 2 calls", (np.array([1.5, 0.002, 0.004]), 1))]

    def median(seconds, warmup):
        return np.asarray(float(np.median(seconds[warmup:])))
    suspects = [
        Suspect("warm-up calls kept: the first calls allocate memory and choose kernels, they are not the "
                "model's speed; leave out the first `warmup` values.",
                lambda s, w: np.asarray(float(np.median(s))) if w else None),
        Suspect("warm-up taken from the wrong end: the warm-up calls are the *first* `warmup` values.",
                lambda s, w: np.asarray(float(np.median(s[:len(s) - w]))) if w else None),
        Suspect("mean instead of median: a mean is pulled up by the calls that other programs "
                "interrupted; the median is the typical call.",
                lambda s, w: np.asarray(float(np.mean(s[w:])))),
        Suspect("mean of all calls: leave out the warm-up calls, and take the median (the mean is pulled up "
                "by interrupted calls).", lambda s, w: np.asarray(float(np.mean(s))) if w else None),
        Suspect("total instead of one call: the sum of the repeats grows with their number; report the "
                "median time of one call.", lambda s, w: np.asarray(float(np.sum(s[w:])))),
        Suspect("minimum instead of median: the fastest call is the luckiest one; this course reports the "
                "median, the typical call.", lambda s, w: np.asarray(float(np.min(s[w:])))),
        Suspect("upper middle value for an even number of calls: the median of an even number of values "
                "is the mean of the two middle ones (`np.median` does it).",
                lambda s, w: np.asarray(float(np.sort(s[w:])[(len(s) - w) // 2])) if (len(s) - w) % 2 == 0 else None),
    ]

    def as_float(value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
                and not (isinstance(value, np.ndarray) and value.shape == ()):
            raise CheckFailed(f"✗ median_time returned a {type(value).__name__}; return one number (a float, "
                              f"in seconds), e.g. `float(np.median(...))`.")
        return np.asarray(float(value))
    verify(fn, "median_time", ("seconds", "warmup"), cases, median, suspects, check_dtype=False,
           output=as_float)
    passed(f"median_time reads {len(cases)} timings right: warm-up left out, median of the rest")

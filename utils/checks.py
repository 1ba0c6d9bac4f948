"""Feedback for the exercises: ``check_*(learner_function)`` says ✓ or explains what went wrong.

Each check runs the learner's function on a fixed list of small inputs (smallest first), compares
what it returns with the course's reference (:mod:`utils.functional`, :mod:`utils.efficiency`,
:mod:`utils.models`) and, on the first mismatch, raises :class:`CheckFailed` whose message shows

* the smallest failing input (inputs only: never the reference output, never reference code),
* what is wrong (shape, dtype or values; the expected *shape* is shown, values are not),
* the likely misconception, found by comparing the learner's output with deliberately wrong
  versions of the computation (kernel flipped, stride ignored, padding on the wrong axes, ...).

The learner's function may be a proxy that runs in another process (the instructor's grader does
that): checks only call it with NumPy arrays, Python scalars, tuples, lists, dicts or None, and
only look at what it returns.  Every check is seeded and takes well under a second.

``hidden=True`` adds more (larger, non-square, mixed) cases; the grader uses it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "CheckFailed",
    "check_get_patch", "check_patch_response", "check_response_map",
    "check_output_size", "check_zero_pad", "check_conv2d",
    "check_nhwc_to_nchw", "check_conv2d_backward",
    "check_edge_filters", "check_feature_maps", "check_multichannel_conv",
    "check_relu", "check_relu_backward", "check_compose_kernels",
    "check_max_pool2d", "check_avg_pool2d", "check_max_pool2d_backward",
]


class CheckFailed(AssertionError):
    """A learner's function gave a wrong result; the message says where and (likely) why."""


# ---------------------------------------------------------------- the checking machinery

@dataclass
class Case:
    """One call of the learner's function: ``fn(*args, **kwargs)``, with a label saying what it tests."""
    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


@dataclass
class Suspect:
    """A misconception and what a function suffering from it would return.

    ``wrong(*args, **kwargs)`` returns an array (compared by shape and value) or a tuple of ints
    (compared by shape only); ``None`` or an exception means "does not apply to this case".
    """
    hint: str
    wrong: Callable[..., Any]


def _functional():
    # Imported lazily so that ``import utils.checks`` stays cheap and works while ops are being written.
    import utils.functional as F
    return F


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _ints(rng: np.random.Generator, *shape: int, dtype=np.float64) -> np.ndarray:
    """Small integer values stored as floats: exact sums and readable failure messages."""
    return rng.integers(-3, 4, size=shape).astype(dtype)


def _distinct(rng: np.random.Generator, *shape: int, dtype=np.float64) -> np.ndarray:
    """Distinct values (a permutation, centred on 0): no ties, so every max is unique."""
    n = int(np.prod(shape))
    return (rng.permutation(n) - n // 2).reshape(shape).astype(dtype)


def _describe_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        head = f"array of shape {value.shape}, dtype {value.dtype}"
        if value.size <= 40:
            body = np.array2string(value, precision=3, separator=", ", suppress_small=True)
            return head + "\n      " + body.replace("\n", "\n      ")
        return head + " (random values)"
    return repr(value)


def describe_case(case: Case, arg_names: Sequence[str]) -> str:
    """The inputs of a case, one per line, as the learner would write the call."""
    lines = [f"    {name} = {_describe_value(value)}" for name, value in zip(arg_names, case.args)]
    lines += [f"    {name} = {_describe_value(value)}" for name, value in case.kwargs.items()]
    return "\n".join(lines)


def _call(fn: Callable, case: Case, name: str, arg_names: Sequence[str]):
    try:
        return fn(*case.args, **case.kwargs)
    except CheckFailed:
        raise
    except Exception as exc:  # the learner's bug, reported with the input that triggered it
        hint = ""
        if isinstance(exc, TypeError) and "argument" in str(exc):
            hint = f"\n  Does {name} accept the arguments named in the task ({', '.join(arg_names)})?"
        if isinstance(exc, NotImplementedError):
            hint = "\n  The function still raises NotImplementedError: replace it with your code."
        raise CheckFailed(f"✗ {name} raised {type(exc).__name__}: {exc}\n"
                          f"  on the input ({case.label}):\n{describe_case(case, arg_names)}{hint}") from None


def _as_array(value: Any, name: str) -> np.ndarray:
    if value is None:
        raise CheckFailed(f"✗ {name} returned None: did you forget the `return` statement?")
    try:
        return np.asarray(value)
    except Exception:
        raise CheckFailed(f"✗ {name} returned a {type(value).__name__}, not an array") from None


def _same(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    if got.shape != want.shape:
        return False
    try:
        return bool(np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol))
    except (TypeError, ValueError):
        return False


def _suspected(got: np.ndarray, want: np.ndarray, case: Case, suspects: Sequence[Suspect],
               rtol: float, atol: float) -> list[str]:
    """The hints of every misconception whose wrong output looks like ``got`` (and not like ``want``)."""
    values, shapes = [], []
    for suspect in suspects:
        try:
            wrong = suspect.wrong(*case.args, **case.kwargs)
        except Exception:  # the misconception cannot even produce an output for this case
            continue
        if wrong is None:
            continue
        if isinstance(wrong, tuple):
            if got.shape == wrong != want.shape:
                shapes.append(suspect.hint)
        elif _same(got, np.asarray(wrong), rtol, atol) and not _same(want, np.asarray(wrong), rtol, atol):
            values.append(suspect.hint)
    return list(dict.fromkeys(values or shapes))


def _problem(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, check_dtype: bool) -> str | None:
    """What differs between the learner's output and the reference (without showing reference values)."""
    if got.shape != want.shape:
        return f"your output has shape {got.shape}, expected shape {want.shape}."
    if not _same(got, want, rtol, atol):
        if got.dtype == bool or not np.issubdtype(got.dtype, np.number):
            return f"your output has dtype {got.dtype}; expected numbers of dtype {want.dtype}."
        wrong = ~np.isclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)
        first = tuple(int(i) for i in np.argwhere(wrong)[0])
        return (f"the shape is right but {int(wrong.sum())} of {wrong.size} values are wrong "
                f"(the first one at index {first}, where you returned {got[first]:.4g}).")
    if check_dtype and got.dtype != want.dtype:
        return (f"the values are right but the dtype is {got.dtype}; expected {want.dtype} "
                f"(wrong dtype: create the output with the input's dtype, e.g. "
                f"`np.zeros(shape, dtype=input.dtype)`).")
    return None


def verify(fn: Callable, name: str, arg_names: Sequence[str], cases: Sequence[Case],
           reference: Callable, suspects: Sequence[Suspect] = (), rtol: float = 1e-5,
           atol: float = 1e-6, check_dtype: bool = True, output: Callable | None = None) -> None:
    """Run ``fn`` on every case; raise :class:`CheckFailed` at the first output unlike ``reference``.

    Args:
        fn: the learner's function.
        name, arg_names: how the task names the function and its positional arguments.
        cases: inputs, smallest first, so that the first failure is the smallest failing input.
        reference: computes the right output of a case (same call signature as ``fn``).
        suspects: misconceptions to test a wrong output against.
        output: optional; turns what ``fn`` returned into the array to compare (default ``np.asarray``).
    """
    for case in cases:
        want = np.asarray(reference(*case.args, **case.kwargs))
        raw = _call(fn, case, name, arg_names)
        got = output(raw) if output else _as_array(raw, name)
        problem = _problem(got, want, rtol, atol, check_dtype)
        if problem is None:
            continue
        dtype_only = got.shape == want.shape and _same(got, want, rtol, atol)
        hints = [] if dtype_only else _suspected(got, want, case, suspects, rtol, atol)
        likely = "".join(f"\n  Likely misconception: {hint}" for hint in hints)
        raise CheckFailed(f"✗ {name} is wrong on the smallest failing input ({case.label}):\n"
                          f"{describe_case(case, arg_names)}\n  Problem: {problem}{likely}")


def expect_value_error(fn: Callable, name: str, arg_names: Sequence[str], case: Case, why: str) -> None:
    """Bad input must raise ``ValueError`` (with a message), not return garbage or crash differently."""
    try:
        fn(*case.args, **case.kwargs)
    except ValueError:
        return
    except Exception as exc:
        raise CheckFailed(f"✗ {name} raised {type(exc).__name__} on bad input ({why}); raise a "
                          f"ValueError that names the values involved instead.\n"
                          f"{describe_case(case, arg_names)}") from None
    raise CheckFailed(f"✗ {name} returned a result for bad input ({why}); it should raise a "
                      f"ValueError naming the values involved.\n{describe_case(case, arg_names)}")


def passed(message: str) -> None:
    """The one line a successful check prints."""
    print(f"✓ {message}")


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, (int, np.integer)) else (int(value[0]), int(value[1]))


# ---------------------------------------------------------------- chapter 02: output size, padding, conv2d

_SIZE_ARGS = ("size", "kernel_size")


def _integer_output(name: str):
    def convert(value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            kind = type(value).__name__
            extra = " (you probably used `/`; floor division is `//`)" if isinstance(value, float) else ""
            raise CheckFailed(f"✗ {name} returned a {kind}, not an int{extra}.")
        return np.asarray(int(value))
    return convert


def _size_suspects() -> list[Suspect]:
    def formula(pad_factor=2, plus_one=1, use_stride=True, span=lambda k, d: d * (k - 1) + 1, ceil=False):
        def wrong(size, kernel_size, stride=1, padding=0, dilation=1):
            room = size + pad_factor * padding - span(kernel_size, dilation)
            s = stride if use_stride else 1
            return np.asarray((-(-room // s) if ceil else room // s) + plus_one)
        return wrong
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
    ]


def check_output_size(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(size, kernel_size, stride=1, padding=0, dilation=1) -> int`` (the output-size formula)."""
    F = _functional()
    cases = [Case("no padding, stride 1", (5, 3)),
             Case("a 1-wide kernel", (4, 1)),
             Case("stride 2", (7, 3), {"stride": 2}),
             Case("stride 2, last window does not fit", (6, 3), {"stride": 2}),
             Case("padding 1", (5, 3), {"padding": 1}),
             Case("padding 2", (4, 5), {"padding": 2}),
             Case("dilation 2", (7, 3), {"dilation": 2}),
             Case("everything at once", (11, 3), {"stride": 2, "padding": 1, "dilation": 2})]
    if hidden:
        cases += [Case("large input", (224, 7), {"stride": 2, "padding": 3}),
                  Case("stride 3", (10, 2), {"stride": 3, "padding": 1}),
                  Case("kernel as big as the padded input", (3, 5), {"padding": 1})]
    verify(fn, "conv_output_size", _SIZE_ARGS, cases, F.conv_output_size, _size_suspects(),
           check_dtype=False, output=_integer_output("conv_output_size"))
    if hidden:
        expect_value_error(fn, "conv_output_size", _SIZE_ARGS, Case("kernel too big", (2, 5)),
                           "the kernel does not fit in the padded input")
    passed(f"conv_output_size agrees with the formula on {len(cases)} configurations")


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


def check_zero_pad(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(x, padding) -> x`` zero-padded on height and width; x is (N, C, H, W), padding int or pair."""
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


def _conv_suspects(view: Callable = lambda out: out, to_nchw: Callable | None = None) -> list[Suspect]:
    """Misconceptions about conv2d, each computed with the reference conv2d on altered arguments.

    ``to_nchw(*args, **kwargs) -> (x, w, b, kwargs)`` maps the learner's arguments to conv2d's and
    ``view`` maps conv2d's NCHW output back to the learner's layout (both identity for conv2d itself).
    """
    F = _functional()
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
        suspect("off-by-one window range: the last window position is missing (the `+ 1` of the "
                "output-size formula, or `range(H_out)` vs `range(H_out - 1)`).",
                shape_of(lambda n, f, h, wd, n_in: (n, f, h - 1, wd - 1))),
        suspect("off-by-one window range: one window position too many (or a window sticking out).",
                shape_of(lambda n, f, h, wd, n_in: (n, f, h + 1, wd + 1))),
        suspect("output shape from the input size: the output is (N, C_out, H_out, W_out) with "
                "H_out from the output-size formula, not the input's H.",
                lambda x, w, b, kw: tuple(conv(x, w, b, kw).shape[:2]) + tuple(x.shape[2:])),
    ]


_CONV_ARGS = ("input", "weight", "bias")


def _conv_case(rng, label, x_shape, w_shape, bias=False, dtype=np.float64, **kwargs) -> Case:
    x, w = _ints(rng, *x_shape, dtype=dtype), _ints(rng, *w_shape, dtype=dtype)
    # positive biases: their sum is never 0, so "bias ignored" and "biases summed" stay distinguishable
    b = rng.integers(1, 4, size=w_shape[0]).astype(dtype) if bias else None
    return Case(label, (x, w, b), kwargs)


def conv2d_cases(hidden: bool = False, large: bool = False) -> list[Case]:
    """Inputs for conv2d-like functions, smallest first; each case adds one feature."""
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
             _conv_case(rng, "float32 input", (1, 2, 4, 4), (2, 2, 3, 3), bias=True, dtype=np.float32)]
    if hidden:
        cases += [_conv_case(rng, "pairs for stride, padding and dilation", (2, 3, 8, 7), (4, 3, 3, 2),
                             bias=True, stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
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


def check_conv2d(fn: Callable, hidden: bool = False, name: str = "conv2d", large: bool = False) -> None:
    """Check ``fn(input, weight, bias=None, stride=1, padding=0, dilation=1)`` against conv2d.

    input (N, C_in, H, W), weight (C_out, C_in, kH, kW), bias (C_out,) or None; stride, padding and
    dilation int or (height, width); returns (N, C_out, H_out, W_out) with the input's dtype.
    ``large=True`` adds a (8, 3, 32, 32) batch (for vectorized versions).
    """
    F = _functional()
    cases = conv2d_cases(hidden, large)
    verify(fn, name, _CONV_ARGS, cases, F.conv2d, _conv_suspects(), rtol=1e-4, atol=1e-4)
    passed(f"{name} matches the reference conv2d on {len(cases)} inputs "
           f"(bias, channels, batch, stride, padding, dilation, dtype)")


def check_nhwc_to_nchw(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(batch) -> batch`` converting (N, H, W, C) to (N, C, H, W)."""
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


def _backward_suspects(part: int) -> list[Suspect]:
    F = _functional()

    def ref(grad_output, input, weight, **kw):
        return F.conv2d_backward(grad_output, input, weight, **kw)

    def suspect(hint, alter):
        return Suspect(hint, alter)
    if part == 0:
        return [suspect("grad_input used the kernel without flipping it: the gradient w.r.t. the input is "
                        "a *full* convolution of grad_output with the flipped kernel (or scatter "
                        "`grad_output[n, f, i, j] * weight[f]` back onto each window).",
                        lambda g, x, w, **kw: ref(g, x, w[..., ::-1, ::-1].copy(), **kw)[0]),
                suspect("grad_input still has the padding: crop the padded border off at the end.",
                        lambda g, x, w, **kw: None if _pair(kw.get("padding", 0)) == (0, 0) else
                        (x.shape[0], x.shape[1], x.shape[2] + 2 * _pair(kw["padding"])[0],
                         x.shape[3] + 2 * _pair(kw["padding"])[1]))]
    if part == 1:
        return [suspect("grad_weight is not summed over the batch: every image contributes to the "
                        "gradient of the shared weights.", lambda g, x, w, **kw: ref(g[:1], x[:1], w, **kw)[1]
                        if x.shape[0] > 1 else None),
                suspect("grad_weight averaged over the batch: it is the *sum* over images.",
                        lambda g, x, w, **kw: ref(g, x, w, **kw)[1] / x.shape[0] if x.shape[0] > 1 else None),
                suspect("grad_weight flipped: it is the cross-correlation of the input with grad_output.",
                        lambda g, x, w, **kw: ref(g, x, w, **kw)[1][..., ::-1, ::-1]),
                suspect("grad_weight axes swapped: it has the weight's shape (C_out, C_in, kH, kW).",
                        lambda g, x, w, **kw: ref(g, x, w, **kw)[1].transpose(1, 0, 2, 3))]
    return [suspect("grad_bias not summed over the batch: sum grad_output over axes (0, 2, 3).",
                    lambda g, x, w, **kw: g.sum(axis=(2, 3))),
            suspect("grad_bias not summed over height and width: sum grad_output over axes (0, 2, 3).",
                    lambda g, x, w, **kw: g.sum(axis=0)),
            suspect("grad_bias averaged: it is the *sum* of grad_output over axes (0, 2, 3).",
                    lambda g, x, w, **kw: g.mean(axis=(0, 2, 3)))]


def conv2d_backward_cases(hidden: bool = False) -> list[Case]:
    """(grad_output, input, weight) cases for conv2d backward, smallest first."""
    F = _functional()
    cases = []
    for case in conv2d_cases(hidden):
        x, w, _ = case.args
        if "dilation" in case.kwargs or x.dtype != np.float64:
            continue                                 # the backward task covers stride and padding
        out_shape = F.conv2d(x, w, None, **case.kwargs).shape
        grad = _ints(_rng(len(cases)), *out_shape)
        cases.append(Case(case.label, (grad, x, w), case.kwargs))
    return cases


def check_conv2d_backward(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(grad_output, input, weight, stride=1, padding=0) -> (grad_input, grad_weight, grad_bias)``.

    Shapes: grad_output (N, C_out, H_out, W_out), input (N, C_in, H, W), weight (C_out, C_in, kH, kW);
    the gradients have the shapes of input, weight and (C_out,).
    """
    F = _functional()
    name, args = "conv2d_backward", ("grad_output", "input", "weight")
    cases = conv2d_backward_cases(hidden)
    for part, what in enumerate(("grad_input", "grad_weight", "grad_bias")):
        verify(fn, f"{name} ({what})", args, cases,
               lambda *a, **kw: F.conv2d_backward(*a, **kw)[part], _backward_suspects(part),
               rtol=1e-4, atol=1e-4, output=lambda v: _unpack_gradients(name)(v)[part])
    passed(f"{name}: grad_input, grad_weight and grad_bias match the reference on {len(cases)} inputs")

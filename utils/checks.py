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
only look at what it returns.  A model cannot cross that boundary, so tasks that build a
``torch.nn.Module`` are graded through a given wrapper that returns :func:`describe_model` of it
(plain data); the model checks accept either the module or that description.  Every check is seeded and takes well under a second.

``hidden=True`` adds more (larger, non-square, mixed) cases; the grader uses it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from utils.functional._validate import pair as _validated_pair

__all__ = [
    "CheckFailed",
    "check_get_patch", "check_patch_response", "check_response_map",
    "check_output_size", "check_zero_pad", "check_conv2d",
    "check_nhwc_to_nchw", "check_conv2d_backward",
    "check_edge_filters", "check_feature_maps", "check_multichannel_conv",
    "check_relu", "check_relu_backward", "check_compose_kernels",
    "check_max_pool2d", "check_avg_pool2d", "check_max_pool2d_backward",
    "check_receptive_field", "check_cnn_forward", "check_build_cnn", "describe_model",
    "check_new_head", "check_frozen_features", "check_partial_fine_tune", "check_extract_features",
    "check_conv_params", "check_conv_macs", "check_dense_params",
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


#: ``hint(exception, case, arg_names) -> str | None``: explains a crash of the learner's function.
CrashHint = Callable[[Exception, "Case", Sequence[str]], "str | None"]


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
    if isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in value.values()):
        shapes = ", ".join(f"{k!r}: {v.shape}" for k, v in value.items())
        return f"dict of arrays with shapes {{{shapes}}} (random values)"
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


_PAIR_ARGS = ("kernel_size", "stride", "padding", "dilation")


def _signature_hint(exc: Exception, case: Case, arg_names: Sequence[str]) -> str | None:
    text = str(exc)
    if isinstance(exc, TypeError) and ("positional argument" in text or "keyword argument" in text):
        return f"does your function accept the arguments named in the task ({', '.join(arg_names)})?"
    return None


def _pair_hint(exc: Exception, case: Case, arg_names: Sequence[str]) -> str | None:
    values = {**dict(zip(arg_names, case.args)), **case.kwargs}
    pairs = [n for n in _PAIR_ARGS if isinstance(values.get(n), (tuple, list))]
    if not pairs or not isinstance(exc, (TypeError, ValueError, IndexError)):
        return None
    listed, v = ", ".join(f"`{n}`" for n in pairs), pairs[0]
    return (f"here {listed} {'is a' if len(pairs) == 1 else 'are'} (height, width) pair{'s' * (len(pairs) > 1)}, "
            f"which the task allows: turn an int or a pair into two numbers first, e.g. "
            f"`{v[0]}h, {v[0]}w = ({v}, {v}) if isinstance({v}, int) else {v}`.")


def _array_condition_hint(exc: Exception, case: Case, arg_names: Sequence[str]) -> str | None:
    if "truth value of an array" in str(exc):
        return ("an array was used as a condition (e.g. `if bias:`); to test whether an optional array "
                "was given, write `if bias is not None:`.")
    return None


def _empty_slice_hint(exc: Exception, case: Case, arg_names: Sequence[str]) -> str | None:
    # e.g. "could not broadcast input array from shape (1,1,2,2) into shape (1,1,0,0)"
    if re.search(r"into shape \([^)]*\b0\b", str(exc)):
        return ("an array was assigned into an empty slice: `a[p:-p]` is `a[0:0]` (empty) when p is 0; "
                "slice the middle with `p:p + H` instead.")
    return None


def _crash_hint(exc: Exception, case: Case, arg_names: Sequence[str], hints: Sequence[CrashHint]) -> str:
    found = []
    for hint in (*hints, _signature_hint, _pair_hint, _array_condition_hint, _empty_slice_hint):
        try:
            found.append(hint(exc, case, arg_names))
        except Exception:  # a hint must never hide the learner's error
            continue
    return "".join(f"\n  Hint: {h}" for h in dict.fromkeys(h for h in found if h))


def _call(fn: Callable, case: Case, name: str, arg_names: Sequence[str], crash_hints: Sequence[CrashHint] = ()):
    try:
        return fn(*case.args, **case.kwargs)
    except CheckFailed:
        raise
    except NotImplementedError:
        raise CheckFailed(f"✗ {name} is not written yet: replace `raise NotImplementedError()` "
                          f"with your code.") from None
    except Exception as exc:  # the learner's bug, reported with the input that triggered it
        hint = _crash_hint(exc, case, arg_names, crash_hints)
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
    # a matching shape is weaker evidence than matching values: name only the first (most likely) one
    return list(dict.fromkeys(values or shapes[:1]))


def _truncation_hint(got: np.ndarray, want: np.ndarray, arg_names: Sequence[str]) -> list[str]:
    """An integer result where floats are expected: fractions were cut off (`int(...)`, an int array)."""
    if np.issubdtype(got.dtype, np.integer) and np.issubdtype(want.dtype, np.floating):
        return [f"your result is an integer ({got.dtype}), so fractions were cut off: keep floats "
                f"(no `int(...)`; create arrays with `dtype={arg_names[0]}.dtype` or the default float)."]
    return []


def _problem(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, check_dtype: bool,
             first_arg: str = "input") -> str | None:
    """What differs between the learner's output and the reference (without showing reference values)."""
    if got.shape != want.shape:
        return f"your output has shape {got.shape}, expected shape {want.shape}."
    if not _same(got, want, rtol, atol):
        if got.dtype == bool or not np.issubdtype(got.dtype, np.number):
            return f"your output has dtype {got.dtype}; expected numbers of dtype {want.dtype}."
        if got.ndim == 0:
            return f"you returned {got.item():.6g}, which is not the right value."
        wrong = ~np.isclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)
        first = tuple(int(i) for i in np.argwhere(wrong)[0])
        return (f"the shape is right but {int(wrong.sum())} of {wrong.size} values are wrong "
                f"(the first one at index {first}, where you returned {got[first]:.4g}).")
    if check_dtype and got.dtype != want.dtype:
        return (f"the values are right but the dtype is {got.dtype}; expected {want.dtype} "
                f"(wrong dtype: create the output with the input's dtype, e.g. "
                f"`np.zeros(shape, dtype={first_arg}.dtype)`, or convert it with `.astype({first_arg}.dtype)`).")
    return None


def verify(fn: Callable, name: str, arg_names: Sequence[str], cases: Sequence[Case],
           reference: Callable, suspects: Sequence[Suspect] = (), rtol: float = 1e-5,
           atol: float = 1e-6, check_dtype: bool = True, output: Callable | None = None,
           crash_hints: Sequence[CrashHint] = ()) -> None:
    """Run ``fn`` on every case; raise :class:`CheckFailed` at the first output unlike ``reference``.

    Args:
        fn: the learner's function.
        name, arg_names: how the task names the function and its positional arguments.
        cases: inputs, smallest first, so that the first failure is the smallest failing input.
        reference: computes the right output of a case (same call signature as ``fn``).
        suspects: misconceptions to test a wrong output against.
        output: optional; turns what ``fn`` returned into the array to compare (default ``np.asarray``).
        crash_hints: explain typical crashes of ``fn`` (besides the generic ones of :func:`_call`).
    """
    for case in cases:
        want = np.asarray(reference(*case.args, **case.kwargs))
        before = [a.copy() if isinstance(a, np.ndarray) else None for a in case.args]
        raw = _call(fn, case, name, arg_names, crash_hints)
        _unchanged(case, before, name, arg_names)
        got = output(raw) if output else _as_array(raw, name)
        problem = _problem(got, want, rtol, atol, check_dtype, arg_names[0] if arg_names else "input")
        if problem is None:
            continue
        dtype_only = got.shape == want.shape and _same(got, want, rtol, atol)
        hints = [] if dtype_only else (_suspected(got, want, case, suspects, rtol, atol)
                                       or _truncation_hint(got, want, arg_names or ("input",)))
        likely = "".join(f"\n  Likely misconception: {hint}" for hint in hints)
        raise CheckFailed(f"✗ {name} is wrong on the smallest failing input ({case.label}):\n"
                          f"{describe_case(case, arg_names)}\n  Problem: {problem}{likely}")


def _unchanged(case: Case, before: list, name: str, arg_names: Sequence[str]) -> None:
    for arg_name, old, new in zip(arg_names, before, case.args):
        if old is not None and not (old.shape == new.shape and np.array_equal(old, new, equal_nan=True)):
            raise CheckFailed(f"✗ {name} changed its argument `{arg_name}` in place; work on a copy "
                              f"(the caller still needs the original). Input ({case.label}):\n"
                              f"{describe_case(Case(case.label, tuple(before), case.kwargs), arg_names)}")


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
    """An int or (h, w) pair from a check's own test case -> (h, w), via utils.functional's validator."""
    return _validated_pair(value, "argument")


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
    # the task asks for this ValueError, so the visible check tests it too (not only the grader)
    bad = [Case("kernel too big", (2, 5))]
    if hidden:
        bad.append(Case("dilated kernel too big", (5, 3), {"dilation": 3}))
    for case in bad:
        expect_value_error(fn, "conv_output_size", _SIZE_ARGS, case, "the kernel does not fit in the padded input")
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
                "*last* axis (width); reshape it to (1, C_out, 1, 1), or add bias[f] to channel f.")
    return None


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


def check_conv2d(fn: Callable, hidden: bool = False, name: str = "conv2d", large: bool = False) -> None:
    """Check ``fn(input, weight, bias=None, stride=1, padding=0, dilation=1)`` against conv2d.

    input (N, C_in, H, W), weight (C_out, C_in, kH, kW), bias (C_out,) or None; stride, padding and
    dilation int or (height, width); returns (N, C_out, H_out, W_out) with the input's dtype.
    ``large=True`` adds a (8, 3, 32, 32) batch (for vectorized versions).
    """
    F = _functional()
    cases = conv2d_cases(hidden, large)
    verify(fn, name, _CONV_ARGS, cases, F.conv2d, _conv_suspects(), rtol=1e-4, atol=1e-4,
           crash_hints=[_bias_broadcast_hint])
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
    F = _functional()
    stride_ignored = ("stride ignored: output (i, j) came from the window starting at (i * stride, j * stride); "
                      "send its gradient there (and take that window for grad_weight).")

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
                         x.shape[3] + 2 * _pair(kw["padding"])[1])),
                suspect(stride_ignored, lambda g, x, w, **kw: (_backward_stride_ignored(g, x, w, **kw) or [None])[0])]
    if part == 1:
        return [suspect("grad_weight is not summed over the batch: every image contributes to the "
                        "gradient of the shared weights.", lambda g, x, w, **kw: ref(g[:1], x[:1], w, **kw)[1]
                        if x.shape[0] > 1 else None),
                suspect("grad_weight averaged over the batch: it is the *sum* over images.",
                        lambda g, x, w, **kw: ref(g, x, w, **kw)[1] / x.shape[0] if x.shape[0] > 1 else None),
                suspect("grad_weight flipped: it is the cross-correlation of the input with grad_output.",
                        lambda g, x, w, **kw: ref(g, x, w, **kw)[1][..., ::-1, ::-1]),
                suspect("grad_weight axes swapped: it has the weight's shape (C_out, C_in, kH, kW).",
                        lambda g, x, w, **kw: ref(g, x, w, **kw)[1].transpose(1, 0, 2, 3)),
                suspect(stride_ignored, lambda g, x, w, **kw: (_backward_stride_ignored(g, x, w, **kw) or [None, None])[1])]
    return [suspect("grad_bias not summed over the batch: sum grad_output over axes (0, 2, 3).",
                    lambda g, x, w, **kw: g.sum(axis=(2, 3))),
            suspect("grad_bias not summed over height and width: sum grad_output over axes (0, 2, 3).",
                    lambda g, x, w, **kw: g.sum(axis=0)),
            suspect("grad_bias averaged: it is the *sum* of grad_output over axes (0, 2, 3).",
                    lambda g, x, w, **kw: g.mean(axis=(0, 2, 3))),
            suspect("grad_bias has extra axes: it has the bias's shape (C_out,); sum without `keepdims`.",
                    lambda g, x, w, **kw: (1, g.shape[1], 1, 1))]


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


# ---------------------------------------------------------------- chapter 01: patches and local responses

def _reference_conv_view(to_nchw: Callable, view: Callable) -> Callable:
    """The reference conv2d seen through another argument layout (e.g. one 2D image and one kernel)."""
    def reference(*args, **kwargs):
        x, w, b, kw = to_nchw(*args, **kwargs)
        return view(_functional().conv2d(x, w, b, **kw))
    return reference


def check_get_patch(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(image, row, col, size) -> image[row:row+size, col:col+size]`` (ValueError if it sticks out).

    image (H, W) or (H, W, C); the patch's top-left pixel is (row, col).
    """
    image = np.arange(30.0).reshape(5, 6)
    cases = [Case("a 2x2 patch at the top-left corner", (image, 0, 0, 2)),
             Case("a 3x3 patch inside", (image, 1, 2, 3)),
             Case("a patch touching the bottom-right corner", (image, 3, 4, 2))]
    if hidden:
        colour = _rng(5).random((6, 7, 3))
        cases += [Case("a colour image (H, W, 3)", (colour, 2, 1, 4)), Case("a 1x1 patch", (image, 4, 5, 1))]
    suspects = [Suspect("row and column swapped: `row` indexes axis 0 (height), `col` axis 1 (width).",
                        lambda im, r, c, k: im[c:c + k, r:r + k]),
                Suspect("the patch is centred on (row, col); the task puts its top-left pixel there.",
                        lambda im, r, c, k: im[max(r - k // 2, 0):r - k // 2 + k, max(c - k // 2, 0):c - k // 2 + k]),
                Suspect("off by one: a slice `a:b` stops *before* b, so `row:row + size` has size rows.",
                        lambda im, r, c, k: im[r:r + k + 1, c:c + k + 1]),
                Suspect("off by one: a slice `a:b` stops *before* b, so `row:row + size` has size rows.",
                        lambda im, r, c, k: im[r:r + k - 1, c:c + k - 1]),
                Suspect("`image[rows][cols]` slices the rows twice: the second `[...]` indexes the rows of the "
                        "first result. Slice both axes inside one `[...]`, separated by a comma.",
                        lambda im, r, c, k: im[r:r + k][c:c + k])]
    verify(fn, "get_patch", ("image", "row", "col", "size"), cases,
           lambda im, r, c, k: im[r:r + k, c:c + k], suspects)
    for bad in [Case("sticks out at the bottom", (image, 4, 0, 2)), Case("sticks out on the right", (image, 0, 5, 3)),
                Case("negative row", (image, -1, 0, 2))]:
        expect_value_error(fn, "get_patch", ("image", "row", "col", "size"), bad, f"the patch {bad.label}")
    passed(f"get_patch cuts the right {len(cases)} patches and refuses patches outside the image")


def _scalar(name: str):
    def convert(value):
        array = _as_array(value, name)
        if array.size != 1:
            raise CheckFailed(f"✗ {name} returned an array of shape {array.shape}; it must return one "
                              f"number: add up the element-wise products.")
        return array.reshape(())
    return convert


def check_patch_response(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(patch, kernel) -> float``: the sum of element-wise products (one output of a convolution)."""
    rng = _rng(6)
    cases = [Case("a 2x2 patch", (np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 0.0], [2.0, -1.0]]))),
             Case("a 3x3 edge kernel", (_ints(rng, 3, 3), np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]))),
             Case("a 2x3 patch", (_ints(rng, 2, 3), _ints(rng, 2, 3))),
             Case("values with fractions", (np.array([[0.5, 1.5], [2.0, -1.0]]), np.array([[1.5, 1.0], [0.5, 0.0]])))]
    if hidden:
        cases.append(Case("random real values", (rng.normal(size=(5, 5)), rng.normal(size=(5, 5)))))
    to_nchw = lambda patch, kernel: (patch[None, None], kernel[None, None], None, {})
    suspects = [Suspect("kernel flipped: the kernel is laid on the patch as it is, kernel[u, v] * patch[u, v].",
                        lambda p, k: np.sum(p * k[::-1, ::-1])),
                Suspect("mean instead of sum: a convolution adds the products up.", lambda p, k: np.mean(p * k)),
                Suspect("matrix product: `patch @ kernel` multiplies rows by columns; use the element-wise "
                        "product `patch * kernel`.", lambda p, k: np.sum(p @ k) if p.shape[1] == k.shape[0] else None)]
    verify(fn, "patch_response", ("patch", "kernel"), cases,
           _reference_conv_view(to_nchw, lambda out: out[0, 0, 0, 0]), suspects, check_dtype=False,
           output=_scalar("patch_response"))
    expect_value_error(fn, "patch_response", ("patch", "kernel"),
                       Case("shapes differ", (np.ones((3, 3)), np.ones((2, 2)))), "patch and kernel shapes differ")
    passed(f"patch_response gives the weighted sum on {len(cases)} patches and refuses mismatched shapes")


def check_response_map(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(image, kernel) -> (H - kH + 1, W - kW + 1)``: the kernel's response at every position."""
    rng = _rng(7)
    cases = [Case("a 3x4 image, 2x2 kernel", (np.arange(12.0).reshape(3, 4), np.array([[1.0, 2.0], [0.0, -1.0]]))),
             Case("a 5x5 image, 3x3 kernel", (_ints(rng, 5, 5), _ints(rng, 3, 3))),
             Case("a non-square kernel", (_ints(rng, 4, 6), _ints(rng, 2, 3))),
             Case("values with fractions", (np.array([[0.5, 1.0, 2.5], [1.5, -1.0, 0.0], [2.0, 0.5, 1.0]]),
                                           np.array([[0.5, 1.0], [0.0, -1.5]])))]
    if hidden:
        cases += [Case("kernel as large as the image", (_ints(rng, 3, 3), _ints(rng, 3, 3))),
                  Case("random real values", (rng.normal(size=(9, 7)), rng.normal(size=(3, 2))))]
    to_nchw = lambda image, kernel: (image[None, None], kernel[None, None], None, {})
    view = lambda out: out[0, 0]
    suspects = _conv_suspects(view, to_nchw) + [
        Suspect("height and width swapped in the output.",
                lambda im, k: _reference_conv_view(to_nchw, view)(im, k).T)]
    verify(fn, "response_map", ("image", "kernel"), cases, _reference_conv_view(to_nchw, view), suspects,
           check_dtype=False)
    passed(f"response_map matches a sliding weighted sum on {len(cases)} images")


# ---------------------------------------------------------------- chapter 04: filters and feature maps

def _edge_images(size: int = 8) -> dict[str, np.ndarray]:
    """Synthetic (1, 1, size, size) images: dark left/bright right, dark top/bright bottom, flat."""
    ramp = (np.arange(size) >= size // 2).astype(np.float64)
    return {"vertical edge (dark left, bright right)": np.tile(ramp, (size, 1))[None, None],
            "horizontal edge (dark top, bright bottom)": np.tile(ramp[:, None], (1, size))[None, None],
            "flat grey image": np.full((1, 1, size, size), 0.5)}


def check_edge_filters(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn() -> (2, 1, 3, 3)`` filters: 0 detects vertical edges, 1 horizontal ones (dark to bright > 0)."""
    bank = _as_array(_call(fn, Case("no arguments", ()), "edge_filters", ()), "edge_filters")
    if bank.shape != (2, 1, 3, 3):
        raise CheckFailed(f"✗ edge_filters returned shape {bank.shape}; a filter bank for conv2d has shape "
                          f"(C_out, C_in, kH, kW) = (2, 1, 3, 3).")
    F = _functional()
    maps = {name: F.conv2d(image, bank.astype(np.float64))[0] for name, image in _edge_images().items()}
    vertical, horizontal, flat = maps.values()
    if np.abs(flat).max() > 1e-6:
        raise CheckFailed("✗ your filters respond to a flat grey image: an edge detector's weights must sum "
                          "to zero, so that a constant region gives 0.")
    detectors = [("filter 0", "vertical", vertical[0], horizontal[0]),
                 ("filter 1", "horizontal", horizontal[1], vertical[1])]
    for label, kind, on_edge, off_edge in detectors:
        strongest, leak = on_edge.max(), np.abs(off_edge).max()
        if strongest <= 1e-6 and on_edge.min() < -1e-6:
            raise CheckFailed(f"✗ {label} responds negatively to a {kind} dark-to-bright edge: flip its sign "
                              f"(remember conv2d does not flip the kernel, so the positive weights go on the "
                              f"bright side).")
        if leak > 1e-6 and strongest <= 1e-6:
            raise CheckFailed(f"✗ {label} responds to the other edge direction but not to {kind} edges: are "
                              f"filters 0 and 1 swapped, or is the kernel transposed?")
        if strongest <= 1e-6:
            raise CheckFailed(f"✗ {label} does not respond to a {kind} edge.")
        if leak > 0.1 * strongest:
            raise CheckFailed(f"✗ {label} also responds to edges of the other direction; a {kind}-edge "
                              f"detector should give 0 there (make each row/column of weights symmetric "
                              f"along the edge).")
    passed("edge_filters: filter 0 finds vertical edges, filter 1 horizontal ones, flat regions give 0")


def check_feature_maps(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(image, filters) -> (F, H - kH + 1, W - kW + 1)``: one feature map per filter.

    image (H, W), filters (F, kH, kW); stride 1, no padding, cross-correlation.
    """
    rng = _rng(8)
    cases = [Case("one filter", (np.arange(12.0).reshape(3, 4), np.array([[[1.0, 2.0], [0.0, -1.0]]]))),
             Case("three 2x2 filters", (_ints(rng, 4, 5), _ints(rng, 3, 2, 2))),
             Case("two 3x3 filters", (_ints(rng, 5, 6), _ints(rng, 2, 3, 3)))]
    if hidden:
        cases.append(Case("random real values", (rng.normal(size=(10, 9)), rng.normal(size=(4, 3, 2)))))
    to_nchw = lambda image, filters: (image[None, None], filters[:, None], None, {})
    view = lambda out: out[0]
    suspects = _conv_suspects(view, to_nchw) + [
        Suspect("feature maps stacked last: return (F, H_out, W_out), one map per filter along axis 0.",
                lambda im, fs: _reference_conv_view(to_nchw, lambda o: o[0].transpose(1, 2, 0))(im, fs)),
        Suspect("only the first filter used: loop over all filters.",
                lambda im, fs: _reference_conv_view(to_nchw, lambda o: o[0, :1])(im, fs))]
    verify(fn, "feature_maps", ("image", "filters"), cases, _reference_conv_view(to_nchw, view), suspects,
           check_dtype=False)
    passed(f"feature_maps returns one correct map per filter on {len(cases)} inputs")


def check_multichannel_conv(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(x, weight, bias) -> (C_out, H_out, W_out)`` for one image x (C_in, H, W).

    weight (C_out, C_in, kH, kW), bias (C_out,); stride 1, no padding.
    """
    rng = _rng(9)
    cases = [Case("two channels, one filter", (_ints(rng, 2, 3, 3), _ints(rng, 1, 2, 2, 2), np.array([1.0]))),
             Case("three channels, two filters", (_ints(rng, 3, 4, 5), _ints(rng, 2, 3, 2, 2), np.array([2.0, 3.0]))),
             Case("two channels, three 3x3 filters", (_ints(rng, 2, 5, 4), _ints(rng, 3, 2, 3, 3),
                                                      np.array([1.0, -2.0, 3.0])))]
    if hidden:
        cases.append(Case("random real values", (rng.normal(size=(4, 8, 7)), rng.normal(size=(5, 4, 3, 2)),
                                                 rng.normal(size=5))))
    to_nchw = lambda x, weight, bias: (x[None], weight, bias, {})
    view = lambda out: out[0]
    suspects = _conv_suspects(view, to_nchw) + [
        Suspect("channels not summed: every filter sees all input channels and adds their products "
                "into *one* map.", lambda x, w, b: (w.shape[0] * w.shape[1],) + view(
                    _functional().conv2d(x[None], w, None)).shape[1:])]
    verify(fn, "multichannel_conv", ("x", "weight", "bias"), cases, _reference_conv_view(to_nchw, view), suspects,
           check_dtype=False)
    passed(f"multichannel_conv sums over input channels and adds each filter's bias on {len(cases)} inputs")


# ---------------------------------------------------------------- chapter 05: ReLU and composing convolutions

def _relu_cases(hidden: bool) -> list[Case]:
    rng = _rng(10)
    cases = [Case("a few values, one of them exactly 0", (np.array([-2.0, -0.5, 0.0, 0.5, 3.0]),)),
             Case("a (1, 2, 2, 3) feature map", (_ints(rng, 1, 2, 2, 3),)),
             Case("float32 keeps its dtype", (_ints(rng, 2, 3, dtype=np.float32),))]
    if hidden:
        cases.append(Case("random real values", (rng.normal(size=(2, 3, 4, 5)),)))
    return cases


def check_relu(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(x) -> max(x, 0)`` element-wise, any shape, same dtype, input left unchanged."""
    F = _functional()
    suspects = [Suspect("absolute value: ReLU sets negative values to 0, it does not flip their sign.", np.abs),
                Suspect("values clipped to [0, 1]: ReLU only has a lower bound.", lambda x: np.clip(x, 0, 1)),
                Suspect("a mask, not the values: ReLU returns x where x > 0 (and 0 elsewhere), not 1.",
                        lambda x: (x > 0).astype(x.dtype)),
                Suspect("`np.max(x, 0)` reduces along axis 0; the element-wise maximum is `np.maximum(x, 0)`.",
                        lambda x: np.max(x, 0)),
                Suspect("positive and negative parts swapped: keep the positive values.", lambda x: np.minimum(x, 0)),
                Suspect("leaky ReLU: plain ReLU gives exactly 0 for negative inputs.", lambda x: np.where(x > 0, x, 0.01 * x))]
    cases = _relu_cases(hidden)
    verify(fn, "relu", ("x",), cases, F.relu, suspects)
    passed(f"relu is max(x, 0) element-wise on {len(cases)} arrays and keeps the dtype")


def check_relu_backward(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(grad_output, x) -> grad_input``: grad_output where x > 0, else 0 (also at x == 0)."""
    F = _functional()
    cases = []
    for i, case in enumerate(_relu_cases(hidden)):
        x = case.args[0]
        cases.append(Case(case.label, ((_ints(_rng(20 + i), *x.shape, dtype=x.dtype) + 5), x)))
    suspects = [Suspect("the mask alone: multiply it by grad_output (chain rule).",
                        lambda g, x: (x > 0).astype(x.dtype)),
                Suspect("grad_output passed through unchanged: ReLU blocks the gradient where x <= 0.",
                        lambda g, x: g),
                Suspect("multiplied by x: the local derivative of ReLU is 1 (x > 0) or 0, not x.",
                        lambda g, x: g * np.maximum(x, 0)),
                Suspect("the mask is inverted: the gradient flows where x > 0.", lambda g, x: np.where(x > 0, 0, g)),
                Suspect("gradient at exactly 0: PyTorch uses 0 there (`x > 0`, not `x >= 0`).",
                        lambda g, x: np.where(x >= 0, g, 0))]
    verify(fn, "relu_backward", ("grad_output", "x"), cases, F.relu_backward, suspects)
    passed(f"relu_backward lets the gradient through exactly where x > 0 on {len(cases)} arrays")


def _composed_kernel(k1: np.ndarray, k2: np.ndarray, flip: bool = True) -> np.ndarray:
    """The single kernel equivalent to conv2d with k1 then k2: a *full* convolution of k1 and k2."""
    k2 = k2[::-1, ::-1] if flip else k2
    padding = (k2.shape[0] - 1, k2.shape[1] - 1)
    return _functional().conv2d(k1[None, None], k2[None, None].copy(), padding=padding)[0, 0]


def check_compose_kernels(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(k1, k2) -> k`` with conv2d(conv2d(x, k1), k2) == conv2d(x, k) for every image x.

    k1 (a, b), k2 (c, d) single-channel kernels (stride 1, no padding, no bias); k is (a+c-1, b+d-1).
    """
    rng = _rng(11)
    cases = [Case("two 2x2 kernels", (np.array([[1.0, 2.0], [0.0, -1.0]]), np.array([[0.0, 1.0], [3.0, 1.0]]))),
             Case("3x3 then 2x2", (_ints(rng, 3, 3), _ints(rng, 2, 2))),
             Case("non-square kernels", (_ints(rng, 1, 3), _ints(rng, 2, 1)))]
    if hidden:
        cases.append(Case("random real 3x2 and 2x3 kernels", (rng.normal(size=(3, 2)), rng.normal(size=(2, 3)))))
    suspects = [Suspect("k2 not flipped: composing two cross-correlations gives the *convolution* of the "
                        "kernels (k2 flipped), not their cross-correlation.",
                        lambda a, b: _composed_kernel(a, b, flip=False)),
                Suspect("both kernels flipped: only one of them is flipped in the full convolution.",
                        lambda a, b: _composed_kernel(a, b)[::-1, ::-1]),
                Suspect("the kernels are not added or multiplied element-wise: sliding k2 over the output of "
                        "k1 mixes every tap of k1 with every tap of k2; the result is (a+c-1, b+d-1).",
                        lambda a, b: (a + b) if a.shape == b.shape else None),
                Suspect("the kernels are not added or multiplied element-wise: sliding k2 over the output of "
                        "k1 mixes every tap of k1 with every tap of k2; the result is (a+c-1, b+d-1).",
                        lambda a, b: (a * b) if a.shape == b.shape else None)]
    verify(fn, "compose_kernels", ("k1", "k2"), cases, _composed_kernel, suspects, check_dtype=False)
    passed(f"compose_kernels: one conv with your kernel equals the two convs on {len(cases)} kernel pairs")


# ---------------------------------------------------------------- chapter 06: pooling

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
                lambda x, k, stride=None, padding=0: _functional().max_pool2d(x, k, stride, padding, ceil_mode=True).shape),
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
    return _functional().avg_pool2d(x, k, stride, padding)


def _max(x, k, stride=None, padding=0):
    return _functional().max_pool2d(x, k, stride, padding)


def check_max_pool2d(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(input, kernel_size, stride=None, padding=0)`` against max_pool2d (NCHW, per channel)."""
    cases = _pool_cases(hidden, padding=True)
    suspects = _pool_suspects(_max, _avg, "average pooling") + [
        Suspect("minimum instead of maximum.", lambda x, k, stride=None, padding=0: -_max(-x, k, stride, padding))]
    verify(fn, "max_pool2d", _POOL_ARGS, cases, _max, suspects, crash_hints=[_stride_none_hint])
    passed(f"max_pool2d matches the reference on {len(cases)} inputs (stride, windows, padding, dtype)")


def check_avg_pool2d(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(input, kernel_size, stride=None)`` against avg_pool2d (no padding)."""
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
    _, indices = _functional().max_pool2d(x, kernel_size, stride, return_indices=True)
    n, c, h, w = x.shape
    grad = np.zeros((n, c, h * w), dtype=x.dtype)
    rows, chans = np.indices(indices.shape)[:2]
    if accumulate:
        np.add.at(grad, (rows, chans, indices), grad_output)
    else:
        grad[rows, chans, indices] = grad_output   # repeated indices: the last write wins
    return grad.reshape(x.shape)


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


def check_max_pool2d_backward(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(grad_output, input, kernel_size, stride=None) -> grad_input`` (input's shape)."""
    F = _functional()
    cases = []
    for i, case in enumerate(_pool_cases(hidden, padding=False)):
        x, k = case.args
        out_shape = F.max_pool2d(x, k, **case.kwargs).shape
        cases.append(Case(case.label, (_ints(_rng(30 + i), *out_shape, dtype=x.dtype) + 5, x, k), case.kwargs))

    def reference(g, x, k, stride=None):
        return F.max_pool2d_backward(g, x, k, stride)
    suspects = [Suspect("gradient spread over the whole window (that is average pooling's backward): "
                        "only the maximum influenced the output, so only it gets the gradient.",
                        lambda g, x, k, stride=None: F.avg_pool2d_backward(g, x, k, stride)),
                Suspect("every pixel of the window got the full gradient: only the maximum gets it.",
                        lambda g, x, k, stride=None: F.avg_pool2d_backward(g, x, k, stride) * np.prod(_pair(k))),
                Suspect("overlapping windows overwrite each other: a pixel that is the maximum of several "
                        "windows receives the *sum* of their gradients (use +=).",
                        lambda g, x, k, stride=None: _max_pool_scatter(g, x, k, stride, accumulate=False)),
                Suspect("the argmax is a position *inside the window*: add the window's top-left corner "
                        "(i * stride, j * stride) to get the position in the input.",
                        lambda g, x, k, stride=None: _max_pool_routed(g, x, k, stride, offset=False)),
                Suspect("flat argmax unravelled with the wrong row width: row = idx // kW, col = idx % kW "
                        "(or `np.unravel_index(idx, window.shape)`).",
                        lambda g, x, k, stride=None: None if _pair(k)[0] == _pair(k)[1] else
                        _max_pool_routed(g, x, k, stride, row_width=lambda kh, kw: kh))]
    verify(fn, "max_pool2d_backward", ("grad_output", "input", "kernel_size"), cases, reference, suspects,
           crash_hints=[_stride_none_hint])
    passed(f"max_pool2d_backward routes every gradient to its window's maximum on {len(cases)} inputs")


# ---------------------------------------------------------------- chapter 07: building a CNN

def describe_model(model, input_shape: Sequence[int] = (2, 1, 16, 16)) -> dict:
    """What the model checks look at, as plain data (so it can cross a process boundary).

    Args:
        model: a ``torch.nn.Module``.
        input_shape: the batch shape pushed through the model once (zeros).

    Returns:
        ``{"layers": [class names of the leaf modules in order],
        "parameters": {name: NumPy array of values}, "trainable": [names with requires_grad],
        "output_shape": tuple, or None if the forward pass failed, "forward_error": str or None}``
    """
    import torch
    if not isinstance(model, torch.nn.Module):
        raise CheckFailed(f"✗ your function returned {type(model).__name__}, not a torch.nn.Module"
                          + (": did you forget `return model`?" if model is None else "."))
    try:
        with torch.no_grad():
            output_shape, error = tuple(model(torch.zeros(*input_shape)).shape), None
    except Exception as exc:  # the check reports it; describing must not crash
        output_shape, error = None, f"{type(exc).__name__}: {exc}"
    return {"layers": [type(m).__name__ for m in model.modules() if not list(m.children())],
            "parameters": {n: p.detach().numpy().copy() for n, p in model.named_parameters()},
            "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
            "output_shape": output_shape, "forward_error": error}


def _description_of(value: Any, name: str) -> dict:
    """The learner's returned model (in this process) or its :func:`describe_model` dict (from a grader proxy)."""
    if isinstance(value, dict) and {"layers", "parameters", "trainable", "output_shape"} <= value.keys():
        return value
    try:
        from torch import nn
    except ImportError:  # pragma: no cover - torch is a course dependency
        nn = None
    if nn is not None and isinstance(value, nn.Module):
        return describe_model(value)
    raise CheckFailed(f"✗ {name} returned a {type(value).__name__}; return the torch.nn.Module you built.")


def check_receptive_field(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(layers) -> int``: receptive field (pixels per side) of one unit after ``layers``.

    layers: a list of ``(kernel_size, stride)`` pairs, first layer first (conv and pooling alike).
    """
    from utils.models import receptive_field   # lazily: torch is only needed from chapter 07 on

    cases = [Case("one 3x3 conv", ([(3, 1)],)),
             Case("two 3x3 convs", ([(3, 1), (3, 1)],)),
             Case("conv then 2x2 pool", ([(3, 1), (2, 2)],)),
             Case("conv, pool, conv", ([(3, 1), (2, 2), (3, 1)],)),
             Case("the course's SmallCNN features", ([(3, 1), (2, 2), (3, 1), (2, 2), (3, 1), (2, 2)],))]
    if hidden:
        cases += [Case("stride-2 convs", ([(5, 2), (3, 2), (3, 1)],)), Case("no layers", ([],))]

    def reference(layers):
        rows = receptive_field([(k, s, 1) for k, s in layers])
        return rows[-1].size if rows else 1

    def grow(step):
        def wrong(layers):
            size, jump = 1, 1
            for k, s in layers:
                size, jump = step(size, jump, k, s), jump * s
            return size
        return wrong
    suspects = [Suspect("strides ignored: after a stride-s layer, one step of the next kernel covers s input "
                        "pixels, so each layer adds (k - 1) * (product of the earlier strides).",
                        grow(lambda r, j, k, s: r + (k - 1))),
                Suspect("the layer's own stride used too early: a layer's stride only affects the layers "
                        "*after* it.", grow(lambda r, j, k, s: r + (k - 1) * j * s)),
                Suspect("kernel sizes multiplied: receptive fields grow by adding (k - 1) * jump, not by "
                        "multiplying.", grow(lambda r, j, k, s: r * k)),
                Suspect("off by one: start from 1 pixel and add (k - 1) * jump per layer.",
                        grow(lambda r, j, k, s: r + k * j))]
    verify(fn, "receptive_field", ("layers",), cases, reference, suspects, check_dtype=False,
           output=_integer_output("receptive_field"))
    passed(f"receptive_field gives the right size for {len(cases)} stacks of layers")


CNN_PARAM_SHAPES = {"conv1.weight": (8, 1, 3, 3), "conv1.bias": (8,), "conv2.weight": (16, 8, 3, 3),
                    "conv2.bias": (16,), "fc.weight": (10, 16 * 4 * 4), "fc.bias": (10,)}


def _reference_cnn(num_classes: int = 10):
    """The exercise's CNN in PyTorch (seeded): conv-ReLU-pool twice, flatten, linear; input (N, 1, 16, 16)."""
    import torch
    from torch import nn
    from collections import OrderedDict
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 8, 3, padding=1)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(8, 16, 3, padding=1)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(16 * 4 * 4, num_classes))]))


def _cnn_params(seed: int) -> dict[str, np.ndarray]:
    import torch
    model = _reference_cnn()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return {name: t.numpy().astype(np.float64) for name, t in model.state_dict().items()}


def _numpy_cnn(x, params, relu=True, pool="max", flatten_nhwc=False):
    """The exercise's CNN with utils.functional, with switches for the misconceptions."""
    F = _functional()
    out = x
    for layer in ("conv1", "conv2"):
        out = F.conv2d(out, params[f"{layer}.weight"], params[f"{layer}.bias"], padding=1)
        out = F.relu(out) if relu else out
        out = F.max_pool2d(out, 2) if pool == "max" else F.avg_pool2d(out, 2)
    flat = (out.transpose(0, 2, 3, 1) if flatten_nhwc else out).reshape(out.shape[0], -1)
    return flat @ params["fc.weight"].T + params["fc.bias"]


def check_cnn_forward(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(x, params) -> logits (N, 10)`` for x (N, 1, 16, 16) and params shaped as CNN_PARAM_SHAPES."""
    import torch
    rng = _rng(13)
    cases = [Case("one image", (rng.random((1, 1, 16, 16)), _cnn_params(1))),
             Case("a batch of three", (rng.random((3, 1, 16, 16)), _cnn_params(2)))]
    if hidden:
        cases.append(Case("a batch of five", (rng.normal(size=(5, 1, 16, 16)), _cnn_params(3))))

    def reference(x, params):      # PyTorch itself is the ground truth here
        model = _reference_cnn().double()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    suspects = [Suspect("ReLU missing: without it the two convolutions collapse into one linear map.",
                        lambda x, p: _numpy_cnn(x, p, relu=False)),
                Suspect("average pooling instead of max pooling.", lambda x, p: _numpy_cnn(x, p, pool="avg")),
                Suspect("flattened in NHWC order: flatten the (N, C, H, W) map as it is, `out.reshape(N, -1)`.",
                        lambda x, p: _numpy_cnn(x, p, flatten_nhwc=True)),
                Suspect("fc weight not transposed: logits = flat @ fc.weight.T + fc.bias.",
                        lambda x, p: (10, 10))]
    verify(fn, "cnn_forward", ("x", "params"), cases, reference, suspects, rtol=1e-4, atol=1e-5,
           check_dtype=False)
    passed(f"cnn_forward matches the PyTorch model on {len(cases)} batches")


def check_build_cnn(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes)``: the exercise CNN (shapes as CNN_PARAM_SHAPES) as a torch.nn.Module,
    or its :func:`describe_model` dict."""
    want = ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    for num_classes in ((10, 3) if hidden else (10,)):
        case = Case(f"num_classes={num_classes}", (num_classes,))
        model = _description_of(_call(fn, case, "build_cnn", ("num_classes",)), "build_cnn")
        if model["layers"] != want:
            raise CheckFailed(f"✗ build_cnn's layers are {model['layers']}; the task asks for {want}.")
        shapes = sorted(tuple(v.shape) for v in model["parameters"].values())
        if shapes != sorted(tuple(p.shape) for p in _reference_cnn(num_classes).parameters()):
            raise CheckFailed(f"✗ build_cnn's parameter shapes {shapes} differ from the task's "
                              f"(conv1: 8 filters 3x3 on 1 channel, conv2: 16 filters 3x3, fc to {num_classes}); "
                              f"check channels, kernel sizes and the Linear layer's in_features.")
        if model["output_shape"] != (2, num_classes):
            problem = model["forward_error"] or f"it gives shape {model['output_shape']}"
            raise CheckFailed(f"✗ build_cnn's model on a (2, 1, 16, 16) batch: {problem}; expected shape "
                              f"(2, {num_classes}). With padding=1 the convs keep the size, each pool halves it.")
    passed("build_cnn builds conv-ReLU-pool x2, flatten, linear with the right shapes")


# ---------------------------------------------------------------- chapter 08: transfer learning

def _pretrained():
    from utils.models import load_pretrained
    return load_pretrained()


def _model_from(fn: Callable, name: str, num_classes: int) -> dict:
    value = _call(fn, Case(f"num_classes={num_classes}", (num_classes,)), name, ("num_classes",))
    return _description_of(value, name)


def _same_features(model: dict, pretrained, name: str) -> None:
    mine = {n[len("features."):]: v for n, v in model["parameters"].items() if n.startswith("features.")}
    ref = {n: t.numpy() for n, t in pretrained.features.state_dict().items()}
    if mine.keys() != ref.keys() or any(not np.array_equal(mine[k], ref[k]) for k in ref):
        raise CheckFailed(f"✗ {name}: the convolutional layers do not hold the pretrained weights; start from "
                          f"`load_pretrained()` and keep its `.features` (do not build or re-initialise them).")


def _check_new_head(model: dict, num_classes: int, name: str, old_classes: int) -> None:
    if model["output_shape"] != (2, num_classes):
        problem = model["forward_error"] or f"it gives shape {model['output_shape']}"
        flatten = ("" if "Flatten" in model["layers"] else " The head also needs `nn.Flatten()` before the "
                   "Linear layer: the features are (N, 64, 2, 2), a Linear layer takes (N, 256).")
        raise CheckFailed(f"✗ {name}: on a (2, 1, 16, 16) batch {problem}; the new head must output "
                          f"(2, {num_classes}): replace the last Linear layer (26 letters) by one with "
                          f"num_classes outputs.{flatten}")
    old = [n for n, v in model["parameters"].items()
           if n.startswith("head.") and v.shape[0] == old_classes != num_classes]
    if old:
        raise CheckFailed(f"✗ {name}: the old {old_classes}-letter classifier is still in the head ({old[0]}); replace it "
                          f"by the new Linear layer instead of stacking a layer on top of it (its letter "
                          f"scores would be all the new layer could see).")


def _transfer_models(fn: Callable, name: str, hidden: bool):
    """Yield the learner's models (for 10, and if hidden also 4 classes) after the checks all tasks share:
    pretrained features kept, a new head of the right size."""
    pretrained = _pretrained()
    for num_classes in ((10, 4) if hidden else (10,)):
        model = _model_from(fn, name, num_classes)
        _same_features(model, pretrained, name)
        _check_new_head(model, num_classes, name, pretrained.head[-1].out_features)
        yield model


def check_new_head(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes)``: the pretrained SmallCNN with a new head of ``num_classes`` outputs."""
    for _ in _transfer_models(fn, "new_head_model", hidden):
        pass
    passed("new_head_model keeps the pretrained convolutional layers and has a new head")


def check_frozen_features(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes)``: pretrained features frozen (requires_grad False), new head trainable."""
    for model in _transfer_models(fn, "feature_extractor_model", hidden):
        trainable = model["trainable"]
        still = [n for n in trainable if n.startswith("features.")]
        if still:
            raise CheckFailed(f"✗ feature_extractor_model: {len(still)} parameters of the convolutional layers "
                              f"are still trainable (e.g. {still[0]}); set `requires_grad = False` on every "
                              f"parameter of model.features (`model.eval()`, `torch.no_grad()` or an attribute "
                              f"set on a layer do not freeze its parameters).")
        if not any(n.startswith("head.") for n in trainable):
            raise CheckFailed("✗ feature_extractor_model: the head is frozen too, so nothing would learn; freeze "
                              "only model.features (or freeze before replacing the head).")
    passed("feature_extractor_model: pretrained features frozen, only the new head is trainable")


def check_partial_fine_tune(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes)``: only the last conv layer of features and the new head are trainable."""
    for model in _transfer_models(fn, "partial_fine_tune_model", hidden):
        conv_weights = [n for n, v in model["parameters"].items() if n.startswith("features.") and v.ndim == 4]
        last_conv = conv_weights[-1].rsplit(".", 1)[0]             # e.g. "features.6"
        want = sorted([f"{last_conv}.weight", f"{last_conv}.bias"]
                      + [n for n in model["parameters"] if n.startswith("head.")])
        got = sorted(model["trainable"])
        if got != want:
            extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
            raise CheckFailed(f"✗ partial_fine_tune_model: trainable parameters should be the last conv layer "
                              f"({last_conv}) and the head. Trainable but should be frozen: "
                              f"{extra or 'none'}; frozen but should train: {missing or 'none'}.")
    passed("partial_fine_tune_model: early conv layers frozen, last conv layer and head trainable")


def check_extract_features(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(images) -> (N, D)`` NumPy features of the pretrained conv layers, flattened per image."""
    import torch
    pretrained = _pretrained()
    rng = _rng(14)
    cases = [Case("two images", (rng.random((2, 1, 16, 16)).astype(np.float32),)),
             Case("five images", (rng.random((5, 1, 16, 16)).astype(np.float32),))]

    def reference(images):
        with torch.no_grad():
            return pretrained.features(torch.from_numpy(images)).flatten(1).numpy()

    def head_scores(images):
        with torch.no_grad():
            return pretrained(torch.from_numpy(images)).numpy()
    def channels_last(images):
        with torch.no_grad():
            return pretrained.features(torch.from_numpy(images)).permute(0, 2, 3, 1).flatten(1).numpy()

    def needs_tensor(exc, case, arg_names):
        if "numpy.ndarray" in str(exc):
            return "PyTorch layers take tensors: convert the batch with `torch.from_numpy(images)` first."
        return None
    suspects = [Suspect("these are class scores from the head: extract the output of `model.features` "
                        "(flattened), before any Linear layer.", head_scores),
                Suspect("not flattened: return one row of features per image, shape (N, C * H * W).",
                        lambda im: (im.shape[0], 64, 2, 2)),
                Suspect("flattened in NHWC order: flatten the (N, C, H, W) output as it is (`.flatten(1)`), "
                        "the order the head's Linear layer sees.", channels_last)]
    verify(fn, "extract_features", ("images",), cases, reference, suspects, rtol=1e-4, atol=1e-5,
           crash_hints=[needs_tensor],
           check_dtype=False, output=lambda v: _as_array(v.detach().numpy() if hasattr(v, "detach") else v,
                                                         "extract_features"))
    passed(f"extract_features returns the pretrained conv features on {len(cases)} batches")


# ---------------------------------------------------------------- chapter 09: efficiency

def _cost(**kw):
    from utils.efficiency import conv2d_cost
    return conv2d_cost(**kw)


def check_conv_params(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(in_channels, out_channels, kernel_size, bias=True) -> int`` (learnable numbers of a Conv2d)."""
    cases = [Case("1 -> 1 channel, 3x3", (1, 1, 3)), Case("3 -> 16 channels, 3x3", (3, 16, 3)),
             Case("16 -> 32 channels, 5x5", (16, 32, 5)), Case("without bias", (8, 4, 3), {"bias": False})]
    if hidden:
        cases += [Case("1x1 kernel", (64, 128, 1)), Case("large", (256, 512, 3))]

    def params(c_in, c_out, k, bias=True, **_):
        return np.asarray(_cost(in_channels=c_in, out_channels=c_out, kernel_size=k, input_size=k,
                                bias=bias).params)
    suspects = [Suspect("bias forgotten: each output channel has one bias.",
                        lambda ci, co, k, bias=True: np.asarray(ci * co * k * k) if bias else None),
                Suspect("input channels forgotten: each filter has C_in * k * k weights.",
                        lambda ci, co, k, bias=True: np.asarray(co * k * k + co * bias)),
                Suspect("kernel size not squared: a k x k kernel has k * k weights.",
                        lambda ci, co, k, bias=True: np.asarray(ci * co * k + co * bias)),
                Suspect("one bias per input channel: there is one bias per *output* channel.",
                        lambda ci, co, k, bias=True: np.asarray(ci * co * k * k + ci * bias))]
    verify(fn, "conv_params", ("in_channels", "out_channels", "kernel_size"), cases, params, suspects,
           check_dtype=False, output=_integer_output("conv_params"))
    passed(f"conv_params counts weights and biases right for {len(cases)} layers")


def check_conv_macs(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(in_channels, out_channels, kernel_size, input_size, stride=1, padding=0) -> int`` MACs."""
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


def check_dense_params(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(input_shape, output_shape) -> int``: parameters of a dense layer mapping (C, H, W) to (C', H', W')."""
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

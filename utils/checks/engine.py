"""The checking engine: :class:`Case`, :class:`Suspect`, :func:`verify` and the messages it writes.

A check (one per exercise, in ``utils/checks/exNN.py``) builds cases and suspects and calls
:func:`verify`; see :mod:`utils.checks` for what a failing check shows.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from utils.functional.validate import pair as _validated_pair


class CheckFailed(AssertionError):
    """A learner's function gave a wrong result; the message says where and (likely) why.

    In IPython/Jupyter the error shows only its message (``_render_traceback_``): no frames of
    ``utils.checks``, whose source holds the reference computations.  The traceback is dropped for
    plain Python too (``__traceback__`` cleared when raised through :func:`fail`).
    Course infrastructure.
    """

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def fail(message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` (and no chained cause). Course infrastructure."""
    raise CheckFailed(message) from None


#: What a hidden check's message says instead of values, positions or shapes computed from its inputs.
HIDDEN_NOT_SHOWN = "(in a hidden test, values, positions and shapes computed from its inputs are not shown)"

# Inputs of the hidden tests are described by kind (shapes, dtypes, settings), never dumped.
_KIND_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("convcourse_kind_only", default=False)


def learner_check(check: Callable) -> Callable:
    """Decorator of a ``check_*(fn, hidden=False, ...)``: with ``hidden=True`` the failure messages
    describe inputs by kind only (the grader's hidden tests stay hidden). Course infrastructure."""
    signature = inspect.signature(check)

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        hidden = bool(signature.bind(*args, **kwargs).arguments.get("hidden", False))
        token = _KIND_ONLY.set(hidden or _KIND_ONLY.get())
        try:
            return check(*args, **kwargs)
        finally:
            _KIND_ONLY.reset(token)
    return wrapper


# ---------------------------------------------------------------- the checking machinery

@dataclass
class Case:
    """One call of the learner's function: ``fn(*args, **kwargs)``, with a label saying what it tests.
    Course infrastructure."""
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
    Course infrastructure.
    """
    hint: str
    wrong: Callable[..., Any]


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
        if _KIND_ONLY.get():
            return head + " (values of a hidden test are not shown)"
        if value.size <= 40:
            body = np.array2string(value, precision=3, separator=", ", suppress_small=True)
            return head + "\n      " + body.replace("\n", "\n      ")
        return head + " (random values)"
    if _KIND_ONLY.get() and not (value is None or isinstance(value, bool)):
        # a hidden case's numbers, tuples, lists and strings are its values too: say only their kind
        kind = type(value).__name__
        if isinstance(value, (list, tuple, dict)):
            kind = f"{kind} of {len(value)} item{'s' * (len(value) != 1)}"
        return f"{kind} (values of a hidden test are not shown)"
    return repr(value)


def describe_case(case: Case, arg_names: Sequence[str]) -> str:
    """The inputs of a case, one per line, as the learner would write the call. Course infrastructure."""
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
    listed = ", ".join(f"`{n}`" for n in pairs)
    return (f"here {listed} {'is a' if len(pairs) == 1 else 'are'} (height, width) pair{'s' * (len(pairs) > 1)}, "
            f"which the task allows, but your code treats {'it' if len(pairs) == 1 else 'them'} as a single "
            f"number.")


def _array_condition_hint(exc: Exception, case: Case, arg_names: Sequence[str]) -> str | None:
    if "truth value of an array" in str(exc):
        return ("an array was used as a condition (e.g. `if bias:`): an array of several values is neither "
                "true nor false. The question to ask about an optional argument is whether it is None.")
    return None


def _empty_slice_hint(exc: Exception, case: Case, arg_names: Sequence[str]) -> str | None:
    # e.g. "could not broadcast input array from shape (1,1,2,2) into shape (1,1,0,0)"
    if re.search(r"into shape \([^)]*\b0\b", str(exc)):
        return ("an array was assigned into an empty slice: `a[p:-p]` is `a[0:0]` (empty) when p is 0, "
                "because `-0` is `0`.")
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
        # the learner's own message may be built from a hidden input: a hidden check does not quote it
        message = f" {HIDDEN_NOT_SHOWN}" if _KIND_ONLY.get() else f": {exc}"
        raise CheckFailed(f"✗ {name} raised {type(exc).__name__}{message}\n"
                          f"  on the input ({case.label}):\n{describe_case(case, arg_names)}{hint}") from None


def _as_array(value: Any, name: str) -> np.ndarray:
    if value is None:
        raise CheckFailed(f"✗ {name} returned None: did you forget the `return` statement?")
    try:
        return np.asarray(value)
    except Exception:
        raise CheckFailed(f"✗ {name} returned a {type(value).__name__}, not an array") from None


def _exceeds(value: float, limit: float) -> bool:
    """``value > limit``, NaN-safe: a NaN exceeds every limit (``nan > tol`` is False, so a plain
    ``>`` test lets a NaN through as "close enough")."""
    return not bool(value <= limit)


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


def _evidence(got: np.ndarray, want: np.ndarray, case: Case, suspect: Suspect, rtol: float, atol: float) -> str:
    """Whether ``suspect`` explains ``got`` on ``case``: "match", "mismatch" or "n/a" (no evidence)."""
    try:
        wrong = suspect.wrong(*case.args, **case.kwargs)
    except Exception:  # the misconception does not apply to this case
        return "n/a"
    if wrong is None:
        return "n/a"
    if isinstance(wrong, tuple):
        return "n/a" if wrong == want.shape else ("match" if got.shape == wrong else "mismatch")
    wrong = np.asarray(wrong)
    if _same(want, wrong, rtol, atol):
        return "n/a"
    return "match" if _same(got, wrong, rtol, atol) else "mismatch"


def _tell_apart(hints: list[str], fn: Callable, later: Sequence[Case], reference: Callable,
                suspects: Sequence[Suspect], output: Callable | None, name: str, rtol: float,
                atol: float) -> list[str]:
    """When several misconceptions explain the first failure, run the later cases and keep those that
    also explain (or do not contradict) the learner's outputs there; never drops every hint."""
    by_hint = {s.hint: s for s in suspects}
    for case in later:
        if len(hints) < 2:
            break
        try:
            raw = fn(*case.args, **case.kwargs)
            got = output(raw) if output else _as_array(raw, name)
            want = np.asarray(reference(*case.args, **case.kwargs))
        except Exception:  # a crash on a later case tells nothing more about these hints
            break
        kept = [h for h in hints if _evidence(got, want, case, by_hint[h], rtol, atol) != "mismatch"]
        hints = kept or hints
    return hints


def _truncation_hint(got: np.ndarray, want: np.ndarray, arg_names: Sequence[str]) -> list[str]:
    """An integer result where floats are expected: fractions were cut off (`int(...)`, an int array)."""
    if np.issubdtype(got.dtype, np.integer) and np.issubdtype(want.dtype, np.floating):
        return [f"your result is an integer ({got.dtype}), so fractions were cut off: an `int(...)`, or an "
                f"array created with an integer dtype, keeps only whole numbers."]
    return []


def _problem(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, check_dtype: bool,
             first_arg: str = "input") -> str | None:
    """What differs between the learner's output and the reference (without showing reference values).

    In a hidden check (:func:`learner_check` with ``hidden=True``) nothing computed from the hidden
    inputs is shown either: not the learner's values, not the positions of wrong values, not the
    output's shape (nor the expected one); only what kind of difference it is.
    """
    hidden = _KIND_ONLY.get()
    if got.shape != want.shape:
        if hidden:
            return f"your output does not have the expected shape {HIDDEN_NOT_SHOWN}."
        return f"your output has shape {got.shape}, expected shape {want.shape}."
    if not _same(got, want, rtol, atol):
        if got.dtype == bool or not np.issubdtype(got.dtype, np.number):
            return f"your output has dtype {got.dtype}; expected numbers of dtype {want.dtype}."
        if hidden:
            what = "the value you returned is" if got.ndim == 0 else "the shape is right but values are"
            return f"{what} wrong {HIDDEN_NOT_SHOWN}."
        if got.ndim == 0:
            return f"you returned {got.item():.6g}, which is not the right value."
        wrong = ~np.isclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)
        first = tuple(int(i) for i in np.argwhere(wrong)[0])
        return (f"the shape is right but {int(wrong.sum())} of {wrong.size} values are wrong "
                f"(the first one at index {first}, where you returned {got[first]:.4g}).")
    if check_dtype and got.dtype != want.dtype:
        return (f"the values are right but the dtype is wrong: {got.dtype}, expected {want.dtype} (the dtype "
                f"of `{first_arg}`; an array created without a dtype is float64, whatever the input was).")
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
    Course infrastructure.
    """
    for index, case in enumerate(cases):
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
        if len(hints) > 1:
            hints = _tell_apart(hints, fn, cases[index + 1:], reference, suspects, output, name, rtol, atol)
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
    """Bad input must raise ``ValueError`` (with a message), not return garbage or crash differently.
    Course infrastructure."""
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
    """The one line a successful check prints. Course infrastructure."""
    print(f"✓ {message}")


def _pair(value) -> tuple[int, int]:
    """An int or (h, w) pair from a check's own test case -> (h, w), via utils.functional's validator."""
    return _validated_pair(value, "argument")


def _integer_output(name: str):
    def convert(value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            kind = type(value).__name__
            extra = " (you probably used `/`; floor division is `//`)" if isinstance(value, float) else ""
            raise CheckFailed(f"✗ {name} returned a {kind}, not an int{extra}.")
        return np.asarray(int(value))
    return convert

"""Argument normalisation and validation shared by the convolution, pooling and activation ops.

Every public op in :mod:`utils.functional` accepts the same argument forms as
``torch.nn.functional`` (an ``int`` or a pair for sizes, NCHW or unbatched CHW arrays) and refuses
the configurations torch refuses.  The checks live here, once, so that the error messages a
learner sees are the same whichever op raised them: each names the argument and the offending
shape or value.  Public because code outside :mod:`utils.functional` (``utils.efficiency``,
``utils.checks``) reads sizes the same way.
"""
from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def pair(value, name: str) -> tuple[int, int]:
    """An ``int`` or a sequence of two ints -> ``(height_value, width_value)``.

    Raises ValueError naming ``name`` for anything else (floats, bools, wrong length).

    Used first in exercise set ex01.
    """
    items = (value, value) if _is_int(value) else value
    try:
        items = tuple(items)
    except TypeError:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(items) != 2 or not all(_is_int(item) for item in items):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(items[0]), int(items[1])


def _is_int(value) -> bool:
    # bool is an int subclass, but stride=True is a bug, not a stride of 1.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(value, name: str, minimum: int = 1) -> int:
    """A single int >= ``minimum``; ValueError naming ``name`` otherwise.

    Used first in chapter 02.
    """
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def pair_at_least(value, name: str, minimum: int, why: str = "") -> tuple[int, int]:
    """Like :func:`pair`, and both values must be >= ``minimum``; ``why`` is added to the message.

    Used first in chapter 02.
    """
    result = pair(value, name)
    if min(result) < minimum:
        raise ValueError(f"{name} must be >= {minimum}{why}, got {value!r}")
    return result


def positive_pair(value, name: str) -> tuple[int, int]:
    """Like :func:`pair`, and both values must be >= 1 (strides, dilations, kernel sizes).

    Used first in chapter 02.
    """
    return pair_at_least(value, name, 1)


def non_negative_pair(value, name: str) -> tuple[int, int]:
    """Like :func:`pair`, and both values must be >= 0 (paddings).

    Used first in chapter 02.
    """
    return pair_at_least(value, name, 0, " (negative padding is not supported)")


def float_array(array, name: str) -> np.ndarray:
    """Check that ``array`` is a float32 or float64 NumPy array and return it unchanged.

    Integer images must be converted by the caller (``x.astype(np.float32)``): silently casting
    would hide which dtype the result has, and torch refuses integer convolutions too.

    Used first in chapter 02.
    """
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array, got {type(array).__name__}")
    if array.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must have dtype float32 or float64, got {array.dtype} "
                         f"(convert with {name}.astype(np.float32))")
    return array


def same_dtype(first: np.ndarray, second: np.ndarray, first_name: str, second_name: str) -> None:
    """Refuse mixed float32/float64 operands, as torch does (no silent promotion).

    Used first in chapter 02.
    """
    if first.dtype != second.dtype:
        raise ValueError(f"{first_name} ({first.dtype}) and {second_name} ({second.dtype}) "
                         "must have the same dtype")


def batched(input: np.ndarray, name: str = "input") -> tuple[np.ndarray, bool]:
    """Accept ``(N, C, H, W)`` or unbatched ``(C, H, W)``.

    Returns ``(input4d, was_unbatched)``; ``input4d`` has shape ``(N, C, H, W)`` (a view, N=1 for
    an unbatched input) so callers can drop the batch axis again with :func:`unbatch`.

    Used first in chapter 02.
    """
    float_array(input, name)
    if input.ndim == 3:
        return input[np.newaxis], True
    if input.ndim == 4:
        return input, False
    raise ValueError(f"{name} must be 3-D (C, H, W) or 4-D (N, C, H, W), "
                     f"got {input.ndim}-D shape {input.shape}")


def unbatch(output: np.ndarray, was_unbatched: bool) -> np.ndarray:
    """Undo :func:`batched`: ``(1, C, H, W)`` -> ``(C, H, W)`` when the input had no batch axis.

    Used first in chapter 02.
    """
    return output[0] if was_unbatched else output


def same_shape(array: np.ndarray, expected: tuple[int, ...], name: str) -> None:
    """Raise ValueError when ``array.shape`` differs from ``expected`` (e.g. a gradient's shape).

    Used first in chapter 02.
    """
    if tuple(array.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(array.shape)}")


def batched_grad(grad_output, x: np.ndarray, output_chw: tuple[int, ...],
                 was_unbatched: bool) -> np.ndarray:
    """Check a backward pass's ``grad_output`` against the forward output it is the gradient of.

    ``x`` is the batched (N, C, H, W) forward input, ``output_chw`` the forward output's
    ``(C_out, H_out, W_out)``.  grad_output must have the forward output's shape, (C_out, H_out,
    W_out) when the input was unbatched, and the input's dtype.  Returns it as (N, C_out, H_out, W_out).

    Used first in chapter 03.
    """
    float_array(grad_output, "grad_output")
    same_dtype(x, grad_output, "input", "grad_output")
    expected = tuple(output_chw) if was_unbatched else (x.shape[0],) + tuple(output_chw)
    same_shape(grad_output, expected, "grad_output")
    return grad_output[np.newaxis] if was_unbatched else grad_output

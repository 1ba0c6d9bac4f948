"""Element-wise activations in NumPy, as ``torch.nn.functional``: any shape in, same shape out."""
from __future__ import annotations

import numpy as np

from .validate import float_array, same_dtype, same_shape

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward"]


def _real_array(input, name: str = "input") -> np.ndarray:
    """ReLU also makes sense on integer arrays (torch allows it); bool and complex do not."""
    if not isinstance(input, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array, got {type(input).__name__}")
    if input.dtype.kind not in "iuf":
        raise ValueError(f"{name} must have a real number dtype, got {input.dtype}")
    return input


def relu(input):
    """max(x, 0) element-wise.  input: any shape, int or float; returns the same shape and dtype.

    Taught in chapter 05.
    """
    return np.maximum(_real_array(input), 0)


def leaky_relu(input, negative_slope=0.01):
    """x for x > 0, ``negative_slope * x`` otherwise.  input: any shape, float32/float64; same out.

    Taught in chapter 05.
    """
    float_array(input, "input")
    return np.where(input > 0, input, input * input.dtype.type(negative_slope))


def _checked_grad(grad_output, input) -> None:
    """grad_output must match the forward input's shape and dtype."""
    float_array(grad_output, "grad_output")
    float_array(input, "input")
    same_shape(grad_output, input.shape, "grad_output")
    same_dtype(input, grad_output, "input", "grad_output")


def relu_backward(grad_output, input):
    """Gradient of :func:`relu`: ``grad_output`` where ``input > 0``, else 0 (also at exactly 0).

    grad_output and input: the same shape (any), float32/float64.  Returns that shape and dtype.

    Taught in chapter 05.
    """
    _checked_grad(grad_output, input)
    return np.where(input > 0, grad_output, 0).astype(input.dtype)


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    """Gradient of :func:`leaky_relu`: ``grad_output`` where ``input > 0``, else scaled by the slope.

    grad_output and input: the same shape (any), float32/float64.  Returns that shape and dtype.

    No notebook calls it: it completes the ReLU family beside relu_backward, and tests check it
    against autograd (``NOT_USED_BY_THE_COURSE`` in tests/test_provenance.py).
    """
    _checked_grad(grad_output, input)
    return np.where(input > 0, grad_output, grad_output * input.dtype.type(negative_slope))

"""Exercise set 05 (ReLU and non-linearity): relu, relu_backward, compose_kernels."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .rules import require_from_scratch
from .engine import learner_check, Case, Suspect, _functional, _ints, _rng, passed, verify

#: The functions of this exercise set (they may call each other).
SET_FUNCTIONS = ('relu', 'relu_backward', 'compose_kernels')



def _relu_cases(hidden: bool) -> list[Case]:
    rng = _rng(10)
    cases = [Case("a few values, one of them exactly 0", (np.array([-2.0, -0.5, 0.0, 0.5, 3.0]),)),
             Case("a (1, 2, 2, 3) feature map", (_ints(rng, 1, 2, 2, 3),)),
             Case("float32 keeps its dtype", (_ints(rng, 2, 3, dtype=np.float32),))]
    if hidden:
        cases.append(Case("random real values", (rng.normal(size=(2, 3, 4, 5)),)))
    return cases


@learner_check
def check_relu(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(x) -> max(x, 0)`` element-wise, any shape, same dtype, input left unchanged."""
    require_from_scratch(fn, "relu", SET_FUNCTIONS)
    F = _functional()
    suspects = [Suspect("absolute value: ReLU sets negative values to 0, it does not flip their sign.", np.abs),
                Suspect("values clipped to [0, 1]: ReLU only has a lower bound.", lambda x: np.clip(x, 0, 1)),
                Suspect("a mask, not the values: ReLU returns x where x > 0 (and 0 elsewhere), not 1.",
                        lambda x: (x > 0).astype(x.dtype)),
                Suspect("`np.max(x, 0)` is a reduction: the largest value along axis 0, not a comparison of "
                        "each value with 0.",
                        lambda x: np.max(x, 0)),
                Suspect("positive and negative parts swapped: keep the positive values.", lambda x: np.minimum(x, 0)),
                Suspect("leaky ReLU: plain ReLU gives exactly 0 for negative inputs.", lambda x: np.where(x > 0, x, 0.01 * x))]
    cases = _relu_cases(hidden)
    verify(fn, "relu", ("x",), cases, F.relu, suspects)
    passed(f"relu is max(x, 0) element-wise on {len(cases)} arrays and keeps the dtype")


@learner_check
def check_relu_backward(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(grad_output, x) -> grad_input``: grad_output where x > 0, else 0 (also at x == 0)."""
    require_from_scratch(fn, "relu_backward", SET_FUNCTIONS)
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


@learner_check
def check_compose_kernels(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(k1, k2) -> k`` with conv2d(conv2d(x, k1), k2) == conv2d(x, k) for every image x.

    k1 (a, b), k2 (c, d) single-channel kernels (stride 1, no padding, no bias); k is (a+c-1, b+d-1).
    """
    require_from_scratch(fn, "compose_kernels", SET_FUNCTIONS)
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

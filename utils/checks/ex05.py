"""Exercise set 05 (ReLU and non-linearity): relu, relu_backward, compose_kernels."""
from __future__ import annotations

from typing import Callable

import numpy as np

import utils.functional as F

from .rules import require_from_scratch
from .engine import CheckFailed, learner_check, Case, Suspect, _ints, _rng, passed, verify

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
    """Check ``fn(x) -> max(x, 0)`` element-wise, any shape, same dtype, input left unchanged.
    Used first in exercise set ex05."""
    require_from_scratch(fn, "relu", SET_FUNCTIONS)
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
    """Check ``fn(grad_output, x) -> grad_input``: grad_output where x > 0, else 0 (also at x == 0).
    Used first in exercise set ex05."""
    require_from_scratch(fn, "relu_backward", SET_FUNCTIONS)
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


def _composed(w1, b1, w2, b2, flip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The one conv layer (weight, bias) equal to conv2d(conv2d(x, w1, b1), w2, b2) (stride 1, no padding).

    weight[o, i] = sum over m of the *full convolution* of w1[m, i] with w2[o, m];
    bias[o] = b2[o] + sum over m of b1[m] * sum(w2[o, m]).
    """
    kernel = w2[..., ::-1, ::-1] if flip else w2
    padding = (w2.shape[2] - 1, w2.shape[3] - 1)
    # the C_in kernels of w1 as a batch of C_mid-channel images, filtered by w2
    weight = F.conv2d(np.ascontiguousarray(w1.transpose(1, 0, 2, 3)), np.ascontiguousarray(kernel),
                      padding=padding).transpose(1, 0, 2, 3)
    return weight, b2 + w2.sum(axis=(2, 3)) @ b1


def _part(index: int, what: str):
    def take(value):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise CheckFailed(f"✗ compose_kernels must return the pair (weight, bias); it returned "
                              f"{type(value).__name__}{'' if not isinstance(value, (tuple, list)) else f' of length {len(value)}'}.")
        return np.asarray(value[index])
    return take


def _compose_cases(hidden: bool) -> list[Case]:
    rng = _rng(11)

    def layers(c_in, c_mid, c_out, k1, k2):
        return (_ints(rng, c_mid, c_in, *k1), rng.integers(1, 4, size=c_mid).astype(float),
                _ints(rng, c_out, c_mid, *k2), rng.integers(1, 4, size=c_out).astype(float))
    cases = [Case("one channel, two 2x2 kernels, zero biases",
                  (np.array([[[[1.0, 2.0], [0.0, -1.0]]]]), np.zeros(1),
                   np.array([[[[0.0, 1.0], [3.0, 1.0]]]]), np.zeros(1))),
             Case("one channel with biases", layers(1, 1, 1, (3, 3), (2, 2))),
             Case("non-square kernels", layers(1, 1, 1, (1, 3), (2, 1))),
             Case("two middle channels", layers(1, 2, 1, (2, 2), (2, 2))),
             Case("3 -> 4 -> 2 channels", layers(3, 4, 2, (3, 3), (2, 3)))]
    if hidden:
        cases.append(Case("random real values, 2 -> 3 -> 5", (rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3),
                                                              rng.normal(size=(5, 3, 2, 3)), rng.normal(size=5))))
    return cases


@learner_check
def check_compose_kernels(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(w1, b1, w2, b2) -> (weight, bias)``: one conv layer equal to two (stride 1, no padding).

    w1 (C_mid, C_in, a, b), b1 (C_mid,), w2 (C_out, C_mid, c, d), b2 (C_out,);
    weight (C_out, C_in, a + c - 1, b + d - 1), bias (C_out,), with
    conv2d(conv2d(x, w1, b1), w2, b2) == conv2d(x, weight, bias) for every x.
    Used first in exercise set ex05.
    """
    require_from_scratch(fn, "compose_kernels", SET_FUNCTIONS)
    cases = _compose_cases(hidden)
    args = ("w1", "b1", "w2", "b2")
    weight_suspects = [
        Suspect("w2's kernels not flipped: composing two cross-correlations gives the *convolution* of the "
                "kernels (w2 flipped), not their cross-correlation.",
                lambda *a: _composed(*a, flip=False)[0]),
        Suspect("both kernels flipped: only one of them is flipped in the full convolution.",
                lambda *a: _composed(*a)[0][..., ::-1, ::-1]),
        Suspect("only the first middle channel is used: weight[o, i] sums over *all* C_mid middle channels m.",
                lambda w1, b1, w2, b2: None if w1.shape[0] < 2 else _composed(w1[:1], b1[:1], w2[:, :1], b2)[0]),
        Suspect("the kernels are not added or multiplied element-wise: sliding w2 over the output of "
                "w1 mixes every tap of one with every tap of the other; the result is (a+c-1, b+d-1).",
                lambda w1, b1, w2, b2: (w1 + w2) if w1.shape == w2.shape else None),
        Suspect("the kernels are not added or multiplied element-wise: sliding w2 over the output of "
                "w1 mixes every tap of one with every tap of the other; the result is (a+c-1, b+d-1).",
                lambda w1, b1, w2, b2: (w1 * w2) if w1.shape == w2.shape else None),
        Suspect("weight axes in the wrong order: the composed layer's weight is (C_out, C_in, kH, kW).",
                lambda *a: (lambda w: None if w.shape[0] == w.shape[1] else w.shape[:2][::-1] + w.shape[2:])(
                    _composed(*a)[0]))]
    verify(fn, "compose_kernels (the weight)", args, cases, lambda *a: _composed(*a)[0], weight_suspects,
           check_dtype=False, output=_part(0, "weight"))
    bias_suspects = [
        Suspect("b1 forgotten: the first layer's bias passes through the second conv, so it adds "
                "b1[m] * sum(w2[o, m]) to output channel o.", lambda w1, b1, w2, b2: b2),
        Suspect("b1 added as it is: it goes through the second conv first, so channel o gets "
                "sum over m of b1[m] * sum(w2[o, m]), not sum(b1).", lambda w1, b1, w2, b2: b2 + b1.sum()),
        Suspect("b2 forgotten: the second layer's bias is added once, at the end.",
                lambda w1, b1, w2, b2: w2.sum(axis=(2, 3)) @ b1)]
    verify(fn, "compose_kernels (the bias)", args, cases, lambda *a: _composed(*a)[1], bias_suspects,
           check_dtype=False, output=_part(1, "bias"))
    passed(f"compose_kernels: one conv layer with your weight and bias equals the two layers on "
           f"{len(cases)} pairs of layers")

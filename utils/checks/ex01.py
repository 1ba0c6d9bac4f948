"""Exercise set 01 (images and local patterns): get_patch, patch_response, response_map."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .rules import require_from_scratch
from .engine import learner_check, Case, CheckFailed, Suspect, _as_array, _ints, _rng, expect_value_error, passed, verify
from .convolution import _conv_suspects, _reference_conv_view

#: The functions of this exercise set (they may call each other).
SET_FUNCTIONS = ('get_patch', 'patch_response', 'response_map')



@learner_check
def check_get_patch(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(image, row, col, size) -> image[row:row+size, col:col+size]`` (ValueError if it sticks out).

    image (H, W) or (H, W, C); the patch's top-left pixel is (row, col).
    Used first in exercise set ex01.
    """
    require_from_scratch(fn, "get_patch", SET_FUNCTIONS)
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


@learner_check
def check_patch_response(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(patch, kernel) -> float``: the sum of element-wise products (one output of a convolution).
    Used first in exercise set ex01."""
    require_from_scratch(fn, "patch_response", SET_FUNCTIONS)
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
    for bad in [Case("shapes differ", (np.ones((3, 3)), np.ones((2, 2)))),
                Case("a (2, 3) patch and a (3, 2) kernel: as many values, other shapes",
                     (np.ones((2, 3)), np.ones((3, 2))))]:
        expect_value_error(fn, "patch_response", ("patch", "kernel"), bad,
                           f"patch and kernel shapes differ: {bad.label}")
    passed(f"patch_response gives the weighted sum on {len(cases)} patches and refuses mismatched shapes")


@learner_check
def check_response_map(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(image, kernel) -> (H - kH + 1, W - kW + 1)``: the kernel's response at every position.
    Used first in exercise set ex01."""
    require_from_scratch(fn, "response_map", SET_FUNCTIONS)
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

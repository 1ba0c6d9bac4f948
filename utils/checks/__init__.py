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
only look at what it returns.  A model cannot cross that boundary: the grader's runner describes it
with its trusted copy of :func:`describe_model` (plain data), and the model checks accept that
description from a grader proxy only; the same dict returned by the learner's own function is
refused, in the notebook as in the grader.  Every check is seeded and takes well under a second.

``hidden=True`` adds more (larger, non-square, mixed) cases; the grader uses it.  Their messages
describe the inputs by kind and show nothing computed from them (not the learner's values, the
positions of wrong values or the output's shape): only the case label and the misconception.

Layout: :mod:`utils.checks.engine` (``Case``, ``Suspect``, ``verify``, crash hints, ``CheckFailed``),
:mod:`utils.checks.convolution` (conv misconceptions and inputs shared by sets 01-04),
:mod:`utils.checks.models` (``describe_model``), and one module per exercise set,
``utils/checks/exNN.py`` matching ``solutions/exNN_*.ipynb``.  Every public name is re-exported here.
"""
from __future__ import annotations

from .engine import (Case, CheckFailed, CrashHint, Suspect, describe_case, expect_value_error, passed,
                     verify)
from .convolution import conv2d_cases
from .models import describe_model
from .ex01 import check_get_patch, check_patch_response, check_response_map
from .ex02 import check_conv2d, check_output_size, check_zero_pad
from .ex03 import check_conv2d_backward, check_nhwc_to_nchw, conv2d_backward_cases
from .ex04 import check_edge_filters, check_feature_maps, check_multichannel_conv
from .ex05 import check_compose_kernels, check_relu, check_relu_backward
from .ex06 import check_avg_pool2d, check_max_pool2d, check_max_pool2d_backward
from .ex07 import (check_build_cnn, check_cnn_forward, check_receptive_field,
                   check_top_class_maps)
from .ex08 import (check_extract_features, check_frozen_setup, check_new_head, check_predict_photo,
                   describe_training_setup, describe_transfer_model)
from .ex09 import check_conv_macs, check_conv_params, check_dense_params, check_median_time


__all__ = [
    "CheckFailed", "Case", "CrashHint", "Suspect", "describe_case", "expect_value_error", "passed", "verify",
    "conv2d_cases", "conv2d_backward_cases",
    "check_get_patch", "check_patch_response", "check_response_map",
    "check_output_size", "check_zero_pad", "check_conv2d",
    "check_nhwc_to_nchw", "check_conv2d_backward",
    "check_edge_filters", "check_feature_maps", "check_multichannel_conv",
    "check_relu", "check_relu_backward", "check_compose_kernels",
    "check_max_pool2d", "check_avg_pool2d", "check_max_pool2d_backward",
    "check_receptive_field", "check_cnn_forward", "check_build_cnn", "check_top_class_maps", "describe_model",
    "check_new_head", "check_frozen_setup", "check_extract_features", "check_predict_photo",
    "describe_transfer_model", "describe_training_setup",
    "check_conv_params", "check_conv_macs", "check_dense_params", "check_median_time",
]

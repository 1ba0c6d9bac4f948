"""NumPy versions of the ``torch.nn.functional`` ops this course builds, NCHW like PyTorch.

Every function takes and returns NumPy arrays with the same name, arguments and defaults as its
``torch.nn.functional`` namesake, plus ``*_backward`` functions that return gradients and
``conv2d_naive``, the loop-by-loop reference.  Bad arguments raise ``ValueError`` naming the
shapes or values involved.

Modules: ``conv`` (convolution), ``pool`` (pooling), ``activation`` (ReLU family); ``validate``
(public: the argument checks, also used by :mod:`utils.efficiency` and :mod:`utils.checks`) and
``_windows`` hold the argument checks and sliding-window plumbing they share; ``_depthwise``
(depthwise layers: stride 1 as small banded matrix products per kernel row, other strides one
multiply-add per tap), ``_wide`` (the stride-1 im2col/col2im on flattened planes),
``_parallel`` (several threads: the batch split between them) and ``_max_search`` (max pooling's
first-maximum search, PyTorch's tie rule) are fast paths, each tested against the readable
version and against torch.
"""
from .activation import leaky_relu, leaky_relu_backward, relu, relu_backward
from .conv import conv2d, conv2d_backward, conv2d_naive, conv_output_size
from .pool import (adaptive_avg_pool2d, avg_pool2d, avg_pool2d_backward, max_pool2d,
                   max_pool2d_backward)

__all__ = ["conv2d", "conv2d_naive", "conv2d_backward", "conv_output_size",
           "max_pool2d", "avg_pool2d", "max_pool2d_backward", "avg_pool2d_backward",
           "adaptive_avg_pool2d", "relu", "relu_backward", "leaky_relu", "leaky_relu_backward"]

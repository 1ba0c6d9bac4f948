"""NumPy versions of the ``torch.nn.functional`` ops this course builds, NCHW like PyTorch.

Every function takes and returns NumPy arrays with the same name, arguments and defaults as its
``torch.nn.functional`` namesake (plus ``*_backward`` functions that return the gradients, and
``conv2d_naive``, the loop-by-loop reference).  Bad arguments raise ``ValueError`` naming the
shapes or values involved.
"""
from .conv import conv2d, conv2d_backward, conv2d_naive, conv_output_size

__all__ = ["conv2d", "conv2d_naive", "conv2d_backward", "conv_output_size"]

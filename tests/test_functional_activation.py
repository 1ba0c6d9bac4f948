"""utils.functional activations against torch.nn.functional: forward, backward, refusals."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from utils.functional import leaky_relu, leaky_relu_backward, relu, relu_backward

float_arrays = st.sampled_from([np.float32, np.float64]).flatmap(
    lambda dtype: arrays(dtype, array_shapes(max_dims=4, max_side=5),
                         elements=st.floats(-10, 10, width=32)
                         | st.sampled_from([0.0, -0.0])))   # exact zeros: the kink
slopes = st.floats(0.0, 1.0, width=32)


@settings(max_examples=60, deadline=None)
@given(float_arrays)
def test_relu_matches_torch(x):
    out = relu(x)
    assert out.dtype == x.dtype and out.shape == x.shape
    np.testing.assert_array_equal(out, F.relu(torch.tensor(x)).numpy())


@settings(max_examples=60, deadline=None)
@given(float_arrays, slopes)
def test_leaky_relu_matches_torch(x, slope):
    out = leaky_relu(x, slope)
    assert out.dtype == x.dtype and out.shape == x.shape
    np.testing.assert_allclose(out, F.leaky_relu(torch.tensor(x), slope).numpy(), rtol=1e-6)


def _autograd(op, x, grad_output, *args):
    x_t = torch.tensor(x, requires_grad=True)
    op(x_t, *args).backward(torch.tensor(grad_output))
    return x_t.grad.numpy()


@settings(max_examples=60, deadline=None)
@given(float_arrays, st.integers(0, 2**32 - 1), slopes)
def test_backward_matches_autograd(x, seed, slope):
    grad_output = np.random.default_rng(seed).standard_normal(x.shape).astype(x.dtype)
    np.testing.assert_array_equal(relu_backward(grad_output, x), _autograd(F.relu, x, grad_output))
    np.testing.assert_allclose(leaky_relu_backward(grad_output, x, slope),
                               _autograd(F.leaky_relu, x, grad_output, slope), rtol=1e-6)
    assert relu_backward(grad_output, x).dtype == x.dtype


def test_relu_gradient_at_zero_is_zero():
    assert relu_backward(np.ones(3), np.array([-1.0, 0.0, 1.0])).tolist() == [0.0, 0.0, 1.0]


def test_relu_accepts_integer_arrays_like_torch():
    out = relu(np.array([-2, 0, 3]))
    assert out.tolist() == [0, 0, 3] and out.dtype == np.int64


@pytest.mark.parametrize("call, word", [
    (lambda: relu([-1.0, 2.0]), "NumPy array"),
    (lambda: relu(np.array([True, False])), "dtype"),
    (lambda: leaky_relu(np.array([1, 2])), "float32 or float64"),
    (lambda: relu_backward(np.ones(3), np.ones(4)), r"shape \(4,\)"),
    (lambda: relu_backward(np.ones(3, np.float32), np.ones(3)), "dtype"),
])
def test_activations_refuse_bad_input(call, word):
    with pytest.raises(ValueError, match=word):
        call()

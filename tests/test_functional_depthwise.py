"""utils.functional._depthwise (conv2d's path for groups == C_in) against torch: the stride-1 band
(Toeplitz) products with every tiling, block size, kernel shape, dilation and padding they handle."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import utils.functional._depthwise as depthwise
import utils.functional.conv as conv_module
from utils.functional import conv2d, conv2d_backward

torch.set_num_threads(1)   # the test machine is shared; tiny shapes gain nothing from threads
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

TOLERANCE = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


@st.composite
def stride_one_depthwise(draw):
    """Stride-1 depthwise layers: rectangular kernels 1-5, dilation 1-2, symmetric, per-axis or
    'same' padding (uneven for even kernels), channel multiplier 1-3, planes up to 20 wide."""
    channels, multiplier = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
                             st.just("same")))
    pads = (0, 0) if padding == "same" else (padding, padding) if isinstance(padding, int) else padding
    height, width = (max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 15))
                     for k, d, p in zip(kernel, dilation, pads))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 3)), channels, height, width)).astype(dtype)
    weight = rng.standard_normal((channels * multiplier, 1) + kernel).astype(dtype)
    return x, weight, dict(stride=1, padding=padding, dilation=dilation, groups=channels)


def torch_forward_backward(x, weight, kwargs, grad_output, bias=None):
    x_t, w_t = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    out = F.conv2d(x_t, w_t, None if bias is None else torch.tensor(bias), **kwargs)
    out.backward(torch.tensor(grad_output))
    return out.detach().numpy(), x_t.grad.numpy(), w_t.grad.numpy()


@settings(max_examples=60, deadline=None)
@given(stride_one_depthwise(), st.sampled_from([None, 1, 2, 3, 5]), st.booleans(),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_band_products_match_torch(config, tile, one_channel_blocks, with_bias, seed):
    """Forward (with or without a bias, which the band path adds block by block), grad_input and
    grad_weight equal torch's with one band over the whole width or tiles of ``tile`` output
    columns (the last one narrower), and with one channel per block."""
    x, weight, kwargs = config
    rng = np.random.default_rng(seed)
    bias = rng.standard_normal(weight.shape[0]).astype(x.dtype) if with_bias else None
    out_shape = F.conv2d(torch.tensor(x), torch.tensor(weight), **kwargs).shape
    grad_output = rng.standard_normal(out_shape).astype(x.dtype)
    expected = torch_forward_backward(x, weight, kwargs, grad_output, bias)
    saved = depthwise.MAX_TILE, depthwise.TILE, conv_module.BLOCK_BYTES
    if tile is not None:
        depthwise.MAX_TILE, depthwise.TILE = tile - 1, tile
    if one_channel_blocks:
        conv_module.BLOCK_BYTES = 1
    try:
        ours = (conv2d(x, weight, bias, **kwargs),) + conv2d_backward(grad_output, x, weight, **kwargs)[:2]
    finally:
        depthwise.MAX_TILE, depthwise.TILE, conv_module.BLOCK_BYTES = saved
    for a, b in zip(ours, expected):
        assert a.shape == b.shape and a.dtype == x.dtype
        np.testing.assert_allclose(a, b, **TOLERANCE[x.dtype.type])


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_input_forward_matches_torch(bad):
    """The band's zeros would multiply an inf into NaN at outputs whose window never sees it;
    a non-finite input takes the exact path, so only the outputs torch makes inf/NaN are."""
    rng = np.random.default_rng(2)
    x, weight = rng.standard_normal((2, 3, 10, 12)), rng.standard_normal((3, 1, 3, 3))
    x[1, 2, 4, 7] = bad
    bias = rng.standard_normal(3)
    ours = conv2d(x, weight, bias, padding=1, groups=3)
    theirs = F.conv2d(torch.tensor(x), torch.tensor(weight), torch.tensor(bias), padding=1, groups=3).numpy()
    assert np.isfinite(ours[0]).all() and np.isfinite(ours[1, :2]).all()
    np.testing.assert_allclose(ours, theirs, **TOLERANCE[np.float64])   # NaN where torch's are


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_gradient_matches_torch(bad):
    """An inf in grad_output times the band's zeros would be NaN at input pixels it never
    reaches; such gradients take the exact path, so grad_input is non-finite only where torch's is."""
    rng = np.random.default_rng(3)
    x, weight = rng.standard_normal((2, 3, 10, 12)), rng.standard_normal((3, 1, 3, 3))
    grad_output = rng.standard_normal((2, 3, 10, 12))
    grad_output[0, 1, 4, 6] = bad
    kwargs = dict(stride=1, padding=1, dilation=1, groups=3)
    ours = conv2d_backward(grad_output, x, weight, **kwargs)[:2]
    x_t, w_t = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    F.conv2d(x_t, w_t, **kwargs).backward(torch.tensor(grad_output))
    assert np.isfinite(ours[0][1]).all() and np.isfinite(ours[0][0, 0]).all()
    for a, b in zip(ours, (x_t.grad.numpy(), w_t.grad.numpy())):
        np.testing.assert_allclose(a, b, **TOLERANCE[np.float64])


def test_an_empty_batch_with_a_bias_is_an_empty_output():
    x, weight, bias = np.zeros((0, 3, 5, 5)), np.ones((6, 1, 3, 3)), np.arange(6.0)
    out = conv2d(x, weight, bias, padding=1, groups=3)
    assert out.shape == (0, 6, 5, 5) == F.conv2d(torch.tensor(x), torch.tensor(weight), torch.tensor(bias),
                                                 padding=1, groups=3).shape

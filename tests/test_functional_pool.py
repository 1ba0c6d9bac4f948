"""utils.functional pooling ops against torch.nn.functional: forward, indices, backward, refusals."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.functional import (adaptive_avg_pool2d, avg_pool2d, avg_pool2d_backward, max_pool2d,
                              max_pool2d_backward)
from utils.functional import _max_search as max_search
from utils.functional import pool as pool_module

torch.set_num_threads(1)   # the test machine is shared; tiny shapes gain nothing from threads

TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
sizes = st.integers(1, 4)
size_args = st.one_of(sizes, st.tuples(sizes, sizes))


@st.composite
def distinct_inputs(draw, max_side=9):
    """(N, C, H, W) or (C, H, W) array of distinct values (a shuffled range), so maxima never tie."""
    batch_shape = (draw(st.integers(1, 2)),) if draw(st.booleans()) else ()
    side = st.integers(1, max_side) | st.integers(5, max_side)   # tiny planes, but not mostly
    shape = batch_shape + (draw(st.integers(1, 3)), draw(side), draw(side))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.permutation(int(np.prod(shape))) - int(np.prod(shape)) // 2   # exact in float32
    return (values / 4).reshape(shape).astype(dtype)


@st.composite
def tied_inputs(draw, max_side=9):
    """(N, C, H, W) or (C, H, W) array of a few small values (so most windows tie), with -0.0 among
    the zeros and, sometimes, NaNs: where torch's choice of the maximum shows."""
    batch_shape = (draw(st.integers(1, 2)),) if draw(st.booleans()) else ()
    side = st.integers(1, max_side) | st.integers(5, max_side)
    shape = batch_shape + (draw(st.integers(1, 3)), draw(side), draw(side))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.integers(-1, draw(st.integers(1, 3)), shape).astype(dtype)
    values[(values == 0) & (rng.random(shape) < 0.5)] = -0.0
    if draw(st.integers(0, 4)) == 0:
        values[rng.random(shape) < 0.1] = np.nan
    return values


@st.composite
def pool_kwargs(draw, dilation=True):
    """Pooling arguments, valid or not: the tests check we refuse exactly when torch does."""
    kwargs = dict(kernel_size=draw(size_args), stride=draw(st.one_of(st.none(), size_args)),
                  # padding 0 often, so that most configurations are valid
                  padding=draw(st.one_of(st.just(0), st.integers(0, 2),
                                         st.tuples(st.integers(0, 2), st.integers(0, 2)))),
                  ceil_mode=draw(st.booleans()))
    if dilation:
        kwargs["dilation"] = draw(st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 2),
                                                                         st.integers(1, 2))))
    return kwargs


def torch_or_error(op, x, kwargs, grad_output_seed=None):
    """torch's result for op(x, **kwargs), or None if torch refuses; with a seed: (out, grad_input)."""
    x_t = torch.tensor(x, requires_grad=True)
    try:
        out = op(x_t, **kwargs)
    except RuntimeError:
        return None
    if grad_output_seed is None:
        return out
    values = out[0] if isinstance(out, tuple) else out
    grad = np.random.default_rng(grad_output_seed).standard_normal(values.shape).astype(x.dtype)
    values.backward(torch.tensor(grad))
    return grad, x_t.grad.numpy()


@settings(max_examples=150, deadline=None)
@given(distinct_inputs(), pool_kwargs())
def test_max_pool2d_matches_torch(x, kwargs):
    expected = torch_or_error(F.max_pool2d, x, dict(kwargs, return_indices=True))
    if expected is None:
        with pytest.raises(ValueError):
            max_pool2d(x, **kwargs)
        return
    out, indices = max_pool2d(x, **kwargs, return_indices=True)
    assert out.dtype == x.dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(out, expected[0].detach().numpy())
    np.testing.assert_array_equal(indices, expected[1].numpy())
    np.testing.assert_array_equal(max_pool2d(x, **kwargs), out)


def has_a_window_of_padding_only(x, kwargs) -> bool:
    """Whether some window sees no input pixel (inputs here hold no -inf).  Torch's backward then
    writes the gradient outside the input (undefined; it can abort the process), so skip it."""
    try:
        out = max_pool2d(x, **kwargs)
    except ValueError:
        return False   # torch refuses too (test_max_pool2d_matches_torch)
    return bool((out == -np.inf).any())


def assert_backward_matches_autograd(torch_pool, our_backward, x, kwargs, seed):
    """``our_backward(grad_output, x, **kwargs)`` equals autograd through ``torch_pool`` (shape, dtype,
    values) and returns (grad_output, ours, torch's); None for settings torch refuses (the forward tests cover those)."""
    expected = torch_or_error(torch_pool, x, kwargs, seed)
    if expected is None:
        return None
    grad_output, expected_grad = expected
    grad_input = our_backward(grad_output, x, **kwargs)
    assert grad_input.shape == x.shape and grad_input.dtype == x.dtype
    np.testing.assert_allclose(grad_input, expected_grad, **TOLERANCE[x.dtype.type])
    return grad_output, grad_input, expected_grad


@settings(max_examples=80, deadline=None)
@given(distinct_inputs(), pool_kwargs(), st.integers(0, 2**32 - 1))
def test_max_pool2d_backward_matches_autograd(x, kwargs, seed):
    if has_a_window_of_padding_only(x, kwargs):
        return
    assert_backward_matches_autograd(F.max_pool2d, max_pool2d_backward, x, kwargs, seed)


@settings(max_examples=150, deadline=None)
@given(tied_inputs(), pool_kwargs())
def test_max_pool2d_indices_on_ties_and_nans_match_torch(x, kwargs):
    expected = torch_or_error(F.max_pool2d, x, dict(kwargs, return_indices=True))
    if expected is None:
        return   # refusals are covered by test_max_pool2d_matches_torch
    out, indices = max_pool2d(x, **kwargs, return_indices=True)
    np.testing.assert_array_equal(out, expected[0].detach().numpy())   # NaN == NaN, -0.0 == 0.0 here
    np.testing.assert_array_equal(indices, expected[1].numpy())


@settings(max_examples=200, deadline=None)
@given(tied_inputs(), pool_kwargs(), st.integers(0, 2**32 - 1))
def test_max_pool2d_backward_on_ties_and_nans_matches_autograd(x, kwargs, seed):
    """The gradient goes to torch's one maximum per window: the first in row-major order, the last
    NaN in a window with NaNs (the fast path and the reference scatter path both)."""
    if has_a_window_of_padding_only(x, kwargs):
        return
    compared = assert_backward_matches_autograd(F.max_pool2d, max_pool2d_backward, x, kwargs, seed)
    if compared is None:
        return
    grad_output, grad_input, expected_grad = compared
    assert not np.signbit(grad_input[expected_grad == 0]).any()   # +0.0 where nothing arrives, as torch
    x4 = x if x.ndim == 4 else x[None]
    geo = pool_module.pool_geometry(x4.shape[2:], kwargs["kernel_size"], kwargs["stride"],
                                    kwargs["padding"], kwargs["dilation"], kwargs["ceil_mode"])
    windows = pool_module._pool_windows(x4, geo, -np.inf)
    reference = pool_module._max_pool2d_backward_scatter(grad_output.reshape((-1,) + grad_output.shape[-3:]),
                                                         x4, windows, geo)
    np.testing.assert_allclose(reference.reshape(x.shape), expected_grad, **TOLERANCE[x.dtype.type])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_max_pool2d_backward_routes_a_non_finite_gradient_to_one_pixel_like_torch(bad):
    x = np.random.default_rng(0).integers(0, 2, (1, 2, 6, 6)).astype(np.float32)
    grad = np.ones((1, 2, 3, 3), np.float32)
    grad[0, 1, 1, 2] = bad
    x_t = torch.tensor(x, requires_grad=True)
    F.max_pool2d(x_t, 2).backward(torch.tensor(grad))
    np.testing.assert_array_equal(max_pool2d_backward(grad, x, 2), x_t.grad.numpy())


@settings(max_examples=150, deadline=None)
@given(distinct_inputs(), pool_kwargs(dilation=False), st.booleans())
def test_avg_pool2d_matches_torch(x, kwargs, count_include_pad):
    kwargs["count_include_pad"] = count_include_pad
    expected = torch_or_error(F.avg_pool2d, x, kwargs)
    if expected is None:
        with pytest.raises(ValueError):
            avg_pool2d(x, **kwargs)
        return
    out = avg_pool2d(x, **kwargs)
    assert out.dtype == x.dtype and out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out, expected.detach().numpy(), **TOLERANCE[x.dtype.type])


@settings(max_examples=80, deadline=None)
@given(distinct_inputs(), pool_kwargs(dilation=False), st.booleans(), st.integers(0, 2**32 - 1))
def test_avg_pool2d_backward_matches_autograd(x, kwargs, count_include_pad, seed):
    kwargs["count_include_pad"] = count_include_pad
    assert_backward_matches_autograd(F.avg_pool2d, avg_pool2d_backward, x, kwargs, seed)


output_sizes = st.one_of(st.integers(1, 6),
                         st.tuples(st.one_of(st.none(), st.integers(1, 6)),
                                   st.one_of(st.none(), st.integers(1, 6))))


@settings(max_examples=100, deadline=None)
@given(distinct_inputs(max_side=13), output_sizes)
def test_adaptive_avg_pool2d_matches_torch(x, output_size):
    expected = F.adaptive_avg_pool2d(torch.tensor(x), output_size).numpy()
    out = adaptive_avg_pool2d(x, output_size)
    assert out.dtype == x.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, **TOLERANCE[x.dtype.type])


def test_global_average_pooling_is_the_channel_mean():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    np.testing.assert_allclose(adaptive_avg_pool2d(x, 1), x.mean(axis=(2, 3), keepdims=True))


def test_max_pool_indices_are_flat_positions_in_the_unpadded_plane():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2, 3] = 1.0
    _, indices = max_pool2d(x, 2, return_indices=True)
    assert indices[0, 0, 1, 1] == 2 * 4 + 3
    _, padded_indices = max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    assert padded_indices[0, 0, 1, 1] == 2 * 4 + 3


@pytest.mark.parametrize("side, kwargs", [(1, dict(kernel_size=2, padding=1, dilation=2)),
                                          (2, dict(kernel_size=2, padding=1, dilation=3))])
def test_a_window_of_padding_only_reports_what_torch_reports(side, kwargs):
    x = np.arange(side * side, dtype=np.float64).reshape(1, 1, side, side)
    expected_out, expected_indices = F.max_pool2d(torch.tensor(x), **kwargs, return_indices=True)
    out, indices = max_pool2d(x, **kwargs, return_indices=True)
    assert out.min() == -np.inf      # the case under test: some window saw no input pixel
    np.testing.assert_array_equal(out, expected_out.numpy())
    np.testing.assert_array_equal(indices, expected_indices.numpy())


def test_nan_propagates_and_ties_go_to_the_first_maximum_like_torch():
    x = np.array([[[[1.0, np.nan, 3.0, np.nan], [5.0, 2.0, 5.0, 0.0]]]])
    for kwargs in (dict(kernel_size=(1, 4)), dict(kernel_size=(1, 2), stride=1),
                   dict(kernel_size=(1, 3), stride=1, padding=(0, 1))):
        expected_out, expected_indices = F.max_pool2d(torch.tensor(x), **kwargs, return_indices=True)
        out, indices = max_pool2d(x, **kwargs, return_indices=True)
        np.testing.assert_array_equal(out, expected_out.numpy())
        np.testing.assert_array_equal(indices, expected_indices.numpy())


def test_ceil_mode_keeps_the_partial_last_window():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    assert max_pool2d(x, 2).shape == (1, 1, 2, 2)
    out = max_pool2d(x, 2, ceil_mode=True)
    assert out.shape == (1, 1, 3, 3) and out[0, 0, 2, 2] == 24.0


def _input(shape=(1, 2, 5, 5), dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


# Each case: (why it is wrong, input, pooling arguments, a word the message must contain)
BAD_POOLS = [
    ("2-D input", _input((5, 5)), dict(kernel_size=2), "3-D"),
    ("5-D input", _input((1, 1, 2, 5, 5)), dict(kernel_size=2), "4-D"),
    ("padding over half the kernel", _input(), dict(kernel_size=3, padding=2), "half"),
    ("negative padding", _input(), dict(kernel_size=3, padding=-1), "padding"),
    ("zero stride", _input(), dict(kernel_size=2, stride=0), "stride"),
    ("zero kernel", _input(), dict(kernel_size=0), "kernel_size"),
    ("kernel larger than input", _input(), dict(kernel_size=6), "larger"),
    ("three kernel sizes", _input(), dict(kernel_size=(2, 2, 2)), "kernel_size"),
]


@pytest.mark.parametrize("why, x, kwargs, word", BAD_POOLS, ids=[case[0] for case in BAD_POOLS])
@pytest.mark.parametrize("ours, theirs", [(max_pool2d, F.max_pool2d), (avg_pool2d, F.avg_pool2d),
                                          (max_pool2d_backward, None), (avg_pool2d_backward, None)])
def test_pooling_refuses_what_torch_refuses(ours, theirs, why, x, kwargs, word):
    if theirs is not None:
        with pytest.raises((RuntimeError, IndexError)):
            theirs(torch.from_numpy(x), **kwargs)
        call = lambda: ours(x, **kwargs)  # noqa: E731
    else:
        call = lambda: ours(np.zeros((1, 2, 2, 2), x.dtype), x, **kwargs)  # noqa: E731
    with pytest.raises(ValueError, match=word):
        call()


def test_max_pool_refuses_zero_dilation_like_torch():
    with pytest.raises(RuntimeError):
        F.max_pool2d(torch.from_numpy(_input()), 2, dilation=0)
    with pytest.raises(ValueError, match="dilation"):
        max_pool2d(_input(), 2, dilation=0)


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d, adaptive_avg_pool2d])
def test_pooling_refuses_integer_images(op):
    with pytest.raises(ValueError, match=r"float32 or float64.*astype"):
        op(np.zeros((1, 4, 4), np.uint8), 2)


def test_pool_backward_refuses_a_grad_output_of_the_wrong_shape():
    x = _input()
    with pytest.raises(ValueError, match=r"grad_output must have shape \(1, 2, 2, 2\)"):
        max_pool2d_backward(np.zeros((1, 2, 3, 3), np.float32), x, 2)
    with pytest.raises(ValueError, match="dtype"):
        avg_pool2d_backward(np.zeros((1, 2, 2, 2), np.float64), x, 2)


@pytest.mark.parametrize("output_size", [0, (2, 0), (2, 2, 2), 1.5])
def test_adaptive_pool_refuses_bad_output_sizes(output_size):
    with pytest.raises(ValueError, match="output_size"):
        adaptive_avg_pool2d(_input(), output_size)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(0, 1),
       st.integers(0, 2**32 - 1), st.booleans())
def test_2x2_pooling_backward_fast_path_on_ties_matches_autograd(n, c, half_h, half_w, padding, seed,
                                                                 nan):
    """2x2 windows with stride 2 tiling a float32 plane (the usual CNN pooling) have their own fast
    path (comparisons and bit placement): ties, -0.0, NaNs and a padded border against torch."""
    rng = np.random.default_rng(seed)
    shape = (n, c, 2 * half_h - 2 * padding, 2 * half_w - 2 * padding)
    if min(shape[2:]) < 1:
        return
    x = rng.integers(-1, 2, shape).astype(np.float32)
    x[(x == 0) & (rng.random(shape) < 0.5)] = -0.0
    if nan:
        x[rng.random(shape) < 0.05] = np.nan
    x_t = torch.tensor(x, requires_grad=True)
    out = F.max_pool2d(x_t, 2, padding=padding)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(torch.tensor(grad))
    ours = max_pool2d_backward(grad, x, 2, padding=padding)
    np.testing.assert_array_equal(ours, x_t.grad.numpy())
    assert not np.signbit(ours[ours == 0]).any()     # +0.0 where nothing arrives, as torch


# ----------------------------------------------------------------------------- backward with indices

def torch_indices_and_grad(x, kwargs, seed):
    """torch's (indices, grad_output, grad_input) for F.max_pool2d(x, **kwargs), or None if it refuses."""
    x_t = torch.tensor(x, requires_grad=True)
    try:
        out, indices = F.max_pool2d(x_t, **kwargs, return_indices=True)
    except RuntimeError:
        return None
    grad = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype)
    out.backward(torch.tensor(grad))
    return indices.numpy(), grad, x_t.grad.numpy()


@st.composite
def overlapping_pool_kwargs(draw):
    """Pooling arguments whose windows overlap along at least one axis (stride < dilated kernel)."""
    kernel = draw(st.tuples(st.integers(2, 4), st.integers(1, 4)))
    dilation = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    stride = (draw(st.integers(1, dilation[0] * (kernel[0] - 1))), draw(st.integers(1, 4)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    return dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                ceil_mode=draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(distinct_inputs() | tied_inputs(), pool_kwargs() | overlapping_pool_kwargs(),
       st.integers(0, 2**32 - 1))
def test_max_pool2d_backward_with_indices_matches_autograd(x, kwargs, seed):
    """Our indices equal torch's, and the backward that scatters to them (ours or torch's) gives
    torch's gradient and the search path's: distinct values, ties, -0.0, NaNs, overlapping windows."""
    if has_a_window_of_padding_only(x, kwargs):
        return
    expected = torch_indices_and_grad(x, kwargs, seed)
    if expected is None:
        return   # refusals are covered by test_max_pool2d_matches_torch
    torch_indices, grad_output, expected_grad = expected
    _, indices = max_pool2d(x, **kwargs, return_indices=True)
    np.testing.assert_array_equal(indices, torch_indices)
    for given_indices in (indices, torch_indices):
        grad_input = max_pool2d_backward(grad_output, x, **kwargs, indices=given_indices)
        assert grad_input.shape == x.shape and grad_input.dtype == x.dtype
        np.testing.assert_allclose(grad_input, expected_grad, **TOLERANCE[x.dtype.type])
        assert not np.signbit(grad_input[expected_grad == 0]).any()   # +0.0 where nothing arrives
    np.testing.assert_allclose(grad_input, max_pool2d_backward(grad_output, x, **kwargs),
                               **TOLERANCE[x.dtype.type])


@settings(max_examples=60, deadline=None)
@given(distinct_inputs(), pool_kwargs(), st.integers(0, 2**32 - 1))
def test_max_pool2d_backward_with_indices_equals_the_search_path_on_windows_of_padding_only(
        x, kwargs, seed):
    """Where torch's backward writes out of bounds (a window sees no input pixel), both our paths
    credit the same pixels: such a window's index past the plane credits nothing."""
    try:
        out, indices = max_pool2d(x, **kwargs, return_indices=True)
    except ValueError:
        return
    grad = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype)
    np.testing.assert_allclose(max_pool2d_backward(grad, x, **kwargs, indices=indices),
                               max_pool2d_backward(grad, x, **kwargs), **TOLERANCE[x.dtype.type])


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2),
                                    dict(kernel_size=3, stride=1, padding=1),
                                    dict(kernel_size=(3, 2), stride=(2, 1), dilation=2, ceil_mode=True)])
def test_max_pool2d_with_indices_in_many_small_blocks_matches_torch(monkeypatch, kwargs):
    """The forward search and the scatter work on blocks of images: many blocks, one torch call."""
    monkeypatch.setattr(max_search, "POOL_BLOCK_BYTES", 300)
    monkeypatch.setattr(max_search, "SCATTER_BLOCK", 40)
    x = np.random.default_rng(1).integers(-2, 3, (7, 3, 11, 10)).astype(np.float32)   # many ties
    expected = torch_indices_and_grad(x, kwargs, seed=2)
    torch_indices, grad_output, expected_grad = expected
    out, indices = max_pool2d(x, **kwargs, return_indices=True)
    np.testing.assert_array_equal(out, F.max_pool2d(torch.tensor(x), **kwargs).numpy())
    np.testing.assert_array_equal(indices, torch_indices)
    np.testing.assert_allclose(max_pool2d_backward(grad_output, x, **kwargs, indices=indices),
                               expected_grad, rtol=1e-6, atol=1e-6)


def test_max_pool2d_backward_with_indices_of_an_unbatched_input_and_a_non_finite_gradient():
    x = np.random.default_rng(0).integers(0, 2, (2, 6, 6)).astype(np.float32)
    grad = np.ones((2, 3, 3), np.float32)
    grad[1, 1, 2], grad[0, 0, 0] = np.nan, -np.inf
    x_t = torch.tensor(x, requires_grad=True)
    F.max_pool2d(x_t, 2).backward(torch.tensor(grad))
    _, indices = max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(max_pool2d_backward(grad, x, 2, indices=indices), x_t.grad.numpy())


BAD_INDICES = [
    ("floats", np.zeros((1, 2, 2, 2)), "integer"),
    ("a torch tensor", torch.zeros((1, 2, 2, 2), dtype=torch.int64), "integer"),
    ("a list", [[0]], "integer"),
    ("the wrong shape", np.zeros((1, 2, 3, 3), np.int64), r"shape \(1, 2, 2, 2\)"),
    ("unbatched for a batched input", np.zeros((2, 2, 2), np.int64), "shape"),
    ("a negative index", np.full((1, 2, 2, 2), -1, np.int64), "flat positions"),
]


@pytest.mark.parametrize("why, indices, word", BAD_INDICES, ids=[case[0] for case in BAD_INDICES])
def test_max_pool2d_backward_refuses_bad_indices(why, indices, word):
    x = _input((1, 2, 4, 4))
    with pytest.raises(ValueError, match=word):
        max_pool2d_backward(np.ones((1, 2, 2, 2), np.float32), x, 2, indices=indices)


@pytest.mark.parametrize("shape", [(0, 2, 5, 5), (1, 0, 5, 5)])
@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2)])
def test_max_pool2d_with_indices_on_no_images_or_no_channels(shape, kwargs):
    x = np.zeros(shape, np.float32)
    out, indices = max_pool2d(x, **kwargs, return_indices=True)
    assert indices.shape == out.shape == shape[:2] + out.shape[2:] and indices.dtype == np.int64
    grad = np.zeros(out.shape, np.float32)
    for given_indices in (indices, None):
        assert max_pool2d_backward(grad, x, **kwargs, indices=given_indices).shape == shape

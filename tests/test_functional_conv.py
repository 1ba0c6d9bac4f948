"""utils.functional conv ops against torch.nn.functional.conv2d: forward, backward and refusals."""
import contextlib
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_info, threadpool_limits

import utils.functional._parallel as parallel_module
import utils.functional._wide as wide_module
import utils.functional.conv as conv_module
from utils.functional import conv2d, conv2d_backward, conv2d_naive, conv_output_size

torch.set_num_threads(1)   # the test machine is shared; tiny shapes gain nothing from threads
# torch warns that an even kernel with padding='same' needs an extra padded copy: true and harmless.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

TOLERANCE = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


@st.composite
def conv_configs(draw, max_batch=3):
    """A random but valid conv2d configuration: arrays plus keyword arguments."""
    groups = draw(st.integers(1, 3))
    in_channels = groups * draw(st.integers(1, 3))
    out_channels = groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
                             st.sampled_from(["valid", "same"])))
    stride = 1 if padding == "same" else draw(st.one_of(st.integers(1, 3),
                                                        st.tuples(st.integers(1, 3), st.integers(1, 3))))
    pads = {"valid": (0, 0), "same": (0, 0)}.get(padding, padding)
    pads = (pads, pads) if isinstance(pads, int) else pads
    # Smallest input the (dilated) kernel fits in, plus a few extra pixels.
    height, width = (max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 5))
                     for k, d, p in zip(kernel, dilation, pads))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    batch_shape = (draw(st.integers(1, max_batch)),) if draw(st.booleans()) else ()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(batch_shape + (in_channels, height, width)).astype(dtype)
    weight = rng.standard_normal((out_channels, in_channels // groups) + kernel).astype(dtype)
    bias = rng.standard_normal(out_channels).astype(dtype) if draw(st.booleans()) else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, weight, bias, kwargs


def torch_conv(x, weight, bias, kwargs, grad_output=None):
    """torch's forward output and, given grad_output, autograd's (grad_input, grad_weight, grad_bias)."""
    x_t, w_t = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    b_t = None if bias is None else torch.tensor(bias, requires_grad=True)
    out = F.conv2d(x_t, w_t, b_t, **kwargs)
    if grad_output is None:
        return out.detach().numpy()
    out.backward(torch.tensor(grad_output))
    grad_bias = None if b_t is None else b_t.grad.numpy()
    return x_t.grad.numpy(), w_t.grad.numpy(), grad_bias


@settings(max_examples=80, deadline=None)
@given(conv_configs())
def test_conv2d_matches_torch(config):
    x, weight, bias, kwargs = config
    out = conv2d(x, weight, bias, **kwargs)
    expected = torch_conv(x, weight, bias, kwargs)
    assert out.shape == expected.shape
    assert out.dtype == x.dtype
    np.testing.assert_allclose(out, expected, **TOLERANCE[x.dtype.type])


@settings(max_examples=40, deadline=None)
@given(conv_configs(max_batch=2))
def test_naive_matches_vectorized(config):
    x, weight, bias, kwargs = config
    naive = conv2d_naive(x, weight, bias, **kwargs)
    fast = conv2d(x, weight, bias, **kwargs)
    assert naive.shape == fast.shape and naive.dtype == fast.dtype
    np.testing.assert_allclose(naive, fast, **TOLERANCE[x.dtype.type])


@settings(max_examples=80, deadline=None)
@given(conv_configs(), st.integers(0, 2**32 - 1))
def test_conv2d_backward_matches_autograd(config, seed):
    x, weight, bias, kwargs = config
    out_shape = torch_conv(x, weight, bias, kwargs).shape
    grad_output = np.random.default_rng(seed).standard_normal(out_shape).astype(x.dtype)
    grad_input, grad_weight, grad_bias = conv2d_backward(grad_output, x, weight, **kwargs)
    expected_input, expected_weight, expected_bias = torch_conv(x, weight, bias, kwargs, grad_output)
    for ours, theirs in [(grad_input, expected_input), (grad_weight, expected_weight)]:
        assert ours.shape == theirs.shape and ours.dtype == x.dtype
        np.testing.assert_allclose(ours, theirs, **TOLERANCE[x.dtype.type])
    if expected_bias is not None:
        np.testing.assert_allclose(grad_bias, expected_bias, **TOLERANCE[x.dtype.type])


@st.composite
def depthwise_configs(draw):
    """Depthwise convolutions as MobileNet/EfficientNet use them: groups = channels (up to 24,
    beyond conv_configs' 3 groups), multiplier 1 or 2, kernel 3 or 5, stride 1 or 2."""
    channels, multiplier = draw(st.integers(1, 24)), draw(st.integers(1, 2))
    kernel, stride, padding = draw(st.sampled_from([3, 5])), draw(st.integers(1, 2)), draw(st.integers(0, 2))
    size = kernel + draw(st.integers(0, 8))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), channels, size, size)).astype(dtype)
    weight = rng.standard_normal((channels * multiplier, 1, kernel, kernel)).astype(dtype)
    bias = rng.standard_normal(channels * multiplier).astype(dtype) if draw(st.booleans()) else None
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=1, groups=channels)


@settings(max_examples=40, deadline=None)
@given(depthwise_configs(), st.integers(0, 2**32 - 1))
def test_depthwise_conv2d_forward_and_backward_match_torch(config, seed):
    x, weight, bias, kwargs = config
    expected = torch_conv(x, weight, bias, kwargs)
    np.testing.assert_allclose(conv2d(x, weight, bias, **kwargs), expected, **TOLERANCE[x.dtype.type])
    grad_output = np.random.default_rng(seed).standard_normal(expected.shape).astype(x.dtype)
    ours = conv2d_backward(grad_output, x, weight, **kwargs)[:2]
    theirs = torch_conv(x, weight, bias, kwargs, grad_output)[:2]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, **TOLERANCE[x.dtype.type])


def test_kernel_is_not_flipped():
    # Cross-correlation: a kernel with a single 1 in its top-left corner reads the pixel up-left.
    image = np.arange(16.0).reshape(1, 1, 4, 4)
    kernel = np.zeros((1, 1, 3, 3))
    kernel[0, 0, 0, 0] = 1.0
    np.testing.assert_array_equal(conv2d(image, kernel)[0, 0], image[0, 0, :2, :2])
    np.testing.assert_array_equal(conv2d_naive(image, kernel)[0, 0], image[0, 0, :2, :2])


def test_same_padding_puts_the_extra_pixel_bottom_right():
    # A 2x2 kernel picking its bottom-right tap: 'same' pads 0 above/left and 1 below/right,
    # so output (i, j) reads input (i + 1, j + 1), and the last row/column read zeros.
    image = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    kernel = np.zeros((1, 1, 2, 2))
    kernel[0, 0, 1, 1] = 1.0
    expected = np.array([[5.0, 6.0, 0.0], [8.0, 9.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(conv2d(image, kernel, padding="same")[0, 0], expected)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 40), kernel_size=st.integers(1, 7), stride=st.integers(1, 4),
       padding=st.integers(0, 3), dilation=st.integers(1, 3))
def test_conv_output_size_matches_torch(size, kernel_size, stride, padding, dilation):
    if dilation * (kernel_size - 1) + 1 > size + 2 * padding:
        with pytest.raises(ValueError, match="larger than the padded input"):
            conv_output_size(size, kernel_size, stride, padding, dilation)
        return
    out = F.conv2d(torch.zeros(1, 1, size, 1), torch.zeros(1, 1, kernel_size, 1),
                   stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1))
    assert conv_output_size(size, kernel_size, stride, padding, dilation) == out.shape[2]


def test_conv_output_size_same_and_valid():
    assert conv_output_size(28, 5, padding="same") == 28
    assert conv_output_size(28, 5, padding="valid") == 24
    with pytest.raises(ValueError, match="strided"):
        conv_output_size(28, 5, stride=2, padding="same")


@pytest.mark.parametrize("arguments", [
    dict(size=0, kernel_size=3), dict(size=5, kernel_size=0), dict(size=5, kernel_size=3, stride=0),
    dict(size=5, kernel_size=3, padding=-1), dict(size=5, kernel_size=3, dilation=0),
    dict(size=5.0, kernel_size=3), dict(size=(5, 5), kernel_size=3),
])
def test_conv_output_size_refuses_bad_arguments(arguments):
    with pytest.raises(ValueError):
        conv_output_size(**arguments)


def _arrays(x_shape=(2, 4, 6, 6), w_shape=(3, 4, 3, 3), dtype=np.float32, w_dtype=None):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(x_shape).astype(dtype),
            rng.standard_normal(w_shape).astype(w_dtype or dtype))


# Each case: (why it is wrong, input, weight, bias, keyword arguments, a word the message must contain)
BAD_CONFIGS = [
    ("2-D input", np.zeros((6, 6), np.float32), _arrays()[1], None, {}, "3-D"),
    ("5-D input", np.zeros((1, 2, 4, 6, 6), np.float32), _arrays()[1], None, {}, "4-D"),
    ("channel mismatch", *_arrays(w_shape=(3, 5, 3, 3)), None, {}, "channels"),
    ("groups do not divide in channels", *_arrays(x_shape=(1, 3, 6, 6), w_shape=(4, 1, 3, 3)), None,
     dict(groups=2), "channels"),
    ("groups do not divide out channels", *_arrays(w_shape=(3, 2, 3, 3)), None, dict(groups=2),
     "divisible"),
    ("zero groups", *_arrays(), None, dict(groups=0), "groups"),
    ("kernel larger than input", *_arrays(w_shape=(3, 4, 7, 7)), None, {}, "larger"),
    ("dilated kernel larger than input", *_arrays(), None, dict(dilation=3), "larger"),
    ("kernel larger than padded input", *_arrays(x_shape=(1, 4, 2, 2)), None, dict(padding=0), "larger"),
    ("zero stride", *_arrays(), None, dict(stride=0), "stride"),
    ("negative stride", *_arrays(), None, dict(stride=(1, -1)), "stride"),
    ("zero dilation", *_arrays(), None, dict(dilation=0), "dilation"),
    ("negative padding", *_arrays(), None, dict(padding=-1), "padding"),
    ("same padding with stride", *_arrays(), None, dict(padding="same", stride=2), "strided"),
    ("unknown padding string", *_arrays(), None, dict(padding="full"), "padding"),
    ("mixed dtypes", *_arrays(w_dtype=np.float64), None, {}, "dtype"),
    ("bias of the wrong length", *_arrays(), np.zeros(4, np.float32), {}, "bias"),
    ("bias of another dtype", *_arrays(), np.zeros(3, np.float64), {}, "dtype"),
    ("3-D weight", _arrays()[0], np.zeros((3, 4, 3), np.float32), None, {}, "weight"),
]


@pytest.mark.parametrize("why, x, weight, bias, kwargs, word", BAD_CONFIGS,
                         ids=[case[0] for case in BAD_CONFIGS])
@pytest.mark.parametrize("op", [conv2d, conv2d_naive])
def test_refuses_what_torch_refuses(op, why, x, weight, bias, kwargs, word):
    with pytest.raises((RuntimeError, ValueError, TypeError)):
        F.conv2d(torch.from_numpy(x), torch.from_numpy(weight),
                 None if bias is None else torch.from_numpy(bias), **kwargs)
    with pytest.raises(ValueError, match=word):
        op(x, weight, bias, **kwargs)


@pytest.mark.parametrize("why, x, weight, bias, kwargs, word",
                         [case for case in BAD_CONFIGS if case[3] is None],
                         ids=[case[0] for case in BAD_CONFIGS if case[3] is None])
def test_backward_refuses_bad_configs(why, x, weight, bias, kwargs, word):
    grad_output = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=word):
        conv2d_backward(grad_output, x, weight, **kwargs)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.float16, np.complex64])
def test_refuses_non_float32_float64_dtypes(dtype):
    # Stricter than torch on purpose (torch 2.13 convolves int64 on CPU): the course's ops are
    # float32/float64 only, and the message says how to convert.
    x, weight = (a.astype(dtype) for a in _arrays())
    for op in (conv2d, conv2d_naive):
        with pytest.raises(ValueError, match=r"float32 or float64.*astype"):
            op(x, weight)


def test_error_message_names_the_shapes():
    x, weight = _arrays(w_shape=(3, 5, 3, 3))
    with pytest.raises(ValueError, match=r"\(2, 4, 6, 6\).*\(3, 5, 3, 3\)"):
        conv2d(x, weight)


def test_backward_refuses_a_grad_output_of_the_wrong_shape():
    x, weight = _arrays()
    with pytest.raises(ValueError, match=r"grad_output must have shape \(2, 3, 4, 4\)"):
        conv2d_backward(np.zeros((2, 3, 6, 6), np.float32), x, weight)
    with pytest.raises(ValueError, match="dtype"):
        conv2d_backward(np.zeros((2, 3, 4, 4), np.float64), x, weight)


def test_unbatched_backward_returns_unbatched_gradients():
    x, weight = _arrays(x_shape=(4, 6, 6))
    grad_input, grad_weight, grad_bias = conv2d_backward(np.ones((3, 4, 4), np.float32), x, weight)
    assert grad_input.shape == (4, 6, 6) and grad_weight.shape == (3, 4, 3, 3)
    assert grad_bias.shape == (3,)


def _views(rng):
    """Non-contiguous NCHW inputs a learner meets: NHWC images transposed, flipped, subsampled."""
    nhwc = rng.standard_normal((2, 9, 8, 3))
    return [nhwc.transpose(0, 3, 1, 2), nhwc.transpose(0, 3, 1, 2)[:, :, ::-1, ::2],
            np.asfortranarray(nhwc.transpose(0, 3, 1, 2))]


@pytest.mark.parametrize("view_index", range(3))
@pytest.mark.parametrize("padding", [0, 1])
def test_non_contiguous_inputs(view_index, padding):
    rng = np.random.default_rng(view_index)
    x = _views(rng)[view_index]
    weight, grad_seed = rng.standard_normal((4, 3, 3, 3)), int(rng.integers(2**32))
    kwargs = dict(stride=1, padding=padding, dilation=1, groups=1)
    expected = torch_conv(np.ascontiguousarray(x), weight, None, kwargs)
    np.testing.assert_allclose(conv2d(x, weight, padding=padding), expected, **TOLERANCE[np.float64])
    grad_output = np.random.default_rng(grad_seed).standard_normal(expected.shape)
    expected_grads = torch_conv(np.ascontiguousarray(x), weight, None, kwargs, grad_output)
    for ours, theirs in zip(conv2d_backward(grad_output, x, weight, padding=padding), expected_grads):
        if theirs is not None:
            np.testing.assert_allclose(ours, theirs, **TOLERANCE[np.float64])


def test_empty_batch_gives_empty_outputs_like_torch():
    x, weight = np.zeros((0, 3, 5, 5)), np.zeros((4, 3, 3, 3))
    assert conv2d(x, weight).shape == tuple(F.conv2d(torch.tensor(x), torch.tensor(weight)).shape)
    grad_input, grad_weight, grad_bias = conv2d_backward(np.zeros((0, 4, 3, 3)), x, weight)
    assert grad_input.shape == x.shape and not grad_weight.any() and not grad_bias.any()


def assert_backward_matches_autograd(config, seed, **patches):
    """conv2d_backward's grad_input and grad_weight for ``config`` equal autograd's, with the
    attributes ``patches`` = {module: {name: value}} set during the call (to force a path)."""
    x, weight, bias, kwargs = config
    grad_output = np.random.default_rng(seed).standard_normal(
        torch_conv(x, weight, bias, kwargs).shape).astype(x.dtype)
    theirs = torch_conv(x, weight, bias, kwargs, grad_output)[:2]
    with contextlib.ExitStack() as stack:
        for module, values in patches.values():
            if values:
                stack.enter_context(mock.patch.multiple(module, **values))
        ours = conv2d_backward(grad_output, x, weight, **kwargs)[:2]
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == x.dtype
        np.testing.assert_allclose(a, b, **TOLERANCE[x.dtype.type])


@settings(max_examples=40, deadline=None)
@given(st.one_of(conv_configs(max_batch=4), depthwise_configs()), st.integers(0, 2**32 - 1))
def test_one_image_per_block_gives_the_same_results(config, seed):
    """conv2d builds im2col (and depthwise channels-last copies) a block of images at a time;
    with blocks of a single image every block boundary is exercised, forward and backward."""
    x, weight, bias, kwargs = config
    one_image = dict(BLOCK_BYTES=1, MIN_BLOCK_COLUMNS=1)
    with mock.patch.multiple(conv_module, **one_image):
        np.testing.assert_allclose(conv2d(x, weight, bias, **kwargs),
                                   torch_conv(x, weight, bias, kwargs), **TOLERANCE[x.dtype.type])
    assert_backward_matches_autograd(config, seed, conv=(conv_module, one_image))


@settings(max_examples=60, deadline=None)
@given(conv_configs(max_batch=5), st.integers(0, 2**32 - 1), st.sampled_from([None, 1, 2, 3]))
def test_wide_row_backward_matches_torch(config, seed, images_per_block):
    """Stride-1 backward passes with few garbage columns take the wide-row path (flattened padded
    planes, see utils.functional._wide); forced here on every stride-1 configuration, with the
    default blocks or blocks of 1-3 images (so that a short last block occurs too)."""
    blocks = {} if images_per_block is None else dict(
        images_per_block=lambda *args: min(images_per_block, args[3]))
    assert_backward_matches_autograd(config, seed, conv=(conv_module, dict(WIDE_MAX_WASTE=np.inf)),
                                     wide=(wide_module, blocks))


@settings(max_examples=30, deadline=None)
@given(conv_configs(max_batch=5), st.integers(0, 2**32 - 1), st.integers(2, 3))
def test_batch_split_between_threads_matches_torch(config, seed, threads):
    """With several BLAS threads, regular layers split the batch between Python threads
    (utils.functional._parallel); forced here on small layers (no minimum of work)."""
    x, weight, bias, kwargs = config
    with threadpool_limits(threads, user_api="blas"), mock.patch.object(
            parallel_module, "MIN_MACS_PER_THREAD", 0):
        np.testing.assert_allclose(conv2d(x, weight, bias, **kwargs),
                                   torch_conv(x, weight, bias, kwargs), **TOLERANCE[x.dtype.type])
        assert_backward_matches_autograd(config, seed)
        # the split set BLAS to one thread while it ran: every BLAS library loaded (NumPy's, and SciPy's
        # once another test imported it) is back at the count the caller chose
        counts = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        assert counts and all(count == threads for count in counts), counts


@pytest.mark.parametrize("width", [1, 2, 3, 5])
@pytest.mark.parametrize("kernel, dilation, padding", [(3, 2, 2), (5, 1, 2), (3, 3, 3), (2, 3, "same"),
                                                        (4, 2, "same")])
def test_same_width_layers_on_narrow_planes_match_torch(width, kernel, dilation, padding):
    """Stride-1 layers whose output is as wide as the input build im2col from runs over planes
    padded only above and below, then zero the values that wrapped into the next row; with a
    padding as wide as the plane or wider every tap of some columns wraps."""
    rng = np.random.default_rng(width)
    x, weight = rng.standard_normal((3, 2, 4, width)), rng.standard_normal((3, 2, kernel, kernel))
    kwargs = dict(padding=padding, dilation=dilation)
    out = conv2d(x, weight, **kwargs)
    assert out.shape[3] == width
    np.testing.assert_allclose(out, torch_conv(x, weight, None, kwargs), **TOLERANCE[np.float64])
    grad_output = rng.standard_normal(out.shape)
    for ours, theirs in zip(conv2d_backward(grad_output, x, weight, **kwargs)[:2],
                            torch_conv(x, weight, None, kwargs, grad_output)[:2]):
        np.testing.assert_allclose(ours, theirs, **TOLERANCE[np.float64])


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_input_gives_torch_gradients(groups, bad):
    """The fast stride-1 paths compute garbage columns that are multiplied by zero; an inf or NaN
    in the input or weight would turn them into NaN, so such inputs take the exact paths."""
    rng = np.random.default_rng(1)
    x, weight = rng.standard_normal((2, 4, 12, 12)), rng.standard_normal((4, 4 // groups, 3, 3))
    x[0, 1, 5, 11] = bad
    kwargs = dict(stride=1, padding=1, dilation=1, groups=groups)
    grad_output = rng.standard_normal((2, 4, 12, 12))
    with mock.patch.object(conv_module, "WIDE_MAX_WASTE", np.inf):
        ours = conv2d_backward(grad_output, x, weight, **kwargs)[:2]
    for a, b in zip(ours, torch_conv(x, weight, None, kwargs, grad_output)[:2]):
        np.testing.assert_allclose(a, b, **TOLERANCE[np.float64])


@settings(max_examples=40, deadline=None)
@given(conv_configs(max_batch=3), st.integers(0, 2**32 - 1))
def test_backward_by_transposed_convolution_matches_autograd(config, seed):
    """Stride-1 layers with enough input channels and too many garbage columns for the wide rows
    get grad_input as the forward convolution of the gradient with the flipped, transposed
    kernel; forced here for every channel count (strided layers and paddings beyond the kernel's
    span keep the im2col/col2im path)."""
    assert_backward_matches_autograd(config, seed, conv=(conv_module, dict(
        TRANSPOSED_MIN_CHANNELS=1, WIDE_MAX_WASTE=-1.0)))                    # not the wide rows

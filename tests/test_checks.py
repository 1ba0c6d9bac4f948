"""utils.checks: every check accepts a correct implementation, and rejects each misconception with a
message that names it, shows the failing input, and never shows reference output values."""
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.signal import convolve2d, correlate2d

from utils import checks as C
from utils.checks import engine, ex03, ex06, ex07, rules
from utils import functional as F


@pytest.fixture(autouse=True)
def values_only(request, monkeypatch):
    """Most tests here use SciPy/``utils.functional`` as oracles for right and wrong answers: they test
    the *values* side of the checks, so the source rules are off except in the tests named ``*rule*``."""
    if "rule" not in request.node.name:
        monkeypatch.setattr(rules, "_tree", lambda fn: None)
        monkeypatch.setattr(rules, "global_origins", lambda fn: {})
        monkeypatch.setattr(rules, "check_code_uses", lambda fn: [])   # ex07's references are oracles here


def pad_pair(padding):
    return (padding, padding) if isinstance(padding, int) else padding


def with_error(condition, value):
    """``value`` unless ``condition``: then raise ValueError (bad-input handling of a correct solution)."""
    if condition:
        raise ValueError("bad input")
    return value


def patch(im, r, c, k):
    return with_error(r < 0 or c < 0 or r + k > im.shape[0] or c + k > im.shape[1], im[r:r + k, c:c + k])


def conv_size(size, k, stride=1, padding=0, dilation=1, refuse=True, number=int):
    """The task's conv_output_size: ints or (height, width) pairs, padding also 'valid'/'same' (stride 1)."""
    settings = (size, k, stride, padding, dilation)
    if any(isinstance(v, (tuple, list)) for v in settings):
        return tuple(conv_size(*[v[a] if isinstance(v, (tuple, list)) else v for v in settings], refuse=refuse,
                               number=number) for a in (0, 1))
    padding = 0 if padding == "valid" else padding
    if padding == "same":
        return with_error(refuse and stride != 1, size)
    return number(with_error(refuse and size + 2 * padding < dilation * (k - 1) + 1,
                             (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1))


def composed_layer(w1, b1, w2, b2):
    """One conv layer equal to two (exercise 05 task 3): every tap pair (p, q) of w1 and w2, written
    differently from the solution (loops over w1's taps, NumPy only: the check's from-scratch rule)."""
    (_, c_in, a, b), (c_out, _, c, d) = w1.shape, w2.shape
    weight = np.zeros((c_out, c_in, a + c - 1, b + d - 1))
    for p in range(a):
        for q in range(b):
            weight[:, :, p:p + c, q:q + d] += np.einsum("omuv,mi->oiuv", w2, w1[:, :, p, q])
    return weight, b2 + np.einsum("omuv,m->o", w2, b1)


SOBEL = np.array([[[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]], [[[-1, -2, -1], [0, 0, 0], [1, 2, 1]]]], dtype=float)


def ex08_solutions():
    """Correct answers to exercise set 08 (EfficientNet-Lite0); their misconceptions: tests/test_checks_ex08.py."""
    import torch
    from torch import nn
    from utils.efficientnet import classify, efficientnet_lite0

    def new_head(n):
        model = efficientnet_lite0(pretrained=True)
        model._fc = nn.Linear(1280, n)
        return model

    def frozen_setup(n):
        model = new_head(n)
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("_fc."))
        model.train()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return model, torch.optim.Adam(model._fc.parameters(), lr=1e-3)

    def extract(images, depth):
        with torch.no_grad():
            return efficientnet_lite0().features(torch.from_numpy(images), upto=depth).numpy()
    return [(C.check_new_head, new_head), (C.check_frozen_setup, frozen_setup),
            (C.check_extract_features, extract),
            (C.check_predict_photo, lambda image: classify(efficientnet_lite0(), image, top=1)[0][0])]


def correct_solutions():
    from utils.efficiency import conv2d_cost, linear_cost
    from utils.models import receptive_field
    return [
        (C.check_get_patch, patch),
        (C.check_patch_response, lambda p, k: with_error(p.shape != k.shape, float(np.sum(p * k)))),
        (C.check_response_map, lambda im, k: correlate2d(im, k, "valid")),
        (C.check_output_size, conv_size),
        (C.check_zero_pad, lambda x, p: np.pad(x, ((0, 0), (0, 0), (pad_pair(p)[0],) * 2, (pad_pair(p)[1],) * 2))),
        (C.check_conv2d, F.conv2d_naive),
        (C.check_conv2d, lambda *a, **kw: F.conv2d(*a, **kw)),
        (C.check_nhwc_to_nchw, lambda b: np.moveaxis(b, -1, 1)),
        (C.check_conv2d_backward, lambda g, x, w, stride=1, padding=0: F.conv2d_backward(g, x, w, stride, padding)),
        (C.check_edge_filters, lambda: SOBEL.copy()),
        (C.check_feature_maps, lambda im, fs: np.stack([correlate2d(im, f, "valid") for f in fs])),
        (C.check_multichannel_conv, lambda x, w, b: F.conv2d(x, w, b)),
        (C.check_relu, lambda x: np.where(x > 0, x, 0).astype(x.dtype)),
        (C.check_relu_backward, lambda g, x: g * (x > 0)),
        (C.check_compose_kernels, composed_layer),
        (C.check_max_pool2d, lambda x, k, stride=None, padding=0: F.max_pool2d(x, k, stride, padding)),
        (C.check_avg_pool2d, lambda x, k, stride=None: F.avg_pool2d(x, k, stride)),
        (C.check_max_pool2d_backward, lambda g, x, k, stride=None: F.max_pool2d_backward(g, x, k, stride)),
        (C.check_receptive_field, lambda L: receptive_field([(k, s, 1) for k, s in L])[-1].size if L else 1),
        (C.check_cnn_forward, ex07._numpy_cnn),
        (C.check_build_cnn, ex07._reference_cnn),
        (C.check_top_class_maps, lambda f, w, b, k: ex07._top_class_maps(f, w, b, k)),
        *ex08_solutions(),
        (C.check_conv_params, lambda ci, co, k, bias=True: ci * co * k * k + co * bias),
        (C.check_conv_macs, lambda ci, co, k, s, stride=1, padding=0: conv2d_cost(ci, co, k, s, stride, padding).macs),
        (C.check_dense_params, lambda a, b: linear_cost(int(np.prod(a)), int(np.prod(b))).params),
        (C.check_median_time, lambda s, w: float(np.median(s[w:]))),
    ]


CORRECT = correct_solutions()


@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
@pytest.mark.parametrize("check, solution", CORRECT, ids=[f"{i:02d}-{c.__name__}" for i, (c, _) in enumerate(CORRECT)])
def test_every_check_passes_a_correct_solution(check, solution, hidden, capsys):
    check(solution, hidden=hidden)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("✓"), lines


def test_every_public_check_is_tested():
    tested = {check.__name__ for check, _ in CORRECT}
    public = {name for name in C.__all__ if name.startswith("check_")}
    assert public <= tested, public - tested


@pytest.mark.parametrize("name", sorted(n for n in C.__all__ if n.startswith("check_")))
def test_every_check_reads_its_hidden_flag(name):
    """``hidden=True`` is how the grader asks for more cases: a check that never reads it grades the
    class on the visible cases only."""
    import ast
    import inspect
    source = inspect.getsource(inspect.unwrap(getattr(C, name)))
    function = ast.parse(source.lstrip()).body[0]
    assert "hidden" in [a.arg for a in function.args.args], name
    assert any(isinstance(n, ast.Name) and n.id == "hidden" for n in ast.walk(function)), name


def test_edge_filters_hidden_tries_a_second_off_centre_weak_edge(monkeypatch, capsys):
    from utils.checks import ex04
    seen = []
    real = ex04._check_edge_bank
    monkeypatch.setattr(ex04, "_check_edge_bank", lambda bank, images: seen.append(images) or real(bank, images))
    C.check_edge_filters(lambda: SOBEL.copy())
    C.check_edge_filters(lambda: SOBEL.copy(), hidden=True)
    sizes = [next(iter(images.values())).shape[-1] for images in seen]
    assert sizes == [8, 8, 13]
    assert capsys.readouterr().out.count("✓") == 2


def test_edge_filters_refuses_non_finite_weights():
    with pytest.raises(C.CheckFailed, match="NaN or infinite"):
        C.check_edge_filters(lambda: np.full((2, 1, 3, 3), np.nan))


def _chapter_7b_conv(x, w):
    """Chapter 02 section 7b's batch tensordot (stride 1, padding 1, no bias) as a learner might copy it."""
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), w.shape[2:],
                                                       axis=(2, 3))
    return np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def flipped_conv(x, w, b=None, **kw):
    return F.conv2d(x, w[..., ::-1, ::-1].copy(), b, **kw)


def conv_without(param):
    def wrong(x, w, b=None, **kw):
        kw.pop(param, None)
        return F.conv2d(x, w, b, **kw)
    return wrong


def pad_all_axes_conv(x, w, b=None, stride=1, padding=0, dilation=1):
    if padding:
        x = np.pad(x, padding)[:, :x.shape[1]]
    return F.conv2d(x, w, b, stride, 0, dilation)


def conv_in_place(x, w, b=None, **kw):
    out = F.conv2d(x, w, b, **kw)
    x[...] = 0
    return out


def max_scatter_overwrite(g, x, k, stride=None):
    return ex06._max_pool_scatter(g, x, k, stride, accumulate=False)


MISCONCEPTIONS = [
    ("patch row/col swapped", C.check_get_patch, lambda im, r, c, k: im[c:c + k, r:r + k], "row and column swapped"),
    ("patch inclusive end", C.check_get_patch, lambda im, r, c, k: im[r:r + k + 1, c:c + k + 1], "off by one"),
    ("patch out of bounds", C.check_get_patch, lambda im, r, c, k: im[r:r + k, c:c + k], "ValueError"),
    ("response mean", C.check_patch_response, lambda p, k: np.mean(p * k), "mean instead of sum"),
    ("response array", C.check_patch_response, lambda p, k: p * k, "one number"),
    ("response flipped", C.check_response_map, lambda im, k: convolve2d(im, k, "valid"), "kernel flipped"),
    ("response same size", C.check_response_map, lambda im, k: correlate2d(im, k, "same"), "as large as the input"),
    ("size without +1", C.check_output_size, lambda s, k, stride=1, padding=0, dilation=1:
        (s + 2 * padding - dilation * (k - 1) - 1) // stride, "off by one"),
    ("size padding once", C.check_output_size, lambda s, k, stride=1, padding=0, dilation=1:
        (s + padding - dilation * (k - 1) - 1) // stride + 1, "padding counted once"),
    ("size true division", C.check_output_size, lambda s, k, stride=1, padding=0, dilation=1:
        (s + 2 * padding - dilation * (k - 1) - 1) / stride + 1, "floor division"),
    ("size no dilation", C.check_output_size, lambda s, k, stride=1, padding=0, dilation=1:
        (s + 2 * padding - k) // stride + 1, "dilation ignored"),
    ("size ceil", C.check_output_size, lambda s, k, stride=1, padding=0, dilation=1:
        -(-(s + 2 * padding - dilation * (k - 1) - 1) // stride) + 1, "rounded up"),
    ("pad all axes", C.check_zero_pad, lambda x, p: np.pad(x, pad_pair(p)[0]), "wrong axes"),
    ("pad NHWC axes", C.check_zero_pad, lambda x, p: np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        if isinstance(p, int) else x, "NHWC"),
    ("pad one side", C.check_zero_pad, lambda x, p: np.pad(x, ((0, 0), (0, 0), (pad_pair(p)[0], 0),
                                                               (pad_pair(p)[1], 0))), "one side"),
    ("pad edge", C.check_zero_pad, lambda x, p: np.pad(x, ((0, 0), (0, 0), (pad_pair(p)[0],) * 2,
                                                           (pad_pair(p)[1],) * 2), mode="edge"), "edge values"),
    ("conv flipped", C.check_conv2d, flipped_conv, "kernel flipped"),
    ("conv no stride", C.check_conv2d, conv_without("stride"), "stride ignored"),
    ("conv no padding", C.check_conv2d, conv_without("padding"), "padding ignored"),
    ("conv no dilation", C.check_conv2d, conv_without("dilation"), "dilation ignored"),
    ("conv pads N and C", C.check_conv2d, pad_all_axes_conv, "wrong axes"),
    ("conv NHWC", C.check_conv2d, lambda *a, **kw: F.conv2d(*a, **kw).transpose(0, 2, 3, 1), "NHWC"),
    ("conv no bias", C.check_conv2d, lambda x, w, b=None, **kw: F.conv2d(x, w, None, **kw), "bias ignored"),
    ("conv bias summed", C.check_conv2d, lambda x, w, b=None, **kw: F.conv2d(x, w, None, **kw)
        + (0 if b is None else b.sum()), "bias not broadcast"),
    ("conv float64", C.check_conv2d, lambda *a, **kw: F.conv2d(*[v if v is None else v.astype(np.float64)
                                                                 for v in a], **kw), "dtype is wrong"),
    ("conv one row short", C.check_conv2d, lambda *a, **kw: F.conv2d(*a, **kw)[..., :-1, :-1], "off-by-one"),
    ("conv first channel", C.check_conv2d, lambda x, w, b=None, **kw: F.conv2d(x[:, :1], w[:, :1], b, **kw),
        "first input channel"),
    ("conv in place", C.check_conv2d, conv_in_place, "in place"),
    ("nhwc reshape", C.check_nhwc_to_nchw, lambda b: b.reshape(b.shape[0], b.shape[3], b.shape[1], b.shape[2]),
        "reshape is not a transpose"),
    ("backward grad_input unflipped", C.check_conv2d_backward, lambda g, x, w, stride=1, padding=0:
        F.conv2d_backward(g, x, w[..., ::-1, ::-1].copy(), stride, padding), "without flipping"),
    ("backward weight not summed", C.check_conv2d_backward, lambda g, x, w, stride=1, padding=0:
        (F.conv2d_backward(g, x, w, stride, padding)[0], F.conv2d_backward(g[:1], x[:1], w, stride, padding)[1],
         F.conv2d_backward(g, x, w, stride, padding)[2]), "not summed over the batch"),
    ("backward bias per image", C.check_conv2d_backward, lambda g, x, w, stride=1, padding=0:
        F.conv2d_backward(g, x, w, stride, padding)[:2] + (g.sum(axis=(2, 3)),), "grad_bias not summed"),
    ("backward two outputs", C.check_conv2d_backward, lambda g, x, w, stride=1, padding=0:
        F.conv2d_backward(g, x, w, stride, padding)[:2], "tuple (grad_input, grad_weight, grad_bias)"),
    ("edges swapped", C.check_edge_filters, lambda: SOBEL[::-1].copy(), "swapped"),
    ("edges sign", C.check_edge_filters, lambda: -SOBEL, "flip its sign"),
    ("edges not zero-sum", C.check_edge_filters, lambda: SOBEL + 0.1, "sum to zero"),
    ("feature maps last axis", C.check_feature_maps, lambda im, fs: np.stack(
        [correlate2d(im, f, "valid") for f in fs], axis=-1), "stacked last"),
    ("multichannel not summed", C.check_multichannel_conv, lambda x, w, b: np.concatenate(
        [np.stack([correlate2d(x[c], w[o, c], "valid") for c in range(x.shape[0])]) for o in range(w.shape[0])]),
        "channels not summed"),
    ("relu abs", C.check_relu, np.abs, "absolute value"),
    ("relu np.max", C.check_relu, lambda x: np.max(x, 0), "is a reduction"),
    ("relu in place", C.check_relu, lambda x: np.maximum(x, 0, out=x), "in place"),
    ("relu_backward mask", C.check_relu_backward, lambda g, x: (x > 0).astype(x.dtype), "chain rule"),
    ("relu_backward at 0", C.check_relu_backward, lambda g, x: g * (x >= 0), "exactly 0"),
    ("compose unflipped", C.check_compose_kernels, lambda w1, b1, w2, b2: composed_layer(
        w1, b1, w2[..., ::-1, ::-1], b2), "not flipped"),
    ("compose b1 forgotten", C.check_compose_kernels, lambda w1, b1, w2, b2: (composed_layer(w1, b1, w2, b2)[0], b2),
        "b1 forgotten"),
    ("compose first middle channel", C.check_compose_kernels, lambda w1, b1, w2, b2: composed_layer(
        w1[:1], b1[:1], w2[:, :1], b2), "first middle channel"),
    ("size pairs swapped", C.check_output_size, lambda *a, **kw: (lambda r: r[::-1] if isinstance(r, tuple) else r)(
        conv_size(*a, **kw)), "pair order swapped"),
    ("size same as k // 2", C.check_output_size, lambda s, k, stride=1, padding=0, dilation=1: conv_size(
        s, k, stride, (k // 2 if isinstance(k, int) else tuple(q // 2 for q in k)) if padding == "same" else padding,
        dilation), "kernel_size // 2"),
    ("size same with stride 2 not refused", C.check_output_size, lambda s, k, stride=1, padding=0, dilation=1:
        conv_size(s, k, 1 if padding == "same" else stride, padding, dilation), "padding='same' for a stride"),
    ("size int for pairs", C.check_output_size, lambda *a, **kw: (lambda r: r[0] if isinstance(r, tuple) else r)(
        conv_size(*a, **kw)), "return the pair"),
    ("conv chapter 7b settings", C.check_conv2d, lambda x, w, b=None, stride=1, padding=0, dilation=1:
        _chapter_7b_conv(x, w), "section 7b"),
    ("max pool stride 1", C.check_max_pool2d, lambda x, k, stride=None, padding=0:
        F.max_pool2d(x, k, stride or 1, padding), "stride=None"),
    ("max pool average", C.check_max_pool2d, lambda x, k, stride=None, padding=0:
        F.avg_pool2d(x, k, stride, padding), "average pooling"),
    ("max pool zero padding", C.check_max_pool2d, lambda x, k, stride=None, padding=0:
        F.max_pool2d(np.pad(x, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2)), k, stride), "-inf"),
    ("avg pool sum", C.check_avg_pool2d, lambda x, k, stride=None: F.avg_pool2d(x, k, stride) * np.prod(engine._pair(k)),
        "sum instead of mean"),
    ("max backward spread", C.check_max_pool2d_backward, lambda g, x, k, stride=None:
        F.avg_pool2d_backward(g, x, k, stride), "spread over the whole window"),
    ("max backward overwrite", C.check_max_pool2d_backward, max_scatter_overwrite, "*sum* of their gradients"),
    ("receptive field no strides", C.check_receptive_field, lambda L: 1 + sum(k - 1 for k, s in L),
        "strides ignored"),
    ("cnn flatten NHWC", C.check_cnn_forward, lambda x, p: ex07._numpy_cnn(x, p, flatten_nhwc=True), "NHWC order"),
    ("cnn no relu", C.check_cnn_forward, lambda x, p: ex07._numpy_cnn(x, p, relu=False), "ReLU missing"),
    ("build cnn no padding", C.check_build_cnn, lambda n: __import__("torch").nn.Sequential(
        *[m for m in ex07._reference_cnn(n) if type(m).__name__ != "ReLU"]), "layers are"),
    ("params no bias", C.check_conv_params, lambda ci, co, k, bias=True: ci * co * k * k, "bias forgotten"),
    ("params no c_in", C.check_conv_params, lambda ci, co, k, bias=True: co * k * k + co * bias,
        "input channels forgotten"),
    ("macs input size", C.check_conv_macs, lambda ci, co, k, s, stride=1, padding=0: ci * co * k * k * s * s,
        "input size used"),
    ("dense no bias", C.check_dense_params, lambda a, b: int(np.prod(a) * np.prod(b)), "bias forgotten"),
]


@pytest.mark.parametrize("check, wrong, hint", [m[1:] for m in MISCONCEPTIONS], ids=[m[0] for m in MISCONCEPTIONS])
def test_misconception_is_named(check, wrong, hint, capsys):
    with pytest.raises(C.CheckFailed) as failure:
        check(wrong, hidden=True)
    message = str(failure.value)
    assert message.startswith("✗") and hint in message, message
    # Only the expected *shape* or dtype may be shown, never expected values.
    assert all(word in {"shape", "float32", "float64", "(2,", "numbers"}
               for word in re.findall(r"expected (\S+)", message)), message
    assert "✓" not in capsys.readouterr().out


def test_failure_shows_the_smallest_failing_input_and_no_reference_output():
    with pytest.raises(C.CheckFailed) as failure:
        C.check_conv2d(flipped_conv)
    message = str(failure.value)
    x, w, _ = C.conv2d_cases()[0].args
    assert "one channel, one filter" in message and "(1, 1, 3, 4)" in message
    reference = F.conv2d(x, w)
    rendered = np.array2string(reference, precision=3, separator=", ", suppress_small=True)
    assert rendered not in message
    assert "conv2d(" not in message.split("Problem:")[1]          # no reference code either


def test_a_crashing_or_unfinished_function_is_reported_with_its_input():
    def unfinished(*args, **kwargs):
        raise NotImplementedError()
    with pytest.raises(C.CheckFailed, match="not written yet"):
        C.check_conv2d(unfinished)
    with pytest.raises(C.CheckFailed, match="forget the `return`"):
        C.check_relu(lambda x: None)
    with pytest.raises(C.CheckFailed, match="accept the arguments"):
        C.check_conv2d(lambda input, weight, bias=None: F.conv2d(input, weight, bias))


def test_model_checks_accept_a_description_only_from_a_grader_proxy(monkeypatch, capsys):
    """A grader proxy's call returns the runner's describe_model dict of the learner's model; the same
    dict returned by the learner's own function is refused, with the grader's words (red team: the
    notebook passed it 3/3 while the grader refused it)."""
    from utils.grade import runner
    build = ex07._reference_cnn

    class Proxy(runner.StudentFunction):
        def __init__(self, fn):
            self.fn, self.__name__ = fn, "build_cnn"

        def __call__(self, *args):
            return C.describe_model(self.fn(*args))
    C.check_build_cnn(Proxy(build), hidden=True)
    assert capsys.readouterr().out.startswith("✓")
    with pytest.raises(C.CheckFailed) as forged:
        C.check_build_cnn(lambda n: C.describe_model(build(n)))
    assert str(forged.value) == ("✗ build_cnn returned a dict shaped like the grader's description of a model, "
                                 "not a torch.nn.Module: return the model you built")
    with pytest.raises(C.CheckFailed, match="returned a str"):
        C.check_build_cnn(lambda n: "a model")


def test_a_hard_coded_class_count_fails_the_visible_check_not_only_the_hidden_one():
    # The notebook and the grader must agree: a build_cnn that ignores num_classes fails visibly.
    with pytest.raises(C.CheckFailed):
        C.check_build_cnn(lambda n: ex07._reference_cnn(10))


def test_describe_model_reports_a_failing_forward_pass_instead_of_raising():
    import torch
    broken = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))
    description = C.describe_model(broken)
    assert description["output_shape"] is None and "RuntimeError" in description["forward_error"]
    assert description["trainable"] == ["1.weight", "1.bias"]


def test_checks_are_deterministic():
    messages = []
    for _ in range(2):
        with pytest.raises(C.CheckFailed) as failure:
            C.check_conv2d(conv_without("padding"), hidden=True)
        messages.append(str(failure.value))
    assert messages[0] == messages[1]


def test_a_failing_check_is_a_failed_test_in_the_grader_not_an_error():
    """The grader runs test cells as they are: a check's verdict must count as ``failed`` (wrong
    answer, message kept), not as ``error`` (a crash of the test)."""
    from utils.grade.exercise_sets import TestCell
    from utils.grade.worker import _outcome
    cell = TestCell("relu_test", 1.0, "from utils.checks import check_relu\ncheck_relu(relu)")
    status, message = _outcome(cell, {"relu": lambda x: x}, None, 10.0)
    assert status == "failed" and message.startswith("✗ relu"), (status, message)



@settings(max_examples=25, deadline=None)
@given(case_index=st.integers(0, len(C.conv2d_cases(hidden=True)) - 1), position=st.integers(0, 10 ** 6),
       delta=st.sampled_from([-1.0, 0.5, 3.0]))
def test_conv2d_check_rejects_any_single_wrong_value(case_index, position, delta):
    target = C.conv2d_cases(hidden=True)[case_index]

    def almost_right(x, w, b=None, **kw):
        out = F.conv2d(x, w, b, **kw)
        if x.shape == target.args[0].shape and np.array_equal(x, target.args[0]) and kw == target.kwargs:
            out = out.copy()
            out.flat[position % out.size] += delta
        return out
    with pytest.raises(C.CheckFailed, match="values are wrong"):
        C.check_conv2d(almost_right, hidden=True)


# ---------------------------------------------------------------- regressions found by trying the sets as a learner

def _windows_conv(x, w, b=None, stride=1, padding=0, dilation=1):
    """A correct conv2d written differently (pairs unpacked by hand, tensordot, no astype)."""
    (sh, sw), (ph, pw), (dh, dw) = (engine._pair(v) for v in (stride, padding, dilation))
    kh, kw = w.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (dh * (kh - 1) + 1, dw * (kw - 1) + 1),
                                                       axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    out = np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    return out if b is None else out + b[None, :, None, None]


def _max_pool_backward_offset(g, x, k, stride=None, offset=True, row_width=None):
    return ex06._max_pool_routed(g, x, k, stride, offset, row_width)


LEARNER_REGRESSIONS = [
    # (id, check, wrong answer, words the visible (not hidden) check's message must contain)
    ("output size without its ValueError fails visibly", C.check_output_size,
     lambda *a, **kw: conv_size(*a, **kw, refuse=False), "should raise a ValueError"),
    ("conv2d with ints only fails visibly, with the pair hint", C.check_conv2d,
     lambda x, w, b=None, stride=1, padding=0, dilation=1: F.conv2d(x, w, b, stride, padding, dilation)
     if x.shape[2] + 2 * padding > 0 else None, "(height, width) pair"),      # int + tuple: TypeError
    ("chained indexing", C.check_get_patch, lambda im, r, c, k: with_error(
        r < 0 or c < 0 or r + k > im.shape[0] or c + k > im.shape[1], im[r:r + k][c:c + k]), "slices the rows twice"),
    ("int() of the response", C.check_patch_response,
     lambda p, k: with_error(p.shape != k.shape, int(np.sum(p * k))), "fractions were cut off"),
    ("integer response map", C.check_response_map,
     lambda im, k: correlate2d(im, k, "valid").astype(int), "fractions were cut off"),
    ("p:-p slice with padding 0", C.check_zero_pad, lambda x, p: (lambda out: (
        out.__setitem__((slice(None), slice(None), slice(p, -p), slice(p, -p)), x), out)[1])(
        np.zeros(x.shape[:2] + (x.shape[2] + 2 * p, x.shape[3] + 2 * p), x.dtype)) if isinstance(p, int) else x,
     "`a[p:-p]` is `a[0:0]`"),
    ("zero_pad dtype hint names its argument", C.check_zero_pad,
     lambda x, p: np.pad(x, ((0, 0), (0, 0), (engine._pair(p)[0],) * 2, (engine._pair(p)[1],) * 2)).astype(np.float64),
     "the dtype of `x`"),
    ("bias added along the last axis crashes", C.check_conv2d,
     lambda x, w, b=None, **kw: F.conv2d(x, w, None, **kw) + (0 if b is None else b), "up with the *last* axis (width)"),
    ("if bias:", C.check_conv2d, lambda x, w, b=None, **kw: F.conv2d(x, w, b if b else None, **kw),
     "whether it is None"),
    ("output as large as the input names only that", C.check_response_map,
     lambda im, k: correlate2d(im, k, "same"), "as large as the input"),
    ("backward stride ignored", C.check_conv2d_backward,
     lambda g, x, w, stride=1, padding=0: ex03._backward_stride_ignored(g, x, w, stride, padding)
     + (g.sum(axis=(0, 2, 3)),) if engine._pair(stride) != (1, 1) else F.conv2d_backward(g, x, w, stride, padding),
     "stride ignored"),
    ("backward grad_bias keepdims", C.check_conv2d_backward, lambda g, x, w, stride=1, padding=0:
        F.conv2d_backward(g, x, w, stride, padding)[:2] + (g.sum(axis=(0, 2, 3), keepdims=True),), "keepdims"),
    ("pool stride None unhandled", C.check_max_pool2d,
     # a learner computing with the default stride as if it were a number
     lambda x, k, stride=None, padding=0: F.max_pool2d(x, k, stride * 1, padding), "`stride` is None"),
    ("avg pool divided by the side", C.check_avg_pool2d,
     lambda x, k, stride=None: F.avg_pool2d(x, k, stride) * engine._pair(k)[1], "window's side"),
    ("avg pool floor division", C.check_avg_pool2d,
     lambda x, k, stride=None: np.round(F.avg_pool2d(x, k, stride) * np.prod(engine._pair(k))) // np.prod(engine._pair(k)),
     "floor division"),
    ("max backward without the window offset", C.check_max_pool2d_backward,
     lambda g, x, k, stride=None: _max_pool_backward_offset(g, x, k, stride, offset=False), "top-left corner"),
    ("max backward unravelled with the wrong width", C.check_max_pool2d_backward,
     lambda g, x, k, stride=None: _max_pool_backward_offset(g, x, k, stride, row_width=lambda kh, kw: kh),
     "wrong row width"),
    ("MACs without padding", C.check_conv_macs,
     lambda ci, co, k, size, stride=1, padding=0: ci * co * k * k * ((size - k) // stride + 1) ** 2, "padding ignored"),
    ("dense bias per input value", C.check_dense_params,
     lambda a, b: int(np.prod(a)) * int(np.prod(b)) + int(np.prod(a)), "one bias per input value"),
]


@pytest.mark.parametrize("check, wrong, words", [r[1:] for r in LEARNER_REGRESSIONS],
                         ids=[r[0] for r in LEARNER_REGRESSIONS])
def test_visible_check_names_the_learner_mistake(check, wrong, words):
    with pytest.raises(C.CheckFailed) as failure:
        check(wrong)
    assert words in str(failure.value), str(failure.value)


def test_a_type_error_inside_the_function_does_not_blame_its_signature():
    with pytest.raises(C.CheckFailed) as failure:
        C.check_relu(lambda x: np.maximum(x, "0"))
    assert "accept the arguments" not in str(failure.value)


def test_correct_answers_written_differently_pass(capsys):
    differently = [
        (C.check_conv2d, _windows_conv),
        (C.check_zero_pad, lambda x, p: np.pad(x, [(0, 0), (0, 0)] + [(q, q) for q in engine._pair(p)])),
        (C.check_nhwc_to_nchw, lambda b: np.einsum("nhwc->nchw", b)),              # a view
        (C.check_patch_response, lambda p, k: with_error(p.shape != k.shape, (p * k).sum())),   # NumPy float
        (C.check_response_map, lambda im, k: np.array([[np.sum(im[i:i + k.shape[0], j:j + k.shape[1]] * k)
                                                        for j in range(im.shape[1] - k.shape[1] + 1)]
                                                       for i in range(im.shape[0] - k.shape[0] + 1)])),
        (C.check_max_pool2d_backward, lambda g, x, k, stride=None: _max_pool_backward_offset(g, x, k, stride)),
        (C.check_output_size, lambda *a, **kw: conv_size(*a, **kw, number=np.int64)),   # NumPy ints
        (C.check_output_size, lambda *a, **kw: (lambda r: list(r) if isinstance(r, tuple) else r)(conv_size(*a, **kw))),
    ]
    for check, solution in differently:
        check(solution, hidden=True)
        assert capsys.readouterr().out.startswith("✓"), check.__name__


def test_an_empty_slice_bug_inside_a_helper_is_explained_where_it_surfaces():
    def zero_pad(x, p):
        out = np.zeros(x.shape[:2] + (x.shape[2] + 2 * p, x.shape[3] + 2 * p), x.dtype)
        out[:, :, p:-p, p:-p] = x
        return out
    with pytest.raises(C.CheckFailed, match=re.escape("`a[p:-p]` is `a[0:0]`")):
        C.check_conv2d(lambda x, w, b=None, **kw: F.conv2d(zero_pad(x, 0), w, b))


# ---------------------------------------------------------------- hints added for issue 9 (each names one mistake)

def _crop_to(right, wrong):
    """``wrong``'s output cropped to ``right``'s height and width: the output size was computed right,
    the windows were taken wrong."""
    def crop(x, w, b=None, **kw):
        h, wd = right(x, w, b, **kw).shape[2:]
        return wrong(x, w, b, **kw)[..., :h, :wd]
    return crop


def _conv_with(**fixed):
    return lambda x, w, b=None, **kw: F.conv2d(x, w, b, **{**kw, **fixed})


def _channels_averaged(x, w, b=None, **kw):
    out = F.conv2d(x, w, None, **kw) / x.shape[1]
    return out if b is None else out + b[None, :, None, None]


def _unpadded_loops(x, w, b=None, stride=1, padding=0, dilation=1):
    """conv2d with loops whose output size counts the padding but whose windows come from the unpadded input."""
    (sh, sw), (ph, pw) = engine._pair(stride), engine._pair(padding)
    kh, kw = w.shape[2:]
    h_out, w_out = (x.shape[2] + 2 * ph - kh) // sh + 1, (x.shape[3] + 2 * pw - kw) // sw + 1
    out = np.zeros((x.shape[0], w.shape[0], h_out, w_out), dtype=x.dtype)
    for i in range(h_out):
        for j in range(w_out):
            window = x[:, None, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = (window * w[None]).sum(axis=(2, 3, 4))
    return out if b is None else out + b[None, :, None, None]


def _backward_ints_only(g, x, w, stride=1, padding=0):
    return F.conv2d_backward(g, x, w, stride * 1, padding + 0)          # TypeError for (h, w) pairs


NEW_HINTS = [
    # (id, check, wrong answer, words of the hint); all on the *visible* check
    ("stride ignored only in the slice", C.check_conv2d, _crop_to(F.conv2d, _conv_with(stride=1)),
     "stride ignored in the window slice"),
    ("dilation ignored only in the slice", C.check_conv2d, _crop_to(F.conv2d, _conv_with(dilation=1)),
     "dilation ignored in the window slice"),
    ("channels averaged", C.check_conv2d, _channels_averaged, "channels averaged instead of summed"),
    ("always filter 0", C.check_conv2d, lambda x, w, b=None, **kw: F.conv2d(x, w[[0] * len(w)], b, **kw),
     "every output channel uses filter 0"),
    ("always filter 0 in feature_maps", C.check_feature_maps,
     lambda im, fs: np.stack([correlate2d(im, fs[0], "valid") for _ in fs]), "every output channel uses filter 0"),
    ("channels averaged in multichannel_conv", C.check_multichannel_conv,
     lambda x, w, b: _channels_averaged(x[None], w, b)[0], "channels averaged instead of summed"),
    ("missing padding", C.check_conv2d, _unpadded_loops, "missing padding"),
    ("max-pool backward feeds every tied maximum", C.check_max_pool2d_backward,
     lambda g, x, k, stride=None: ex06._max_pool_all_ties(g, x, k, stride), "every tied maximum"),
    ("patch_response accepts a (2, 3) patch with a (3, 2) kernel", C.check_patch_response,
     lambda p, k: with_error(p.size != k.size, float(np.sum(p.ravel() * k.ravel()))), "(3, 2) kernel"),
    ("conv2d_backward for ints only fails visibly", C.check_conv2d_backward, _backward_ints_only,
     "(height, width) pair"),
    ("conv biases forgotten", C.check_cnn_forward, lambda x, p: ex07._numpy_cnn(x, p, conv_bias=False),
     "conv biases forgotten"),
    ("ReLU on the logits", C.check_cnn_forward, lambda x, p: ex07._numpy_cnn(x, p, relu_logits=True),
     "ReLU on the logits"),
    ("bias=False ignored", C.check_conv_params, lambda ci, co, k, bias=True: ci * co * k * k + co,
     "`bias=False` ignored"),
]


@pytest.mark.parametrize("check, wrong, words", [h[1:] for h in NEW_HINTS], ids=[h[0] for h in NEW_HINTS])
def test_new_hint_names_the_mistake_alone(check, wrong, words):
    with pytest.raises(C.CheckFailed) as failure:
        check(wrong)
    message = str(failure.value)
    assert words in message, message
    assert message.count("Likely misconception") <= 1, message     # told apart from look-alikes


@pytest.mark.parametrize("in_features", [16 * 8 * 8, 8 * 4 * 4, 16 * 16 * 16])
def test_build_cnn_names_the_flatten_size(in_features):
    from torch import nn

    def build(n):
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                             nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(in_features, n))
    with pytest.raises(C.CheckFailed) as failure:
        C.check_build_cnn(build)
    assert f"takes {in_features} inputs" in str(failure.value) and "16×4×4 = 256" in str(failure.value)


# ---------------------------------------------------------------- rules read from the source (AST)

def learner_function(source: str):
    """A function defined from ``source`` in a namespace like an exercise notebook's, carrying
    ``__source__`` as the grader's proxies do."""
    import torch
    from scipy import signal
    namespace = {"np": np, "F": F, "torch": torch, "TF": torch.nn.functional, "signal": signal,
                 "conv2d": F.conv2d, "correlate2d": correlate2d}
    exec(compile(source, "<learner>", "exec"), namespace)
    fn = [v for v in namespace.values() if getattr(v, "__code__", None) and v.__code__.co_filename == "<learner>"][-1]
    fn.__source__ = source
    return fn


CHEATS = [
    # (id, check, source, words of the message)
    ("utils.functional in conv2d_loops", lambda f: C.check_conv2d(f, name="conv2d_loops"),
     "def conv2d_loops(input, weight, bias=None, stride=1, padding=0, dilation=1):\n"
     "    return F.conv2d(input, weight, bias, stride, padding, dilation)\n", "`F.conv2d`"),
    ("a bare imported conv2d", lambda f: C.check_conv2d(f, name="conv2d_loops"),
     "def conv2d_loops(input, weight, bias=None, stride=1, padding=0, dilation=1):\n"
     "    return conv2d(input, weight, bias, stride, padding, dilation)\n", "`conv2d`"),
    ("torch inside the function", lambda f: C.check_conv2d(f, name="conv2d_vectorized"),
     "def conv2d_vectorized(input, weight, bias=None, stride=1, padding=0, dilation=1):\n"
     "    import torch\n    out = torch.nn.functional.conv2d(torch.from_numpy(input), torch.from_numpy(weight),\n"
     "        None if bias is None else torch.from_numpy(bias), stride, padding, dilation)\n"
     "    return out.numpy()\n", "`import torch`"),
    ("scipy in response_map", C.check_response_map,
     "def response_map(image, kernel):\n    return signal.correlate2d(image, kernel, 'valid')\n",
     "`signal.correlate2d`"),
    ("__import__ in feature_maps", C.check_feature_maps,
     "def feature_maps(image, filters):\n    s = __import__('scipy.signal')\n"
     "    return np.stack([s.signal.correlate2d(image, f, 'valid') for f in filters])\n", "`__import__(...)`"),
    # exercise 05 task 3 is scipy.signal.convolve2d for one channel (chapter 02 shows it): refused
    ("scipy in compose_kernels", C.check_compose_kernels,
     "def compose_kernels(w1, b1, w2, b2):\n"
     "    weight = np.array([[sum(signal.convolve2d(w1[m, i], w2[o, m]) for m in range(w1.shape[0]))\n"
     "                        for i in range(w1.shape[1])] for o in range(w2.shape[0])])\n"
     "    return weight, b2 + w2.sum(axis=(2, 3)) @ b1\n", "`signal.convolve2d`"),
    ("the course's relu in relu", C.check_relu, "def relu(x):\n    return F.relu(x)\n", "`F.relu`"),
    ("the course's pooling", C.check_max_pool2d,
     "def max_pool2d(input, kernel_size, stride=None, padding=0):\n"
     "    return F.max_pool2d(input, kernel_size, stride, padding)\n", "`F.max_pool2d`"),
]


@pytest.mark.parametrize("check, source, words", [c[1:] for c in CHEATS], ids=[c[0] for c in CHEATS])
def test_rule_from_scratch_fails_naming_the_rule(check, source, words):
    with pytest.raises(C.CheckFailed) as failure:
        check(learner_function(source))
    message = str(failure.value)
    assert 'rule "from scratch"' in message and words in message, message


VECTORIZED = "\n".join([
    "def conv2d_vectorized(input, weight, bias=None, stride=1, padding=0, dilation=1):",
    "    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)",
    "    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)",
    "    F, _, kh, kw = weight.shape          # a variable named F is not utils.functional",
    "    padded = np.pad(input, ((0, 0), (0, 0), (ph, ph), (pw, pw)))",
    "    h_out = (padded.shape[2] - dh * (kh - 1) - 1) // sh + 1",
    "    w_out = (padded.shape[3] - dw * (kw - 1) - 1) // sw + 1",
    "    out = np.zeros((input.shape[0], F, h_out, w_out), dtype=input.dtype)",
    "    for u in range(kh):                  # loops over kernel taps are allowed",
    "        for v in range(kw):",
    "            window = padded[:, :, u * dh:u * dh + sh * (h_out - 1) + 1:sh, v * dw:v * dw + sw * (w_out - 1) + 1:sw]",
    "            out += np.einsum('nchw,fc->nfhw', window, weight[:, :, u, v])",
    "    return out if bias is None else out + bias[None, :, None, None].astype(input.dtype)",
    ""])
PIXEL_LOOPS = "\n".join([
    "def conv2d_vectorized(input, weight, bias=None, stride=1, padding=0, dilation=1):",
    "    out = np.zeros((1,))",
    "    for i in range(h_out):",
    "        for j in range(w_out):",
    "            out[...] += 0",
    "    return out",
    ""])


def test_rule_no_position_loops_passes_tap_loops_and_fails_pixel_loops(capsys):
    C.check_conv2d(learner_function(VECTORIZED), name="conv2d_vectorized", hidden=True)
    assert capsys.readouterr().out.startswith("✓")
    with pytest.raises(C.CheckFailed) as failure:
        C.check_conv2d(learner_function(PIXEL_LOOPS), name="conv2d_vectorized")
    assert 'rule "no Python loop over output positions"' in str(failure.value)
    assert "`for i in range(h_out)`" in str(failure.value)
    with pytest.raises(C.CheckFailed) as loops_task:        # pixel loops are fine in the loops task (set 02):
        C.check_conv2d(learner_function(PIXEL_LOOPS.replace("conv2d_vectorized", "conv2d_loops")),
                       name="conv2d_loops")
    assert "no Python loop" not in str(loops_task.value)     # it fails on its values only


@pytest.mark.parametrize("comprehension", [
    "[[np.sum(x) for j in range(W_out)] for i in range(H_out)]",
    "np.array([np.sum(x) for i in range(out.shape[2]) for j in range(out.shape[3])])"])
def test_rule_no_position_loops_sees_comprehensions(comprehension):
    fn = learner_function(f"def conv2d_vectorized(input, weight, bias=None, stride=1, padding=0, dilation=1):\n"
                          f"    return {comprehension}\n")
    assert rules.position_loops(fn)


def test_rule_allows_the_sets_own_functions_and_reads_real_sources():
    def relu(x):
        return np.maximum(x, 0)

    def relu_backward(grad_output, x):
        return grad_output * (relu(x) > 0)          # calls the learner's own relu: allowed
    assert rules.scratch_violations(relu_backward, ex06.SET_FUNCTIONS + ("relu",)) == []

    def via_course(x, w, b=None, **kw):
        return F.conv2d(x, w, b, **kw)             # inspect.getsource path (no __source__)
    with pytest.raises(C.CheckFailed, match='rule "from scratch"'):
        C.check_conv2d(via_course)
    assert rules.scratch_violations(type("Opaque", (), {"__name__": "f"})()) == []   # no source: not judged


# ---------------------------------------------------------------- what a failing check shows in Jupyter

def test_check_failed_renders_only_its_message_in_ipython():
    error = C.CheckFailed("✗ conv2d is wrong\n  Problem: ...")
    assert error._render_traceback_() == ["✗ conv2d is wrong\n  Problem: ..."]


def test_a_failing_check_in_a_real_kernel_shows_no_utils_checks_frames():
    """The stored error output of a failing check cell: the message first, no frames or source of
    utils.checks (whose reference lambdas would give answers away)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import numpy as np\nfrom utils.checks import check_get_patch\n"
        "def get_patch(image, row, col, size):\n    return image[col:col + size, row:row + size]\n"
        "check_get_patch(get_patch)")]
    with pytest.raises(CellExecutionError):
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    error = [o for o in nb.cells[0].outputs if o.output_type == "error"][0]
    shown = "\n".join(error.traceback)
    assert error.traceback[0].startswith("✗ get_patch is wrong"), shown
    assert "utils/checks" not in shown and "lambda" not in shown and "im[r:r + k" not in shown, shown
    assert "row and column swapped" in shown


def test_look_alike_misconceptions_are_told_apart_by_later_inputs():
    """Two suspects fit the first failing input; the later input shows which one the learner has."""
    cases = [engine.Case("zeros", (np.zeros(3),)), engine.Case("a ramp", (np.arange(3.0),))]
    suspects = [engine.Suspect("doubled instead of incremented", lambda x: 2 * x),
                engine.Suspect("returned the input unchanged", lambda x: x.copy())]

    def message(cases_used):
        with pytest.raises(C.CheckFailed) as failure:
            engine.verify(lambda x: 2 * x, "inc", ("x",), cases_used, lambda x: x + 1, suspects)
        return str(failure.value)
    alone = message(cases[:1])                          # only the ambiguous input: both fit
    assert "doubled" in alone and "unchanged" in alone
    told_apart = message(cases)
    assert "doubled" in told_apart and "unchanged" not in told_apart
    assert "(zeros)" in told_apart                      # still reported on the smallest failing input


def test_hidden_inputs_are_described_by_kind_not_dumped():
    with pytest.raises(C.CheckFailed) as shown:
        C.check_relu(np.abs)
    assert "-0.5" in str(shown.value)                   # a visible input is shown in full
    with pytest.raises(C.CheckFailed) as hidden:
        C.check_relu(lambda x: np.abs(x) if x.size > 30 else np.maximum(x, 0), hidden=True)
    message = str(hidden.value)
    assert "random real values" in message and "shape (2, 3, 4, 5), dtype float64" in message
    assert "values of a hidden test are not shown" in message and "[[" not in message


@pytest.mark.parametrize("name", sorted(n for n in C.__all__ if n.startswith("check_")))
def test_every_check_hides_the_values_of_its_hidden_cases(name):
    """Each check is wrapped by engine.learner_check, which makes hidden=True describe inputs by kind."""
    check = getattr(C, name)
    assert check.__code__ is engine.learner_check(lambda fn, hidden=False: None).__code__, name


def test_a_hidden_receptive_field_case_is_not_shown():
    from utils.models import receptive_field

    def right_on_visible_only(layers):
        if (5, 2) in layers:
            return 99
        rows = receptive_field([(k, s, 1) for k, s in layers])
        return rows[-1].size if rows else 1
    right_on_visible_only([(3, 1)])
    C.check_receptive_field(right_on_visible_only)
    with pytest.raises(C.CheckFailed) as hidden:
        C.check_receptive_field(right_on_visible_only, hidden=True)
    message = str(hidden.value)
    assert "stride-2 convs" in message and "values of a hidden test are not shown" in message
    assert "(5, 2)" not in message and "layers = list of 3 items" in message, message
    with pytest.raises(C.CheckFailed) as numbers:          # scalars of a hidden case are values too
        C.check_conv_params(lambda ci, co, k, bias=True: ci * co * k * k + co * bias if ci < 64 else 7, hidden=True)
    assert "in_channels = int (values of a hidden test are not shown)" in str(numbers.value)
    assert "64" not in str(numbers.value).split("Problem")[0]


def test_nan_weights_never_pass_a_tolerance_test():
    """``nan > tol`` is False: every tolerance comparison of utils.checks must treat NaN as too far."""
    from utils.checks import ex04
    assert engine._exceeds(float("nan"), 1e-6) and engine._exceeds(2.0, 1.0) and not engine._exceeds(1.0, 1.0)
    with pytest.raises(C.CheckFailed):
        ex04._check_edge_bank(np.full((2, 1, 3, 3), np.nan), ex04._edge_images())


def test_a_hidden_failure_shows_nothing_computed_from_the_hidden_inputs():
    """Red team: "where you returned 999.5" leaked 1000 + x[0] of a hidden input; the wrong index, the
    count of wrong values and the learner's output shape are computed from the hidden inputs too."""
    def leaks(x):                                        # right on the visible cases, not on the hidden one
        out = np.maximum(x, 0)
        if x.size > 30:
            out = out.copy()
            out[0, 1, 2, 3] = 1000 + x[0, 1, 2, 3]
        return out
    with pytest.raises(C.CheckFailed) as failure:
        C.check_relu(leaks, hidden=True)
    message = str(failure.value)
    problem = message.split("Problem:")[1]
    assert "random real values" in message and "values are wrong" in problem
    assert engine.HIDDEN_NOT_SHOWN in problem
    assert "100" not in problem and "(0, 1, 2, 3)" not in problem and "of 120" not in problem, problem
    with pytest.raises(C.CheckFailed) as shape:
        C.check_relu(lambda x: np.maximum(x, 0)[:, :2] if x.size > 30 else np.maximum(x, 0), hidden=True)
    problem = str(shape.value).split("Problem:")[1]
    assert "(2, 2, 4, 5)" not in problem and "(2, 3, 4, 5)" not in problem and "shape" in problem, problem
    seconds = []
    with pytest.raises(C.CheckFailed) as scalar:
        C.check_median_time(lambda s, w: float(np.median(s[w:])) if len(s) < 11 else seconds.append(1000 + s[0])
                            or seconds[-1], hidden=True)
    problem = str(scalar.value).split("Problem:")[1]
    assert f"{seconds[0]:.6g}" not in problem and "100" not in problem and "value you returned" in problem, problem
    with pytest.raises(C.CheckFailed) as visible:        # the visible feedback keeps every detail
        C.check_relu(lambda x: np.maximum(x, 0) + (x.size == 12))
    assert "12 of 12 values are wrong" in str(visible.value) and "where you returned" in str(visible.value)


CHECK_CODE_ANSWERS = {
    "the reference itself": (C.check_top_class_maps, "top_class_maps = _top_class_maps"),
    "a helper imported from ex07": (C.check_cnn_forward,
                                    "def cnn_forward(x, params):\n    return helper(x, params)"),
    "the dotted reference": (C.check_top_class_maps,
                             "def top_class_maps(f, w, b, k):\n    return utils.checks.ex07._top_class_maps(f, w, b, k)"),
    "an import in the body": (C.check_build_cnn, "def build_cnn(n):\n    from utils.checks.ex07 import _reference_cnn"
                                                 "\n    return _reference_cnn(n)"),
    "the name as a string": (C.check_top_class_maps,
                             "def top_class_maps(f, w, b, k):\n    return getattr(ex07, '_top_class_maps')(f, w, b, k)"),
    "ex05's reference under another name": (C.check_compose_kernels,
                                            "def compose_kernels(w1, b1, w2, b2):\n    return composed(w1, b1, w2, b2)"),
}


@pytest.mark.parametrize("answer", list(CHECK_CODE_ANSWERS))
def test_rule_the_checks_own_references_are_no_answer(answer, tmp_path, monkeypatch):
    """Red team: ``top_class_maps = utils.checks.ex07._top_class_maps`` (or ``_numpy_cnn`` behind a helper)
    passed the notebook check, while the grader's tripwire (utils.grade.integrity) refuses to run it."""
    import importlib
    import sys
    import utils
    from utils.checks import ex05
    from utils.grade import integrity
    check, source = CHECK_CODE_ANSWERS[answer]
    cell = "import utils.checks\nfrom utils.checks import ex07\nfrom utils.checks.ex07 import _top_class_maps, _numpy_cnn as helper\n" \
           "from utils.checks.ex05 import _composed as composed\n\n" + source + "\n"
    (tmp_path / "learner_cell.py").write_text(cell)          # a real file, so that inspect finds the source
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("learner_cell", None)
    module = importlib.import_module("learner_cell")
    fn = getattr(module, source.split("(")[0].split()[-1] if source.startswith("def") else source.split()[0])
    with pytest.raises(C.CheckFailed, match="the course's check code"):
        check(fn)
    assert integrity.reaching_construct(cell) is not None     # the grader refuses the same answer
    assert utils and ex05


def test_rule_an_answer_may_import_the_check_functions(capsys):
    """``from utils.checks import check_x`` (the exercise notebooks' own import) is not check code."""
    assert rules.check_code_uses(lambda s, w: float(np.median(s[w:]))) == []
    C.check_median_time(lambda s, w: float(np.median(s[w:])))
    assert capsys.readouterr().out.startswith("✓")


def test_rule_from_scratch_sees_a_library_behind_another_name():
    """``from utils.functional import conv2d as helper`` in another cell: the def block looks innocent,
    the function's globals do not (in the notebook from ``__globals__``; a grader proxy gives
    ``__globals_origin__``)."""
    namespace = {"np": np}
    exec("from utils.functional import conv2d as _ref\n"
         "def _mine(x, w, b, s, p, d):\n    return _ref(x, w, b, s, p, d)\n"
         "def conv2d_loops(input, weight, bias=None, stride=1, padding=0, dilation=1):\n"
         "    return _mine(input, weight, bias, stride, padding, dilation)\n", namespace)
    with pytest.raises(C.CheckFailed, match=r"`_ref` \(utils\.functional"):
        C.check_conv2d(namespace["conv2d_loops"], name="conv2d_loops")

    class Proxy:                                    # what the grader's StudentFunction provides
        __name__ = "conv2d_loops"
        __source__ = "def conv2d_loops(input, weight, bias=None, **kw):\n    return _ref(input, weight, bias, **kw)\n"
        __globals_origin__ = rules.global_origins(namespace["conv2d_loops"])

        def __call__(self, *args, **kwargs):
            return namespace["conv2d_loops"](*args, **kwargs)
    assert Proxy.__globals_origin__["_ref"].startswith("utils.functional.")
    with pytest.raises(C.CheckFailed, match='rule "from scratch"'):
        C.check_conv2d(Proxy(), name="conv2d_loops")
    assert rules.global_origins(np.maximum) == {}    # a builtin ufunc: nothing to follow


def _indistinguishable(cases, suspects):
    """Pairs of different hints whose wrong outputs agree on every visible case where both apply."""
    pairs = []
    for i, a in enumerate(suspects):
        for b in suspects[i + 1:]:
            outputs = []
            for case in cases:
                try:
                    wa, wb = a.wrong(*case.args, **case.kwargs), b.wrong(*case.args, **case.kwargs)
                except Exception:
                    continue
                if wa is not None and wb is not None:
                    outputs.append((wa if isinstance(wa, tuple) else np.asarray(wa),      # a tuple is a shape
                                    wb if isinstance(wb, tuple) else np.asarray(wb)))
            same = all(isinstance(x, tuple) == isinstance(y, tuple) and
                       (x == y if isinstance(x, tuple) else engine._same(x, y, 1e-5, 1e-6)) for x, y in outputs)
            if a.hint != b.hint and outputs and same:
                pairs.append((a.hint, b.hint))
    return pairs


@pytest.mark.parametrize("suite", ["conv2d", "pooling"])
def test_every_pair_of_misconceptions_is_told_apart_by_a_visible_input(suite):
    from utils.checks import convolution
    if suite == "conv2d":
        cases, suspects = convolution.conv2d_cases(), convolution._conv_suspects()
    else:
        cases, suspects = ex06._pool_cases(False, True), ex06._pool_suspects(ex06._max, ex06._avg, "average pooling")
    assert _indistinguishable(cases, suspects) == []
    # the test can fail: two look-alike hints on these inputs are reported
    twin = engine.Suspect("a twin of the first", suspects[0].wrong)
    assert _indistinguishable(cases, [suspects[0], twin]) == [(suspects[0].hint, twin.hint)]


def test_a_hidden_crash_does_not_quote_the_learners_message():
    """The learner's exception text may be built from a hidden input ("raise ValueError(x)"): a hidden
    check names the exception but does not quote it; a visible one still does."""
    def crashes(x):
        if x.size > 30:
            raise ValueError(f"secret {1000 + x.flat[0]:.6f}")
        return np.maximum(x, 0)
    with pytest.raises(C.CheckFailed) as hidden:
        C.check_relu(crashes, hidden=True)
    assert "raised ValueError" in str(hidden.value) and "secret" not in str(hidden.value)
    assert engine.HIDDEN_NOT_SHOWN in str(hidden.value)
    with pytest.raises(C.CheckFailed) as visible:
        C.check_relu(lambda x: (_ for _ in ()).throw(ValueError("visible message")))
    assert "raised ValueError: visible message" in str(visible.value)

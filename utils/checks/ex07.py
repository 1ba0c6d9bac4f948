"""Exercise set 07 (building a CNN): receptive_field, cnn_forward, build_cnn; top_class_maps (the
class activation maps of chapter 10's EfficientNet-Lite0)."""
from __future__ import annotations

from typing import Callable

import numpy as np

import utils.functional as F

from .rules import require_own_code
from .engine import (Case, CheckFailed, Suspect, _call, _integer_output, _rng, learner_check, passed,
                     verify)
from .models import _description_of



@learner_check
def check_receptive_field(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(layers) -> int``: receptive field (pixels per side) of one unit after ``layers``.

    layers: a list of ``(kernel_size, stride)`` pairs, first layer first (conv and pooling alike).
    Used first in exercise set ex07.
    """
    require_own_code(fn, "receptive_field")
    from utils.models import receptive_field   # lazily: torch is only needed from chapter 07 on

    cases = [Case("one 3x3 conv", ([(3, 1)],)),
             Case("two 3x3 convs", ([(3, 1), (3, 1)],)),
             Case("conv then 2x2 pool", ([(3, 1), (2, 2)],)),
             Case("conv, pool, conv", ([(3, 1), (2, 2), (3, 1)],)),
             Case("the course's SmallCNN features", ([(3, 1), (2, 2), (3, 1), (2, 2), (3, 1), (2, 2)],))]
    if hidden:
        cases += [Case("stride-2 convs", ([(5, 2), (3, 2), (3, 1)],)), Case("no layers", ([],))]

    def reference(layers):
        rows = receptive_field([(k, s, 1) for k, s in layers])
        return rows[-1].size if rows else 1

    def grow(step):
        def wrong(layers):
            size, jump = 1, 1
            for k, s in layers:
                size, jump = step(size, jump, k, s), jump * s
            return size
        return wrong
    suspects = [Suspect("strides ignored: after a stride-s layer, one step of the next kernel covers s input "
                        "pixels, so each layer adds (k - 1) * (product of the earlier strides).",
                        grow(lambda r, j, k, s: r + (k - 1))),
                Suspect("the layer's own stride used too early: a layer's stride only affects the layers "
                        "*after* it.", grow(lambda r, j, k, s: r + (k - 1) * j * s)),
                Suspect("kernel sizes multiplied: receptive fields grow by adding (k - 1) * jump, not by "
                        "multiplying.", grow(lambda r, j, k, s: r * k)),
                Suspect("off by one: start from 1 pixel and add (k - 1) * jump per layer.",
                        grow(lambda r, j, k, s: r + k * j))]
    verify(fn, "receptive_field", ("layers",), cases, reference, suspects, check_dtype=False,
           output=_integer_output("receptive_field"))
    passed(f"receptive_field gives the right size for {len(cases)} stacks of layers")


def _reference_cnn(num_classes: int = 10):
    """The exercise's CNN in PyTorch (seeded): conv-ReLU-pool twice, flatten, linear; input (N, 1, 16, 16)."""
    import torch
    from torch import nn
    from collections import OrderedDict
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 8, 3, padding=1)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(8, 16, 3, padding=1)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(16 * 4 * 4, num_classes))]))


def _cnn_params(seed: int) -> dict[str, np.ndarray]:
    import torch
    model = _reference_cnn()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return {name: t.numpy().astype(np.float64) for name, t in model.state_dict().items()}


def _numpy_cnn(x, params, relu=True, pool="max", flatten_nhwc=False, conv_bias=True, relu_logits=False):
    """The exercise's CNN with utils.functional, with switches for the misconceptions."""
    out = x
    for layer in ("conv1", "conv2"):
        out = F.conv2d(out, params[f"{layer}.weight"], params[f"{layer}.bias"] if conv_bias else None, padding=1)
        out = F.relu(out) if relu else out
        out = F.max_pool2d(out, 2) if pool == "max" else F.avg_pool2d(out, 2)
    flat = (out.transpose(0, 2, 3, 1) if flatten_nhwc else out).reshape(out.shape[0], -1)
    logits = flat @ params["fc.weight"].T + params["fc.bias"]
    return F.relu(logits) if relu_logits else logits


@learner_check
def check_cnn_forward(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(x, params) -> logits (N, 10)`` for x (N, 1, 16, 16) and ``params`` the exercise CNN's
    state_dict as NumPy arrays: conv1.weight (8, 1, 3, 3), conv1.bias (8,), conv2.weight (16, 8, 3, 3),
    conv2.bias (16,), fc.weight (10, 256), fc.bias (10,). Used first in exercise set ex07."""
    require_own_code(fn, "cnn_forward")
    import torch
    rng = _rng(13)
    cases = [Case("one image", (rng.random((1, 1, 16, 16)), _cnn_params(1))),
             Case("a batch of three", (rng.random((3, 1, 16, 16)), _cnn_params(2)))]
    if hidden:
        cases.append(Case("a batch of five", (rng.normal(size=(5, 1, 16, 16)), _cnn_params(3))))

    def reference(x, params):      # PyTorch itself is the ground truth here
        model = _reference_cnn().double()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    suspects = [Suspect("ReLU missing: without it the two convolutions collapse into one linear map.",
                        lambda x, p: _numpy_cnn(x, p, relu=False)),
                Suspect("average pooling instead of max pooling.", lambda x, p: _numpy_cnn(x, p, pool="avg")),
                Suspect("conv biases forgotten: each convolution adds its own bias (conv1.bias, conv2.bias) "
                        "before the ReLU.", lambda x, p: _numpy_cnn(x, p, conv_bias=False)),
                Suspect("ReLU on the logits: the last layer's scores stay as they are (negative scores are "
                        "information); ReLU follows the convolutions only.",
                        lambda x, p: _numpy_cnn(x, p, relu_logits=True)),
                Suspect("flattened in NHWC order: flatten the (N, C, H, W) map as it is, `out.reshape(N, -1)`.",
                        lambda x, p: _numpy_cnn(x, p, flatten_nhwc=True)),
                Suspect("fc weight not transposed: logits = flat @ fc.weight.T + fc.bias.",
                        lambda x, p: (10, 10))]
    verify(fn, "cnn_forward", ("x", "params"), cases, reference, suspects, rtol=1e-4, atol=1e-5,
           check_dtype=False)
    passed(f"cnn_forward matches the PyTorch model on {len(cases)} batches")


@learner_check
def check_build_cnn(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes)``: the exercise CNN (conv 1->8, conv 8->16, Linear 256->num_classes) as a torch.nn.Module,
    or its :func:`describe_model` dict. Used first in exercise set ex07."""
    require_own_code(fn, "build_cnn")
    want = ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    # A class count other than 10 is checked visibly too: a hard-coded 10 fails here, not only in the grader.
    for num_classes in ((10, 3, 26) if hidden else (10, 3)):
        case = Case(f"num_classes={num_classes}", (num_classes,))
        model = _description_of(_call(fn, case, "build_cnn", ("num_classes",)), "build_cnn", fn)
        if model["layers"] != want:
            raise CheckFailed(f"✗ build_cnn's layers are {model['layers']}; the task asks for {want}.")
        shapes = sorted(tuple(v.shape) for v in model["parameters"].values())
        fc = [v.shape for v in model["parameters"].values() if v.ndim == 2]
        if fc and fc[-1][1] != 16 * 4 * 4:
            raise CheckFailed(f"✗ build_cnn's Linear layer takes {fc[-1][1]} inputs, but the map it receives is "
                              f"16×4×4 = 256: 16 channels from conv2, and each 2×2 pooling halves the 16×16 "
                              f"image (16 → 8 → 4); the convs with padding=1 keep the size.")
        if shapes != sorted(tuple(p.shape) for p in _reference_cnn(num_classes).parameters()):
            raise CheckFailed(f"✗ build_cnn's parameter shapes {shapes} differ from the task's "
                              f"(conv1: 8 filters 3x3 on 1 channel, conv2: 16 filters 3x3, fc to {num_classes}); "
                              f"check channels, kernel sizes and the Linear layer's in_features.")
        if model["output_shape"] != (2, num_classes):
            problem = model["forward_error"] or f"it gives shape {model['output_shape']}"
            raise CheckFailed(f"✗ build_cnn's model on a (2, 1, 16, 16) batch: {problem}; expected shape "
                              f"(2, {num_classes}). With padding=1 the convs keep the size, each pool halves it.")
    passed("build_cnn builds conv-ReLU-pool x2, flatten, linear with the right shapes")


# ------------------------------------------------------------------------------------------------
# Task 4: class activation maps of the top-k classes (chapter 10's network)
# ------------------------------------------------------------------------------------------------


def _ranking(features, weights, bias, pool=np.mean):
    """Class indices from the most to the least probable: logits = weights @ pool(features) + bias."""
    return np.argsort(-(weights @ pool(features, axis=(1, 2)) + bias), kind="stable")


def _class_maps(features, weights, classes):
    """(len(classes), h, w): map i = sum over channels c of weights[classes[i], c] * features[c]."""
    return np.tensordot(weights[classes], features, axes=1)


def _top_class_maps(features, weights, bias, k):
    """The reference: (k, h, w) exact CAMs of the k most probable classes, most probable first."""
    return _class_maps(features, weights, _ranking(features, weights, bias)[:k])


def _scaled_to_unit(maps):
    """Each map min-max scaled to [0, 1] (a display step, one of the misconceptions)."""
    low, high = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / np.where(high > low, high - low, 1)


def _cam_case(rng, label, channels, classes, h, w, k):
    """Features >= 0 (after the last ReLU6), signed weights, a bias large enough to change the ranking."""
    while True:
        features = rng.random((channels, h, w)) * 3
        weights = rng.normal(size=(classes, channels))
        bias = rng.normal(scale=2.0, size=classes)
        logits, top = weights @ features.mean(axis=(1, 2)) + bias, _ranking(features, weights, bias)[:k]
        # distinct logits, and a top k that leaving out the bias, or summing instead of averaging,
        # changes (so that those misconceptions are visible)
        if (np.diff(np.sort(logits)).min() > 1e-3
                and not np.array_equal(top, _ranking(features, weights, 0)[:k])
                and not np.array_equal(top, _ranking(features, weights, bias, pool=np.sum)[:k])):
            return Case(label, (features, weights, bias, k))


@learner_check
def check_top_class_maps(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(features, weights, bias, k) -> (k, h, w)``: the class activation maps of the k most
    probable classes, most probable first, for a global-average-pooling + linear head.

    features: (C, h, w) the last feature maps of one image; weights: (K, C); bias: (K,); k: int.
    Used first in exercise set ex07.
    """
    require_own_code(fn, "top_class_maps")
    rng = _rng(10)
    cases = [_cam_case(rng, "3 channels, 4 classes, 2x2 maps, k=2", 3, 4, 2, 2, 2),
             _cam_case(rng, "5 channels, 6 classes, 3x4 maps, k=3", 5, 6, 3, 4, 3)]
    if hidden:
        cases += [_cam_case(rng, "16 channels, 20 classes, 7x7 maps, k=5", 16, 20, 7, 7, 5),
                  _cam_case(rng, "k=1", 4, 5, 2, 3, 1)]

    # each misconception as the code a learner would write, beside what it gets wrong
    suspects = [
        Suspect("every map uses the top class's weights: map i must use row i of the ranking, "
                "weights[class_i], for the i-th most probable class.",
                lambda f, w, b, k: _class_maps(f, w, [_ranking(f, w, b)[0]] * k)),
        Suspect("classes taken from the bottom of the ranking: the most probable class has the largest "
                "logit (sort in descending order).",
                lambda f, w, b, k: _class_maps(f, w, _ranking(f, w, b)[::-1][:k])),
        Suspect("the bias is left out of the ranking: logit = weights @ pooled + bias, and the bias can "
                "change which classes are on top.",
                lambda f, w, b, k: _class_maps(f, w, _ranking(f, w, 0)[:k])),
        Suspect("the features are summed over positions for the logits: global average pooling takes "
                "the mean, and with the sum the bias weighs h·w times too little.",
                lambda f, w, b, k: _class_maps(f, w, _ranking(f, w, b, pool=np.sum)[:k])),
        Suspect("ReLU applied to the maps: negative evidence (positions that speak against the class) "
                "is part of the exact map, whose mean plus the bias is the logit.",
                lambda *args: np.maximum(_top_class_maps(*args), 0)),
        Suspect("each map is normalised (scaled to [0, 1]): that is only for display; the exact map "
                "keeps its values, so that its mean plus the bias is the logit.",
                lambda *args: _scaled_to_unit(_top_class_maps(*args))),
        Suspect("the bias is added at every position: the map is Σ_c w[k, c] f[c] only; the bias "
                "belongs to the logit, not to a place in the image.",
                lambda f, w, b, k: _top_class_maps(f, w, b, k) + b[_ranking(f, w, b)[:k], None, None]),
        Suspect("the map is divided by the number of channels: it is a weighted *sum* over channels.",
                lambda f, w, b, k: _top_class_maps(f, w, b, k) / len(f)),
    ]
    verify(fn, "top_class_maps", ("features", "weights", "bias", "k"), cases, _top_class_maps, suspects,
           rtol=1e-6, atol=1e-8, check_dtype=False)
    passed(f"top_class_maps gives the exact maps of the top classes in order on {len(cases)} inputs")

"""Exercise set 07 (building a CNN): receptive_field, cnn_forward, build_cnn."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .engine import Case, CheckFailed, Suspect, _call, _functional, _integer_output, _rng, passed, verify
from .models import _description_of



def check_receptive_field(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(layers) -> int``: receptive field (pixels per side) of one unit after ``layers``.

    layers: a list of ``(kernel_size, stride)`` pairs, first layer first (conv and pooling alike).
    """
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


CNN_PARAM_SHAPES = {"conv1.weight": (8, 1, 3, 3), "conv1.bias": (8,), "conv2.weight": (16, 8, 3, 3),
                    "conv2.bias": (16,), "fc.weight": (10, 16 * 4 * 4), "fc.bias": (10,)}


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
    F = _functional()
    out = x
    for layer in ("conv1", "conv2"):
        out = F.conv2d(out, params[f"{layer}.weight"], params[f"{layer}.bias"] if conv_bias else None, padding=1)
        out = F.relu(out) if relu else out
        out = F.max_pool2d(out, 2) if pool == "max" else F.avg_pool2d(out, 2)
    flat = (out.transpose(0, 2, 3, 1) if flatten_nhwc else out).reshape(out.shape[0], -1)
    logits = flat @ params["fc.weight"].T + params["fc.bias"]
    return F.relu(logits) if relu_logits else logits


def check_cnn_forward(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(x, params) -> logits (N, 10)`` for x (N, 1, 16, 16) and params shaped as CNN_PARAM_SHAPES."""
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


def check_build_cnn(fn: Callable, hidden: bool = False) -> None:
    """Check ``fn(num_classes)``: the exercise CNN (shapes as CNN_PARAM_SHAPES) as a torch.nn.Module,
    or its :func:`describe_model` dict."""
    want = ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    for num_classes in ((10, 3) if hidden else (10,)):
        case = Case(f"num_classes={num_classes}", (num_classes,))
        model = _description_of(_call(fn, case, "build_cnn", ("num_classes",)), "build_cnn")
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

"""What a layer costs: parameters, multiply-adds (MACs) and activation memory.

Two ways to get the same numbers, so that each checks the other:

* by formula, from a layer *spec* (:func:`conv2d_cost`, :func:`linear_cost`), before any model exists;
* by measurement, from a real ``torch.nn.Module`` (:func:`profile_model`), with forward hooks that
  look at every leaf layer's actual output.

A multiply-add (MAC) is one ``a * b + c``; the bias addition is not counted (as most papers do).
Activation memory is what one input image leaves behind in a layer's output, the tensor a
training step keeps for the backward pass: ``activations`` elements, ``activations * 4`` bytes
in float32.  All counts are *per image* (batch size 1).

None of these counts is a *time*.  :func:`time_inference` and :func:`time_layers` measure the
wall-clock time of forward passes (eval mode, ``torch.no_grad``, warm-up calls first, the median
of repeats), which depends on the machine, the batch size and the memory traffic of each layer
as much as on its multiply-adds (chapter 9 shows by how much).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from math import prod
from typing import Sequence

import numpy as np

from utils.functional.validate import non_negative_pair, positive_pair

BYTES_PER_FLOAT32 = 4


@dataclass(frozen=True)
class LayerCost:
    """The cost of one layer for one image.

    Attributes:
        name: the layer's name (``"features.0"`` in a model, or a label given by the caller).
        kind: ``"conv2d"``, ``"linear"``, or the class name of any other layer.
        params: number of learnable numbers (weights + biases).
        macs: multiply-adds of one forward pass.
        output_shape: shape of the output for one image, ``(C, H, W)`` or ``(F,)``.
        input_shape: shape of the (first) input for one image; ``()`` when unknown.

    Used first in chapter 06.
    """
    name: str
    kind: str
    params: int
    macs: int
    output_shape: tuple[int, ...]
    input_shape: tuple[int, ...] = ()

    @property
    def activations(self) -> int:
        """Number of output elements for one image."""
        return prod(self.output_shape)

    @property
    def activation_bytes(self) -> int:
        """Bytes the output of one image takes in float32."""
        return self.activations * BYTES_PER_FLOAT32

    @property
    def uses_per_weight(self) -> float:
        """MACs per parameter: how many times each weight is reused in one forward pass."""
        return self.macs / self.params if self.params else 0.0


def conv2d_cost(in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                input_size: int | Sequence[int], stride: int | Sequence[int] = 1,
                padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                groups: int = 1, bias: bool = True, name: str = "conv2d") -> LayerCost:
    """Cost of a ``Conv2d`` layer by formula (arguments as ``torch.nn.Conv2d``).

    Args:
        input_size: the input's spatial size ``H`` or ``(H, W)``.

    Returns:
        a :class:`LayerCost` with ``output_shape == (out_channels, H_out, W_out)``.
        Each output value costs ``(in_channels / groups) * kH * kW`` MACs.

    Taught in chapter 09.
    """
    from utils.functional import conv_output_size  # the one place the output-size formula lives

    if in_channels % groups or out_channels % groups:
        raise ValueError(f"in_channels={in_channels} and out_channels={out_channels} "
                         f"must both be divisible by groups={groups}")
    kernel, size = positive_pair(kernel_size, "kernel_size"), positive_pair(input_size, "input_size")
    strides, dils = positive_pair(stride, "stride"), positive_pair(dilation, "dilation")
    pads = non_negative_pair(padding, "padding")
    out_hw = tuple(conv_output_size(size[i], kernel[i], strides[i], pads[i], dils[i]) for i in range(2))
    weights_per_output = (in_channels // groups) * kernel[0] * kernel[1]
    params = out_channels * weights_per_output + (out_channels if bias else 0)
    macs = out_channels * out_hw[0] * out_hw[1] * weights_per_output
    return LayerCost(name, "conv2d", params, macs, (out_channels, *out_hw), (in_channels, *size))


def linear_cost(in_features: int, out_features: int, bias: bool = True,
                name: str = "linear") -> LayerCost:
    """Cost of a ``Linear`` (dense, fully connected) layer by formula.

    Returns:
        a :class:`LayerCost` with ``output_shape == (out_features,)``; every output value uses
        every input value once, so ``macs == in_features * out_features``.

    Taught in chapter 09.
    """
    if in_features <= 0 or out_features <= 0:
        raise ValueError(f"in_features={in_features} and out_features={out_features} must be positive")
    params = in_features * out_features + (out_features if bias else 0)
    return LayerCost(name, "linear", params, in_features * out_features, (out_features,), (in_features,))


def dense_equivalent(conv: LayerCost, input_shape: Sequence[int] | None = None,
                     name: str = "dense") -> LayerCost:
    """The dense layer that maps the same input to an output of the same size as ``conv``.

    Args:
        conv: the cost of a convolutional layer (its ``output_shape`` is ``(C_out, H_out, W_out)``).
        input_shape: that layer's input for one image, ``(C_in, H, W)``; ``None``: the
            ``input_shape`` recorded in ``conv`` (by :func:`conv2d_cost` or :func:`profile_model`).

    Returns:
        the :class:`LayerCost` of ``Linear(C_in*H*W, C_out*H_out*W_out)`` (output reshaped to the
        conv's ``output_shape``): what the conv layer would cost without locality and weight sharing.

    Used first in chapter 09.
    """
    if input_shape is None:
        input_shape = conv.input_shape
    if not input_shape:
        raise ValueError(f"{conv.name!r} records no input shape: pass input_shape=(C, H, W)")
    dense = linear_cost(prod(input_shape), conv.activations, name=name)
    return LayerCost(name, "linear", dense.params, dense.macs, conv.output_shape, tuple(input_shape))


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of learnable numbers in a ``torch.nn.Module`` (only ``requires_grad`` ones if asked).

    Used first in chapter 06.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _macs_of(module, output) -> int:
    """MACs of one leaf module for one image, read off its real output (batch dimension removed)."""
    import torch.nn as nn

    per_image_outputs = output[0].numel()
    if isinstance(module, nn.Conv2d):
        return per_image_outputs * (module.in_channels // module.groups) * prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return per_image_outputs * module.in_features
    return 0


def _kind_of(module) -> str:
    import torch.nn as nn

    return {nn.Conv2d: "conv2d", nn.Linear: "linear"}.get(type(module), type(module).__name__)


def profile_model(model, input_shape: Sequence[int]) -> list[LayerCost]:
    """Measure every leaf layer of ``model`` on one zero image, in the order they run.

    Args:
        model: a ``torch.nn.Module``.
        input_shape: one image, ``(C, H, W)``.

    Returns:
        one :class:`LayerCost` per leaf module call (conv, linear, activations, pooling, flatten, ...);
        parameters are counted at a module's first call only, so that
        ``sum(c.params for c in costs) == count_parameters(model)`` for models whose layers all run.

    Used first in chapter 06.
    """
    import torch

    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be one image (C, H, W), got {tuple(input_shape)}")
    costs, seen, handles = [], set(), []

    def record(name):
        def hook(module, inputs, output):
            params = 0 if id(module) in seen else sum(p.numel() for p in module.parameters(recurse=False))
            seen.add(id(module))
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            costs.append(LayerCost(name, _kind_of(module), params, _macs_of(module, output),
                                   tuple(output.shape[1:]),
                                   tuple(first.shape[1:]) if first is not None else ()))
        return hook

    for name, module in model.named_modules():
        if not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(record(name)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return costs


def total(costs: Sequence[LayerCost], name: str = "total") -> LayerCost:
    """Sum of ``params`` and ``macs`` over layers; ``output_shape`` is the *sum* of activations as ``(n,)``.

    Used first in chapter 06.
    """
    return LayerCost(name, "total", sum(c.params for c in costs), sum(c.macs for c in costs),
                     (sum(c.activations for c in costs),))


def cost_table(costs: Sequence[LayerCost]) -> str:
    """A fixed-width text table of layer costs (one row per layer), for printing in a notebook.

    Used first in chapter 06.
    """
    header = f"{'layer':<14}{'kind':<12}{'output':>14}{'params':>12}{'MACs':>14}{'act. KiB':>10}"
    rows = [header, "-" * len(header)]
    for c in costs:
        shape = "x".join(map(str, c.output_shape))
        rows.append(f"{c.name:<14}{c.kind:<12}{shape:>14}{c.params:>12,}{c.macs:>14,}"
                    f"{c.activation_bytes / 1024:>10.1f}")
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# Measured time (chapter 9): what the counts above do not tell
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated forward passes of one model on one batch.

    Attributes:
        name: the model's label.
        batch_size: images per forward pass.
        seconds: one entry per timed repeat (warm-up calls excluded), in the order they ran.

    Used first in chapter 09.
    """
    name: str
    batch_size: int
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        """Median seconds per forward pass: robust to the odd repeat slowed by other programs."""
        return float(np.median(self.seconds))

    @property
    def per_image(self) -> float:
        """Median seconds per image (``median / batch_size``)."""
        return self.median / self.batch_size


def _check_repeats(repeats: int, warmup: int) -> None:
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")


def time_inference(models, x, repeats: int = 21, warmup: int = 3) -> dict[str, Timing]:
    """Median-of-repeats inference time of one or several models on the same batch.

    Each model runs in eval mode under ``torch.no_grad()`` (no autograd graph is built, dropout
    and BatchNorm behave as at test time); ``warmup`` untimed calls come first (the first calls
    allocate memory and pick kernels); then the ``repeats`` timed calls go round-robin over the
    models, so that a burst of load on a shared machine slows all of them alike.  Threads: as
    set by the caller (``torch.set_num_threads``).  Every model's training/eval mode is restored.

    Args:
        models: a ``torch.nn.Module`` or a mapping ``{label: module}``.
        x: the input batch, a tensor ``(N, C, H, W)`` (or any shape the models accept).
        repeats, warmup: timed and untimed calls per model.

    Returns:
        ``{label: Timing}`` (label ``"model"`` for a single module), in the given order.

    Taught in chapter 09.
    """
    import torch

    _check_repeats(repeats, warmup)
    named = dict(models) if hasattr(models, "items") else {"model": models}
    if not named:
        raise ValueError("no models to time")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor batch, got {type(x).__name__}")
    modes = {label: model.training for label, model in named.items()}
    seconds = {label: [] for label in named}
    try:
        with torch.no_grad():
            for model in named.values():
                model.eval()
                for _ in range(warmup):
                    model(x)
            for _ in range(repeats):
                for label, model in named.items():
                    start = time.perf_counter()
                    model(x)
                    seconds[label].append(time.perf_counter() - start)
    finally:
        for label, model in named.items():
            model.train(modes[label])
    batch = int(x.shape[0]) if x.ndim else 1
    return {label: Timing(label, batch, tuple(s)) for label, s in seconds.items()}


@dataclass(frozen=True)
class LayerTime:
    """Median wall-clock seconds of one leaf layer call inside a model's forward pass.

    Used first in chapter 09.
    """
    name: str
    kind: str
    seconds: float


def time_layers(model, x, repeats: int = 11, warmup: int = 2) -> list[LayerTime]:
    """Time every leaf layer of ``model`` on the batch ``x`` (eval mode, ``torch.no_grad``).

    Hooks read the clock before and after every leaf module call; the median over ``repeats``
    forward passes is kept per call.  Work done *between* modules (functional calls such as
    ``F.relu6`` or ``F.pad`` inside a ``forward``, residual additions) belongs to no layer: compare
    the sum with :func:`time_inference` to see it.  The hooks themselves cost a few microseconds.

    Returns:
        one :class:`LayerTime` per leaf module call, in the order they ran - the same order and
        names as :func:`profile_model`, so the two lists can be zipped.

    Taught in chapter 09.
    """
    import torch

    _check_repeats(repeats, warmup)
    current: list[tuple[str, str, float]] = []   # (name, kind, seconds) of each call in one pass
    starts: list[float] = []
    handles = []

    def before(module, inputs):
        starts.append(time.perf_counter())

    def after(name):
        def hook(module, inputs, output):
            current.append((name, _kind_of(module), time.perf_counter() - starts.pop()))
        return hook

    for name, module in model.named_modules():
        if not any(True for _ in module.children()):
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after(name)))
    was_training = model.training
    runs = []
    try:
        model.eval()
        with torch.no_grad():
            for i in range(warmup + repeats):
                current.clear()
                model(x)
                if i >= warmup:
                    runs.append(list(current))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    calls = [(name, kind) for name, kind, _ in runs[0]]
    medians = np.median(np.array([[t for *_, t in run] for run in runs]), axis=0) if calls else []
    return [LayerTime(name, kind, float(t)) for (name, kind), t in zip(calls, medians)]

"""Transfer learning with a real ImageNet network, in small steps (chapter 08).

Chapter 08 reuses EfficientNet-Lite0 (:mod:`utils.efficientnet`) for a task it never saw, in the
ways a practitioner would, each a function here:

=========================  ===============================================  ========================
set-up                     the pretrained network                           what learns
=========================  ===============================================  ========================
linear probe               frozen, run **once** per image (:func:`extract`)  a linear classifier on
                                                                            pooled features
                                                                            (:func:`linear_probe`)
fine-tuning                head first (backbone frozen), then the top        new head, then top
                           blocks unfrozen at a smaller learning rate        blocks + head
                           (:class:`TopBlocks`, :func:`fine_tune`)
=========================  ===============================================  ========================

Freezing correctly takes two steps: ``requires_grad=False`` stops the *weights* (:func:`freeze`),
but a BatchNorm layer in train mode still normalises with the statistics of the current batch
and overwrites its running statistics; :func:`freeze_batchnorm` keeps them (eval mode).

The controls and measurements around them: :func:`reestimate_batchnorm` (a random network with
its BatchNorm statistics re-measured, the fairer random-weight control), :func:`train_with_curve`
and :func:`steps_to_reach` (gradient steps to a validation accuracy, for a CNN from scratch and
a linear head on frozen features alike).

Generic helpers for any model with ``.features`` / ``.head`` (the SmallCNN of chapter 07):
:func:`freeze`, :func:`replace_head`.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- freezing, heads

def freeze(module: nn.Module) -> nn.Module:
    """Stop training ``module``'s weights: its parameters get no gradients (``requires_grad=False``).

    BatchNorm running statistics are *not* parameters: see :func:`freeze_batchnorm`.

    Used first in chapter 08.
    """
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def last_linear_name(head: nn.Module) -> str:
    """Name (as in ``head.named_modules()``) of the last ``nn.Linear`` in ``head``; ``""`` if head is one."""
    names = [name for name, m in head.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"the head has no nn.Linear layer to replace: {head}")
    return names[-1]


def replace_head(model: nn.Module, num_classes: int, seed: int = 0) -> nn.Linear:
    """Swap the classifier for a new random ``nn.Linear`` with ``num_classes`` outputs; returns it.

    The classifier is the last ``Linear`` of ``model.head`` (SmallCNN) or ``model._fc``
    (EfficientNet-Lite0: 1280 -> 1000).  The new layer reads the same features (same
    ``in_features``) and is trainable; its weights are drawn from ``seed``.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if hasattr(model, "head"):
        owner, name = model.head, last_linear_name(model.head)
        old = owner.get_submodule(name)
    elif isinstance(getattr(model, "_fc", None), nn.Linear):
        owner, name, old = model, "_fc", model._fc
    else:
        raise ValueError("the model has neither a .head nor an ._fc classifier to replace")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, int(num_classes))
    if owner is model:
        model._fc = new
    elif name:
        parent, _, child = name.rpartition(".")
        setattr(owner.get_submodule(parent), child, new)
    else:
        model.head = new
    return new


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer inside ``module``, in order.

    Used first in chapter 08.
    """
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Put every BatchNorm layer of ``module`` in eval mode: it normalises with its stored running
    statistics and no longer updates them.  Call it *after* ``model.train()`` (which switches them
    back to train mode).  The BatchNorm scale and shift stay trainable unless frozen separately.

    Used first in chapter 08.
    """
    for bn in batchnorm_layers(module):
        bn.eval()
    return module


def running_stats(module: nn.Module) -> torch.Tensor:
    """All BatchNorm running means and variances of ``module``, concatenated (a copy).

    Taught in chapter 08.
    """
    return torch.cat([torch.cat([bn.running_mean, bn.running_var]) for bn in batchnorm_layers(module)]).clone()


# ----------------------------------------------------------------------------- features

def network_input(patches: np.ndarray, size: int) -> torch.Tensor:
    """Gray (N, H, W) or colour (N, H, W, 3) images in [0, 1] -> (N, 3, size, size) network input,
    each through :func:`utils.efficientnet.imagenet_transform` (resize, centre crop, normalise).

    Used first in chapter 08.
    """
    from utils.efficientnet import imagenet_transform

    patches = np.asarray(patches)
    if patches.ndim not in (3, 4):
        raise ValueError(f"expected images (N, H, W) or (N, H, W, 3), got shape {patches.shape}")
    return torch.stack([imagenet_transform(p.astype(np.float32), size=size) for p in patches])


@torch.no_grad()
def extract(model: nn.Module, x: torch.Tensor, pooled=("head",), maps=(), batch_size: int = 64,
            channels_last: bool = False):
    """Run the (frozen) network once over ``x`` (N, 3, H, W) and keep what the chapter needs.

    Args:
        model: an EfficientNet-Lite0 (:func:`utils.efficientnet.efficientnet_lite0`); run in eval mode.
        pooled: layer names (``"stem"``, ``"block0"`` ... ``"block15"``, ``"head"``) whose feature
            maps are averaged over space: (N, C) NumPy arrays, the input of a linear probe.
        maps: layer names whose whole feature maps (N, C, H', W') are kept as tensors, e.g. the
            input of :class:`TopBlocks`.
        channels_last: run in the NHWC memory layout, about 1.5x faster on CPU (the depthwise
            convolutions); values agree with the default layout to float32 rounding (~1e-5).

    Returns:
        ``{name: array}`` for every name in ``pooled`` and ``maps`` (``maps`` entries are tensors).

    Taught in chapter 08.
    """
    was_training = model.training
    model.eval()
    # The model is switched back afterwards (same values); kept maps are returned as NCHW.
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    out = {name: [] for name in (*pooled, *maps)}
    try:
        for start in range(0, len(x), batch_size):
            layers = model.block_outputs(x[start:start + batch_size].contiguous(memory_format=layout))
            unknown = [n for n in out if n not in layers]
            if unknown:
                raise ValueError(f"unknown layer names {unknown}; choose from {list(layers)}")
            for name in pooled:
                out[name].append(layers[name].mean(dim=(2, 3)))
            for name in maps:
                out[name].append(layers[name].contiguous())
    finally:
        model.to(memory_format=torch.contiguous_format)
        model.train(was_training)
    return {name: (torch.cat(v).numpy() if name in pooled else torch.cat(v)) for name, v in out.items()}


def center_l2(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Centre features (N, C) on the mean of ``train`` and scale every row to unit length.

    Centring removes what all images share (pooled ReLU6 features are all positive, so raw
    vectors point in similar directions); unit length makes the probe's regularisation treat
    every image alike.  Returns ``[train, *others]`` transformed with the *training* mean.

    Used first in exercise set ex08.
    """
    mean = np.asarray(train).mean(axis=0)

    def transform(f):
        f = np.asarray(f, dtype=np.float64) - mean
        return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return [transform(train), *map(transform, others)]


def linear_probe(train, val, test, reference=None, Cs=None, seed: int = 0):
    """A linear probe: logistic regression on a network's (pooled) features, fitted exactly like
    every classical linear baseline of chapter 08 (:func:`utils.baselines.fit_tuned`): features
    standardised with ``reference`` (default the training features), ``C`` chosen on ``val``.

    ``train``, ``val``, ``test``: ``(features (N, C), labels (N,))``.  Returns a
    :class:`utils.baselines.Tuned` (test accuracy, chosen C, validation accuracy).

    Taught in chapter 08.
    """
    from utils.baselines import C_GRID, fit_tuned

    return fit_tuned("logistic", train, val, test, reference=reference, Cs=C_GRID if Cs is None else Cs,
                     seed=seed)


def reestimate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are re-measured on images ``x``
    (N, 3, H, W): reset, then one pass in train mode averaging every batch's statistics
    (``torch.optim.swa_utils.update_bn``).  Weights are unchanged; the copy is in eval mode.

    A randomly initialised network keeps running means 0 and variances 1, so in eval mode its
    BatchNorm layers normalise nothing; re-estimating them is the fairer random control.

    Used first in chapter 08.
    """
    from torch.optim.swa_utils import update_bn

    copied = copy.deepcopy(model)
    with torch.no_grad():
        update_bn([x[i:i + batch_size] for i in range(0, len(x), batch_size)], copied)
    return copied.eval()


def _flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip every image of x (N, C, H, W) left-right and/or up-down, each with probability 1/2."""
    flips = torch.rand(len(x), 2, generator=generator) < 0.5
    x = torch.where(flips[:, 0, None, None, None], x.flip(3), x)
    return torch.where(flips[:, 1, None, None, None], x.flip(2), x)


def train_with_curve(model: nn.Module, x: torch.Tensor, y, x_val: torch.Tensor, y_val, *, steps: int,
                     lr: float, batch_size: int = 32, every: int = 5, flips: bool = False,
                     seed: int = 0) -> np.ndarray:
    """Train ``model`` in place for ``steps`` Adam steps and record its validation accuracy.

    Each step draws ``min(batch_size, N)`` distinct training samples at random (seeded by
    ``seed``), optionally flipped (``flips=True``: images only, left-right and up-down, each with
    probability 1/2).  ``x`` may be images (N, C, H, W) or feature vectors (N, F): the same loop
    trains a CNN from scratch and a linear head on frozen features.

    Returns:
        the validation accuracy after steps ``every``, ``2 * every``, ... (``steps // every``
        values); the model is left in eval mode.

    Taught in chapter 08.
    """
    if steps < 1 or every < 1:
        raise ValueError(f"steps and every must be positive, got steps={steps}, every={every}")
    x, x_val = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(x_val, dtype=torch.float32)
    y_val = np.asarray(y_val)
    if flips and x.ndim != 4:
        raise ValueError(f"flips needs images (N, C, H, W), got shape {tuple(x.shape)}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    if x.ndim == 4:                # images: the channels-last layout makes CPU max pooling ~30 % faster
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, fused=True)
    batch_size = min(batch_size, len(x))

    def prepare(images: torch.Tensor) -> torch.Tensor:
        images = _flip(images, generator) if flips else images
        return images.contiguous(memory_format=torch.channels_last) if images.ndim == 4 else images

    curve = []
    for _ in range(steps // every):
        _steps(model, optimizer, x, y, every, batch_size, generator, "train", prepare)
        curve.append(accuracy(model, x_val, y_val))
    _steps(model, optimizer, x, y, steps % every, batch_size, generator, "train", prepare)
    return np.array(curve)


def steps_to_reach(curve, threshold: float, every: int = 5):
    """The first step at which a curve of :func:`train_with_curve` reaches ``threshold``; ``None``
    if it never does (a run that never gets there must be counted, not dropped).

    Taught in chapter 08.
    """
    reached = np.flatnonzero(np.asarray(curve) >= threshold)
    return int((reached[0] + 1) * every) if len(reached) else None


# ----------------------------------------------------------------------------- fine-tuning

class TopBlocks(nn.Module):
    """The top of an EfficientNet-Lite0 from block ``first`` on, with a new ``num_classes`` head.

    Input: the feature map *before* block ``first`` (what :func:`extract` keeps under
    ``maps=[f"block{first - 1}"]``); output: logits.  Everything below ``first`` is frozen by
    construction (it is not in this module), so its output can be computed once per image.
    The copied layers are frozen at first (:meth:`unfreeze` releases them); the head trains.

    Taught in chapter 08.
    """

    def __init__(self, model: nn.Module, first: int, num_classes: int, seed: int = 0):
        super().__init__()
        n_blocks = len(model._blocks)
        if not 1 <= first <= n_blocks:
            raise ValueError(f"first must be a block index in 1..{n_blocks}, got {first}")
        self.first = first
        self.blocks = copy.deepcopy(model._blocks[first:])
        self.conv_head, self.bn_head = copy.deepcopy(model._conv_head), copy.deepcopy(model._bn1)
        self.backbone = nn.ModuleList([self.blocks, self.conv_head, self.bn_head])
        freeze(self.backbone)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.fc = nn.Linear(self.conv_head.out_channels, num_classes)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return F.relu6(self.bn_head(self.conv_head(x))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x))

    def unfreeze(self) -> None:
        """Let the copied blocks and the head conv train too (BatchNorm scale/shift included)."""
        for p in self.backbone.parameters():
            p.requires_grad_(True)


def accuracy(model: nn.Module, x: torch.Tensor, y: np.ndarray, batch_size: int = 256) -> float:
    """Fraction of correct predictions of ``model`` (in eval mode) on inputs ``x``, labels ``y``.

    Used first in chapter 08.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return float((logits.argmax(1).numpy() == np.asarray(y)).mean())


def _steps(model, optimizer, x, y, steps, batch_size, generator, batchnorm, prepare=None):
    """``steps`` optimizer steps, each on ``batch_size`` distinct random samples of ``x`` (drawn
    with ``generator``), passed through ``prepare`` when given (augmentation, layout); BatchNorm
    layers in eval mode throughout when ``batchnorm == "frozen"``.  Leaves the model in eval mode."""
    y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    for _ in range(steps):
        model.train()
        if batchnorm == "frozen":
            freeze_batchnorm(model)
        idx = torch.randperm(len(x), generator=generator)[:batch_size]
        batch = x[idx] if prepare is None else prepare(x[idx])
        loss = F.cross_entropy(model(batch), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def fine_tune(model: TopBlocks, x: torch.Tensor, y: np.ndarray, *, head_steps: int = 40,
              head_lr: float = 1e-2, steps: int = 20, lr: float = 1e-3, backbone_lr: float = 1e-4,
              batch_size: int = 8, batchnorm: str = "frozen", seed: int = 0) -> TopBlocks:
    """The two-phase recipe, in place: train the head alone, then unfreeze the top blocks.

    1. ``head_steps`` Adam steps on the new head at ``head_lr`` (backbone frozen, BatchNorm
       frozen: a random head's large gradients would otherwise wreck the pretrained blocks);
    2. :meth:`TopBlocks.unfreeze`, then ``steps`` Adam steps on everything, the blocks at the
       smaller ``backbone_lr`` and the head at ``lr``.  (The defaults are common starting values,
       not tuned: chapter 08 does not tune them and says so.)

    ``batchnorm``: ``"frozen"`` keeps every BatchNorm in eval mode (running statistics kept, the
    usual choice with small batches); ``"train"`` leaves them in train mode during phase 2
    (batch statistics of ``batch_size`` images, running statistics overwritten): the trap the
    chapter demonstrates.  Each step draws ``batch_size`` random training images (seeded).

    Taught in chapter 08.
    """
    if batchnorm not in ("frozen", "train"):
        raise ValueError(f"batchnorm must be 'frozen' or 'train', got {batchnorm!r}")
    generator = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, len(x))
    # Phase 1: with the backbone frozen (weights and BatchNorm) its pooled output never changes,
    # so it is computed once and the head trained on it (the same numbers, a fraction of the time).
    with torch.no_grad():
        model.eval()
        pooled = model.pooled(x)
    # fused=True: one kernel per step for all weights (the same algorithm, faster on CPU)
    head = torch.optim.Adam(model.fc.parameters(), lr=head_lr, fused=True)
    _steps(model.fc, head, pooled, y, head_steps, batch_size, generator, "frozen")
    if steps:
        model.unfreeze()
        optimizer = torch.optim.Adam([{"params": model.backbone.parameters(), "lr": backbone_lr},
                                      {"params": model.fc.parameters(), "lr": lr}], fused=True)
        _steps(model, optimizer, x, y, steps, batch_size, generator, batchnorm)
    return model


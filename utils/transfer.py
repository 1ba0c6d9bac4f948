"""Transfer learning in a few small steps, for any model with ``.features`` (conv layers) and ``.head``.

The three ways to get a classifier for a new task that chapter 08 compares:

=====================  ===========================  ==================================================
strategy               convolutional ``features``   ``head`` (the classifier on top)
=====================  ===========================  ==================================================
``"scratch"``          random, trained              random, trained
``"feature extraction"``  pretrained, **frozen**    new, trained
``"fine-tuning"``      pretrained, trained slowly   new, trained at the full learning rate
=====================  ===========================  ==================================================

:func:`prepare` builds the model and its optimizer's parameter groups for a strategy; the other functions are the
single steps it is made of (freeze, new head, learning-rate groups, re-initialise).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

STRATEGIES = ("scratch", "feature extraction", "fine-tuning")


def freeze(module: nn.Module) -> nn.Module:
    """Stop training ``module``: its parameters get no gradients (and cost no optimizer work)."""
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
    """Swap the last ``Linear`` layer of ``model.head`` for a new random one with ``num_classes`` outputs.

    The new layer reads the same features (same ``in_features``); returns it.
    """
    name = last_linear_name(model.head)
    old = model.head.get_submodule(name)
    torch.manual_seed(seed)
    new = nn.Linear(old.in_features, num_classes)
    if name:
        parent, _, child = name.rpartition(".")
        setattr(model.head.get_submodule(parent), child, new)
    else:
        model.head = new
    return new


def reinitialize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every layer of ``model`` fresh random weights (PyTorch's default init), seeded."""
    torch.manual_seed(seed)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return model


def param_groups(model: nn.Module, lr: float, features_lr_scale: float = 0.1) -> list[dict]:
    """Optimizer parameter groups: ``model.features`` at ``lr * features_lr_scale``, the rest at ``lr``.

    A smaller learning rate for pretrained layers nudges the features instead of overwriting them.
    Frozen parameters (``requires_grad=False``) are left out; empty groups are dropped.
    """
    if lr <= 0 or features_lr_scale < 0:
        raise ValueError(f"lr={lr} must be positive and features_lr_scale={features_lr_scale} non-negative")
    feature_ids = {id(p) for p in model.features.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) in feature_ids], "lr": lr * features_lr_scale},
              {"params": [p for p in trainable if id(p) not in feature_ids], "lr": lr}]
    return [g for g in groups if g["params"]]


def prepare(pretrained: nn.Module, strategy: str, num_classes: int, lr: float = 3e-3,
            features_lr_scale: float = 0.1, seed: int = 0) -> tuple[nn.Module, list[dict]]:
    """A copy of ``pretrained`` set up for ``strategy`` (one of :data:`STRATEGIES`), and its parameter groups.

    The groups (see :func:`param_groups`) go to the optimizer, e.g.
    ``utils.models.train(model, data, lr=lr, param_groups=groups)`` or ``torch.optim.Adam(groups)``.
    ``pretrained`` itself is never modified.  ``seed`` fixes the new head (and, for ``"scratch"``,
    all weights), so that runs are repeatable.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    model = copy.deepcopy(pretrained)
    if strategy == "scratch":
        reinitialize(model, seed)
    if strategy == "feature extraction":
        freeze(model.features)
    replace_head(model, num_classes, seed)
    scale = features_lr_scale if strategy == "fine-tuning" else 1.0
    return model, param_groups(model, lr, scale)


@torch.no_grad()
def extract_features(model: nn.Module, X: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """What ``model.features`` makes of images ``X`` (N, C, H, W): an array (N, C', H', W').

    With frozen features this is all the convolutional layers ever compute for an image, so it
    can be done once and the head trained on the result (same numbers, a fraction of the time).
    """
    was_training = model.training
    model.eval()
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    out = torch.cat([model.features(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
    model.train(was_training)
    return out.numpy()


@dataclass
class RunResult:
    """One training run of the comparison.

    Attributes:
        strategy: one of :data:`STRATEGIES`.
        per_class: labelled training images per class (the label budget).
        seed: which images were labelled, the new head's initial weights, the batch order.
        test_accuracy: accuracy on the test split after training, in [0, 1].
        val_accuracy: accuracy on the validation data after each epoch.
        epoch_seconds: wall time of each epoch (feature extraction's one-off pass included in the first).
    """
    strategy: str
    per_class: int
    seed: int
    test_accuracy: float
    val_accuracy: list[float]
    epoch_seconds: list[float]


def epochs_to_reach(val_accuracy: list[float], target: float) -> int | None:
    """The first epoch (counting from 1) whose validation accuracy is ``>= target``; None if never."""
    return next((epoch for epoch, acc in enumerate(val_accuracy, start=1) if acc >= target), None)


def seconds_to_reach(run: RunResult, target: float) -> float | None:
    """Wall time from the start of training until the validation accuracy first reached ``target``."""
    epochs = epochs_to_reach(run.val_accuracy, target)
    return None if epochs is None else float(sum(run.epoch_seconds[:epochs]))


def run_strategy(pretrained: nn.Module, strategy: str, train_data, val_data, test_data, *,
                 epochs: int = 15, lr: float = 3e-3, features_lr_scale: float = 0.1,
                 steps_per_epoch: int = 4, seed: int = 0) -> RunResult:
    """Train one model for the digits with ``strategy`` and measure it.

    Args:
        pretrained: the source model (kept unchanged).
        train_data, val_data, test_data: ``(X, y)`` with X (N, C, H, W) float32 and y (N,) int.
        epochs, lr: the training recipe, the same for every strategy.
        steps_per_epoch: batch size = N / steps_per_epoch, so every label budget gets the same
            number of optimizer steps.
        seed: see :class:`RunResult`.

    "feature extraction" trains only the head, on features computed once by :func:`extract_features`.
    """
    from utils.models import evaluate, train

    n_classes = len(np.unique(train_data[1]))
    model, groups = prepare(pretrained, strategy, n_classes, lr, features_lr_scale, seed)
    batch_size = max(1, -(-len(train_data[1]) // steps_per_epoch))
    trainee, start = model, time.perf_counter()
    if strategy == "feature extraction":  # the head is all that learns: feed it stored features
        train_data = (extract_features(model, train_data[0]), train_data[1])
        val_data = (extract_features(model, val_data[0]), val_data[1])
        trainee, groups = model.head, None
    setup_seconds = time.perf_counter() - start
    history = train(trainee, train_data, val_data, epochs=epochs, lr=lr, batch_size=batch_size,
                    seed=seed, param_groups=groups, progress=False)
    seconds = [setup_seconds + history.epoch_seconds[0], *history.epoch_seconds[1:]]
    return RunResult(strategy, len(train_data[1]) // n_classes, seed, evaluate(model, *test_data).accuracy,
                     list(history.val_accuracy), seconds)

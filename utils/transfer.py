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

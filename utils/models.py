"""Part III: the small CNN of the course, its training loop, the pretrained checkpoint and
receptive fields.

API summary (chapters 07-09 use exactly this):

* ``SmallCNN(num_classes=10, widths=(16, 32, 64), in_channels=1, kernel_size=3)`` -- an
  ``nn.Module`` with ``.features`` (``nn.Sequential`` of conv -> ReLU -> 2x2 max-pool blocks)
  and ``.head`` (``Flatten`` -> ``Linear``); input (N, in_channels, 16, 16), output logits
  (N, num_classes).  ``model.feature_maps(x)`` returns the output of every layer of
  ``features`` (for figures).
* ``train(model, train_data, val_data=None, epochs=10, lr=3e-3, batch_size=64, seed=0,
  param_groups=None, progress=True) -> History`` -- Adam, cross-entropy, one tqdm bar;
  ``train_data``/``val_data`` are ``(X, y)`` NumPy arrays as returned by ``utils.data``.
  ``param_groups`` is passed to Adam as is (e.g. a smaller ``lr`` for ``model.features``);
  parameters with ``requires_grad=False`` are never updated.
* ``History``: lists per epoch ``train_loss``, ``train_accuracy``, ``val_loss``,
  ``val_accuracy``, ``epoch_seconds``; ``seconds`` the total wall time.
* ``evaluate(model, X, y) -> Evaluation(loss, accuracy)``; ``predict(model, X) -> labels``.
* ``load_pretrained()`` -- ``SmallCNN(num_classes=SOURCE_NUM_CLASSES)`` trained on the letters of
  ``utils.data.load_glyph_splits()``, from ``utils/assets/source_cnn.pt`` (SHA-256 checked);
  ``save_checkpoint(model, path)`` writes a ``state_dict``; a missing or corrupt file raises
  an error that says how to rebuild it (``python -m tools.train_source_checkpoint``).
* ``receptive_field(model_or_layers) -> list[ReceptiveField(layer, size, jump, start)]`` by the
  formula, one row per layer; ``empirical_receptive_field(layers, input_size)`` measures it
  from the gradient of one output unit with respect to the input (``.gradient``, ``.rows``,
  ``.cols``); ``input_gradient(layers, x, channel, position)`` is that gradient for any unit.
"""
from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from utils.efficientnet import classify, efficientnet_lite0, imagenet_categories, imagenet_transform, numpy_forward  # noqa: F401

# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


def conv_block(in_channels: int, out_channels: int, kernel_size: int = 3) -> list[nn.Module]:
    """conv ('same' padding, so only pooling shrinks the map) -> ReLU -> 2x2 max-pool.
    Maps (N, in_channels, H, W) to (N, out_channels, H // 2, W // 2).

    Used first in chapter 07.
    """
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.ReLU(),
            nn.MaxPool2d(2)]


class SmallCNN(nn.Module):
    """A small convolutional network: ``features`` (conv -> ReLU -> pool blocks) then ``head``.

    Args:
        num_classes: outputs of the head (10 for digits; ``SOURCE_NUM_CLASSES`` for the letters).
        widths: number of filters of each conv layer; one block per entry.
        in_channels: channels of the input images (1 for grayscale).
        kernel_size: odd size of every conv kernel.
        image_size: height = width of the inputs (16 in the course), which fixes the head's
            input size: widths[-1] * (image_size // 2 ** len(widths)) ** 2.

    Input (N, in_channels, image_size, image_size) float32, output logits (N, num_classes).

    Taught in chapter 07.
    """

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64),
                 in_channels: int = 1, kernel_size: int = 3, image_size: int = 16):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        final_size = image_size // 2 ** len(widths)
        if final_size < 1:
            raise ValueError(f"{len(widths)} pooling blocks shrink a {image_size}x{image_size} "
                             f"image below 1x1; use fewer widths or a larger image_size")
        channels = [in_channels, *widths]
        layers = [m for c_in, c_out in zip(channels, channels[1:])
                  for m in conv_block(c_in, c_out, kernel_size)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * final_size ** 2, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images -> (N, num_classes) logits."""
        return self.head(self.features(x))

    @torch.no_grad()
    def feature_maps(self, x: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        """The output of every layer of ``features`` for the batch ``x`` (N, C, H, W), as NumPy
        arrays (N, C_l, H_l, W_l) in layer order (conv, relu, pool, conv, ...)."""
        out = torch.as_tensor(x, dtype=torch.float32)
        maps = []
        for layer in self.features:
            out = layer(out)
            maps.append(out.numpy().copy())
        return maps


# --------------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class History:
    """What :func:`train` measured, one entry per epoch (validation lists stay empty without
    validation data).

    Used first in chapter 06.
    """
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Total wall time of the training (hardware dependent: never print it in a test)."""
        return float(sum(self.epoch_seconds))


class Evaluation(NamedTuple):
    """Loss and accuracy of a model on a dataset (:func:`evaluate`).  Used first in chapter 06."""
    loss: float      # mean cross-entropy
    accuracy: float  # fraction of correct predictions in [0, 1]


def _as_tensors(X: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) images and (N,) labels -> float32 and int64 tensors, checked."""
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {X.shape}")
    if y.shape != (len(X),):
        raise ValueError(f"expected labels of shape ({len(X)},) for images {X.shape}, got {y.shape}")
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


@torch.no_grad()
def _logits(model: nn.Module, X: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits (N, num_classes) of the model in eval mode, computed in batches."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
    model.train(was_training)
    return out


def evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray) -> Evaluation:
    """Mean cross-entropy and accuracy of ``model`` on images X (N, C, H, W) with labels y (N,).

    Used first in chapter 06.
    """
    X_t, y_t = _as_tensors(X, y)
    logits = _logits(model, X_t)
    loss = F.cross_entropy(logits, y_t).item()
    accuracy = (logits.argmax(1) == y_t).double().mean().item()
    return Evaluation(loss, accuracy)


def predict(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """Predicted class (N,) int64 for images X (N, C, H, W).

    Used first in chapter 07.
    """
    X_t = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    return _logits(model, X_t).argmax(1).numpy()


def _optimizer(model: nn.Module, lr: float, param_groups: list[dict] | None) -> torch.optim.Adam:
    if param_groups is None:
        param_groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    return torch.optim.Adam(param_groups, lr=lr)


def _train_one_epoch(model, optimizer, X, y, batch_size, generator, bar) -> tuple[float, float]:
    """One pass over (X, y) in a seeded random order; returns (mean loss, accuracy)."""
    model.train()
    order = torch.randperm(len(X), generator=generator)
    total_loss, correct = 0.0, 0
    for start in range(0, len(X), batch_size):
        idx = order[start:start + batch_size]
        logits = model(X[idx])
        loss = F.cross_entropy(logits, y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(idx)
        correct += (logits.argmax(1) == y[idx]).sum().item()
        bar.update(len(idx))
    return total_loss / len(X), correct / len(X)


def train(model: nn.Module, train_data: tuple[np.ndarray, np.ndarray],
          val_data: tuple[np.ndarray, np.ndarray] | None = None, epochs: int = 10,
          lr: float = 3e-3, batch_size: int = 64, seed: int = 0,
          param_groups: list[dict] | None = None, progress: bool = True) -> History:
    """Train ``model`` in place with Adam on the cross-entropy loss.

    Args:
        model: any ``nn.Module`` mapping (N, C, H, W) to (N, num_classes) logits.
        train_data: ``(X, y)``: float images (N, C, H, W) and int labels (N,).
        val_data: optional ``(X, y)`` evaluated after every epoch.
        epochs, lr, batch_size: the usual; ``lr`` is the default for every parameter group.
        seed: seeds the batch order (and torch's global RNG, for layers such as dropout):
            the same seed and starting weights give the same trained weights.
        param_groups: passed to ``torch.optim.Adam`` (e.g. ``[{"params":
            model.features.parameters(), "lr": 1e-4}, {"params": model.head.parameters()}]``);
            ``None`` means every parameter with ``requires_grad``.
        progress: show a tqdm bar (a widget in notebooks) counting the images of all epochs,
            with the epoch, loss and validation accuracy beside it.

    Returns:
        a :class:`History` with loss and accuracy per epoch and the wall time; the model is
        left in eval mode.

    Used first in chapter 06.
    """
    from tqdm.auto import tqdm
    X, y = _as_tensors(*train_data)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = _optimizer(model, lr, param_groups)
    history = History()
    # One bar for the whole run (a single widget in a notebook), counting images.
    with tqdm(total=epochs * len(X), desc="training", unit="img", disable=not progress) as bar:
        for epoch in range(epochs):
            start = time.perf_counter()
            loss, accuracy = _train_one_epoch(model, optimizer, X, y, batch_size, generator, bar)
            history.train_loss.append(loss)
            history.train_accuracy.append(accuracy)
            status = {"epoch": f"{epoch + 1}/{epochs}", "loss": f"{loss:.3f}"}
            if val_data is not None:
                val = evaluate(model, *val_data)
                history.val_loss.append(val.loss)
                history.val_accuracy.append(val.accuracy)
                status["val_acc"] = f"{val.accuracy:.3f}"
            bar.set_postfix(status)
            history.epoch_seconds.append(time.perf_counter() - start)
    model.eval()
    return history


# --------------------------------------------------------------------------------------------
# The pretrained checkpoint
# --------------------------------------------------------------------------------------------

CHECKPOINT_PATH = Path(__file__).parent / "assets" / "source_cnn.pt"
SOURCE_CHECKPOINT_SHA256 = "460f3721719a56647bb2bf9128bea76e0ee958a762064f26e6e0f8e8c8c0f4be"
"""SHA-256 of ``utils/assets/source_cnn.pt``, printed by ``python -m tools.train_source_checkpoint``."""

SOURCE_NUM_CLASSES = 26  # the letters A..Z of utils.data.GLYPH_CLASSES
REBUILD_HINT = ("rebuild it with `python -m tools.train_source_checkpoint` (about a minute) "
                "and record the SHA-256 it prints in utils/models.py")


def save_checkpoint(model: nn.Module, path: str | Path) -> str:
    """Write ``model.state_dict()`` to ``path``; returns the file's SHA-256 (hex).

    Course infrastructure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return sha256_of(path)


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes.

    Course infrastructure.
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_pretrained(path: str | Path | None = None,
                    expected_sha256: str | None = SOURCE_CHECKPOINT_SHA256) -> SmallCNN:
    """``SmallCNN(num_classes=SOURCE_NUM_CLASSES)`` with the weights trained on the generated letters.

    Args:
        path: the checkpoint; default ``utils/assets/source_cnn.pt``.
        expected_sha256: the file must have this SHA-256 (``None`` skips the check).

    Returns:
        the model in eval mode; swap ``model.head`` for a new task.

    Raises:
        FileNotFoundError / ValueError: the file is missing, or corrupt (checksum mismatch or
        unreadable); the message says how to rebuild it.
    """
    path = CHECKPOINT_PATH if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint {path.name} not found; {REBUILD_HINT}")
    if expected_sha256 is not None and sha256_of(path) != expected_sha256:
        raise ValueError(f"pretrained checkpoint {path.name} is corrupt (SHA-256 "
                         f"{sha256_of(path)[:12]}... expected {expected_sha256[:12]}...); {REBUILD_HINT}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = SmallCNN(num_classes=SOURCE_NUM_CLASSES)
        model.load_state_dict(state)
    except Exception as exc:  # any unpickling / shape error means the same thing to a learner
        # torch's own message suggests weights_only=False, which is unsafe advice: keep only its kind.
        raise ValueError(f"pretrained checkpoint {path.name} cannot be read as a SmallCNN state_dict "
                         f"({type(exc).__name__}); {REBUILD_HINT}") from exc
    return model.eval()


# --------------------------------------------------------------------------------------------
# Receptive fields
# --------------------------------------------------------------------------------------------


class ReceptiveField(NamedTuple):
    """One layer's row of the receptive-field table.

    Used first in chapter 07.
    """
    layer: str   # e.g. "Conv2d(k=3, s=1, p=1)"
    size: int    # receptive field (input pixels per side) of one unit of this layer's output
    jump: int    # distance in input pixels between neighbouring output units (product of strides)
    start: float  # input position (row or column) of the centre of output unit 0; unit i: start + i * jump


def _geometry(layer: nn.Module) -> tuple[int, int, int, int] | None:
    """(kernel, stride, padding, dilation) of a layer that looks at a window (rows; the course's
    layers are square); None for pointwise layers such as ReLU."""
    def first(v):
        return v[0] if isinstance(v, tuple) else v
    if isinstance(layer, nn.Conv2d):
        if isinstance(layer.padding, str):
            raise ValueError(f"{layer}: give padding as a number to compute its receptive field")
        return (first(layer.kernel_size), first(layer.stride), first(layer.padding),
                first(layer.dilation))
    if isinstance(layer, nn.MaxPool2d):
        return (first(layer.kernel_size), first(layer.stride), first(layer.padding),
                first(layer.dilation))
    if isinstance(layer, nn.AvgPool2d):
        return first(layer.kernel_size), first(layer.stride), first(layer.padding), 1
    return None


def _layers_of(model_or_layers) -> list[nn.Module]:
    """The window layers to walk: ``model.features`` if present, else the modules given."""
    features = getattr(model_or_layers, "features", model_or_layers)
    return list(features)


def receptive_field(model_or_layers) -> list[ReceptiveField]:
    """Receptive field of every layer by the formula (sizes along one side, square layers).

    For a layer with kernel k, stride s, padding p and dilation d (effective kernel
    k_eff = d(k - 1) + 1), seen after layers whose receptive field is r, jump j and start c:
    r' = r + (k_eff - 1) j,  j' = j s,  c' = c + ((k_eff - 1) / 2 - p) j.
    Pointwise layers (ReLU, ...) keep r, j and c.

    Args:
        model_or_layers: a model with ``.features`` (e.g. :class:`SmallCNN`), an
            ``nn.Sequential``, or a list of layers / ``(kernel, stride, dilation)`` tuples
            (tuples have no padding).

    Returns:
        one :class:`ReceptiveField` per layer, in order.

    Taught in chapter 07.
    """
    size, jump, start, rows = 1, 1, 0.0, []
    for layer in _layers_of(model_or_layers):
        if isinstance(layer, tuple):
            (k, s, d), p = layer, 0
            name = f"window(k={k}, s={s}, d={d})"
        else:
            geometry = _geometry(layer)
            k, s, p, d = geometry if geometry is not None else (1, 1, 0, 1)
            name = type(layer).__name__ + ("" if geometry is None else f"(k={k}, s={s}, p={p})")
        k_eff = d * (k - 1) + 1
        size, start, jump = size + (k_eff - 1) * jump, start + ((k_eff - 1) / 2 - p) * jump, jump * s
        rows.append(ReceptiveField(name, size, jump, start))
    return rows


def input_gradient(layers: nn.Module, x: torch.Tensor, channel: int = 0,
                   position: tuple[int, int] | None = None) -> np.ndarray:
    """Gradient of one output unit of ``layers`` with respect to the input image.

    Args:
        layers: maps (1, C, H, W) to (1, C', H', W').
        x: the input, shape (1, C, H, W).
        channel: which output channel.
        position: (row, col) of the unit in the output map; default its centre.

    Returns:
        |d unit / d x| summed over input channels, shape (H, W): non-zero only where the
        unit looks.

    Used first in chapter 07.
    """
    x = torch.as_tensor(x, dtype=torch.float32).clone().requires_grad_(True)
    out = layers(x)
    row, col = position if position is not None else (out.shape[2] // 2, out.shape[3] // 2)
    out[0, channel, row, col].backward()
    return x.grad[0].abs().sum(0).numpy()


class _WindowMean(nn.Module):
    """Mean over each (possibly dilated) window of every channel: a max-pool's geometry with a
    gradient for every pixel of the window.  (N, C, H, W) -> (N, C, H', W') as the max-pool."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pool
        k = p.kernel_size if isinstance(p.kernel_size, tuple) else (p.kernel_size,) * 2
        weight = x.new_ones(x.shape[1], 1, *k) / (k[0] * k[1])
        return F.conv2d(x, weight, stride=p.stride, padding=p.padding, dilation=p.dilation,
                        groups=x.shape[1])


def _probe_copy(layers: nn.Module) -> nn.Module:
    """A copy of ``layers`` in which every unit sees all of its window: conv weights 1, biases
    0 and max-pools replaced by window means (a max-pool passes gradient to one pixel only)."""
    probe = copy.deepcopy(nn.Sequential(*_layers_of(layers)))
    for i, layer in enumerate(probe):
        if isinstance(layer, nn.Conv2d):
            nn.init.ones_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.MaxPool2d):
            probe[i] = _WindowMean(layer)
    return probe


@dataclass
class EmpiricalReceptiveField:
    """The measured receptive field of a unit (:func:`empirical_receptive_field`).

    Used first in chapter 07.
    """
    gradient: np.ndarray  # (H, W) |d unit / d input|
    rows: int             # height of the non-zero region, in input pixels
    cols: int             # width of the non-zero region


def empirical_receptive_field(model_or_layers, input_size: int = 64,
                              in_channels: int | None = None) -> EmpiricalReceptiveField:
    """Measure the receptive field of the centre unit of the last layer from its input gradient.

    The layers are copied with all conv weights set to 1 and max-pools replaced by window
    means, and fed an image of ones, so every input pixel inside the receptive field gets a
    non-zero gradient (trained weights and max-pools would leave holes).  ``input_size`` must
    be large enough for the field not to be cut by the image border.

    Args:
        model_or_layers: as for :func:`receptive_field`.
        input_size: side of the square probe image.
        in_channels: channels of the probe; default that of the first conv layer (1 if none).

    Returns:
        an :class:`EmpiricalReceptiveField` with the (input_size, input_size) gradient map
        and the size of its non-zero bounding box.

    Taught in chapter 07.
    """
    probe = _probe_copy(model_or_layers)
    if in_channels is None:
        # Pooling-only stacks work on any number of channels: one is enough.
        in_channels = next((m.in_channels for m in probe if isinstance(m, nn.Conv2d)), 1)
    gradient = input_gradient(probe, torch.ones(1, in_channels, input_size, input_size))
    rows, cols = np.flatnonzero(gradient.max(1) > 0), np.flatnonzero(gradient.max(0) > 0)
    return EmpiricalReceptiveField(gradient, int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))

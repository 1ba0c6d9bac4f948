"""Live training (chapter 07): the small CNN trains while its loss, validation accuracy and first-layer
filters update on screen, with train / pause / resume / reset buttons.

Two layers, as for the other explorers:

* :class:`Trainer`, a pure step-by-step version of :func:`utils.models.train` (no widgets, no threads):
  ``step()`` trains one batch, ``pause()`` makes ``step()`` a no-op until ``resume()``, ``state`` holds the
  counters and every loss.  For the same seed, data and starting weights it takes exactly the steps of
  ``train`` (same batch order, same Adam updates), so its epoch losses equal ``train``'s History.
* :class:`LiveTraining`, the widget: it runs ``Trainer.step()`` in a **background thread** and redraws at
  most :data:`REDRAWS_PER_SECOND` times per second, plus at the end of every epoch and when paused (a
  small matplotlib figure as PNG, the filters as palette PNGs of :mod:`utils.widgets.render`).

Why a thread: a cell that loops keeps the kernel from handling button clicks, so training must run
outside the cell.  An asyncio task on the kernel's event loop, yielding between batches, also worked
with ipykernel 7.4 when tried (a probe kernel, a click sent as a comm message), but whether such tasks
keep running after their cell ends has changed between ipykernel releases (ipykernel issue #1510 reports
7.x releases where they only resume when the next cell runs), and every batch blocks the loop while
torch computes.  A thread does not depend on how the kernel schedules tasks: the kernel's main thread
stays idle and handles clicks at once (torch releases the GIL while it computes), the buttons only set
flags, and only the training thread touches the model and draws.  That widget updates sent from the
thread reach the page is checked in a browser by ``tests/test_browser_training.py`` (ipykernel 7.4,
ipywidgets 8.1).
"""
from __future__ import annotations

import html
import io
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable

import ipywidgets as widgets
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from utils.models import History, SmallCNN, _as_tensors, _optimizer, evaluate
from utils.widgets.base import Explorer
from utils.widgets.render import colour_scale_html, show_picture, to_indices

REDRAWS_PER_SECOND = 3     # the widget redraws at most this often while training (and once per pause/epoch end)
FILTER_SCALE = 14          # screen pixels per filter weight (a 3x3 filter is drawn 42x42)
SMOOTHING = 10             # the smoothed loss is the mean of the last SMOOTHING batches

Data = tuple[np.ndarray, np.ndarray]


# ------------------------------------------------------------------------------------ pure core

@dataclass
class TrainerState:
    """Where a :class:`Trainer` is.  Counters: ``epoch`` (epochs completed), ``batch`` (batches done in
    the current epoch), ``step`` (batches done in all), ``samples`` (images seen); ``batch_losses`` one
    cross-entropy per step; ``history`` a :class:`utils.models.History` (one entry per completed epoch);
    ``seconds`` the time spent in steps (for images/s; hardware dependent).  Used first in chapter 07."""
    epochs: int
    batches_per_epoch: int
    epoch: int = 0
    batch: int = 0
    step: int = 0
    samples: int = 0
    paused: bool = False
    batch_losses: list[float] = field(default_factory=list)
    history: History = field(default_factory=History)
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        """All epochs trained.  Used first in chapter 07."""
        return self.epoch >= self.epochs


def seeded_small_cnn(num_classes: int = 10, seed: int = 0) -> SmallCNN:
    """``SmallCNN(num_classes)`` with the weights that ``torch.manual_seed(seed); SmallCNN(num_classes)``
    gives, without changing torch's global random state.  Used first in chapter 07."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(num_classes=num_classes)


class Trainer:
    """:func:`utils.models.train` one batch at a time: Adam on the cross-entropy, batches in the order of
    ``torch.randperm`` with a generator seeded by ``seed``, validation after every epoch.

    Args:
        train_data, val_data: ``(X, y)`` with X (N, C, H, W) float images and y (N,) int labels
            (``val_data`` may be None: no validation).
        model: the network to train in place; default :func:`seeded_small_cnn` with as many classes
            as the labels and the same ``seed``.
        epochs, lr, batch_size, seed: as for ``train``.
        on_step, on_epoch: called with the :class:`TrainerState` after every step / completed epoch.

    Unlike ``train``, it does not reseed torch's global generator (a notebook's other cells keep theirs):
    the same for models that draw no random numbers while training, such as ``SmallCNN``.
    Used first in chapter 07.
    """

    def __init__(self, train_data: Data, val_data: Data | None = None, model: nn.Module | None = None,
                 epochs: int = 15, lr: float = 3e-3, batch_size: int = 64, seed: int = 0,
                 on_step: Callable[[TrainerState], None] | None = None,
                 on_epoch: Callable[[TrainerState], None] | None = None):
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be at least 1, got {epochs} and {batch_size}")
        self.X, self.y = _as_tensors(*train_data)
        if len(self.X) == 0:
            raise ValueError("train_data holds no images")
        self.val_data = val_data
        self.model = model if model is not None else seeded_small_cnn(int(self.y.max()) + 1, seed)
        self.batch_size, self.seed = batch_size, seed
        self.optimizer = _optimizer(self.model, lr, None)
        self.generator = torch.Generator().manual_seed(seed)
        self.on_step, self.on_epoch = on_step, on_epoch
        self.state = TrainerState(epochs, -(-len(self.X) // batch_size))
        self._order: torch.Tensor | None = None
        self._epoch_loss, self._epoch_correct, self._epoch_start = 0.0, 0, 0.0

    def pause(self) -> None:
        """Make :meth:`step` do nothing until :meth:`resume`.  Taught in chapter 07."""
        self.state.paused = True

    def resume(self) -> None:
        """Let :meth:`step` train again, from exactly where it stopped.  Taught in chapter 07."""
        self.state.paused = False

    def step(self) -> float | None:
        """Train one batch and return its loss; None (and nothing changes) when paused or done.
        Taught in chapter 07."""
        state = self.state
        if state.paused or state.done:
            return None
        started = time.perf_counter()
        if state.batch == 0:            # a new epoch: new order, as utils.models._train_one_epoch
            self.model.train()
            self._order = torch.randperm(len(self.X), generator=self.generator)
            self._epoch_loss, self._epoch_correct, self._epoch_start = 0.0, 0, started
        idx = self._order[state.batch * self.batch_size:(state.batch + 1) * self.batch_size]
        logits = self.model(self.X[idx])
        loss = F.cross_entropy(logits, self.y[idx])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        value = loss.item()
        self._epoch_loss += value * len(idx)
        self._epoch_correct += (logits.argmax(1) == self.y[idx]).sum().item()
        state.batch_losses.append(value)
        state.batch, state.step, state.samples = state.batch + 1, state.step + 1, state.samples + len(idx)
        epoch_ended = state.batch == state.batches_per_epoch
        if epoch_ended:
            self._end_epoch()
        state.seconds += time.perf_counter() - started
        if self.on_step:
            self.on_step(state)
        if epoch_ended and self.on_epoch:
            self.on_epoch(state)
        return value

    def _end_epoch(self) -> None:
        state, history = self.state, self.state.history
        history.train_loss.append(self._epoch_loss / len(self.X))
        history.train_accuracy.append(self._epoch_correct / len(self.X))
        if self.val_data is not None:
            val = evaluate(self.model, *self.val_data)
            history.val_loss.append(val.loss)
            history.val_accuracy.append(val.accuracy)
        history.epoch_seconds.append(time.perf_counter() - self._epoch_start)
        state.epoch, state.batch = state.epoch + 1, 0
        if state.done:
            self.model.eval()           # as train() leaves it

    def run(self, max_steps: int | None = None) -> TrainerState:
        """Step until done, paused (e.g. by a callback) or ``max_steps`` steps.  Taught in chapter 07."""
        count = 0
        while (max_steps is None or count < max_steps) and self.step() is not None:
            count += 1
        return self.state


def first_layer_filters(model: nn.Module) -> np.ndarray:
    """The weights of the model's first ``nn.Conv2d`` as a copy (C_out, k, k) (input channel 0): the
    filters the live view draws.  Used first in chapter 07."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer: no filters to show")
    return conv.weight.detach()[:, 0].numpy().copy()


def smoothed(losses: list[float] | np.ndarray, window: int = SMOOTHING) -> np.ndarray:
    """Trailing mean of the last ``window`` values (fewer at the start), same length as ``losses``.
    Used first in chapter 07."""
    values = np.asarray(losses, dtype=float)
    if values.size == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def status_text(state: TrainerState) -> str:
    """One line: epoch, batch, images seen, images per second, last validation accuracy, and whether
    it is paused or done.  Used first in chapter 07."""
    if state.batch == 0 and state.step > 0:      # an epoch has just ended: show it complete
        epoch, batch = state.epoch, state.batches_per_epoch
    else:
        epoch, batch = state.epoch + 1, state.batch
    parts = [f"epoch {epoch}/{state.epochs}", f"batch {batch}/{state.batches_per_epoch}",
             f"step {state.step}", f"{state.samples:,} images"]
    if state.seconds > 0:
        parts.append(f"{state.samples / state.seconds:,.0f} images/s")
    if state.history.val_accuracy:
        parts.append(f"validation accuracy {state.history.val_accuracy[-1]:.3f}")
    if state.done:
        parts.append("done")
    elif state.paused and state.step > 0:
        parts.append("paused")
    elif state.step == 0:
        parts.append("not started: click train")
    return " · ".join(parts)


def filter_pictures(filters: np.ndarray) -> tuple[list[np.ndarray], float]:
    """(C, k, k) filters -> one (k, k) palette-index picture each, on one diverging colour scale (red
    positive, blue negative, white 0) whose limit is the largest |weight|, and that limit.
    Used first in chapter 07."""
    limit = float(np.abs(filters).max()) or 1.0
    return [to_indices(f, signed=True, limit=limit) for f in filters], limit


def filter_grid(views: list[widgets.Image]) -> widgets.GridBox:
    """Filter pictures in rows of 8.  Used first in chapter 07."""
    return widgets.GridBox(views, layout=widgets.Layout(grid_template_columns=f"repeat(8, {3 * FILTER_SCALE}px)",
                                                        grid_gap="6px"))


class TrainingPlot:
    """A small matplotlib figure (Agg, no pyplot: safe in a thread) of the loss per batch, its
    smoothed curve and the validation accuracy per epoch, redrawn to PNG bytes.  Used first in chapter 07."""

    def __init__(self, width: float = 6.0, height: float = 2.7, dpi: int = 80):
        self.figure = Figure(figsize=(width, height), dpi=dpi)
        FigureCanvasAgg(self.figure)
        self.loss_axes = self.figure.add_subplot()
        self.accuracy_axes = self.loss_axes.twinx()
        ax, acc = self.loss_axes, self.accuracy_axes
        (self.raw,) = ax.plot([], [], color="C0", alpha=0.3, linewidth=0.8, label="loss per batch")
        (self.smooth,) = ax.plot([], [], color="C0", linewidth=1.8, label=f"loss, mean of {SMOOTHING} batches")
        (self.accuracy,) = acc.plot([], [], "s-", color="C1", markersize=4, label="validation accuracy")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss", color="C0")
        acc.set_ylabel("validation accuracy", color="C1")
        acc.set_ylim(0, 1.02)
        handles = [self.raw, self.smooth, self.accuracy]
        ax.legend(handles, [h.get_label() for h in handles], loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  ncol=3, fontsize=8, frameon=False)
        self.figure.subplots_adjust(left=0.1, right=0.88, bottom=0.17, top=0.89)
        self.pixels = (round(width * dpi), round(height * dpi))    # (width, height) of the PNG
        self._empty: dict[int, bytes] = {}

    def png(self, state: TrainerState) -> bytes:
        """The figure for ``state`` as PNG bytes (about 480x216 pixels).  Used first in chapter 07.

        The empty plot of an untrained network is kept per epoch count: a reset (seed or epochs
        changed) then redraws in a few ms instead of a full matplotlib render (~60 ms)."""
        empty = not state.batch_losses and not state.history.val_accuracy
        if empty and state.epochs in self._empty:
            return self._empty[state.epochs]
        losses = np.asarray(state.batch_losses)
        x = np.arange(1, losses.size + 1) / state.batches_per_epoch
        self.raw.set_data(x, losses)
        self.smooth.set_data(x, smoothed(losses))
        accuracy = state.history.val_accuracy
        self.accuracy.set_data(np.arange(1, len(accuracy) + 1), accuracy)
        self.loss_axes.set_xlim(0, state.epochs)
        self.loss_axes.set_ylim(0, max(2.5, float(losses.max()) * 1.05 if losses.size else 0.0))
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})  # fast beats small
        if empty:
            self._empty[state.epochs] = buffer.getvalue()
        return buffer.getvalue()


# ------------------------------------------------------------------------------------ the widget

_LIVE: "weakref.WeakSet[LiveTraining]" = weakref.WeakSet()   # widgets that have trained in this kernel


class LiveTraining(Explorer):
    """Train the small CNN live: loss and validation accuracy, first-layer filters, train/pause/reset.

    Build it with :func:`live_training`.  The buttons call :meth:`start`, :meth:`pause` and :meth:`reset`;
    changing the seed or the epochs resets.  Used first in chapter 07.
    """

    def __init__(self, train_data: Data, val_data: Data | None = None, epochs: int = 15, seed: int = 0,
                 lr: float = 3e-3, batch_size: int = 64):
        super().__init__()
        self._data, self._lr, self._batch_size = (train_data, val_data), lr, batch_size
        self._thread: threading.Thread | None = None
        self._go, self._stop = threading.Event(), False
        self._plot = TrainingPlot()
        with self.frozen():
            self.train_button = widgets.Button(description="train", icon="play", button_style="success",
                                               tooltip="start or resume training")
            self.pause_button = widgets.Button(description="pause", icon="pause", disabled=True)
            self.reset_button = widgets.Button(description="reset", icon="undo",
                                               tooltip="back to the untrained network of this seed")
            box, label = widgets.Layout(width="10em"), {"description_width": "initial"}
            self.seed = widgets.BoundedIntText(value=seed, min=0, max=10_000, description="seed", layout=box,
                                               style=label)
            self.epochs = widgets.BoundedIntText(value=epochs, min=1, max=200, description="epochs", layout=box,
                                                 style=label)
            self.status_view = widgets.HTML()
            width, height = self._plot.pixels
            self.plot_view = widgets.Image(format="png", layout=widgets.Layout(
                width=f"{width}px", height=f"{height}px", min_width=f"{width}px"))
            self.filter_views, self.change_views = [], []
            self.scale_view, self.change_scale_view = widgets.HTML(), widgets.HTML()
            controls = widgets.HBox([self.train_button, self.pause_button, self.reset_button,
                                     self.seed, self.epochs])
            self._reset_trainer()
            count = len(self._start_filters)
            self.filter_views = [widgets.Image(format="png") for _ in range(count)]
            self.change_views = [widgets.Image(format="png") for _ in range(count)]
            filters = widgets.VBox([
                widgets.HTML("<b>first-layer filters now</b> (the weights of <code>model.features[0]</code>, "
                             "filters 0-7 then 8-15)"),
                filter_grid(self.filter_views), self.scale_view,
                widgets.HTML("<b>change since the start</b> (now − untrained weights)"),
                filter_grid(self.change_views), self.change_scale_view],
                layout=widgets.Layout(margin="0 0 0 1em"))
            self.children = [controls, self.status_view,
                             widgets.HBox([self.plot_view, filters], layout=widgets.Layout(align_items="flex-start"))]
        self.add_class("convcourse-live-training")
        self.status_view.add_class("convcourse-training-status")
        self.train_button.on_click(lambda _: self.start())
        self.pause_button.on_click(lambda _: self.pause())
        self.reset_button.on_click(lambda _: self.reset())
        for control in (self.seed, self.epochs):
            control.observe(lambda _change: self.reset(), names="value")
        self.update()

    # -- actions (the buttons call these; safe to call from code too)

    def start(self) -> None:
        """Start training, or resume it after a pause (no-op when done).  Taught in chapter 07.

        Pauses every other live training of this kernel first: re-running the cell leaves the old
        widget's thread alive (clearing an output does not close its widget), and two trainings
        would share the cores."""
        if self.trainer.state.done:
            return
        for other in list(_LIVE):
            if other is not self and other._go.is_set():
                other.pause()
        _LIVE.add(self)
        self.trainer.resume()
        self.train_button.disabled, self.pause_button.disabled = True, False
        self._go.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, args=(torch.get_num_threads(),),
                                            name="live-training", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        """Stop after the current batch; ``start()`` continues from there.  Taught in chapter 07."""
        self.trainer.pause()
        self._go.clear()
        self.pause_button.disabled, self.train_button.disabled = True, False
        self.train_button.description = "resume"

    def reset(self) -> None:
        """Stop the thread and go back to the untrained network of the chosen seed.  Taught in chapter 07."""
        self._halt()
        self._reset_trainer()
        self.train_button.description, self.train_button.disabled = "train", False
        self.pause_button.disabled = True
        self.update()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the training thread has ended (done or reset); True if it has.  Used first in chapter 07."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def close(self) -> None:
        """Stop the training thread, then close the widgets.  Used first in chapter 07."""
        self._halt()
        super().close()

    # -- inside

    def _reset_trainer(self) -> None:
        self.trainer = Trainer(*self._data, epochs=self.epochs.value, lr=self._lr, batch_size=self._batch_size,
                               seed=self.seed.value)
        self._start_filters = first_layer_filters(self.trainer.model)

    def _halt(self) -> None:
        self._stop = True
        self._go.set()
        self.wait(timeout=30)
        self._thread, self._stop = None, False
        self._go.clear()

    def _work(self, threads: int) -> None:
        torch.set_num_threads(threads)   # the notebook's setting, in case this torch build keeps it per thread
        state, last_draw = self.trainer.state, 0.0
        while True:
            if not self._go.is_set():   # paused: draw the settled state (a click may have landed mid-draw)
                self.update()
                self._go.wait()
            if self._stop:
                return
            loss = self.trainer.step()
            now = time.perf_counter()
            if state.done or state.batch == 0 or now - last_draw >= 1 / REDRAWS_PER_SECOND:
                self.update()
                last_draw = now
            if state.done:
                self.train_button.disabled = self.pause_button.disabled = True
                return
            if loss is None:            # pause() set the flag before clearing the event: let it finish
                time.sleep(0.01)

    def update(self) -> None:
        """Redraw status, plot and filters from the trainer's state (called by the training thread).
        Used first in chapter 07."""
        state = self.trainer.state
        self.plot_view.value = self._plot.png(state)
        filters = first_layer_filters(self.trainer.model)
        for views, scale, values in ((self.filter_views, self.scale_view, filters),
                                     (self.change_views, self.change_scale_view, filters - self._start_filters)):
            pictures, limit = filter_pictures(values)
            for view, picture in zip(views, pictures):
                show_picture(view, picture, True, FILTER_SCALE)
            scale.value = colour_scale_html(limit, True).replace(f"; beyond ±{limit:.3g} saturated", "")
        # the status last: once the page says "paused" (or "done"), the plot and filters it shows are
        # already those of that state (a click can land mid-draw; the settling redraw then changes nothing)
        self.status_view.value = f"<span style='font-family:monospace'>{html.escape(status_text(state))}</span>"


def live_training(train_data: Data | None = None, val_data: Data | None = None, epochs: int = 15,
                  seed: int = 0, lr: float = 3e-3, batch_size: int = 64) -> LiveTraining:
    """The live-training widget: ``SmallCNN`` (weights of ``torch.manual_seed(seed); SmallCNN()``) trained
    with the settings of :func:`utils.models.train` on ``train_data``, validated on ``val_data``.

    Defaults: the digits of ``utils.data.load_digits_splits()`` (train and validation), 15 epochs, seed 0,
    as chapter 07's recorded training.  Nothing trains until the learner clicks "train".
    Returns the widget, an ``ipywidgets.VBox``.  Taught in chapter 07.
    """
    if train_data is None:
        from utils.data import load_digits_splits
        splits = load_digits_splits()
        train_data, val_data = splits.train, splits.val if val_data is None else val_data
    return LiveTraining(train_data, val_data, epochs, seed, lr, batch_size)

"""Live training without a browser: the Trainer takes exactly train()'s steps, pause stops them, resume
continues from the same state, the widget shows the model's first-layer weights and its thread pauses."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from utils.data import load_digits_splits
from utils.models import SmallCNN, train
from utils.widgets import EXPLORERS, live_training
from utils.widgets.render import png_bytes, to_indices
from utils.widgets.training import (FILTER_SCALE, Trainer, first_layer_filters, seeded_small_cnn, smoothed,
                                    status_text)

DEADLINE_S = 60   # generous: only guards against a hung thread, never a speed claim


@pytest.fixture(scope="module")
def small():
    """A few digits, so that an epoch takes a moment: (train, val) with 200 and 60 images."""
    splits = load_digits_splits()
    (X, y), (Xv, yv) = splits.train, splits.val
    return (X[:200], y[:200]), (Xv[:60], yv[:60])


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("seed, batch_size", [(0, 64), (3, 48)])
def test_trainer_takes_the_same_steps_as_train(small, seed, batch_size):
    torch.manual_seed(seed)                       # as the chapter: seed, build, train
    reference = SmallCNN()
    history = train(reference, *small, epochs=2, batch_size=batch_size, seed=seed, progress=False)
    trainer = Trainer(*small, epochs=2, batch_size=batch_size, seed=seed)
    trainer.run()
    got = trainer.state.history
    assert got.train_loss == history.train_loss and got.train_accuracy == history.train_accuracy
    assert got.val_loss == history.val_loss and got.val_accuracy == history.val_accuracy
    for (name, a), b in zip(reference.state_dict().items(), trainer.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert trainer.state.done and not trainer.model.training     # train() leaves the model in eval mode
    batches = -(-200 // batch_size)
    assert trainer.state.step == 2 * batches == len(trainer.state.batch_losses)
    assert trainer.state.samples == 400
    # the epoch loss is the size-weighted mean of that epoch's batch losses
    sizes = [min(batch_size, 200 - i * batch_size) for i in range(batches)]
    assert np.isclose(np.dot(trainer.state.batch_losses[:batches], sizes) / 200, history.train_loss[0])


def test_pause_stops_steps_and_resume_continues_from_the_same_state(small):
    straight = Trainer(*small, epochs=2)
    straight.run()
    paused = Trainer(*small, epochs=2)
    paused.run(max_steps=5)
    paused.pause()
    weights = [p.detach().clone() for p in paused.model.parameters()]
    assert all(paused.step() is None for _ in range(3))
    assert paused.state.step == 5 and len(paused.state.batch_losses) == 5
    assert all(torch.equal(a, b) for a, b in zip(weights, paused.model.parameters()))
    assert status_text(paused.state).endswith("paused")
    paused.resume()
    paused.run()
    assert paused.state.batch_losses == straight.state.batch_losses
    assert paused.state.history.val_accuracy == straight.state.history.val_accuracy


def test_a_callback_can_pause_and_sees_every_step_and_epoch(small):
    steps, epochs = [], []

    def on_step(state):
        steps.append(state.step)
        if state.step == 7:
            state.paused = True

    trainer = Trainer(*small, epochs=3, on_step=on_step, on_epoch=lambda s: epochs.append(s.epoch))
    assert trainer.run().step == 7 and steps == list(range(1, 8))
    trainer.resume()
    trainer.run()
    assert steps == list(range(1, 13)) and epochs == [1, 2, 3]
    assert trainer.step() is None                 # done: nothing more to do


def test_status_text_names_epoch_batch_and_state(small):
    trainer = Trainer(*small, epochs=2)
    assert status_text(trainer.state) == "epoch 1/2 · batch 0/4 · step 0 · 0 images · not started: click train"
    trainer.run(max_steps=2)
    assert status_text(trainer.state).startswith("epoch 1/2 · batch 2/4 · step 2 · 128 images · ")
    trainer.run(max_steps=2)                      # end of epoch 1: shown complete, with its accuracy
    text = status_text(trainer.state)
    assert text.startswith("epoch 1/2 · batch 4/4 · step 4 · 200 images · ")
    assert f"validation accuracy {trainer.state.history.val_accuracy[0]:.3f}" in text
    trainer.run()
    assert status_text(trainer.state).endswith(" · done")


def test_seeded_model_matches_the_chapter_and_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    chapter = SmallCNN()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    ours = seeded_small_cnn(10, seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a, b) for a, b in zip(chapter.parameters(), ours.parameters()))


def test_smoothed_is_the_trailing_mean():
    values = np.random.default_rng(0).random(25)
    expected = [values[max(0, i - 9):i + 1].mean() for i in range(25)]
    np.testing.assert_allclose(smoothed(values, 10), expected)
    assert smoothed([], 10).size == 0


def test_bad_input_gets_a_clear_error(small):
    with pytest.raises(ValueError, match="epochs"):
        Trainer(*small, epochs=0)
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        first_layer_filters(nn.Sequential(nn.Flatten(), nn.Linear(256, 10)))
    with pytest.raises(ValueError, match="shape"):
        Trainer((small[0][0][:, 0], small[0][1]))


def test_widget_shows_the_first_layer_weights(small):
    widget = live_training(*small, epochs=2)
    try:
        start = first_layer_filters(widget.trainer.model)
        torch.manual_seed(0)
        np.testing.assert_array_equal(start, SmallCNN().features[0].weight.detach()[:, 0].numpy())
        widget.trainer.run(max_steps=3)
        widget.update()
        weights = widget.trainer.model.features[0].weight.detach()[:, 0].numpy()
        assert not np.array_equal(weights, start)
        limit = np.abs(weights).max()
        assert len(widget.filter_views) == 16
        for view, w in zip(widget.filter_views, weights):
            assert view.value == png_bytes(to_indices(w, signed=True, limit=limit), True, FILTER_SCALE)
        change = weights - start
        for view, d in zip(widget.change_views, change):
            assert view.value == png_bytes(to_indices(d, signed=True, limit=np.abs(change).max()), True, FILTER_SCALE)
        assert "step 3 " in widget.status_view.value
        widget.reset()                              # back to the seed's untrained weights
        np.testing.assert_array_equal(first_layer_filters(widget.trainer.model), start)
        assert "step 0 " in widget.status_view.value
        white = png_bytes(to_indices(np.zeros((3, 3)), signed=True, limit=1.0), True, FILTER_SCALE)
        assert all(view.value == white for view in widget.change_views)      # no change yet
        widget.seed.value = 1                       # another seed: another start
        assert not np.array_equal(first_layer_filters(widget.trainer.model), start)
    finally:
        widget.close()


def test_widget_trains_in_a_thread_pauses_and_resumes_to_the_same_result(small):
    straight = Trainer(*small, epochs=3)
    straight.run()
    widget = live_training(*small, epochs=3)
    try:
        assert widget.trainer.state.step == 0 and widget.pause_button.disabled   # nothing runs until train
        # pause at a known step, as the pause button does but without racing the thread (the browser
        # test clicks the real button)
        widget.trainer.on_step = lambda state: widget.pause() if state.step == 3 else None
        widget.start()
        wait_for(lambda: "paused" in widget.status_view.value, "the paused status")
        frozen = (widget.trainer.state.step, widget.status_view.value)
        time.sleep(0.5)
        assert (widget.trainer.state.step, widget.status_view.value) == frozen and frozen[0] == 3
        assert widget.train_button.description == "resume" and not widget.train_button.disabled
        widget.start()
        assert widget.wait(DEADLINE_S)
        assert widget.trainer.state.done and "done" in widget.status_view.value
        assert widget.trainer.state.batch_losses == straight.state.batch_losses
        assert widget.trainer.state.history.val_accuracy == straight.state.history.val_accuracy
        assert widget.train_button.disabled and widget.pause_button.disabled
    finally:
        widget.close()


def test_a_pause_during_a_redraw_still_shows_paused(small):
    """A click that lands while the thread draws must not leave the old status on screen."""
    widget = live_training(*small, epochs=3)
    draw = widget.update

    def draw_then_click():
        draw()
        if widget.trainer.state.step == 1 and not widget.trainer.state.paused:
            widget.pause()                          # just after the thread drew step 1 (its first draw)

    widget.update = draw_then_click
    try:
        widget.start()
        wait_for(lambda: "paused" in widget.status_view.value, "the paused status")
        assert widget.trainer.state.step == 1 and "step 1 " in widget.status_view.value
    finally:
        widget.close()


def test_the_status_is_drawn_after_the_plot_and_filters(small):
    """The page must never say "paused" beside the plot of an earlier step (a CI run once saw the plot
    change after the status said paused): every other view is sent before the status."""
    widget = live_training(*small, epochs=3)
    try:
        widget.trainer.run(max_steps=2)
        order = []
        views = [widget.plot_view, widget.scale_view, widget.change_scale_view,
                 *widget.filter_views, *widget.change_views]
        for view in [*views, widget.status_view]:
            view.observe(lambda change: order.append(change["owner"]), names="value")
        widget.update()
        assert order and order[-1] is widget.status_view and order.count(widget.status_view) == 1
        assert widget.plot_view in order            # the plot moved on from the untrained one
        order.clear()
        widget.update()                             # the settling redraw of an unchanged state sends nothing
        assert order == []
    finally:
        widget.close()


def test_starting_a_second_live_training_pauses_the_first(small):
    """Re-running the cell makes a new widget while the old one's thread still trains."""
    old, new = live_training(*small, epochs=20), live_training(*small, epochs=3)
    try:
        old.start()
        wait_for(lambda: old.trainer.state.step > 0, "the first widget training")
        new.start()
        wait_for(lambda: "paused" in old.status_view.value, "the first widget paused")
        assert old.trainer.state.paused and not old.trainer.state.done
        assert new.wait(DEADLINE_S) and new.trainer.state.done
    finally:
        old.close()
        new.close()


def test_live_training_is_an_explorer_built_with_defaults():
    widget = EXPLORERS["LiveTraining"]()
    try:
        assert repr(widget) == "<LiveTraining: interactive, run the cell to use it>"
        assert widget.trainer.state.batches_per_epoch == 17 and widget.trainer.state.epochs == 15
        assert widget.plot_view.value[:4] == b"\x89PNG"
    finally:
        widget.close()

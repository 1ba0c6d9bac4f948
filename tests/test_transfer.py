"""utils.transfer: freezing, new heads, learning-rate groups and the three strategies."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from utils.models import SmallCNN, evaluate, train
from utils.transfer import (STRATEGIES, RunResult, epochs_to_reach, extract_features, freeze,
                            last_linear_name, param_groups, prepare, reinitialize, replace_head,
                            run_strategy, seconds_to_reach)


class Tiny(nn.Module):
    def __init__(self, head=None):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = head if head is not None else nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.head(self.features(x))


def pretrained():
    torch.manual_seed(123)  # not the seed prepare() uses, so that "random" and "pretrained" differ
    return Tiny()


def test_freeze_stops_gradients_only_where_asked():
    model = pretrained()
    freeze(model.features)
    model(torch.randn(2, 1, 6, 6)).sum().backward()
    assert all(p.grad is None for p in model.features.parameters())
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize("head, name", [(nn.Linear(4, 3), ""),
                                        (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), "2")])
def test_replace_head_keeps_in_features_and_changes_outputs(head, name):
    model = Tiny(head)
    assert last_linear_name(model.head) == name
    new = replace_head(model, num_classes=10)
    assert model(torch.zeros(5, 1, 6, 6)).shape == (5, 10)
    assert new is model.head.get_submodule(name)
    assert new.in_features == (4 if name == "" else 8)


def test_replace_head_without_linear_is_a_value_error():
    with pytest.raises(ValueError, match="no nn.Linear"):
        replace_head(Tiny(nn.Identity()), 3)


def test_param_groups_give_features_the_smaller_learning_rate():
    model = pretrained()
    groups = param_groups(model, lr=0.1, features_lr_scale=0.01)
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.1])
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.features.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    freeze(model.features)
    assert [g["lr"] for g in param_groups(model, lr=0.1)] == [0.1]  # frozen -> no features group


def test_param_groups_refuse_a_bad_learning_rate():
    with pytest.raises(ValueError, match="lr=0"):
        param_groups(pretrained(), lr=0)


def test_reinitialize_is_seeded_and_changes_weights():
    a, b = reinitialize(pretrained(), seed=3), reinitialize(pretrained(), seed=3)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, pretrained().features[0].weight)


def one_step(model, optimizer):
    torch.manual_seed(0)
    loss = nn.functional.cross_entropy(model(torch.randn(8, 1, 6, 6)), torch.arange(8) % 5)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_prepare_each_strategy(strategy):
    source = pretrained()
    before = {k: v.clone() for k, v in source.state_dict().items()}
    model, groups = prepare(source, strategy, num_classes=5, lr=0.05)
    optimizer = torch.optim.Adam(groups)
    starts_pretrained = torch.equal(model.features[0].weight, source.features[0].weight)
    assert starts_pretrained == (strategy != "scratch")
    one_step(model, optimizer)
    moved = not torch.equal(model.features[0].weight, source.features[0].weight)
    assert moved == (strategy != "feature extraction")
    assert model(torch.zeros(1, 1, 6, 6)).shape == (1, 5)
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items()), "pretrained was modified"


def test_fine_tuning_moves_features_less_than_the_head():
    model, groups = prepare(pretrained(), "fine-tuning", num_classes=5, lr=0.05, features_lr_scale=0.1)
    optimizer = torch.optim.Adam(groups)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.005, 0.05])
    start = [p.detach().clone() for p in optimizer.param_groups[0]["params"]]
    one_step(model, optimizer)
    # Adam's first step moves every weight by about its learning rate
    step = max((p - s).abs().max().item() for p, s in zip(optimizer.param_groups[0]["params"], start))
    assert step == pytest.approx(0.005, rel=0.05)


def test_unknown_strategy_is_a_value_error():
    with pytest.raises(ValueError, match="'linear probe'"):
        prepare(pretrained(), "linear probe", 3)


# --- the comparison runner, on a tiny SmallCNN and a synthetic 3-class task of bars -----------

def bars(n_per_class, seed):
    """(N, 1, 8, 8) noisy images of a horizontal bar, a vertical bar or a diagonal; labels 0, 1, 2."""
    rng = np.random.default_rng(seed)
    templates = np.zeros((3, 8, 8), np.float32)
    templates[0, 3:5, :] = templates[1, :, 3:5] = 1
    templates[2][np.eye(8, dtype=bool)] = 1
    y = np.repeat(np.arange(3), n_per_class)
    X = templates[y] + rng.normal(0, 0.3, (len(y), 8, 8)).astype(np.float32)
    return X[:, None].astype(np.float32), y


def tiny_cnn():
    torch.manual_seed(7)
    return SmallCNN(num_classes=5, widths=(4, 8), image_size=8)


def test_extract_features_is_what_the_features_compute():
    model, X = tiny_cnn(), bars(4, 0)[0]
    features = extract_features(model, X, batch_size=5)
    assert features.shape == (12, 8, 2, 2)
    np.testing.assert_allclose(features, model.features(torch.from_numpy(X)).detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_run_strategy_learns_and_leaves_the_pretrained_model_alone(strategy):
    source = tiny_cnn()
    before = [p.clone() for p in source.parameters()]
    run = run_strategy(source, strategy, bars(10, 0), bars(10, 1), bars(20, 2), epochs=8, lr=1e-2, seed=0)
    assert (run.strategy, run.per_class, run.seed) == (strategy, 10, 0)
    assert len(run.val_accuracy) == len(run.epoch_seconds) == 8
    assert run.test_accuracy > 0.6  # chance is 1/3
    assert all(torch.equal(a, b) for a, b in zip(before, source.parameters()))


def test_feature_extraction_shortcut_equals_training_the_frozen_model():
    source, data, val, test = tiny_cnn(), bars(10, 0), bars(10, 1), bars(20, 2)
    run = run_strategy(source, "feature extraction", data, val, test, epochs=5, lr=1e-2, seed=3)
    model, groups = prepare(source, "feature extraction", 3, lr=1e-2, seed=3)
    history = train(model, data, val, epochs=5, lr=1e-2, batch_size=8, seed=3, param_groups=groups,
                    progress=False)
    assert run.val_accuracy == pytest.approx(history.val_accuracy)
    assert run.test_accuracy == pytest.approx(evaluate(model, *test).accuracy)


def test_runs_are_repeatable():
    runs = [run_strategy(tiny_cnn(), "fine-tuning", bars(5, 0), bars(5, 1), bars(5, 2), epochs=3, seed=1)
            for _ in range(2)]
    assert runs[0].val_accuracy == runs[1].val_accuracy
    assert runs[0].test_accuracy == runs[1].test_accuracy


def test_epochs_and_seconds_to_reach_a_target():
    run = RunResult("scratch", 5, 0, 0.9, [0.5, 0.8, 0.7, 0.95], [1.0, 2.0, 3.0, 4.0])
    assert epochs_to_reach(run.val_accuracy, 0.8) == 2
    assert seconds_to_reach(run, 0.8) == 3.0
    assert epochs_to_reach(run.val_accuracy, 0.99) is None and seconds_to_reach(run, 0.99) is None

"""utils.transfer: freezing, new heads, learning-rate groups and the three strategies."""
import pytest
import torch
import torch.nn as nn

from utils.transfer import (STRATEGIES, freeze, last_linear_name, param_groups, prepare,
                            reinitialize, replace_head)


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

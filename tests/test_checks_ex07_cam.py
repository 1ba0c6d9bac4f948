"""utils.checks.check_top_class_maps (exercise set 07, task 4): passes the right answer (also written
differently), names each misconception, and the reference agrees with chapter 10's helper and the
network's own logits."""
import numpy as np
import pytest

from utils.checks import CheckFailed, check_top_class_maps
from utils.checks.ex07 import _top_class_maps


def right_with_loops(features, weights, bias, k):
    logits = [w @ features.reshape(len(features), -1).mean(axis=1) + b for w, b in zip(weights, bias)]
    order = sorted(range(len(logits)), key=lambda i: -logits[i])[:k]
    return np.stack([sum(weights[c, ch] * features[ch] for ch in range(len(features))) for c in order])


def test_a_right_answer_written_differently_passes_with_hidden_cases(capsys):
    check_top_class_maps(right_with_loops, hidden=True)
    assert capsys.readouterr().out.startswith("✓")


def _logits(features, weights, bias, pool=np.mean):
    return weights @ pool(features, axis=(1, 2)) + bias


def _maps(features, weights, classes):
    return np.einsum("kc,chw->khw", weights[list(classes)], features)


def _top(logits, k):
    return list(np.argsort(logits)[::-1][:k])


# Each misconception written as a learner would (independently of the check's own suspects).
WRONG_ANSWERS = {
    "top class's weights": lambda f, w, b, k: _maps(f, w, _top(_logits(f, w, b), 1) * k),
    "bottom of the ranking": lambda f, w, b, k: _maps(f, w, np.argsort(_logits(f, w, b))[:k]),
    "bias is left out": lambda f, w, b, k: _maps(f, w, _top(_logits(f, w, 0), k)),
    "summed over positions": lambda f, w, b, k: _maps(f, w, _top(_logits(f, w, b, np.sum), k)),
    "ReLU applied": lambda f, w, b, k: np.clip(right_with_loops(f, w, b, k), 0, None),
    "normalised": lambda f, w, b, k: np.stack([(m - m.min()) / (m.max() - m.min())
                                               for m in right_with_loops(f, w, b, k)]),
    "added at every position": lambda f, w, b, k: np.stack(
        [m + b[c] for m, c in zip(right_with_loops(f, w, b, k), _top(_logits(f, w, b), k))]),
    "number of channels": lambda f, w, b, k: right_with_loops(f, w, b, k) / f.shape[0],
}


@pytest.mark.parametrize("words", WRONG_ANSWERS)
def test_each_misconception_is_named(words):
    with pytest.raises(CheckFailed, match=words):
        check_top_class_maps(WRONG_ANSWERS[words])


def test_a_wrong_shape_fails_without_naming_a_misconception():
    with pytest.raises(CheckFailed) as info:
        check_top_class_maps(lambda f, w, b, k: np.zeros(f.shape[1:]))
    assert "shape" in str(info.value) and "Likely misconception" not in str(info.value)


def test_the_reference_is_chapter_10s_map_and_averages_to_the_logit():
    from utils.visualize import class_activation_map
    rng = np.random.default_rng(0)
    features, weights, bias = rng.random((6, 3, 3)), rng.normal(size=(8, 6)), rng.normal(size=8)
    maps = _top_class_maps(features, weights, bias, 3)
    logits = weights @ features.mean(axis=(1, 2)) + bias
    order = np.argsort(-logits)[:3]
    for m, cls in zip(maps, order):
        assert np.allclose(m, class_activation_map(features, weights, cls))
        assert np.isclose(m.mean() + bias[cls], logits[cls])

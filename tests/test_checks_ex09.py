"""utils.checks.ex09.check_median_time: passes correct solutions, names each misconception."""
import numpy as np
import pytest

from utils.checks import CheckFailed, check_median_time


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("solution", [
    lambda s, w: float(np.median(s[w:])),
    lambda s, w: np.median(np.asarray(s)[w:]),                 # a NumPy scalar is a number too
    lambda s, w: float(np.percentile(list(s)[w:], 50)),
])
def test_correct_solutions_pass(solution, hidden, capsys):
    check_median_time(solution, hidden=hidden)
    assert capsys.readouterr().out.startswith("✓ median_time")


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, w: float(np.median(s)), "warm-up calls kept"),
    (lambda s, w: float(np.median(s[:len(s) - w])), "wrong end"),
    (lambda s, w: float(np.mean(s[w:])), "mean instead of median"),
    (lambda s, w: float(np.mean(s)), "mean of all calls"),
    (lambda s, w: float(np.sum(s[w:])), "total instead of one call"),
    (lambda s, w: float(np.min(s[w:])), "minimum instead of median"),
    (lambda s, w: float(np.sort(s[w:])[(len(s) - w) // 2]), "upper middle value"),
    (lambda s, w: list(s[w:]), "return one number"),
])
def test_misconception_is_named(wrong, hint):
    with pytest.raises(CheckFailed) as failure:
        check_median_time(wrong, hidden=True)
    assert str(failure.value).startswith("✗") and hint in str(failure.value)


def test_hidden_failures_do_not_show_the_hidden_timings():
    visible_ok = lambda s, w: float(np.median(s[w:])) if len(s) < 11 else -1.0
    with pytest.raises(CheckFailed) as failure:
        check_median_time(visible_ok, hidden=True)
    assert "[" not in str(failure.value).split("Problem")[0]       # shape and dtype only, no values

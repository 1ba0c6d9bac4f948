"""Chapter 02's step-through in a real browser: Play runs on past the first output value.

A learner runs chapter 02, presses the labelled "▶ Play" button of the step-through and watches the
output index advance from output[0, 0] to output[0, 1] and beyond (the browser's timer drives it, the
kernel redraws); "‖ Pause" stops it; with padding 1 the first product names "input[-1, -1] (padding)".
Screenshots go to a temporary folder whose path is printed (``pytest -s`` shows it); they are for a
person to look at, not compared.  Skipped, with the reason, when Chromium or Playwright is missing.
"""
from __future__ import annotations

import re

import pytest

from tests.browser_lab import CHROMIUM, launch_page, open_notebook, run_all_cells, set_slider, start_lab

CHAPTER = "chapters/02_convolution_from_scratch.ipynb"

playwright_sync = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium is missing (bash tools/ensure_chromium.sh installs it)")


def output_index(text: str) -> tuple[int, int]:
    found = re.search(r"output\[(\d+), (\d+)\]", text)
    assert found, f"no output index in {text!r}"
    return int(found.group(1)), int(found.group(2))


def test_play_advances_past_the_first_output_value():
    expect = playwright_sync.expect
    with start_lab(("chapters",)) as lab, launch_page(playwright_sync) as page:
        shots = lab.screenshots()
        open_notebook(page, lab, CHAPTER)
        run_all_cells(page)

        # anchored on a button whose label never changes ("▶ Play" becomes "‖ Pause" while playing)
        explorer = page.locator(".jp-OutputArea-output", has=page.get_by_role("button", name="↺ Start over")).first
        explorer.wait_for(timeout=30_000)
        play = explorer.get_by_role("button", name="▶ Play")
        explorer.scroll_into_view_if_needed()
        explanation = explorer.locator("b", has_text="output[").first
        expect(explanation).to_contain_text("output[0, 0]", timeout=15_000)
        explorer.screenshot(path=str(shots / "step_through_start.png"))

        set_slider(page, explorer.locator(".widget-slider", has=page.locator("label", has_text="speed")), 7)
        play.click()                                           # 10 steps per second
        pause = explorer.get_by_role("button", name="‖ Pause")
        expect(pause).to_be_visible(timeout=10_000)
        expect(explanation).to_contain_text(re.compile(r"output\[(0, [1-9]|[1-9]\d*, \d+)\]"), timeout=30_000)
        pause.click()
        expect(play).to_be_visible(timeout=10_000)
        paused_at = output_index(explanation.inner_text())
        assert paused_at > (0, 0)
        explorer.screenshot(path=str(shots / "step_through_played.png"))
        page.wait_for_timeout(1500)                            # paused: the index stays where it was
        assert output_index(explanation.inner_text()) == paused_at

        explorer.get_by_role("button", name="↺ Start over").click()
        expect(explanation).to_contain_text("output[0, 0]: its window", timeout=10_000)
        set_slider(page, explorer.locator(".widget-slider", has=page.locator("label", has_text="padding")), 1)
        expect(explanation).to_contain_text("rows -1 to 1", timeout=10_000)
        explorer.get_by_role("button", name="step ▶").click()
        expect(explanation).to_contain_text("input[-1, -1] (padding) × kernel[0, 0]", timeout=10_000)
        explorer.screenshot(path=str(shots / "step_through_padding.png"))

"""Chapter 07's live training in a real browser: run the chapter, click train and see the status and the
plot advance, pause and see them stop, resume and see them advance again.

"Stops" is checked as "does not change over two seconds while paused", never as a speed.  The server and
page come from ``tests/browser_lab.py`` (127.0.0.1, random token, temporary copy of the course); the
screenshots (1400x900) go to a temporary folder whose path is printed (``pytest -s`` shows it).  Skipped,
with the reason, when /usr/bin/chromium or Playwright is missing.
"""
from __future__ import annotations

import re
import time

import pytest

from tests import browser_lab
from tests.browser_lab import CHROMIUM, launch_page, open_notebook, run_all_cells, start_lab

CHAPTER = "chapters/07_building_a_cnn.ipynb"
WAIT_MS = 120_000          # generous: the machine may be shared; never a speed claim
PAUSED_SECONDS = 2.0

playwright_sync = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium is missing (bash tools/ensure_chromium.sh installs it)")

STEP_OF_STATUS = """([status, more]) => {
    const m = status.innerText.match(/step (\\d+)/);
    return m !== null && Number(m[1]) > more;
}"""


@pytest.fixture(scope="module")
def lab():
    with start_lab(("chapters",)) as running:
        yield running


def button(widget, label: str):
    """The widget's button labelled ``label`` (its icon's glyph is part of the accessible name)."""
    return widget.locator("button", has_text=re.compile(rf"^\s*{label}\s*$"))


def step_of(status) -> int:
    return int(re.search(r"step (\d+)", status.inner_text()).group(1))


def wait_for_step_above(page, status, step: int) -> None:
    page.wait_for_function(STEP_OF_STATUS, arg=[status.element_handle(), step], timeout=WAIT_MS)


def test_live_training_advances_pauses_and_resumes(lab, monkeypatch):
    monkeypatch.setattr(browser_lab, "RUN_TIMEOUT_MS", 600_000)   # the whole chapter runs first
    shots = lab.screenshots()
    with launch_page(playwright_sync, width=1400, height=900) as page:
        open_notebook(page, lab, CHAPTER)
        run_all_cells(page)
        widget = page.locator(".convcourse-live-training").first
        widget.wait_for(timeout=WAIT_MS)
        status = widget.locator(".convcourse-training-status")
        plot = widget.locator("img").first
        expect = playwright_sync.expect
        expect(status).to_contain_text("step 0 ", timeout=WAIT_MS)
        expect(status).to_contain_text("not started")
        widget.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "1_untrained.png"))

        # more epochs than the chapter's 15, so that it is still training whenever we look
        epochs = widget.locator(".widget-inline-hbox", has=page.locator("label", has_text="epochs")).locator("input")
        epochs.fill("40")
        epochs.press("Enter")
        expect(status).to_contain_text("epoch 1/40", timeout=WAIT_MS)

        button(widget, "train").click()
        wait_for_step_above(page, status, 2)
        running_step, running_plot = step_of(status), plot.get_attribute("src")
        wait_for_step_above(page, status, running_step)           # it keeps advancing by itself
        page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                               arg=[plot.element_handle(), running_plot], timeout=WAIT_MS)
        page.screenshot(path=str(shots / "2_training.png"))

        button(widget, "pause").click()
        expect(status).to_contain_text("paused", timeout=WAIT_MS)
        paused_text, paused_plot = status.inner_text(), plot.get_attribute("src")
        time.sleep(PAUSED_SECONDS)
        assert status.inner_text() == paused_text and plot.get_attribute("src") == paused_plot
        page.screenshot(path=str(shots / "3_paused.png"))

        button(widget, "resume").click()
        paused_step = int(re.search(r"step (\d+)", paused_text).group(1))
        wait_for_step_above(page, status, paused_step)
        expect(status).not_to_contain_text("paused")
        wait_for_step_above(page, status, step_of(status))
        page.screenshot(path=str(shots / "4_resumed.png"))

        button(widget, "reset").click()     # stop the thread
        expect(status).to_contain_text("step 0 ", timeout=WAIT_MS)

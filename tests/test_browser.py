"""The course in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

What a learner does in chapter 04: run all cells (in a 1400x900 window: the convolution explorer fits
below JupyterLab's bars), click the input picture and see the window move there, hover for a preview,
press Play and see it sweep, move the stride slider and see the output-size formula and the feature map change; answer a quiz question, save, reopen the
notebook without its kernel and still see the recorded answer (and the grader reads it from disk).

The server (``tests/browser_lab.py``) runs on 127.0.0.1 with a random token and free port, on a
temporary copy of the course (the repository is never written).  Screenshots go to a temporary folder
whose path is printed (``pytest -s`` shows it).  Skipped, with the reason, when /usr/bin/chromium or
Playwright is missing: ``bash tools/ensure_chromium.sh`` installs Chromium on Debian-like machines.
"""
from __future__ import annotations

import json
import re

import nbformat
import pytest

from tests.browser_lab import CHROMIUM, ROOT, launch_page, open_notebook, run_all_cells, set_slider, start_lab
from utils.quiz import read_quiz_answers

CHAPTER = "chapters/04_filters_and_feature_maps.ipynb"

playwright_sync = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium is missing (bash tools/ensure_chromium.sh installs it)")


def assert_pictures_inside(explorer) -> None:
    """Both pictures lie inside the explorer's output area (nothing cut off at the right)."""
    box = explorer.bounding_box()
    for i in (0, 1):
        picture = explorer.locator("img").nth(i).bounding_box()
        assert picture["x"] + picture["width"] <= box["x"] + box["width"] + 1, f"picture {i} is cut off"


@pytest.fixture(scope="module")
def lab():
    with start_lab() as running:
        yield running


@pytest.fixture(scope="module")
def page(lab):
    with launch_page(playwright_sync, 1400, 900) as page:
        yield page


def test_conv_explorer_reacts_and_quiz_answers_survive_a_reload(lab, page):
    shots = lab.screenshots()
    open_notebook(page, lab, CHAPTER)
    run_all_cells(page)

    formula = page.locator(".jupyter-widgets pre", has_text="H_out = ").first
    formula.wait_for(timeout=30_000)
    explorer = page.locator(".jp-OutputArea-output", has=formula).first
    explorer.scroll_into_view_if_needed()
    position = explorer.locator("b", has_text=re.compile(r"^output\[\d+, \d+\] = .* from input rows"))
    playwright_sync.expect(position).to_contain_text("output[127, 127] = ", timeout=15_000)
    box = explorer.bounding_box()
    page.screenshot(path=str(shots / "conv_explorer_page_1400x900.png"))
    explorer.screenshot(path=str(shots / "conv_explorer_start.png"))
    print(f"conv explorer: {box['width']:.0f} x {box['height']:.0f} px in a {page.viewport_size} viewport")
    assert box["height"] < 780, "the explorer no longer fits one 1400x900 screen below JupyterLab's bars"
    assert_pictures_inside(explorer)

    # click-to-place: a click on the input picture at pixel (row 50, col 100) of the image (5-px margin,
    # one screen pixel per image pixel at 256x256) centres the 3x3 window there: output[49, 99]
    input_image = explorer.locator("img").nth(0)
    input_image.click(position={"x": 5 + 100 + 0.5, "y": 5 + 50 + 0.5})
    playwright_sync.expect(position).to_contain_text("output[49, 99] = ", timeout=15_000)
    playwright_sync.expect(position).to_contain_text("rows 49…51, cols 99…101")
    explorer.screenshot(path=str(shots / "conv_explorer_clicked.png"))

    # hovering previews another place (pixel (200, 30): output[199, 29]); leaving goes back to the click
    picture = input_image.bounding_box()
    page.mouse.move(picture["x"] + 5 + 30 + 0.5, picture["y"] + 5 + 200 + 0.5, steps=4)
    playwright_sync.expect(position).to_contain_text("output[199, 29] = ", timeout=15_000)
    explorer.screenshot(path=str(shots / "conv_explorer_hover.png"))
    page.mouse.move(picture["x"] - 40, picture["y"] + 5 + 200, steps=4)
    playwright_sync.expect(position).to_contain_text("output[49, 99] = ", timeout=15_000)

    # Play advances the position row by row (left to right) until paused
    explorer.get_by_role("button", name="▶ Play").click()
    playwright_sync.expect(position).to_contain_text(re.compile(r"output\[49, (10\d|1[1-9]\d)\] = "),
                                                     timeout=15_000)
    explorer.get_by_role("button", name="❚❚ Pause").click()
    playwright_sync.expect(explorer.get_by_role("button", name="▶ Play")).to_be_visible(timeout=15_000)
    explorer.screenshot(path=str(shots / "conv_explorer_played.png"))

    before_text = formula.inner_text()
    output_image = explorer.locator("img").nth(1)
    before_src = output_image.get_attribute("src")
    stride = explorer.locator(".widget-slider", has=page.locator("label", has_text=re.compile(r"^stride$")))
    set_slider(page, stride, 1)
    playwright_sync.expect(formula).to_contain_text("/ 2⌋", timeout=15_000)
    assert formula.inner_text() != before_text
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                           arg=[output_image.element_handle(), before_src], timeout=15_000)
    explorer.screenshot(path=str(shots / "conv_explorer_stride2.png"))

    # the tallest setting (a 5x5 kernel, the Gaussian's long numbers) still fits; the 12x12 disc explorer too
    explorer.get_by_role("button", name="5×5").click()
    explorer.locator("select").nth(1).select_option("Gaussian")
    playwright_sync.expect(explorer.locator("input[type=number]").first).to_have_value("0.00390625", timeout=15_000)
    page.wait_for_timeout(500)
    assert explorer.bounding_box()["height"] < 780
    explorer.screenshot(path=str(shots / "conv_explorer_5x5_gaussian.png"))
    small = page.locator(".jp-OutputArea-output", has=page.locator(".jupyter-widgets pre", has_text="H_out = ")).nth(1)
    small.scroll_into_view_if_needed()
    assert_pictures_inside(small)
    small.screenshot(path=str(shots / "conv_explorer_disc_12x12.png"))

    quiz = page.locator(".jp-OutputArea-output", has=page.locator("h3", has_text="Quiz 04")).first
    quiz.scroll_into_view_if_needed()
    quiz.locator("input[type=radio]").first.check()
    quiz.get_by_role("button", name="Check").first.click()
    record = page.locator(".convcourse-quiz-record").last
    playwright_sync.expect(record).to_contain_text("1 of ", timeout=15_000)
    quiz.screenshot(path=str(shots / "quiz_checked.png"))
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=15_000)

    saved = nbformat.read(lab.root / CHAPTER, as_version=4)
    assert read_quiz_answers(saved).get("04") == {"q1": 0}

    # Reopen without the kernel that produced the outputs: the saved HTML summary must still show.
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    page.reload()
    open_notebook(page, lab, CHAPTER)
    record = page.locator(".convcourse-quiz-record").last
    record.scroll_into_view_if_needed()
    playwright_sync.expect(record).to_contain_text("1 of ", timeout=15_000)
    first_option = json.loads((ROOT / "utils" / "quizzes" / "04.json").read_text())["questions"][0]["options"][0]
    playwright_sync.expect(record).to_contain_text(first_option[:40])
    record.screenshot(path=str(shots / "quiz_record_after_reload.png"))

"""The course in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

What a learner does in chapter 04: run all cells, move the convolution explorer's stride slider and
see the output-size formula and the feature map change; answer a quiz question, save, reopen the
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


@pytest.fixture(scope="module")
def lab():
    with start_lab() as running:
        yield running


@pytest.fixture(scope="module")
def page(lab):
    with launch_page(playwright_sync) as page:
        yield page


def test_conv_explorer_reacts_and_quiz_answers_survive_a_reload(lab, page):
    shots = lab.work / "screenshots"
    shots.mkdir()
    print(f"\nbrowser screenshots: {shots}")
    open_notebook(page, lab, CHAPTER)
    run_all_cells(page)

    formula = page.locator(".jupyter-widgets pre", has_text="H_out = ").first
    formula.wait_for(timeout=30_000)
    explorer = page.locator(".jp-OutputArea-output", has=formula).first
    explorer.scroll_into_view_if_needed()
    before_text = formula.inner_text()
    output_image = explorer.locator("img").nth(1)
    before_src = output_image.get_attribute("src")
    explorer.screenshot(path=str(shots / "conv_explorer_stride1.png"))
    stride = explorer.locator(".widget-slider", has=page.locator("label", has_text=re.compile(r"^stride$")))
    set_slider(page, stride, 1)
    playwright_sync.expect(formula).to_contain_text("/ 2⌋", timeout=15_000)
    assert formula.inner_text() != before_text
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                           arg=[output_image.element_handle(), before_src], timeout=15_000)
    explorer.screenshot(path=str(shots / "conv_explorer_stride2.png"))

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

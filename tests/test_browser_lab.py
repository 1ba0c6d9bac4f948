"""The course as ``make lab`` serves it (issue 11): the repository root, the venv's server config, the CSS.

* The Jupyter Server config the install step writes (``tools/lab_config.py``) is the one the server
  reads back (idle-kernel culling, the course's custom CSS), and an idle kernel really is culled
  (short timeout given on the command line, which overrides the config as it would for a user).
* In headless Chromium on a JupyterLab serving chapters/ and exercises/ side by side: chapter 01's
  link opens its exercise set; nbgrader's Validate is absent on a lesson and present on an exercise set;
  an answered quiz record is left-aligned and unwrapped with its score; and a notebook saved with a live
  quiz, reopened after its kernel is gone, shows the course's message instead of JupyterLab's
  "Error displaying widget: model not found".

Screenshots go to a temporary folder whose path is printed (``pytest -s``); they are not committed.
The browser tests are skipped, with the reason, without /usr/bin/chromium or Playwright.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from tests.browser_lab import (CHROMIUM, ROOT, RUN_TIMEOUT_MS, launch_page, open_notebook, run_all_cells,
                               start_lab)
from tools.lab_config import CSS_DIR, CULL_IDLE_TIMEOUT_S, CULL_INTERVAL_S, server_config, write_config

CHAPTER = "chapters/01_images_and_local_patterns.ipynb"
EXERCISE = "exercises/ex01_images_and_local_patterns.ipynb"
CULL_DEADLINE_S = 120      # how long to wait for the culler (it runs every second here); not a measurement

needs_browser = pytest.mark.skipif(
    not CHROMIUM.exists() or importlib.util.find_spec("playwright") is None,
    reason="/usr/bin/chromium or the playwright package is missing (bash tools/ensure_chromium.sh installs Chromium)")

READ_BACK = """
import json, sys
from jupyter_server.serverapp import ServerApp
app = ServerApp()
app.initialize(argv=["--ServerApp.port=0", "--no-browser", "--ServerApp.ip=127.0.0.1"]
               + (["--allow-root"] if sys.argv[1] == "root" else []))
km = app.kernel_manager
print(json.dumps({"cull": [km.cull_idle_timeout, km.cull_interval, km.cull_connected, km.cull_busy],
                  "static_custom_path": app.web_app.settings["static_custom_path"],
                  "custom_css": app.config.LabApp.custom_css}))
"""


def api(lab, path: str, method: str = "GET"):
    request = urllib.request.Request(f"{lab.base}{path}", method=method,
                                     headers={"Authorization": f"token {lab.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else None


# --- the server config (no browser) -------------------------------------------------------------

def test_server_reads_the_course_config_back(tmp_path):
    write_config(tmp_path)
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(tmp_path), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    out = subprocess.run([sys.executable, "-c", READ_BACK, "root" if os.geteuid() == 0 else "user"],
                         env=env, capture_output=True, text=True, timeout=300, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["cull"] == [CULL_IDLE_TIMEOUT_S, CULL_INTERVAL_S, True, False]
    assert seen["static_custom_path"][0] == str(CSS_DIR) and (CSS_DIR / "custom.css").is_file()
    assert seen["custom_css"] is True
    assert server_config()["MappingKernelManager"]["cull_idle_timeout"] == 1200


def test_an_idle_kernel_is_culled():
    with start_lab(("chapters",), course_config=True,
                   extra_args=("--MappingKernelManager.cull_idle_timeout=2",
                               "--MappingKernelManager.cull_interval=1")) as lab:
        kernel = api(lab, "/api/kernels", method="POST")
        deadline = time.monotonic() + CULL_DEADLINE_S
        while kernel["id"] in {k["id"] for k in api(lab, "/api/kernels")}:
            assert time.monotonic() < deadline, f"kernel not culled within {CULL_DEADLINE_S} s"
            time.sleep(1)
        log = (lab.work / "lab.log").read_text(errors="replace")
    assert "Culling kernels with idle durations > 2 seconds" in log
    # the culler's own line (state 'starting' or 'idle': neither is busy, both are culled)
    assert re.search(rf"Culling '(idle|starting)' kernel 'python3' \({kernel['id']}\) .* of inactivity", log)


def test_the_css_keys_validate_on_the_exercise_titles():
    """tools/lab/custom.css shows Validate only under a title "# Exercise set ...": every exercise set
    (the notebooks with tests) has one, no chapter does."""
    css = (CSS_DIR / "custom.css").read_text()
    assert 'h1[data-jupyter-id^="Exercise-set-"]' in css
    for folder, expected in (("exercises", True), ("chapters", False)):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            first = nbformat.read(path, as_version=4).cells[0]
            assert first.cell_type == "markdown"
            assert first.source.startswith("# Exercise set ") is expected, path.name


# --- in the browser -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab():
    with start_lab(course_config=True) as running:
        yield running


@pytest.fixture(scope="module")
def shots(lab):
    return lab.screenshots()


@pytest.fixture(scope="module")
def page(lab):
    playwright_sync = pytest.importorskip("playwright.sync_api")
    with launch_page(playwright_sync) as page:
        yield page


def panel(page, path: str):
    """A locator for the open notebook ``path``, brought to the front (the workspace JupyterLab restores
    on a reload may put another tab there first)."""
    panel_id = page.evaluate("""(path) => {
        const app = window.jupyterapp;
        for (const w of app.shell.widgets('main')) {
            if (w.context && w.context.path === path) { app.shell.activateById(w.id); return w.id; }
        }
        return null; }""", path)
    assert panel_id, f"{path} is not open"
    return page.locator(f"[id='{panel_id}']")


def current_path(page) -> str:
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")


def validate_visible(notebook) -> bool:
    """Whether the notebook's toolbar (``notebook``: its panel's locator) shows nbgrader's Validate button."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    button = notebook.locator(".validate-button")
    try:   # the plugin adds the button some time after the panel opens (later on a busy machine)
        button.first.wait_for(state="attached", timeout=30_000)
    except PlaywrightTimeout:
        pass                                    # the assert below says what is missing
    assert button.count() == 1, "nbgrader's validate-assignment plugin added no button"
    return button.is_visible()


@needs_browser
def test_chapter_link_opens_the_exercise_set(lab, page, shots):
    assert EXERCISE.split("/")[1] in {c["name"] for c in api(lab, "/api/contents/exercises")["content"]}
    open_notebook(page, lab, CHAPTER)
    link = panel(page, CHAPTER).locator(".jp-MarkdownOutput a", has_text="ex01_images_and_local_patterns").first
    link.scroll_into_view_if_needed()
    link.click()
    page.wait_for_function("(p) => { const w = window.jupyterapp.shell.currentWidget;"
                           " return w && w.context && w.context.path === p && w.content.widgets.length > 0; }",
                           arg=EXERCISE, timeout=60_000)
    panel(page, EXERCISE).locator(".jp-MarkdownOutput h1", has_text="Exercise set 01").first.wait_for(timeout=30_000)
    page.screenshot(path=str(shots / "exercise_opened_from_chapter.png"))
    assert current_path(page) == EXERCISE


@needs_browser
def test_validate_only_where_there_are_tests(lab, page, shots):
    open_notebook(page, lab, CHAPTER)
    chapter = panel(page, CHAPTER)
    chapter.locator(".jp-MarkdownOutput h1", has_text="1 · Images and local patterns").first.wait_for(
        timeout=30_000)
    assert not validate_visible(chapter)
    page.screenshot(path=str(shots / "chapter_toolbar.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 140})
    open_notebook(page, lab, EXERCISE)
    exercise = panel(page, EXERCISE)
    exercise.locator(".jp-MarkdownOutput h1", has_text="Exercise set 01").first.wait_for(timeout=30_000)
    assert validate_visible(exercise)
    page.screenshot(path=str(shots / "exercise_toolbar.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 140})


def run_quiz_cells(page) -> None:
    """Run the code cells that show a quiz (the quiz cells import what they need)."""
    page.evaluate("""async () => {
        const app = window.jupyterapp, panel = app.shell.currentWidget, notebook = panel.content;
        await panel.sessionContext.ready;
        for (let i = 0; i < notebook.widgets.length; i++) {
            const cell = notebook.widgets[i];
            if (cell.model.type === 'code' && cell.model.sharedModel.getSource().includes('show_quiz(')) {
                notebook.activeCellIndex = i;
                await app.commands.execute('notebook:run-cell');
            }
        }
    }""")
    page.wait_for_function("""() => { const s = window.jupyterapp.shell.currentWidget.sessionContext.session;
        return s && s.kernel && s.kernel.status === 'idle'; }""", timeout=RUN_TIMEOUT_MS)


@needs_browser
def test_quiz_record_is_left_aligned_unwrapped_with_a_score(lab, page, shots):
    source = json.loads((ROOT / "tools" / "quiz_sources" / "00.json").read_text())
    open_notebook(page, lab, "chapters/00_start_here.ipynb")
    notebook = panel(page, "chapters/00_start_here.ipynb")
    run_quiz_cells(page)
    quiz = notebook.locator(".jp-OutputArea-output", has=page.locator("h3", has_text="Quiz 00")).first
    quiz.scroll_into_view_if_needed()
    quiz.locator("input[type=radio]").nth(source["questions"][0]["answer"]).check()
    quiz.get_by_role("button", name="Check").first.click()
    record = notebook.locator(".convcourse-quiz-record").last
    record.get_by_text("Score: 1 of").wait_for(timeout=30_000)
    record.scroll_into_view_if_needed()
    record.screenshot(path=str(shots / "quiz_record_answered.png"))
    verdict = record.locator("td", has_text="✓ correct").first
    assert verdict.evaluate("e => [getComputedStyle(e).textAlign, getComputedStyle(e).whiteSpace]") == [
        "left", "nowrap"]
    for cell in record.locator("td, th").all():
        assert cell.evaluate("e => getComputedStyle(e).textAlign") == "left"
    assert "1 of 2 questions answered." in record.inner_text()


@needs_browser
def test_free_answer_verdict_and_model_answer_on_separate_lines(lab, page, shots):
    open_notebook(page, lab, "chapters/09_efficiency_and_accuracy.ipynb")
    notebook = panel(page, "chapters/09_efficiency_and_accuracy.ipynb")
    run_quiz_cells(page)
    quiz = notebook.locator(".jp-OutputArea-output", has=page.locator("h3", has_text="Quiz review")).first
    quiz.scroll_into_view_if_needed()
    quiz.locator("textarea").first.fill("Filters slide over the image and share their weights.")
    quiz.get_by_role("button", name="Check").first.click()
    model = quiz.locator("b", has_text="Model answer").first
    model.wait_for(timeout=30_000)
    verdict = quiz.locator("b", has_text="recorded, needs review").first
    feedback = quiz.locator(".widget-htmlmath", has=page.locator("b", has_text="Model answer")).first
    feedback.screenshot(path=str(shots / "free_answer_feedback.png"))
    assert model.bounding_box()["y"] >= verdict.bounding_box()["y"] + verdict.bounding_box()["height"]


@needs_browser
def test_reopened_quiz_without_its_kernel_says_what_to_do(lab, page, shots):
    """Saved with a live quiz, reopened once its kernel is gone: the course's message, and the record."""
    path = "chapters/00_start_here.ipynb"
    open_notebook(page, lab, path)
    notebook = panel(page, path)
    # JupyterLab renders widgets only in a trusted notebook (every output produced in this browser):
    # run it all, answer, save, as a learner's own run-through leaves it.
    run_all_cells(page)
    quiz = notebook.locator(".jp-OutputArea-output", has=page.locator("h3", has_text="Quiz 00")).first
    quiz.scroll_into_view_if_needed()
    quiz.locator("input[type=radio]").first.check()
    quiz.get_by_role("button", name="Check").first.click()
    notebook.locator(".convcourse-quiz-record", has_text="1 of 2 questions answered.").first.wait_for(
        timeout=30_000)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
    for kernel in api(lab, "/api/kernels"):              # as when culled, restarted or the server stopped
        api(lab, f"/api/kernels/{kernel['id']}", method="DELETE")
    page.reload()
    open_notebook(page, lab, path)
    cell = panel(page, path).locator(".jp-Cell", has=page.locator(".convcourse-quiz-record")).last
    gone = cell.locator(".jp-OutputArea-output.jupyter-widgets").first
    gone.wait_for(state="attached", timeout=RUN_TIMEOUT_MS)
    assert gone.inner_text() == "Error displaying widget: model not found"      # what JupyterLab puts there
    assert gone.evaluate("e => getComputedStyle(e).fontSize") == "0px"           # ... hidden
    message = gone.evaluate("e => getComputedStyle(e, '::before').content")
    assert "run this cell again" in message
    cell.scroll_into_view_if_needed()
    cell.screenshot(path=str(shots / "quiz_reopened_without_kernel.png"))
    assert "1 of 2 questions answered." in cell.locator(".convcourse-quiz-record").inner_text()

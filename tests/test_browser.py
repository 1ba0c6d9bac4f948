"""The course in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

What a learner does in chapter 04: run all cells, move the convolution explorer's stride slider and
see the output-size formula and the feature map change; answer a quiz question, save, reopen the
notebook without its kernel and still see the recorded answer (and the grader reads it from disk).

The server runs on 127.0.0.1 with a random token and free port, on a temporary copy of the
chapters (the repository is never written).  Screenshots go to a temporary folder whose path is
printed (``pytest -s`` shows it).  Skipped, with the reason, when /usr/bin/chromium or Playwright
is missing: ``bash tools/ensure_chromium.sh`` installs Chromium on Debian-like machines.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from utils.quiz import read_quiz_answers

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "04_filters_and_feature_maps.ipynb"
START_TIMEOUT_S = 60
RUN_TIMEOUT_MS = 120_000

playwright_sync = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium is missing (bash tools/ensure_chromium.sh installs it)")

# JupyterLab settings for a quiet, scriptable page: no news/update toasts, every cell kept in the
# DOM (windowing off) so that locators find outputs far down the notebook.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(folder: Path) -> None:
    for name, values in LAB_SETTINGS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def wait_until_up(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer {url.split('?')[0]} within {START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def lab():
    """(base url, token, notebook folder) of a JupyterLab serving a temporary copy of the chapters."""
    work = Path(tempfile.mkdtemp(prefix="convcourse-browser-"))
    notebooks = work / "chapters"
    shutil.copytree(ROOT / "chapters", notebooks)
    if not (notebooks / CHAPTER).exists():
        pytest.skip(f"chapters/{CHAPTER} does not exist yet")
    write_settings(work / "settings")
    token, port = secrets.token_hex(16), free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(work / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"), JUPYTER_RUNTIME_DIR=str(work / "runtime"))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={notebooks}",
               f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(work / "lab.log", "wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=notebooks)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/status?token={token}", server)
        yield base, token, notebooks, work
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def page(lab):
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


def open_notebook(page, base: str, token: str) -> None:
    page.goto(f"{base}/lab/tree/{CHAPTER}?token={token}")
    page.wait_for_function("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                           f" return w && w.context && w.context.path.endsWith('{CHAPTER}')"
                           " && w.content.widgets.length > 0; }", timeout=60_000)


def run_all_cells(page) -> None:
    page.evaluate("""async () => {
        const app = window.jupyterapp, panel = app.shell.currentWidget;
        await panel.sessionContext.ready;
        await app.commands.execute('notebook:run-all-cells');
    }""")
    page.wait_for_function("""() => {
        const panel = window.jupyterapp.shell.currentWidget;
        const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
        const cells = panel.content.widgets.filter(c => c.model.type === 'code');
        return kernel && kernel.status === 'idle' && cells.every(c => c.model.executionCount !== null);
    }""", timeout=RUN_TIMEOUT_MS)


def set_slider(page, slider, steps: int) -> None:
    """Move an ipywidgets slider by ``steps`` with the keyboard, as a learner can."""
    handle = slider.locator(".noUi-handle").first
    handle.click()
    for _ in range(steps):
        handle.press("ArrowRight")


def test_conv_explorer_reacts_and_quiz_answers_survive_a_reload(lab, page):
    base, token, notebooks, work = lab
    shots = work / "screenshots"
    shots.mkdir()
    print(f"\nbrowser screenshots: {shots}")
    open_notebook(page, base, token)
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

    saved = nbformat.read(notebooks / CHAPTER, as_version=4)
    assert read_quiz_answers(saved).get("04") == {"q1": 0}

    # Reopen without the kernel that produced the outputs: the saved HTML summary must still show.
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    page.reload()
    open_notebook(page, base, token)
    record = page.locator(".convcourse-quiz-record").last
    record.scroll_into_view_if_needed()
    playwright_sync.expect(record).to_contain_text("1 of ", timeout=15_000)
    first_option = json.loads((ROOT / "utils" / "quizzes" / "04.json").read_text())["questions"][0]["options"][0]
    playwright_sync.expect(record).to_contain_text(first_option[:40])
    record.screenshot(path=str(shots / "quiz_record_after_reload.png"))

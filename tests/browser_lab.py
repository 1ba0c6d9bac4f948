"""Shared pieces of the browser tests: a JupyterLab on 127.0.0.1 over a temporary copy of the course,
Debian's Chromium driven by Playwright, and the few page actions every test needs.

Used by ``tests/test_browser*.py``; each test module opens its own server with :func:`start_lab`
(module-scoped fixture) so a test never sees another's saved notebooks.  The copy has the
repository's layout (``chapters/``, ``exercises/`` side by side, served from its root, as ``make lab``
does), so links between notebooks work; the kernel imports the installed ``utils``.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60
RUN_TIMEOUT_MS = 120_000
FOLDERS = ("chapters", "exercises")

# JupyterLab settings for a quiet, scriptable page: no news/update toasts, every cell kept in the
# DOM (windowing off) so that locators find outputs far down the notebook.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


class Lab(NamedTuple):
    """A running JupyterLab: its base URL, token, served root (the temporary copy) and scratch folder."""
    base: str
    token: str
    root: Path
    work: Path

    def screenshots(self) -> Path:
        """The folder for this server's screenshots (created; its path printed for ``pytest -s``)."""
        folder = self.work / "screenshots"
        folder.mkdir(exist_ok=True)
        print(f"\nbrowser screenshots: {folder}")
        return folder

    def url(self, path: str) -> str:
        """The Lab URL that opens ``path`` (relative to the served root, e.g. ``chapters/04_x.ipynb``)."""
        return f"{self.base}/lab/tree/{path}?token={self.token}"


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


@contextmanager
def start_lab(folders: tuple[str, ...] = FOLDERS, course_config: bool = False,
              extra_args: tuple[str, ...] = ()) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 (random token, free port) serving a temporary copy of ``folders``.

    ``course_config``: also load the Jupyter Server config ``make lab``'s install step writes into the venv
    (``tools/lab_config.py``: kernel culling, the course's CSS), from a fresh copy, so the test does not
    depend on the venv having been installed by make.  ``extra_args``: more command-line options (they
    override the config files)."""
    work = Path(tempfile.mkdtemp(prefix="convcourse-browser-"))
    root = work / "course"
    for folder in folders:
        shutil.copytree(ROOT / folder, root / folder)
    write_settings(work / "settings")
    token, port = secrets.token_hex(16), free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(work / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"), JUPYTER_RUNTIME_DIR=str(work / "runtime"))
    if course_config:
        from tools.lab_config import write_config
        write_config(work / "config")
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(work / "config"),
                                                                   os.environ.get("JUPYTER_CONFIG_PATH")]))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
               f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    command.extend(extra_args)
    log = open(work / "lab.log", "wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/status?token={token}", server)
        yield Lab(base, token, root, work)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        # The copy of the course goes; the log and any screenshots stay for a look after the run.
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def launch_page(playwright_sync, width: int = 1400, height: int = 1000):
    """A page of headless Debian Chromium (no browser download, no background networking)."""
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def open_notebook(page, lab: Lab, path: str) -> None:
    """Open ``path`` (relative to the served root) and wait until its cells are on the page."""
    page.goto(lab.url(path))
    page.wait_for_function("(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                           " return w && w.context && w.context.path.endsWith(path)"
                           " && w.content.widgets.length > 0; }", arg=path, timeout=60_000)


def run_all_cells(page) -> None:
    # The stored notebooks are executed: clear first, so that "every cell has an execution count"
    # below means this run reached it (not the stored count, which made the wait end at once).
    page.evaluate("""async () => {
        const app = window.jupyterapp, panel = app.shell.currentWidget;
        await panel.sessionContext.ready;
        await app.commands.execute('notebook:clear-all-cell-outputs');
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


def run_cells_containing(page, *snippets: str) -> list[int]:
    """Run only the code cells whose source contains one of ``snippets``, in notebook order, and wait
    until they have finished (quicker than a whole chapter when a test needs self-contained cells).
    Returns the indices of the cells run."""
    ran = page.evaluate("""async (snippets) => {
        const app = window.jupyterapp, panel = app.shell.currentWidget, notebook = panel.content;
        await panel.sessionContext.ready;
        const wanted = [];
        notebook.widgets.forEach((cell, i) => {
            const source = cell.model.sharedModel.getSource();
            if (cell.model.type === 'code' && snippets.some(s => source.includes(s))) wanted.push(i);
        });
        for (const i of wanted) {
            notebook.activeCellIndex = i;
            await app.commands.execute('notebook:run-cell');   // resolves when the cell has run
        }
        return wanted;
    }""", list(snippets))
    if not ran:
        raise AssertionError(f"no code cell contains any of {snippets}")
    page.wait_for_function("""() => {
        const panel = window.jupyterapp.shell.currentWidget;
        const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
        return kernel && kernel.status === 'idle';
    }""", timeout=RUN_TIMEOUT_MS)
    return ran


def slider_handle(container, label: str):
    """The handle of the ipywidgets slider labelled ``label`` inside ``container`` (a locator); its
    ``aria-valuemin``/``aria-valuemax``/``aria-valuenow`` attributes say the slider's range and value."""
    import re
    name = container.page.locator("label", has_text=re.compile(f"^{re.escape(label)}$"))
    slider = container.locator(".widget-slider", has=name)
    return slider.locator(".noUi-handle").first

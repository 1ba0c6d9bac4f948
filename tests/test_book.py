"""The web edition (``make book``): built from the stored notebooks, served on 127.0.0.1 and read in
Debian's Chromium (Playwright, no browser download).

One build into a temporary folder (``book/build.py``, ~20 s on 2 cores), then: the index lists every
chapter and exercise set; every internal link and anchor resolves; every chapter page shows its
figures; maths is typeset; no console error and no request leaves 127.0.0.1; the offline search finds
"receptive field"; explorers (a picture of their starting state) and quizzes (their questions) have
a static view and no widget JSON; no quiz answer key or explanation is anywhere in the site.
Screenshots go to a temporary folder printed with ``pytest -s``.
Skipped, with the reason, without Sphinx (``make book`` installs the ``book`` extra) or Chromium.
"""
from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("sphinx", reason="the book extra is not installed (make book installs it)")
pytest.importorskip("myst_nb", reason="the book extra is not installed (make book installs it)")
playwright_sync = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("ex*.ipynb"))
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="/usr/bin/chromium is missing (bash tools/ensure_chromium.sh installs it)")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    """The built site's folder (the repository is only read)."""
    out = Path(tempfile.mkdtemp(prefix="convcourse-book-test-")) / "html"
    result = subprocess.run([sys.executable, str(ROOT / "book" / "build.py"), str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert warnings == [], "\n".join(warnings[:20])
    return out


@pytest.fixture(scope="module")
def server(site):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (bash tools/ensure_chromium.sh installs it)")
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """One page in a fresh context that records console errors and refuses requests off 127.0.0.1."""

    def __init__(self, browser, base: str):
        self.base, self.errors, self.outside = base, [], []
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        self.context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), self._refuse)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _refuse(self, route):
        self.outside.append(route.request.url)
        route.abort()

    def open(self, path: str):
        response = self.page.goto(f"{self.base}/{path}", wait_until="load")
        assert response is not None and response.status == 200, path
        return self.page

    def close(self):
        self.context.close()


def notebook_images(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum("image/png" in o.get("data", {}) or "image/jpeg" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def text_files(site: Path):
    for path in site.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".js", ".txt", ".json", ".ipynb", ".md", ".inv"}:
            if "mathjax" not in path.parts:
                yield path, path.read_text(encoding="utf-8", errors="replace")


def test_the_repository_has_chapters_to_publish():
    assert len(CHAPTERS) >= 10 and EXERCISES


def quiz_secrets() -> set[str]:
    """Every string of the quizzes that must not be published: the compiled files' salts, hashed
    keys and encoded explanations, and the sources' explanations and written answers."""
    secrets = set()
    for quiz_file in sorted((ROOT / "utils" / "quizzes").glob("*.json")):
        for question in json.loads(quiz_file.read_text())["questions"]:
            secrets |= {str(question[k]) for k in ("salt", "feedback") if k in question}
            secrets |= {str(v) for v in question.get("key", {}).values()} if isinstance(question.get("key"), dict) else set()
    for source in sorted((ROOT / "tools" / "quiz_sources").glob("*.json")):
        for question in json.loads(source.read_text())["questions"]:
            for field in ("explanation", "answer", "model_answer"):
                text = question.get(field)
                if isinstance(text, str) and len(text) >= 20:
                    secrets.add(text)
                    secrets |= {s for s in re.split(r"(?<=[.!?])\s+", text) if len(s) >= 40}
    return {s for s in secrets if len(s) >= 16}


def test_no_quiz_key_or_explanation_and_no_widget_json_in_the_site(site):
    secrets = quiz_secrets()
    assert len(secrets) > 50
    leaks = {}
    for path, text in text_files(site):
        found = [s[:60] for s in secrets if s in text]
        if found:
            leaks[str(path.relative_to(site))] = found[:3]
        if path.suffix == ".html":
            assert "application/vnd.jupyter.widget-view+json" not in text, path
            assert '"model_id"' not in text, path
    assert leaks == {}


def test_explorers_and_quizzes_have_a_static_view(site):
    for chapter in sorted((site / "_sources" / "chapters").glob("*.ipynb")):   # the copies built
        source = chapter.read_text()
        page = (site / "chapters" / f"{chapter.stem}.html").read_text()
        explorers = set(re.findall(r"<(\w+): interactive, run the cell to use it>", source))
        for name in explorers:
            assert f"Interactive explorer <code class=\"docutils literal notranslate\"><span class=\"pre\">{name}" in page
        # ... each with a picture of its starting state
        assert page.count("convcourse-explorer-static") == len(re.findall(r"<\w+: interactive, run the cell", source))
        for quiz_id in re.findall(r"""show_quiz\(\\?["'](\w+)""", source):
            assert f"<strong>Quiz {quiz_id}:" in page, (chapter.name, quiz_id)
        if explorers or "show_quiz" in source:
            assert "static view" in page and '<span class="pre">lab</span>' in page, chapter.name


@needs_chromium
def test_index_lists_every_chapter_and_exercise_set(server, browser):
    visit = Visit(browser, server)
    try:
        page = visit.open("index.html")
        hrefs = page.eval_on_selector_all("nav a, article a", "els => els.map(e => e.getAttribute('href'))")
        for notebook in CHAPTERS + EXERCISES:
            target = f"{notebook.parent.name}/{notebook.stem}.html"
            assert any(h and h.split("#")[0] == target for h in hrefs), target
        shots = Path(tempfile.mkdtemp(prefix="convcourse-book-shots-"))
        print(f"\nbook screenshots: {shots}")
        page.screenshot(path=str(shots / "index.png"))
        assert visit.errors == [] and visit.outside == []
    finally:
        visit.close()


@needs_chromium
def test_every_page_links_resolve_figures_show_maths_typesets_no_errors(site, server, browser):
    pages = sorted(str(p.relative_to(site)) for p in site.rglob("*.html")
                   if p.parts[len(site.parts)] not in {"_static", "_sources", "_downloads"})
    ids: dict[str, set[str]] = {}
    links: set[tuple[str, str]] = set()
    shots = Path(tempfile.mkdtemp(prefix="convcourse-book-shots-"))
    print(f"\nbook screenshots: {shots}")
    visit = Visit(browser, server)
    try:
        for path in pages:
            page = visit.open(path)
            ids[path] = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                parsed = urllib.parse.urlsplit(href)
                if href.startswith(server):
                    links.add((parsed.path.lstrip("/"), parsed.fragment))
            if path.startswith("chapters/"):
                # the copy that was built (the working tree may change meanwhile)
                notebook = site / "_sources" / path.replace(".html", ".ipynb")
                expected = notebook_images(notebook)
                page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
                shown = page.eval_on_selector_all(".cell_output img",
                                                  "els => els.filter(i => i.naturalWidth > 0).length")
                assert shown >= expected > 0 or expected == 0, (path, shown, expected)
                download = page.eval_on_selector_all("a.download[href$='.ipynb'], a[href$='.ipynb']",
                                                     "els => els.map(e => e.href)")
                assert download, f"{path}: no link to download the notebook"
                if "$" in "".join(c.source for c in nbformat.read(notebook, 4).cells if c.cell_type == "markdown"):
                    page.wait_for_selector(".MathJax_CHTML, .MathJax", timeout=30_000)
                if path.startswith("chapters/04"):
                    page.screenshot(path=str(shots / "chapter04.png"), full_page=False)
                    explorer = page.locator(".cell_output", has_text="Interactive explorer").first
                    explorer.scroll_into_view_if_needed()
                    page.screenshot(path=str(shots / "chapter04_explorer.png"))
            assert visit.errors == [], (path, visit.errors)
        assert visit.outside == []
    finally:
        visit.close()
    broken = []
    for target, fragment in sorted(links):
        file = site / urllib.parse.unquote(target)
        if target.endswith("/") or target == "":
            file = file / "index.html"
        if not file.is_file():
            broken.append(target)
        elif fragment and target in ids and fragment not in ids[target]:
            broken.append(f"{target}#{fragment}")
    assert broken == []


@needs_chromium
def test_offline_search_finds_receptive_field(server, browser):
    visit = Visit(browser, server)
    try:
        page = visit.open("search.html?q=receptive+field")
        page.wait_for_selector("#search-results ul li a", timeout=60_000)
        found = page.eval_on_selector_all("#search-results ul li a", "els => els.map(e => e.getAttribute('href'))")
        expected = {f"chapters/{c.stem}.html" for c in CHAPTERS if "receptive field" in c.read_text().lower()}
        assert expected, "no chapter mentions receptive fields any more"
        assert expected & {h.split("?")[0].split("#")[0] for h in found}, found
        assert visit.errors == [] and visit.outside == []
    finally:
        visit.close()

"""Chapter 06's explorers in a real browser (JupyterLab + Debian's Chromium driven by Playwright, 1400x900).

* The layer pipeline explorer: switching ReLU off hides the "after ReLU" maps and changes the pooled
  ones; switching pooling off hides the pooled maps; switching them on brings them back.
* The pooling explorer: moving the kernel slider moves the padding slider's maximum with it
  (padding <= kernel // 2), and a padding at its maximum is pulled down when the kernel shrinks, so
  the output-size formula always has a result.

Only the two explorer cells run (each is self-contained), not the whole chapter.  Screenshots go to
a temporary folder whose path is printed (``pytest -s`` shows it); they are not kept.  Skipped, with
the reason, when /usr/bin/chromium or Playwright is missing (``bash tools/ensure_chromium.sh``).
"""
from __future__ import annotations

import pytest

from tests.browser_lab import CHROMIUM, launch_page, open_notebook, run_cells_containing, slider_handle, start_lab

CHAPTER = "chapters/06_pooling.ipynb"
IMAGES_PER_ROW = 3          # conv, after ReLU, pooled
ROWS = 4                    # the default filter bank

playwright_sync = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium is missing (bash tools/ensure_chromium.sh installs it)")
expect = playwright_sync.expect


@pytest.fixture(scope="module")
def lab():
    with start_lab(("chapters",)) as running:
        yield running


@pytest.fixture(scope="module")
def page(lab):
    with launch_page(playwright_sync, width=1400, height=900) as page:
        open_notebook(page, lab, CHAPTER)
        run_cells_containing(page, "pool_explorer()", "pipeline_explorer()")
        yield page


@pytest.fixture(scope="module")
def shots(lab):
    return lab.screenshots()


def wait_for_aria(page, handle, attribute: str, value: float) -> None:
    """Wait until a slider handle's ``aria-value*`` attribute reads ``value`` (noUiSlider writes "2.0")."""
    page.wait_for_function("([el, name, value]) => parseFloat(el.getAttribute(name)) === value",
                           arg=[handle.element_handle(), attribute, value], timeout=15_000)


def test_pipeline_stages_switch_off_and_on(page, shots):
    flow = page.locator(".jupyter-widgets", has_text="input → convolution").last
    flow.wait_for(timeout=60_000)
    explorer = page.locator(".jp-OutputArea-output", has=page.locator("text=input → convolution")).last
    explorer.scroll_into_view_if_needed()
    expect(explorer.locator("img:visible")).to_have_count(1 + ROWS * IMAGES_PER_ROW, timeout=30_000)
    pooled = explorer.locator("img:visible").nth(IMAGES_PER_ROW)     # first row: conv, ReLU, pooled
    pooled_src = pooled.get_attribute("src")
    page.screenshot(path=str(shots / "pipeline_all_stages.png"))

    explorer.get_by_label("ReLU", exact=True).uncheck()
    expect(explorer).to_contain_text("(off: ReLU)", timeout=15_000)
    expect(explorer.locator("img:visible")).to_have_count(1 + ROWS * (IMAGES_PER_ROW - 1), timeout=15_000)
    pooled_now = explorer.locator("img:visible").nth(2)                 # first row: conv, pooled
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                           arg=[pooled_now.element_handle(), pooled_src], timeout=15_000)
    page.screenshot(path=str(shots / "pipeline_relu_off.png"))

    explorer.get_by_label("pooling", exact=True).uncheck()
    expect(explorer.locator("img:visible")).to_have_count(1 + ROWS, timeout=15_000)
    explorer.get_by_label("ReLU", exact=True).check()
    explorer.get_by_label("pooling", exact=True).check()
    expect(explorer.locator("img:visible")).to_have_count(1 + ROWS * IMAGES_PER_ROW, timeout=15_000)
    expect(explorer).not_to_contain_text("(off:", timeout=15_000)


def test_pool_padding_maximum_follows_the_kernel(page, shots):
    formula = page.locator(".jupyter-widgets pre", has_text="H_out = ⌊(H + 2·padding − k) / stride⌋").first
    formula.wait_for(timeout=60_000)
    explorer = page.locator(".jp-OutputArea-output", has=formula).first
    explorer.scroll_into_view_if_needed()
    kernel, padding = slider_handle(explorer, "kernel"), slider_handle(explorer, "padding")
    wait_for_aria(page, kernel, "aria-valuenow", 2)
    wait_for_aria(page, padding, "aria-valuemax", 1)
    page.screenshot(path=str(shots / "pool_kernel2.png"))

    kernel.click()
    for _ in range(3):                                                  # kernel 2 -> 5
        kernel.press("ArrowRight")
    wait_for_aria(page, padding, "aria-valuemax", 2)
    padding.click()
    for _ in range(4):                                                  # stops at its maximum, 2
        padding.press("ArrowRight")
    expect(formula).to_contain_text("(254 + 2·2 − 5)", timeout=15_000)
    wait_for_aria(page, padding, "aria-valuenow", 2)
    page.screenshot(path=str(shots / "pool_kernel5_padding2.png"))

    kernel.click()
    for _ in range(2):                                                  # kernel 5 -> 3: padding pulled to 1
        kernel.press("ArrowLeft")
    wait_for_aria(page, padding, "aria-valuemax", 1)
    wait_for_aria(page, padding, "aria-valuenow", 1)
    expect(formula).to_contain_text("(254 + 2·1 − 3)", timeout=15_000)
    assert "not allowed" not in formula.inner_text()
    page.screenshot(path=str(shots / "pool_kernel3.png"))

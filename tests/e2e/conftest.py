"""Browser fixtures: one `streamlit run app.py` server on 127.0.0.1 and Debian's Chromium via Playwright.

Tests here are skipped (not failed) only when chromium is missing; CI installs it (dev.py test).
The plain helpers below (start_app, wait_for_app, goto, plotly_data, ...) are shared with
bench/bench_browser.py: import them as `from tests.e2e.conftest import ...`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "screenshots"
SERVER_LOG = ROOT / "artifacts" / "streamlit.log"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(
    port: int | None = None, log: Path | None = SERVER_LOG, options: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, str]:
    """Start the app; returns (process, base URL) once /_stcore/health answers. `options`: more
    `streamlit run` flags, e.g. ("--server.disconnectedSessionTTL", "3").

    The server's output goes to `log` (artifacts/streamlit.log) so a failing test can be explained."""
    port = port or _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",  # the log is read while the server runs
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    out = subprocess.DEVNULL
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none", *options],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("streamlit did not start within 60 s")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # e.g. a worker thread still running: the test already said so
        proc.kill()
        proc.wait(10)


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)


# The server's first visitor opens a shared deep link, as happens when a link is opened on a freshly
# started server; what it saw is kept for test_pages (Streamlit decides some things on the first
# session). The visit also warms the server (imports, the default model) for every later test.
FIRST_VISIT = "/run?text=first+visit"


@pytest.fixture(scope="session")
def app_server(browser):
    proc, url = start_app()
    try:
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        goto(page, url + FIRST_VISIT, timeout=120_000)
        seen = {"path": FIRST_VISIT, "nav": nav_titles(page), "errors": errors_on_page(page)}
        screenshot(page, "first-visit")
        context.close()
        yield url, seen
    finally:
        stop_app(proc)


@pytest.fixture(scope="session")
def app_url(app_server) -> str:
    """Base URL of the one `streamlit run app.py` shared by the browser tests."""
    return app_server[0]


@pytest.fixture(scope="session")
def first_visit(app_server) -> dict[str, Any]:
    """What the server's first visitor (a deep link, FIRST_VISIT) saw: its sidebar navigation and errors."""
    return app_server[1]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (python3 dev.py test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    yield pg
    context.close()


def screenshot(page, name: str) -> Path:
    """Save a screenshot of the whole page as a test artifact (artifacts/screenshots/NAME.png).

    Streamlit scrolls inside its main container, not the document, so a full-page shot would stop
    at the fold: the viewport is made as tall as the content for the shot, then put back."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = page.viewport_size or VIEWPORT
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }"
    )
    tall = min(max(size["height"], height), 8000)
    if tall != size["height"]:
        page.set_viewport_size({"width": size["width"], "height": tall})
        page.wait_for_timeout(300)  # charts re-layout to the new size
    page.screenshot(path=str(path), full_page=True)
    if tall != size["height"]:
        page.set_viewport_size(size)
    return path


# Streamlit marks its root element with the script state ("running", "notRunning", ...) and the
# connection state; its own end-to-end tests wait on these attributes too. Element code is loaded
# lazily, with a skeleton drawn until it arrives, so "done" also means no skeleton left, and every
# page of this app draws at least its title.
_IDLE = (
    "() => { const app = document.querySelector('[data-testid=\"stApp\"]');"
    " return app && app.dataset.testConnectionState === 'CONNECTED'"
    " && app.dataset.testScriptState === 'notRunning'"
    ' && document.querySelector(\'[data-testid="stMainBlockContainer"] [data-testid="stElementContainer"]\')'
    " && !document.querySelector('[data-testid=\"stSkeleton\"]'); }"
)


def wait_for_app(page, timeout: float = 150_000, settle_ms: int = 250) -> None:
    """Wait until Streamlit has finished running the script. `settle_ms` first gives a rerun that was
    just triggered (a key press, a click) time to start, so we do not see the previous idle state;
    the idle state must also hold a moment later (a script that calls st.rerun is idle in between)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    if settle_ms:
        page.wait_for_timeout(settle_ms)
    deadline = time.monotonic() + timeout / 1000
    while True:
        page.wait_for_function(_IDLE, timeout=max(1.0, deadline - time.monotonic()) * 1000)
        page.wait_for_timeout(150)
        if page.evaluate(_IDLE) or time.monotonic() > deadline:
            return


def goto(page, url: str, timeout: float = 150_000) -> None:
    page.goto(url, timeout=timeout)
    wait_for_app(page, timeout)


def errors_on_page(page) -> list[str]:
    """Exceptions Streamlit drew (stException), any 'Traceback' text and a 'Page not found' dialog:
    each is a failure shown to the user."""
    found = [e.inner_text() for e in page.locator('[data-testid="stException"]').all()]
    body = page.locator('[data-testid="stMain"]').inner_text() if page.locator('[data-testid="stMain"]').count() else ""
    if "Traceback" in body:
        found.append(body[body.index("Traceback") :][:2000])
    # Streamlit's modal for a URL that names no page ("Page not found ... Running the app's main page").
    found += [d for d in page.locator('[role="dialog"]').all_inner_texts() if "not found" in d.lower()]
    return found


def assert_no_error(page) -> None:
    errors = errors_on_page(page)
    assert not errors, "the page shows an exception:\n" + "\n---\n".join(errors)


# Plotly keeps the figure on its div (`.data`, `.layout`); typed arrays (plotly's binary encoding)
# are turned into plain lists so they cross into Python.
_PLOTLY_JS = """
(idx) => {
  const plots = document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot');
  const out = [];
  const plain = (k, v) => (ArrayBuffer.isView(v) ? Array.from(v) : v);
  for (const el of plots) {
    out.push(JSON.parse(JSON.stringify({data: el.data || [], layout: el.layout || {}}, plain)));
  }
  return idx === null ? out : (out[idx] || null);
}
"""


def plotly_figures(page) -> list[dict[str, Any]]:
    """Every plotly chart on the page as {"data": [...traces], "layout": {...}}, in page order."""
    return page.evaluate(_PLOTLY_JS, None)


def plotly_titles(page) -> list[str]:
    """The title text of every plotly chart on the page (empty string when untitled)."""
    titles = []
    for fig in plotly_figures(page):
        title = fig["layout"].get("title") or {}
        titles.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return titles


def nav_titles(page) -> list[str]:
    """The sidebar navigation's page titles (a link's text is its icon, then its title)."""
    return [t.strip().split("\n")[-1] for t in page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()]


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


# -- widgets, found by their Streamlit key (every keyed element carries the class st-key-KEY) ----------


def keyed(page, key: str):
    return page.locator(f".st-key-{key}")


def plotly_figure(page, key: str) -> dict[str, Any] | None:
    """The figure of `st.plotly_chart(..., key=key)` as {"data": [...], "layout": {...}} (None if absent)."""
    return page.evaluate(
        "(key) => { const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
        " const plain = (k, v) => (ArrayBuffer.isView(v) ? Array.from(v) : v);"
        " return el && el.data ? JSON.parse(JSON.stringify({data: el.data, layout: el.layout}, plain)) : null; }",
        key,
    )


_SIGNATURE_JS = (
    "(key) => { const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
    " const plain = (k, v) => (ArrayBuffer.isView(v) ? Array.from(v) : v);"
    " return el && el.data ? JSON.stringify(el.data, plain) : null; }"
)


def figure_signature(page, key: str) -> str | None:
    """The keyed chart's traces as one string (JSON made in the page), to notice a redraw."""
    return page.evaluate(_SIGNATURE_JS, key)


def wait_for_figure_change(page, key: str, before: str | None, timeout: float = 30_000) -> None:
    """Wait, checking every animation frame, until the keyed chart's signature differs from `before`."""
    page.wait_for_function(
        f"([key, before]) => {{ const sig = ({_SIGNATURE_JS})(key); return sig !== null && sig !== before; }}",
        arg=[key, before],
        polling="raf",
        timeout=timeout,
    )


def slider_value(page, key: str) -> str:
    return keyed(page, key).locator('input[type="range"]').first.input_value()


def press_slider(page, key: str, *keys: str) -> None:
    """Move a slider with the keyboard on its thumb (ArrowRight/ArrowLeft/Home/End), like a user would."""
    thumb = keyed(page, key).locator('input[type="range"]').first
    thumb.focus()
    for k in keys:
        page.keyboard.press(k)


def choose(page, key: str, option: str, attempts: int = 5) -> None:
    """Pick `option` in the keyed selectbox, opened from the keyboard (focus, ArrowDown). Tried again
    when the list did not open or closed before the click (a rerun that redraws the box closes it)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    combo = keyed(page, key).locator('[data-testid="stSelectbox"] [role="combobox"]')
    for attempt in range(attempts):
        if combo.get_attribute("aria-expanded") != "true":
            combo.focus()
            page.keyboard.press("ArrowDown")
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=5_000)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
            wait_for_app(page)


def alerts(page) -> list[str]:
    """Texts of every st.error/warning/info/success box on the page (sidebar included)."""
    return page.locator('[data-testid="stAlert"]').all_inner_texts()


# -- this app's pages (keys set in pages/*.py) -------------------------------------------------------


def route_caption(page) -> str:
    """The Run page's one-line summary of every section's route ("section 0: 1 → 7 (reason) · ...")."""
    return page.locator('[data-testid="stCaptionContainer"]', has_text="neurons fired").first.inner_text().strip()


def caption_route(caption: str, section: int) -> list[int]:
    """The neurons of one section's route as the caption writes them."""
    match = re.search(rf"section {section}: ([\d →]+?) \(", caption)
    assert match, f"no route for section {section} in {caption!r}"
    return [int(n) for n in match.group(1).split("→")]


def drawn_route(figure: dict, name: str = "route") -> list[int]:
    """The route a wiring figure draws: its trace `name` ("route", or "what-if route") keeps the
    firing order in meta."""
    trace = next(t for t in figure["data"] if t.get("name") == name)
    return list(trace["meta"]["route"])


def press_run(page, attempts: int = 5) -> None:
    """Press Run. While a rerun draws, Streamlit can show a stale Run button beside the new one for a
    moment (seen with 8 sessions under load; what starts that rerun is not known): then wait until
    the app is idle and press again. Two buttons that stay are an error."""
    from playwright.sync_api import Error as PlaywrightError

    buttons = ".st-key-run_button button"
    for _ in range(attempts):
        page.wait_for_function(f"() => document.querySelectorAll('{buttons}').length === 1", timeout=120_000)
        try:
            keyed(page, "run_button").locator("button").click(timeout=30_000)
            return
        except PlaywrightError as e:
            if "strict mode violation" not in str(e):
                raise
            wait_for_app(page)
    raise AssertionError(f"the Run page kept {page.locator(buttons).count()} Run buttons")


def run_text(page, text: str) -> None:
    """Type `text` on the Run page and press Run."""
    keyed(page, "run_text_input").locator("textarea").fill(text)
    press_run(page)
    wait_for_app(page)


def use_fresh_model(page) -> None:
    """Pick the fresh model from the Build config in the sidebar (the default while no demo model exists)."""
    picker = keyed(page, "model_source_widget")
    if "Fresh model" not in picker.inner_text():
        choose(page, "model_source_widget", "Fresh model from the Build config")
        wait_for_app(page)


def loss_points(page) -> int:
    figure = plotly_figure(page, "train_loss_chart")
    return len(figure["data"][0]["x"]) if figure else 0


def wait_for_loss_points(page, more_than: int) -> None:
    # The chart is absent for a moment while the page redraws it: a missing chart is "not yet".
    page.wait_for_function(
        "(n) => { const el = document.querySelector('.st-key-train_loss_chart .js-plotly-plot');"
        " return !!(el && el.data && el.data[0] && el.data[0].x.length > n); }",
        arg=more_than,
        timeout=60_000,
    )


def server_log_since(offset: int) -> str:
    """What the shared server logged after `offset` (SERVER_LOG.stat().st_size taken earlier)."""
    with SERVER_LOG.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def open_page(page, slug: str) -> None:
    """Go to another page through the sidebar navigation (same session, unlike page.goto)."""
    page.locator(f'[data-testid="stSidebarNav"] a[href$="/{slug}"]').click()
    page.wait_for_url(re.compile(rf"/{slug}(\?|$)"))
    wait_for_app(page)

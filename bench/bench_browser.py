"""How the app feels in a real browser (issue 5, item 4): Debian's Chromium driven by Playwright
against `streamlit run app.py` on 127.0.0.1, medians of several repeats.

    python bench/bench_browser.py [--repeats 7] [--cold 3]

- cold start: the server process starting → the default page's first chart drawn (a new server
  each repeat; the browser is already open, like a user's). Also: the server answering its health
  check, and in a fresh Python the imports the first page view pays: the shared page code
  (`pages.common`: streamlit, torch, transformers' config code, `genesis` without its model; Home's
  first chart needs no more), then the model code (`genesis.Genesis`, loaded after that chart);
- slider → redraw: on Build, one key press on the n_neighbors slider → the first frame that shows
  section 0's wiring graph with the new edges. "new value": a value this server has not built yet
  (graph and figure are built); "seen value": one it has (its caches answer). Also with the fresh
  model of the Build config in the sidebar, on n_neurons (every new config then builds a model);
- Run → route: on Run, new text typed, then the mouse press on Run → the first frame that shows
  this run's route figure; and → the page finished (what-if, exports).

The interaction times are taken in the page, from the event's own timestamp (keydown, mousedown) to
the animation frame in which the change is first seen, so Playwright's own round trips are not
counted. Prints a table and writes bench/results-browser.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import (  # noqa: E402  (the repo root has to be on the path first)
    VIEWPORT,
    goto,
    keyed,
    launch_chromium,
    press_slider,
    slider_value,
    start_app,
    stop_app,
    use_fresh_model,
    wait_for_app,
)

RESULTS = ROOT / "bench" / "results-browser.json"
TARGETS = {"cold start → first chart": 6.0, "slider → wiring redrawn (new value)": 0.35, "Run → route drawn": 1.0}
# The first chart with data drawn (app.py's empty warm-up chart for plotly.js does not count).
FIRST_CHART = """
() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot'))
  .some(el => el.data && el.data.length > 0 && el.querySelector('.main-svg'))
"""
WIRING, SLIDER = "build_wiring_0", "build_n_neighbors"

# One measurement, armed before the user's action. `start`: the timestamp of the next `event`
# (keydown/mousedown). `end`: the frame in which the keyed element shows the result — for "figure"
# its plotly traces differ from now; for "refresh" it went stale (Streamlit's rerun has not re-sent
# it yet) and is fresh again, drawn. `finished`: the frame in which the script run is over.
_ARM_JS = """
([key, mode, event]) => {
  const b = window.__bench = {start: null, end: null, finished: null, stale: false, running: false};
  const app = document.querySelector('[data-testid="stApp"]');
  const box = () => document.querySelector(`.st-key-${key}`);
  const plain = (k, v) => (ArrayBuffer.isView(v) ? Array.from(v) : v);
  const signature = () => {
    const el = box() && box().querySelector('.js-plotly-plot');
    return el && el.data ? JSON.stringify(el.data, plain) : null;
  };
  const before = signature();
  if (window.__benchObserver) window.__benchObserver.disconnect();
  window.__benchObserver = new MutationObserver(() => {
    if (b.start === null) return;
    if (box() && box().dataset.stale === 'true') b.stale = true;
    if (app.dataset.testScriptState === 'running') b.running = true;
  });
  window.__benchObserver.observe(document.body, {attributes: true, subtree: true,
    attributeFilter: ['data-stale', 'data-test-script-state']});
  document.addEventListener(event, e => { if (b.start === null) b.start = e.timeStamp; },
    {capture: true, once: true});
  const tick = (now) => {
    if (b.start !== null) {
      const el = box();
      if (b.end === null && (mode === 'figure'
          ? (signature() !== null && signature() !== before)
          : (b.stale && el && el.dataset.stale === 'false' && el.querySelector('.main-svg')))) b.end = now;
      if (b.finished === null && b.running && app.dataset.testScriptState === 'notRunning') {
        b.finished = now;
        if (b.end === null) b.end = now;  // re-sent within one frame, never seen stale: the run's end
      }
    }
    if (b.end === null || b.finished === null) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}
"""
_DONE_JS = "() => window.__bench.end !== null && window.__bench.finished !== null"


def measure(page, key: str, mode: str, event: str, action) -> tuple[float, float]:
    """Seconds from the user's event to the result drawn, and to the script run finished."""
    page.evaluate(_ARM_JS, [key, mode, event])
    action()
    page.wait_for_function(_DONE_JS, timeout=60_000)
    b = page.evaluate("() => window.__bench")
    return (b["end"] - b["start"]) / 1000, (b["finished"] - b["start"]) / 1000


def next_frame(page) -> None:
    """Let the browser paint what it has (one animation frame)."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")


def cold_start(browser, repeats: int) -> dict[str, list[float]]:
    """Seconds from starting the server process to: its health check answering ("server"), and the
    default page's first chart drawn ("chart")."""
    server, chart = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        proc, url = start_app(log=None)
        server.append(time.perf_counter() - start)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.goto(url, timeout=120_000)
            page.wait_for_function(FIRST_CHART, polling="raf", timeout=120_000)
            next_frame(page)
            chart.append(time.perf_counter() - start)
            context.close()
        finally:
            stop_app(proc)
    return {"server": server, "chart": chart}


def import_time(repeats: int) -> dict[str, list[float]]:
    """Seconds a fresh Python needs to import the page code ("pages") and then the model ("model")."""
    code = (
        "import json, time; t = time.perf_counter(); import pages.common; pages = time.perf_counter() - t\n"
        "import genesis; genesis.Genesis; print(json.dumps([pages, time.perf_counter() - t - pages]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        times.append(json.loads(done.stdout.strip().splitlines()[-1]))  # streamlit may log above it
    return {"pages": [t[0] for t in times], "model": [t[1] for t in times]}


def slider_redraw(page, url: str, repeats: int, slider: str = SLIDER, fresh: bool = False) -> dict[str, list[float]]:
    """Key presses on a Build slider: `repeats` values this server has not built, then back and
    forth between two it has. `fresh`: the sidebar runs the fresh model of the Build config (so
    each new config also builds a model), instead of the default (the demo model when there is one)."""
    goto(page, f"{url}/build")
    if fresh:
        use_fresh_model(page)
    new, seen = [], []
    start_value = int(slider_value(page, slider))
    steps = ["ArrowRight"] * repeats + ["ArrowLeft", "ArrowRight"] * ((repeats + 1) // 2)
    for i, key in enumerate(steps):
        drawn, _ = measure(page, WIRING, "figure", "keydown", lambda key=key: press_slider(page, slider, key))
        (new if i < repeats else seen).append(drawn)
        wait_for_app(page, settle_ms=0)
    assert int(slider_value(page, slider)) == start_value + repeats, "each key press moved the slider by one"
    return {"new": new, "seen": seen[:repeats]}


def run_route(page, url: str, repeats: int) -> dict[str, list[float]]:
    goto(page, f"{url}/run")
    button = keyed(page, "run_button").locator("button")
    drawn, finished = [], []
    for i in range(repeats + 1):  # the first run fills this page's caches: not counted
        keyed(page, "run_text_input").locator("textarea").fill(f"Benchmark text number {i}: the quick brown fox.")
        # From the mouse press: it also commits the typed text (the text area loses focus).
        route, done = measure(page, "run_wiring", "refresh", "mousedown", button.click)
        wait_for_app(page, settle_ms=0)
        if i:
            drawn.append(route)
            finished.append(done)
    return {"drawn": drawn, "finished": finished}


def interaction_rows(browser, repeats: int) -> dict[str, list[float]]:
    """Slider and Run timings on one warm server, each measurement in a new session."""
    proc, url = start_app(log=None)
    try:

        def in_new_session(measurement, *rest, **kw):  # a new browser context: a new Streamlit session
            context = browser.new_context(viewport=VIEWPORT)
            try:
                return measurement(context.new_page(), url, *rest, **kw)
            finally:
                context.close()

        in_new_session(goto)  # the first page view imports the library: that is the cold start's
        slider = in_new_session(slider_redraw, repeats)
        fresh = in_new_session(slider_redraw, repeats, "build_n_neurons", fresh=True)
        run = in_new_session(run_route, repeats)
    finally:
        stop_app(proc)
    return {
        "slider → wiring redrawn (new value)": slider["new"],
        "slider → wiring redrawn (seen value)": slider["seen"],
        "n_neurons slider → redrawn (new, fresh model)": fresh["new"],
        "Run → route drawn": run["drawn"],
        "Run → page finished": run["finished"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="interactions measured per row")
    parser.add_argument("--cold", type=int, default=3, help="fresh servers started for the cold start")
    parser.add_argument("--cold-only", action="store_true", help="only the cold start (prints, writes no results)")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()[0]
    imports = import_time(args.cold)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        cold = cold_start(browser, args.cold)
        if not args.cold_only:
            interactions = interaction_rows(browser, args.repeats)
        browser.close()

    load_after = os.getloadavg()[0]
    rows = {
        "cold start → first chart": cold["chart"],
        "cold start → server answers": cold["server"],
        "import page code (fresh python)": imports["pages"],
        "… then the model code": imports["model"],
    }
    if not args.cold_only:
        rows.update(interactions)
    print(f"{'measurement':46} {'median s':>9} {'min s':>7} {'max s':>7} {'n':>3} {'target s':>9}")
    for name, times in rows.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"≤ {target:.2f} {'ok' if statistics.median(times) <= target else 'MISSED'}"
        print(
            f"{name:46} {statistics.median(times):9.3f} {min(times):7.3f} {max(times):7.3f} {len(times):3d} {verdict:>9}"
        )
    print(f"load average (1 min) before/after: {load_before:.1f} / {load_after:.1f} on {os.cpu_count()} CPUs")
    if args.cold_only:
        return 0
    RESULTS.write_text(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
                "cpus": os.cpu_count(),
                "load_average_before_after": [load_before, load_after],
                "repeats": args.repeats,
                "cold_repeats": args.cold,
                "targets_s": TARGETS,
                "median_s": {name: statistics.median(times) for name, times in rows.items()},
                "times_s": rows,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

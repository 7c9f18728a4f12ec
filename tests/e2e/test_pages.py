"""End-to-end: the app in Debian's Chromium, driven the way a user would (issue 3).

One `streamlit run app.py` for the module (fixture app_url); each test opens its own browser context.
Screenshots of every state land in artifacts/screenshots/. Widgets and charts are found by their
Streamlit keys (class st-key-KEY), set in pages/*.py.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import (
    SERVER_LOG,
    VIEWPORT,
    alerts,
    assert_no_error,
    caption_route,
    choose,
    drawn_route,
    figure_signature,
    goto,
    keyed,
    loss_points,
    main_text,
    open_page,
    plotly_figure,
    plotly_figures,
    press_slider,
    route_caption,
    run_text,
    screenshot,
    server_log_since,
    slider_value,
    use_fresh_model,
    wait_for_app,
    wait_for_figure_change,
    wait_for_loss_points,
)

pytestmark = pytest.mark.browser

PAGES = {
    "home": "Home",
    "build": "Build",
    "run": "Run",
    "activations": "Activations",
    "compare": "Compare",
    "train": "Train",
}
HEADINGS = {**PAGES, "home": "Genesis Explorer"}
# The default page lives at "/" (st.navigation gives it no path of its own: /home is "Page not found").
PATHS = {slug: f"/{slug}" for slug in PAGES} | {"home": "/"}


def open_and_check(page, url: str, slug: str) -> None:
    """Open a page in a new session: it shows its title and which model it shows, and no error."""
    goto(page, url + PATHS[slug])
    screenshot(page, f"page-{slug}")
    assert_no_error(page)
    assert page.locator('[data-testid="stMain"] h1').first.inner_text().strip() == HEADINGS[slug]
    assert "Model:" in main_text(page), "every page says which model it shows"
    assert all(figure["data"] for figure in plotly_figures(page)), "no empty chart is left on the page"


def wiring_edges(figure: dict) -> int:
    """Edges drawn in a wiring figure: its edge trace holds x0, x1, None per edge."""
    edges = next(t for t in figure["data"] if t.get("name") == "wiring")
    return sum(1 for x in edges["x"] if x is None)


# Home, Build, Run and Train are opened (and checked the same way) by their own tests below.
@pytest.mark.parametrize("slug", ["activations", "compare"])
def test_page_opens(app_url, page, slug):
    open_and_check(page, app_url, slug)


def test_home_walkthrough_steps_to_the_start_neuron(app_url, page):
    open_and_check(page, app_url, "home")
    assert plotly_figure(page, "home_architecture") is not None, "the architecture drawn from the config"
    for _ in range(2):  # input -> split -> section 0's start neuron
        keyed(page, "home_next").locator("button").click()
        wait_for_app(page)
    screenshot(page, "home-walkthrough-start")
    assert_no_error(page)
    assert re.search(r"Step 3 of \d+ · Section 0", main_text(page)), main_text(page)[:2000]
    assert len(drawn_route(plotly_figure(page, "home_wiring"))) == 1, "only the start neuron has fired"


def test_deep_link_as_first_visit_gets_the_app_navigation(first_visit):
    """A shared link opened as the first request of a fresh server gets the app's navigation
    (st.navigation in app.py), not Streamlit's automatic listing of the page folder."""
    assert not first_visit["errors"]
    assert first_visit["nav"] == list(PAGES.values()), f"first visit to {first_visit['path']}"


def test_build_slider_redraws_wiring_and_explains_invalid_combinations(app_url, page):
    open_and_check(page, app_url, "build")
    before = plotly_figure(page, "build_wiring_0")
    neighbors = int(slider_value(page, "build_n_neighbors"))
    assert wiring_edges(before) == 16 * neighbors  # app default: 16 neurons per section
    signature = figure_signature(page, "build_wiring_0")
    press_slider(page, "build_n_neighbors", "ArrowRight")
    wait_for_figure_change(page, "build_wiring_0", signature)
    wait_for_app(page)
    assert slider_value(page, "build_n_neighbors") == str(neighbors + 1)
    after = plotly_figure(page, "build_wiring_0")
    assert wiring_edges(after) == 16 * (neighbors + 1)
    assert f"n_neighbors={neighbors + 1}" in page.url, "the change goes into the shareable URL"
    screenshot(page, "build-after-slider")
    assert_no_error(page)

    press_slider(page, "build_n_sections", "ArrowRight")  # 2 -> 3 sections: 128 does not split in 3
    wait_for_app(page)
    screenshot(page, "build-invalid")
    assert_no_error(page)
    messages = [m for m in alerts(page) if "n_sections" in m or "n_dim" in m]
    assert messages, f"no message names the field; alerts: {alerts(page)}"


def test_run_text_shows_route_and_explains_empty_text(app_url, page):
    open_and_check(page, app_url, "run")
    use_fresh_model(page)
    run_text(page, "hello world")
    screenshot(page, "run-route")
    assert_no_error(page)
    assert keyed(page, "run_text_input").locator("textarea").input_value() == "hello world"
    caption = route_caption(page)
    route = caption_route(caption, 0)
    assert route, caption
    assert drawn_route(plotly_figure(page, "run_wiring")) == route, "the drawn route is the one in the caption"
    assert plotly_figure(page, "run_topk") is not None, "a language model shows its next-token chart"

    # What-if: the first neuron that fired after the start gets the highest threshold, so it can no
    # longer fire: the route is rerun and redrawn (green) beside the original, cut after the start.
    assert len(route) > 1, f"the default fresh model routes 'hello world' through several neurons: {caption}"
    choose(page, "whatif_neuron_0", str(route[1]))
    wait_for_app(page)
    before = figure_signature(page, "run_whatif")
    page.locator('[class*="st-key-whatif_0_"] input[type="range"]').first.focus()
    page.keyboard.press("End")
    wait_for_figure_change(page, "run_whatif", before)
    wait_for_app(page)
    screenshot(page, "run-what-if")
    assert_no_error(page)
    figure = plotly_figure(page, "run_whatif")
    assert drawn_route(figure) == route, "the original route stays drawn"
    assert drawn_route(figure, "what-if route") == route[:1]
    assert "⇒" in main_text(page), "the changed route is written out"

    run_text(page, "")
    screenshot(page, "run-empty-text")
    assert_no_error(page)
    assert any("empty" in m.lower() for m in alerts(page)), alerts(page)


def test_shared_url_restores_state(app_url, browser, page):
    goto(page, f"{app_url}/build")
    use_fresh_model(page)
    neighbors = int(slider_value(page, "build_n_neighbors")) - 1
    press_slider(page, "build_n_neighbors", "ArrowLeft")
    wait_for_app(page)
    open_page(page, "run")
    run_text(page, "shared state")
    shared_url, caption = page.url, route_caption(page)
    route = drawn_route(plotly_figure(page, "run_wiring"))
    assert f"n_neighbors={neighbors}" in shared_url and "text=shared" in shared_url, shared_url

    other = browser.new_context(viewport=VIEWPORT)  # a new browser: no cookies, no session
    try:
        fresh = other.new_page()
        goto(fresh, shared_url)
        screenshot(fresh, "shared-url-run")
        assert_no_error(fresh)
        assert keyed(fresh, "run_text_input").locator("textarea").input_value() == "shared state"
        assert route_caption(fresh) == caption, "same model and text give the same route"
        assert drawn_route(plotly_figure(fresh, "run_wiring")) == route
        open_page(fresh, "build")
        assert slider_value(fresh, "build_n_neighbors") == str(neighbors)
    finally:
        other.close()


def test_train_then_run_the_trained_model(app_url, page):
    open_and_check(page, app_url, "train")
    steps = keyed(page, "train_steps").locator("input")
    steps.fill("3000")  # far more than the test waits for: it must still be running when Stop is pressed
    steps.press("Enter")
    wait_for_app(page)
    keyed(page, "train_start").locator("button").click()
    wait_for_loss_points(page, 0)
    first = loss_points(page)
    wait_for_loss_points(page, first)
    assert loss_points(page) > first, "the loss curve grows while training runs"
    screenshot(page, "train-running")
    keyed(page, "train_stop").locator("button").click()
    page.get_by_text("The model is now").wait_for(timeout=60_000)
    wait_for_app(page)
    screenshot(page, "train-stopped")
    assert_no_error(page)
    assert any(m.startswith("Stopped") for m in alerts(page)), alerts(page)

    logged = SERVER_LOG.stat().st_size
    keyed(page, "train_use").locator("button").click()  # switches to Run with the trained model picked
    page.wait_for_url(re.compile(r"/run(\?|$)"))
    wait_for_app(page)
    screenshot(page, "run-trained-model")
    assert_no_error(page)
    assert "Model: trained in this session" in main_text(page)
    assert caption_route(route_caption(page), 0), "the trained model routes the text"
    assert "model_source_widget" not in server_log_since(logged), "the picker warned about its state"

    choose(page, "model_source_widget", "Fresh model from the Build config")  # the picker still works
    wait_for_app(page)
    assert "Model: trained in this session" not in main_text(page)

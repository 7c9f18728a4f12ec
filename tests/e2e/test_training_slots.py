"""A closed tab gives its training slot back.

The server trains at most two jobs at once (pages/train.py CONCURRENT_JOBS); a third waits. A tab
that is closed while training must not keep its slot for thousands of steps: once Streamlit has
dropped the session (server.disconnectedSessionTTL, short here), its job stops and the waiting job
starts, while the other job, whose tab is still open, goes on.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (
    VIEWPORT,
    alerts,
    assert_no_error,
    goto,
    keyed,
    loss_points,
    screenshot,
    start_app,
    stop_app,
    wait_for_app,
    wait_for_loss_points,
)

pytestmark = pytest.mark.browser

TTL_S = 3


@pytest.fixture
def short_memory_app():
    """An app server that forgets a disconnected session after TTL_S seconds."""
    proc, url = start_app(options=("--server.disconnectedSessionTTL", str(TTL_S)))
    try:
        yield url
    finally:
        stop_app(proc)


def start_training(browser, url: str):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    goto(page, url + "/train")
    steps = keyed(page, "train_steps").locator("input")
    steps.fill("3000")  # far longer than the test: only a stop ends it
    steps.press("Enter")
    wait_for_app(page)
    keyed(page, "train_start").locator("button").click()
    return context, page


def test_a_closed_tab_gives_its_training_slot_to_a_waiting_one(browser, short_memory_app):
    first, first_page = start_training(browser, short_memory_app)
    wait_for_loss_points(first_page, 0)
    second, second_page = start_training(browser, short_memory_app)
    wait_for_loss_points(second_page, 0)
    third, third_page = start_training(browser, short_memory_app)
    try:
        third_page.get_by_text("Waiting for a free training slot").wait_for(timeout=60_000)
        third_page.wait_for_timeout(2_000)
        assert loss_points(third_page) == 0, "both slots are taken: the third job waits"

        first.close()  # the tab goes away mid-training
        wait_for_loss_points(third_page, 0)  # within the TTL plus a check: its slot is free
        screenshot(third_page, "train-slot-freed")
        assert_no_error(third_page)
        assert not third_page.get_by_text("Waiting for a free training slot").count()

        before = loss_points(second_page)  # the tab that stayed keeps training
        wait_for_loss_points(second_page, before)
        assert not any(m.startswith("Stopped") for m in alerts(second_page)), alerts(second_page)
        assert_no_error(second_page)
    finally:
        for context in (second, third):
            context.close()

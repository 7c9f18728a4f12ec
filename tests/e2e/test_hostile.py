"""Hostile shared links: a new user opens a URL whose query parameters are wrong in every way. Each
page explains (a warning, an error naming the field, an info) and never shows a traceback.

The whole matrix runs in AppTest (cheap); a few of the links also in a real browser.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.app.conftest import FRESH, assert_ok, open_app
from tests.e2e.conftest import alerts, assert_no_error, goto, main_text, screenshot

pytestmark = pytest.mark.slow

# (query, a piece of the message some alert must show; "" where the page simply works)
HOSTILE_URLS: list[tuple[dict[str, str], str]] = [
    ({"n_dim": "abc"}, "ignored invalid URL value(s) for n_dim"),
    ({"n_dim": "1e3"}, "ignored invalid URL value(s) for n_dim"),
    ({"n_neurons": "-5"}, "n_neurons: must be in [1, 1024], got -5"),
    ({"n_dim": "9" * 30}, "n_dim: must be in [1, 16384]"),
    ({"n_input": "evil"}, "n_input: must be one of"),
    ({"n_routing": "None"}, "n_routing: must be one of"),
    ({"n_dim": "130", "n_sections": "3"}, "n_dim: must be divisible by n_sections=3"),
    ({"n_neighbors": "1000"}, "n_neighbors: must be in [0, n_neurons-1=15]"),
    ({"n_attentive_neurons": "0", "n_cross_attention": "True"}, "n_cross_attention: needs n_attentive_neurons"),
    ({"n_neurons": "1024", "n_dim": "16384"}, "Too large for this app: config has 552G parameters"),
    ({"n_pos_size": "1000000"}, "Too large for this app"),
    ({"n_input": "bridge"}, "reads floats"),
    ({"n_vocab_size": "2"}, "vocabulary has 2 tokens"),
    ({"text": ""}, ""),
    ({"text": "   "}, ""),
    ({"text": "\x00\x01\x1b[31m"}, ""),
    ({"text": "😀" * 3000}, ""),
    ({"bogus": "1", "source": "<script>alert(1)</script>"}, ""),
    ({"source": "Uploaded model"}, "Upload a config.json"),
    ({"n_trainable_routing": "True", "n_routing": "sample", "n_causal": "maybe"}, ""),
]
PAGES = ("run", "home", "build", "activations", "compare", "train")


def _messages(at) -> list[str]:
    return [m.value for kind in ("error", "warning", "info") for m in getattr(at, kind)]


@pytest.mark.parametrize("query, expected", HOSTILE_URLS, ids=[urlencode(q)[:40] for q, _ in HOSTILE_URLS])
def test_run_page_explains_hostile_links(query, expected):
    at = open_app(None, query)  # the first page a link opens shows the URL warning
    shown = _messages(at)
    at.switch_page("pages/run.py").run()
    assert_ok(at)
    shown += _messages(at)
    assert not expected or any(expected in m for m in shown), shown


@pytest.mark.parametrize("page", PAGES[1:])
def test_every_page_survives_the_worst_links(page):
    for query, _ in HOSTILE_URLS[::3]:
        at = open_app(page, query)
        assert_ok(at)


@pytest.mark.browser
def test_hostile_links_in_a_browser(app_url, page):
    for query, expected in [HOSTILE_URLS[0], HOSTILE_URLS[6], HOSTILE_URLS[9], HOSTILE_URLS[16]]:
        goto(page, f"{app_url}/run?{urlencode({'source': FRESH, **query})}")
        assert_no_error(page)
        shown = alerts(page)
        assert not expected or any(expected in a for a in shown), shown
        assert "Run" in main_text(page)
    screenshot(page, "hostile-link")

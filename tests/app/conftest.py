"""AppTest helpers shared by the page tests: open the app on a page (optionally from a shared URL),
read a chart's plotly data by its key, and check that a run raised nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
FRESH = "Fresh model from the Build config"  # deterministic: the app preset's weights from its seed
TIMEOUT = 120  # the first run builds models and imports torch; AppTest's default 3 s is far too short


def open_app(page: str | None = None, query: dict[str, str] | None = None, fresh: bool = True) -> AppTest:
    """The app as a new session opening a URL with `query`, then switched to pages/`page`.py."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update({**({"source": FRESH} if fresh else {}), **(query or {})})
    at.run()
    if page is not None and page != "home":
        at.switch_page(f"pages/{page}.py").run()
    assert_ok(at)
    return at


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> dict[str, dict[str, Any]]:
    """Plotly figures drawn in the last run, by element key, as plain JSON."""
    return {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart") if el.key}


def trace_named(spec: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [d for d in spec["data"] if d.get("name") == name]
    assert matches, f"no trace named {name!r} in {[d.get('name') for d in spec['data']]}"
    return matches[0]


def edge_count(spec: dict[str, Any], name: str = "wiring") -> int:
    """Edges in a line trace whose segments are separated by None."""
    return trace_named(spec, name)["x"].count(None)


def widget(at: AppTest, kind: str, key: str):
    """A widget by its key, wherever it is (main area or sidebar)."""
    return getattr(at, kind)(key=key)


@pytest.fixture
def app():
    return open_app


@pytest.fixture(autouse=True)
def navigation_mode(monkeypatch):
    """Run every AppTest run the way a server runs after its first page view: through app.py's
    st.navigation. AppTest resets Streamlit's "pages/ folder" flag before each run, so without this
    every run would start in the old pages-directory mode, and `common.leave_pages_directory_mode`
    would rerun it, dropping any button click the test made. (Renaming pages/ makes this moot.)"""
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)

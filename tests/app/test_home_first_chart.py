"""Home draws its architecture chart from the config of the model the sidebar shows before that model
is loaded (a fresh server's first chart then needs no model code, see tests/test_lazy_import.py):
the chart must still be the shown model's, and the model line still sits under the title."""

from __future__ import annotations

import pytest

from pages.common import DEMO_DIR, SOURCES
from tests.app.conftest import assert_ok, charts, open_app

pytestmark = pytest.mark.slow
SEQUENTIAL_3 = {"n_section": "sequential", "n_sections": "3"}  # Build fields unlike the demo model's


def sections_drawn(at) -> list[str]:
    nodes = [n for d in charts(at)["home_architecture"]["data"] for n in d.get("customdata", [])]
    return sorted(n for n in nodes if n.startswith(("section", "combiner")))


@pytest.mark.skipif(not (DEMO_DIR / "model.safetensors").exists(), reason="no demo model in assets/")
def test_the_demo_models_architecture_not_the_build_configs():
    at = open_app(query=SEQUENTIAL_3, fresh=False)
    assert at.selectbox(key="model_source_widget").value == SOURCES[0]
    assert sections_drawn(at) == ["combiner", "section 0", "section 1"]  # the demo: 2 split sections
    shown = [type(el).__name__ for el in at.main.children.values()]
    title = shown.index("Title")
    assert shown[title + 1] == "Caption" and at.caption[0].value.startswith("Model: **demo model")
    at.selectbox(key="model_source_widget").set_value(SOURCES[1]).run()
    assert_ok(at)
    assert sections_drawn(at) == ["section 0", "section 1", "section 2"]
    assert at.caption[0].value.startswith("Model: **fresh model")


def test_no_trained_model_yet_still_draws_the_build_config():
    at = open_app(query={**SEQUENTIAL_3, "source": SOURCES[2]}, fresh=False)
    assert at.selectbox(key="model_source_widget").value == SOURCES[2]
    assert any("No model trained" in i.value for i in at.info)
    assert sections_drawn(at) == ["section 0", "section 1", "section 2"]
    assert not any(c.value.startswith("Model:") for c in at.caption)

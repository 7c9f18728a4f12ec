"""The Home page in AppTest: the architecture comes from the config, the walkthrough follows the
model's trace with Next/Back, and the URL survives page switches."""

from __future__ import annotations

import pytest
import torch

import genesis
from genesis import probes
from tests.app.conftest import assert_ok, charts, open_app, trace_named

pytestmark = pytest.mark.slow


def architecture_nodes(spec) -> list[str]:
    return [n for d in spec["data"] for n in d.get("customdata", [])]


def test_architecture_follows_the_config():
    at = open_app()
    nodes = architecture_nodes(charts(at)["home_architecture"])
    assert nodes.count("combiner") == 1
    assert sorted(n for n in nodes if n.startswith("section")) == ["section 0", "section 1"]
    at = open_app(query={"n_section": "sequential", "n_sections": "3"})
    nodes = architecture_nodes(charts(at)["home_architecture"])
    assert sorted(n for n in nodes if n.startswith("section")) == ["section 0", "section 1", "section 2"]
    assert "combiner" not in nodes and not any(n.startswith("split") for n in nodes)


def test_walkthrough_follows_the_trace():
    text = "Hello, Genesis!"
    at = open_app(query={"text": text})
    model = genesis.Genesis(genesis.preset("app")).eval()
    with torch.no_grad():
        trace = model(torch.tensor([list(text.encode())]), trace=True).trace
    steps = probes.walkthrough(model.config, trace)
    assert at.dataframe  # step 1: the tokens
    assert at.button(key="home_back").disabled
    seen = []
    for index, step in enumerate(steps):
        assert any(f"Step {index + 1} of {len(steps)}" in m.value for m in at.markdown)
        if step.kind in ("start", "hop"):
            section = trace.sections[step.section]
            drawn = charts(at)
            route = trace_named(drawn["home_wiring"], "route")["meta"]["route"]
            assert route == section.route_of(0)[: step.step + 1]
            bars = trace_named(drawn["home_step_chart"], "voltage")
            candidates = section.indexer if step.step == 0 else section.hops[step.step - 1].candidates
            assert bars["customdata"] == [c.neuron for c in candidates]
            seen.append((step.section, step.step))
        if index < len(steps) - 1:
            at.button(key="home_next").click().run()
            assert_ok(at)
    assert at.button(key="home_next").disabled
    assert "home_architecture" in charts(at)
    assert seen == [(s.section, s.step) for s in steps if s.kind in ("start", "hop")]
    at.button(key="home_back").click().run()
    assert any(f"Step {len(steps) - 1} of" in m.value for m in at.markdown)


def test_query_params_survive_a_page_switch():
    at = open_app(query={"n_neurons": "8", "n_neighbors": "3", "text": "shared text"})
    at.query_params.clear()  # what the browser does when the user picks another page
    at.switch_page("pages/build.py").run()
    assert_ok(at)
    assert at.query_params["n_neurons"] == "8" and at.query_params["text"] == "shared text"
    at.query_params.clear()
    at.switch_page("pages/run.py").run()
    assert at.query_params["n_neighbors"] == "3"
    assert at.text_area(key="run_text_input").value == "shared text"


def test_invalid_config_in_url_is_explained():
    at = open_app(query={"n_neighbors": "40"})
    assert any("n_neighbors" in e.value for e in at.error)  # the sidebar says why there is no model
    assert "home_architecture" not in charts(at)

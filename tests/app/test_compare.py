"""The Compare page in AppTest: configurations from the Build config, presets, uploads and shared
URLs side by side; the numbers, routes and seed stability are what genesis.analysis computes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import genesis
from genesis import analysis
from genesis.data import sample_texts
from tests.app.conftest import assert_ok, charts, open_app, trace_named

pytestmark = pytest.mark.slow

TEXTS = sample_texts()[:12]  # the page's default number of inputs


def fresh(name: str, **overrides) -> genesis.Genesis:
    return genesis.Genesis(genesis.preset(name, **overrides)).eval()


def table(at, index: int = 0):
    return at.dataframe[index].value


def test_two_configs_side_by_side():
    at = open_app("compare")
    build, tiny = fresh("app"), fresh("tiny")
    shown = table(at)
    assert shown["config"].tolist() == ["1: Current Build config", "2: tiny"]
    assert shown["parameters"].tolist() == [analysis.parameter_count(build), analysis.parameter_count(tiny)]
    runs = [analysis.run_many(model, TEXTS) for model in (build, tiny)]
    assert shown["mean_neurons_fired"].tolist() == pytest.approx([r.inputs["count"].mean() for r in runs])
    assert shown["route_diversity"].tolist() == pytest.approx([analysis.route_diversity(r) for r in runs])
    assert (shown["latency_ms"] > 0).all()
    drawn = charts(at)
    bars = drawn["cmp_bars"]["data"]
    assert list(bars[0]["y"]) == shown["parameters"].tolist()
    # Each wiring shows that config's route of input 0 in section 0.
    for name, run in zip(shown["config"], runs):
        route = trace_named(drawn[f"cmp_wiring_{name}"], "route")["meta"]["route"]
        assert route == run.route(0)[0]
    difference = table(at, 1)
    expected = analysis.route_difference(runs[0].route(0), runs[1].route(0))
    assert difference["shared_prefix"].tolist() == expected["shared_prefix"].tolist()
    assert difference["route_a"].tolist() == expected["route_a"].tolist()


def test_other_input_and_section_redraw_routes():
    at = open_app("compare")
    at.selectbox(key="cmp_input").set_value(5)
    at.selectbox(key="cmp_section").set_value(1).run()
    assert_ok(at)
    run = analysis.run_many(fresh("tiny"), TEXTS)
    route = trace_named(charts(at)["cmp_wiring_2: tiny"], "route")["meta"]["route"]
    assert route == run.route(5)[1]
    assert table(at, 1)["route_b"].tolist() == ["→".join(map(str, r)) for r in run.route(5)]


def test_seed_stability_matches_the_library():
    at = open_app("compare")
    at.text_input(key="cmp_seeds").set_value("42, 3").run()
    assert_ok(at)
    shown = table(at, 2)
    expected = analysis.seed_stability(fresh("app"), [42, 3], TEXTS)
    assert shown["seed"].tolist() == [42, 3]
    assert shown["changed"].tolist() == expected["changed"].tolist()
    assert shown["changed"].iloc[0] == 0  # its own seed: nothing changes
    spec = charts(at)["cmp_seeds_chart"]
    np.testing.assert_allclose(spec["data"][0]["y"], expected["changed_share"])
    at.text_input(key="cmp_seeds").set_value("1, x").run()
    assert any("non-negative integers" in e.value for e in at.error)


def test_shared_url_and_uploaded_json_slots():
    at = open_app("compare")
    at.slider(key="cmp_count").set_value(3).run()
    at.selectbox(key="cmp_1").set_value("Shared app URL").run()
    url = analysis.url_for_config({**analysis.app_defaults(), "n_dim": 64, "n_neurons": 8}, "http://x/build")
    at.text_input(key="cmp_url_1").set_value(url).run()
    assert not [c for c in at.caption if "names no config field" in c.value]
    at.text_input(key="cmp_url_1").set_value("http://x/run?source=Uploaded+model").run()
    assert [c for c in at.caption if "names no config field" in c.value]  # it was silently the default
    at.text_input(key="cmp_url_1").set_value(url).run()
    at.selectbox(key="cmp_2").set_value("Uploaded config JSON").run()
    config = genesis.preset("sequential", n_seed=5)
    at.file_uploader(key="cmp_upload_2").set_value(
        ("config.json", json.dumps(config.user_dict()).encode(), "application/json")
    )
    at.run()
    assert_ok(at)
    assert not at.error
    assert "press Compare" in at.warning[0].value  # the two-config results are kept until asked
    at.button(key="cmp_run").click().run()
    assert not at.warning
    shown = table(at)
    from_url = genesis.Genesis(genesis.GenesisConfig(**analysis.config_from_url(url)))
    assert shown["parameters"].tolist()[1:] == [
        analysis.parameter_count(from_url),
        analysis.parameter_count(genesis.Genesis(config)),
    ]
    assert shown["config"].tolist()[1:] == ["2: Shared app URL", "3: Uploaded config JSON"]


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("url", "http://x/build?n_dim=wide", "n_dim: must be an integer"),
        ("url", "http://x/build?n_dim=100&n_sections=3", "n_dim"),
        ("url", "not a url", "not a link from this app"),
        ("json", b"{not json", "malformed JSON"),
        ("preset", "Preset: original", "Too large for this app"),
    ],
)
def test_bad_slots_show_a_message(kind, value, message):
    at = open_app("compare")
    if kind == "preset":
        at.selectbox(key="cmp_1").set_value(value).run()
    elif kind == "url":
        at.selectbox(key="cmp_1").set_value("Shared app URL").run()
        at.text_input(key="cmp_url_1").set_value(value).run()
    else:
        at.selectbox(key="cmp_1").set_value("Uploaded config JSON").run()
        at.file_uploader(key="cmp_upload_1").set_value(("config.json", value, "application/json")).run()
    assert_ok(at)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert any("at least two" in i.value for i in at.info)

"""The Build page in AppTest: controls change the config, the URL and the charts; invalid
combinations are explained; presets, uploads and shared URLs restore a config."""

from __future__ import annotations

import json

import pytest

import genesis
from genesis import compat
from genesis import io as gio
from genesis.configuration import FIELDS, parameter_breakdown
from genesis.graphs import reachable_from, wiring_graph
from genesis.modeling import neighbor_wiring
from tests.app.conftest import assert_ok, charts, edge_count, open_app, trace_named

pytestmark = pytest.mark.slow


def config_of(at) -> genesis.GenesisConfig:
    return genesis.GenesisConfig(**at.session_state["config_fields"])


def wired_edges(spec) -> set[tuple[int, int]]:
    """(source, target) pairs of a wiring chart; each segment must start at its source's node."""
    nodes = {}
    for name in ("attentive (start candidates)", "plain", "plain, unreachable"):
        for d in spec["data"]:
            if d.get("name") == name:
                nodes.update({n: (x, y) for x, y, n in zip(d["x"], d["y"], d["customdata"])})
    line = trace_named(spec, "wiring")
    edges = [tuple(e) for e in line["meta"]["edges"]]
    starts = [(x, y) for x, y, i in zip(line["x"], line["y"], range(len(line["x"]))) if i % 3 == 0]
    assert starts == [tuple(nodes[a]) for a, _ in edges]
    return set(edges)


def test_default_config_draws_parameters_and_wiring():
    at = open_app("build")
    config = genesis.preset("app")
    assert config_of(at).user_dict() == config.user_dict()
    drawn = charts(at)
    bars = trace_named(drawn["build_parameters"], "parameters")
    assert dict(zip(bars["y"], bars["x"])) == parameter_breakdown(config)
    for i in range(config.n_sections):
        spec = drawn[f"build_wiring_{i}"]
        assert edge_count(spec) == config.n_neurons * config.n_neighbors
        expected = {(j, k) for j, targets in enumerate(neighbor_wiring(config)[i]) for k in targets}
        assert wired_edges(spec) == expected
        attentive = trace_named(spec, "attentive (start candidates)")
        assert attentive["customdata"] == list(range(config.n_attentive_neurons))
        assert attentive["marker"]["color"] == "#d62728"
        assert trace_named(spec, "plain")["marker"]["color"] == "#1f77b4"
        assert spec["layout"]["uirevision"] == f"wiring-{i}"


def test_a_slider_changes_config_url_and_wiring():
    at = open_app("build")
    at.slider(key="build_n_neighbors").set_value(2).run()
    assert_ok(at)
    assert at.session_state["config_fields"]["n_neighbors"] == 2
    assert at.query_params["n_neighbors"] == "2"
    assert edge_count(charts(at)["build_wiring_0"]) == 16 * 2
    at.select_slider(key="build_n_dim").set_value(64).run()
    assert at.query_params["n_dim"] == "64"
    bars = trace_named(charts(at)["build_parameters"], "parameters")
    assert sum(bars["x"]) == sum(parameter_breakdown(config_of(at)).values())


def test_invalid_combination_is_explained_without_a_traceback():
    at = open_app("build")
    at.slider(key="build_n_neighbors").set_value(16).run()  # 16 neurons: at most 15 neighbors
    assert_ok(at)
    assert at.error and at.error[0].value.startswith("This combination does not work: n_neighbors: must be")
    assert "build_wiring_0" not in charts(at)
    at.slider(key="build_n_neighbors").set_value(3).run()
    assert not at.error and "build_wiring_0" in charts(at)


def test_preset_and_too_large_config():
    at = open_app("build")
    at.selectbox(key="build_preset").set_value("tiny").run()
    assert_ok(at)
    assert config_of(at).user_dict() == genesis.preset("tiny").user_dict()
    assert at.slider(key="build_n_neurons").value == 6
    assert len(trace_named(charts(at)["build_wiring_0"], "plain")["customdata"]) == 6 - 2
    at.selectbox(key="build_preset").set_value("original").run()  # 50257 tokens × 1280: too big to build here
    assert_ok(at)
    assert at.warning and "Too large" in at.warning[0].value
    assert "build_wiring_0" in charts(at)  # still drawn and counted


def test_a_too_large_config_can_take_the_suggested_smaller_one_in_one_click():
    at = open_app("build", {"n_dim": "1280", "n_neurons": "64", "n_neighbors": "16", "n_attentive_neurons": "16"})
    suggested = next(w.value for w in at.warning if "A smaller config that fits" in w.value)
    at.button(key="build_use_smaller").click().run()
    assert_ok(at)
    assert not any("Too large" in w.value for w in at.warning)  # the app can build it now
    config = config_of(at)
    for change in suggested.split("fits: ")[1].split(".")[0].split(", "):  # e.g. n_dim=320: not a slider stop
        name, value = change.split("=")
        assert str(getattr(config, name)) == value
        assert at.query_params[name] == value
    assert at.select_slider(key="build_n_dim").value == config.n_dim


def test_wiring_too_large_to_draw_is_explained_not_drawn():
    # Reachable by a shared link or an upload (the sliders stop at 64 neurons): 8 x 1023 arrows per
    # section took minutes to draw and froze the browser.
    at = open_app("build", {"n_neurons": "1024", "n_neighbors": "1023", "n_dim": "16", "n_attentive_neuron_heads": "2"})
    assert_ok(at)
    assert any("Too large for this app" in w.value for w in at.warning)
    assert any(i.value.startswith("Not drawn:") and "1,047,552 arrows" in i.value for i in at.info)
    assert not any(key.startswith("build_wiring") for key in charts(at))
    assert "config.json" in [b.label.split(" ")[0] for b in at.get("download_button")]
    at.slider(key="build_n_neighbors").set_value(4).run()  # 4,096 arrows: drawn again
    assert_ok(at)
    assert edge_count(charts(at)["build_wiring_0"]) == 1024 * 4


def test_unreachable_neurons_are_flagged():
    config = genesis.preset("tiny", n_neighbors=1)
    graph = wiring_graph(config, 1)
    starts = [n for n, start in graph.nodes(data="start") if start]
    never = set(graph.nodes) - set().union(*(reachable_from(graph, s) for s in starts))
    assert never  # this wiring leaves some neurons out
    at = open_app("build", {k: str(v) for k, v in config.user_dict().items()})
    spec = charts(at)["build_wiring_1"]
    assert sorted(trace_named(spec, "plain, unreachable")["customdata"]) == sorted(never)
    assert trace_named(spec, "plain, unreachable")["marker"]["symbol"] == "x"


def test_shared_url_restores_the_config():
    query = {"n_neurons": "8", "n_seed": "7", "n_neighbors": "3", "n_routing": "sample"}
    at = open_app("build", query)
    assert at.slider(key="build_n_neurons").value == 8
    assert at.selectbox(key="build_n_routing").value == "sample"
    config = config_of(at)
    assert (config.n_neurons, config.n_seed, config.n_neighbors) == (8, 7, 3)
    assert edge_count(charts(at)["build_wiring_0"]) == 8 * 3
    for key, value in query.items():
        assert at.query_params[key] == value


def test_bad_url_value_is_a_warning():
    at = open_app(None, {"n_neurons": "many"})  # the first page opened says so
    assert any("n_neurons" in w.value for w in at.warning)
    assert at.session_state["config_fields"]["n_neurons"] == 16


def test_bad_yes_no_url_values_are_a_warning_not_a_silent_no():
    at = open_app(None, {"n_causal": "maybe", "n_cross_attention": "perhaps", "n_trainable_routing": "yes"})
    assert any("n_causal" in w.value and "n_cross_attention" in w.value for w in at.warning)
    fields = at.session_state["config_fields"]
    assert (fields["n_causal"], fields["n_cross_attention"], fields["n_trainable_routing"]) == (None, False, True)


def test_upload_config_json():
    at = open_app("build")
    ours = genesis.preset("classifier").user_dict()
    at.file_uploader(key="build_upload").set_value(("c.json", json.dumps(ours).encode(), "application/json")).run()
    assert_ok(at)
    assert config_of(at).user_dict() == ours
    assert at.selectbox(key="build_preset").value == "classifier"
    at.file_uploader(key="build_upload").set_value(("bad.json", b"{not json", "application/json")).run()
    assert_ok(at)
    assert any("malformed JSON" in e.value for e in at.error)
    assert config_of(at).user_dict() == ours  # a refused file changes nothing


def test_modes_and_booleans():
    at = open_app("build")
    assert at.selectbox(key="build_n_causal").value == "auto (causal for an LM)"
    at.selectbox(key="build_n_causal").set_value("both ways").run()
    at.checkbox(key="build_n_trainable_routing").check().run()
    at.selectbox(key="build_n_output").set_value("sequence_classifier").run()
    assert_ok(at)
    config = config_of(at)
    assert (config.n_causal, config.n_trainable_routing, config.n_output) == (False, True, "sequence_classifier")
    assert at.query_params["n_causal"] == "False" and at.query_params["n_trainable_routing"] == "True"
    restored = open_app("build", dict(at.query_params))
    assert config_of(restored).user_dict() == config.user_dict()
    assert restored.selectbox(key="build_n_causal").value == "both ways"


def test_every_field_has_a_control():
    at = open_app("build")
    keys = {
        w.key
        for kind in ("slider", "select_slider", "selectbox", "number_input", "checkbox")
        for w in getattr(at, kind)
    }
    assert {f"build_{name}" for name in FIELDS} <= keys


def test_exports_and_original_config_round_trip():
    at = open_app("build", {"n_output": "none", "n_outputs": "3"})
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["config.json (this app)", "config.json (original code base)", "Wiring (GraphML)"]
    config = config_of(at)
    original = compat.config_to_original(config)
    assert original["n_output"] is None and set(original) == set(compat.ORIGINAL_FIELDS)
    assert gio.read_config(json.dumps(original).encode()).user_dict() == {
        **config.user_dict(),
        **{k: getattr(genesis.GenesisConfig(), k) for k in FIELDS if k not in compat.ORIGINAL_FIELDS},
    }


def test_many_sections_show_one_at_a_time():
    at = open_app("build")
    at.selectbox(key="build_preset").set_value("sequential").run()
    assert [k for k in charts(at) if k.startswith("build_wiring")] == ["build_wiring_0"]
    at.select_slider(key="build_section").set_value(3).run()
    assert_ok(at)
    assert [k for k in charts(at) if k.startswith("build_wiring")] == ["build_wiring_3"]


def test_the_page_says_its_charts_are_the_build_configs_when_another_model_is_chosen():
    """The header names the sidebar's model (the demo) above the Build config's wiring."""
    shown = open_app("build", fresh=False)
    assert any("This page shows the Build config, not the model above" in c.value for c in shown.caption)
    fresh = open_app("build")  # the fresh model is the Build config: nothing to tell apart
    assert not any("not the model above" in c.value for c in fresh.caption)

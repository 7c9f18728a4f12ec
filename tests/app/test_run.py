"""The Run page in AppTest: the route drawn is the model's own trace, the step-through shows each
hop's voltages against the threshold, batch vs alone, what-if, causality, bad input."""

from __future__ import annotations

import pytest
import torch

import genesis
from genesis import probes
from genesis.figure_style import NARROW
from pages.common import SOURCES, build_model, config_json, model_key
from tests.app.conftest import FRESH, assert_ok, charts, open_app, trace_named

pytestmark = pytest.mark.slow

TEXT = "Genesis routes a signal through a few neurons."


def direct(text: str, config: genesis.GenesisConfig | None = None):
    """The same model as the app's fresh one (built from the config's seed), run outside the app."""
    model = genesis.Genesis(config or genesis.preset("app")).eval()
    ids = list(text.encode())
    with torch.no_grad():
        return model, ids, model(torch.tensor([ids]), trace=True)


def test_route_drawn_is_the_models_trace():
    at = open_app("run", {"text": TEXT})
    _, ids, out = direct(TEXT)
    section = out.trace.sections[0]
    drawn = charts(at)
    assert trace_named(drawn["run_wiring"], "route")["meta"]["route"] == section.route_of(0)
    hop = trace_named(drawn["run_hop"], "voltage")  # the slider starts at the last hop
    last = section.hops[-1]
    if not last.passed[0]:  # the route stopped: the hop that was offered and did not fire is drawn
        assert trace_named(drawn["run_wiring"], "offered, did not fire")["meta"]["edge"] == [last.source, last.chosen]
    assert hop["customdata"] == [c.neuron for c in last.candidates]
    assert hop["y"] == pytest.approx([c.voltages[0] for c in last.candidates], abs=1e-6)
    assert drawn["run_hop"]["layout"]["shapes"][0]["y0"] == pytest.approx(last.threshold)
    assert any(probes.STOP_EXPLAINED[section.stop_reason] in i.value for i in at.info)
    top = probes.top_k_next(out, 10)
    bars = trace_named(drawn["run_topk"], "probability")
    assert bars["x"] == pytest.approx([p for _, p in top], abs=1e-6)
    assert [label.strip() for label in bars["y"]] == [probes.token_label(t) for t, _ in top]
    assert at.dataframe[0].value.shape[1] == len(ids) + 1  # one column per token (and the row names)


def test_step_through_and_sections():
    at = open_app("run", {"text": TEXT})
    _, _, out = direct(TEXT)
    at.slider(key="run_step").set_value(0).run()
    assert_ok(at)
    drawn = charts(at)
    section = out.trace.sections[0]
    assert trace_named(drawn["run_wiring"], "route")["meta"]["route"] == [section.start]
    indexer = trace_named(drawn["run_hop"], "voltage")
    assert indexer["customdata"] == [c.neuron for c in section.indexer]
    assert indexer["marker"]["line"]["color"][indexer["customdata"].index(section.start)] == "#ff7f0e"
    at.radio(key="run_section").set_value(1).run()
    other = out.trace.sections[1]
    assert trace_named(charts(at)["run_wiring"], "route")["meta"]["route"] == other.route_of(0)


def test_per_sample_routing_shows_the_inputs_own_route():
    config = genesis.preset("app", n_routing="sample")
    at = open_app("run", {"text": TEXT, "n_routing": "sample"})
    _, _, out = direct(TEXT, config)
    own = out.trace.sample_sections(0)[0]
    drawn = charts(at)
    assert trace_named(drawn["run_wiring"], "route")["meta"]["route"] == own.route_of(0) == own.order
    assert trace_named(drawn["run_hop"], "voltage")["customdata"] == [c.neuron for c in own.hops[-1].candidates]


def test_lines_in_a_batch_vs_alone():
    lines = ["abc", "a much longer line of text", "zz"]
    at = open_app("run", {"text": "\n".join(lines)})
    table = next(d.value for d in at.dataframe if "route alone" in d.value.columns)
    model = genesis.Genesis(genesis.preset("app")).eval()
    x, mask = probes.pad_batch([list(t.encode()) for t in lines])
    with torch.no_grad():
        batch = model(x, attention_mask=mask, trace=True).trace.sample_routes()
        alone = [model(torch.tensor([list(t.encode())]), trace=True).trace.sample_routes()[0] for t in lines]
    for row, (b, a) in enumerate(zip(batch, alone)):
        assert table["route in the batch"][row] == " | ".join(" → ".join(map(str, r)) for r in b)
        assert table["route alone"][row] == " | ".join(" → ".join(map(str, r)) for r in a)
        differs = [str(i) for i, (rb, ra) in enumerate(zip(b, a)) if rb != ra]
        assert table["differs in sections"][row] == (", ".join(differs) or "—")
    at.selectbox(key="run_line").set_value(1).run()
    assert trace_named(charts(at)["run_wiring"], "route")["meta"]["route"] == alone[1][0]


def test_charts_in_columns_fit_them():
    """Plotly never wraps a title: in a half-width column a long one is cut off at the edge. The hop
    chart's voltage axis starts at zero (voltages are in [0, 1]) and still shows the threshold."""
    at = open_app("run", {"text": TEXT})
    drawn = charts(at)
    for key in ("run_topk", "run_wiring", "run_hop", "run_whatif"):
        layout = drawn[key]["layout"]
        for line in layout["title"]["text"].split("<br>"):
            assert len(line) <= NARROW, (key, line)
    low, high = drawn["run_hop"]["layout"]["yaxis"]["range"]
    assert low == 0 and high >= 1
    if shapes := drawn["run_hop"]["layout"].get("shapes"):
        assert low < shapes[0]["y0"] < high


def test_what_if_threshold_reroutes_on_a_copy():
    at = open_app("run", {"text": TEXT})
    _, _, out = direct(TEXT)
    section = out.trace.sections[0]
    assert section.hops and section.hops[0].fired
    neuron = section.hops[0].chosen
    assert at.selectbox(key="whatif_neuron_0").value == neuron
    cached = build_model(config_json(genesis.preset("app")))  # the shared model the page uses
    at.slider(key=f"whatif_0_{neuron}_{model_key(cached)}").set_value(
        1.0
    ).run()  # a voltage is a sigmoid: never above 1
    assert_ok(at)
    spec = charts(at)["run_whatif"]
    assert trace_named(spec, "route")["meta"]["route"] == section.route_of(0)
    assert trace_named(spec, "what-if route")["meta"]["route"] == [section.start]
    assert all(t == 0.5 for s in cached.thresholds() for t in s)  # untouched
    # Another model starts from its own threshold, not the 1.0 set on this one.
    at.selectbox(key="model_source_widget").set_value(SOURCES[0]).run()
    assert_ok(at)
    sliders = [s for s in at.slider if str(s.key).startswith("whatif_")]
    demo_threshold = float(sliders[0].label.split("the model's: ")[1].rstrip(")"))
    assert len(sliders) == 1 and sliders[0].value == pytest.approx(demo_threshold, abs=1e-3)


def test_what_if_neuron_follows_a_new_text():
    """The what-if selector starts from the current route's first hop, not the previous text's."""
    first_hop = {}
    for text in ["hello world", "To be, or not to be", "0123456789", "(()())", "zzzz", "the cat sat", "ABC abc"]:
        section = direct(text)[2].trace.sections[0]
        if section.hops:
            first_hop.setdefault(section.hops[0].chosen, text)
    assert len(first_hop) >= 2, "texts whose routes start differently"
    (neuron_a, text_a), (neuron_b, text_b) = list(first_hop.items())[:2]
    at = open_app("run", {"text": text_a})
    assert at.selectbox(key="whatif_neuron_0").value == neuron_a
    at.text_area(key="run_text_input").set_value(text_b).run()
    at.button(key="run_button").click().run()
    assert_ok(at)
    assert at.selectbox(key="whatif_neuron_0").value == neuron_b


def test_causality_view():
    text = "ab cd"
    at = open_app("run", {"text": text})
    at.toggle(key="run_causality").set_value(True).run()
    assert_ok(at)
    heat = trace_named(charts(at)["run_causality_chart"], "causality")
    model, ids, _ = direct(text)
    expected = probes.causality(model, ids)
    for drawn_row, expected_row in zip(heat["z"], expected.delta, strict=True):
        assert drawn_row == pytest.approx(expected_row, abs=1e-5)
    assert len(heat["z"]) == len(ids) and len(heat["z"][0]) == len(ids)
    assert any(c.value.startswith("Attention is causal, but") for c in at.caption)


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"n_causal": "False"}, "This model's attention is not causal"),  # every position sees later tokens
        ({"n_attentive_neurons": "0"}, "This model has no attention, but"),
        ({"n_attentive_neurons": "0", "n_causal": "False"}, "This model has no attention, but"),
    ],
)
def test_the_causality_caption_follows_the_config(fields, says):
    at = open_app("run", {"text": "ab cd", **fields})
    at.toggle(key="run_causality").set_value(True).run()
    assert_ok(at)
    assert any(c.value.startswith(says) for c in at.caption), [c.value for c in at.caption]
    assert not any(c.value.startswith("Attention is causal") for c in at.caption)


def test_empty_and_too_long_text():
    at = open_app("run", {"text": "   "})
    assert any("empty" in i.value for i in at.info)
    assert "run_wiring" not in charts(at)
    at = open_app("run", {"text": "x" * 300})  # n_pos_size is 256
    assert any("only the last 256" in w.value for w in at.warning)
    assert "run_wiring" in charts(at)


def test_many_lines_are_capped_with_a_warning():
    at = open_app("run", {"text": "\n".join(f"line {i}" for i in range(500))})
    assert_ok(at)
    warning = next(w.value for w in at.warning if w.value.startswith("500 lines: only the first "))
    kept = int(warning.removeprefix("500 lines: only the first ").split()[0])
    table = next(d.value for d in at.dataframe if "route alone" in d.value.columns)
    assert 1 < kept == len(table) < 500


def test_classifier_probabilities():
    config = genesis.preset("classifier")
    at = open_app("run", {"text": TEXT, **{k: str(v) for k, v in config.user_dict().items()}})
    _, _, out = direct(TEXT, config)
    bars = trace_named(charts(at)["run_classes"], "probability")
    assert bars["y"] == pytest.approx(out.outputs[0].tolist(), abs=1e-6)


def test_continuation_and_url():
    at = open_app("run", {"text": TEXT})
    at.slider(key="run_temperature").set_value(0.0).run()  # greedy: repeatable
    at.button(key="run_sample").click().run()
    assert_ok(at)
    model, ids, _ = direct(TEXT)
    expected = probes.continuation(model, ids, 40, 0.0, 0.95, 0)
    assert at.code[0].value == (genesis.data.decode_bytes(expected) or "(end of text at once)")
    assert at.query_params["text"] == TEXT and at.query_params["source"] == FRESH
    at.slider(key="run_temperature").set_value(0.8).run()  # the default: sampled
    at.button(key="run_sample").click().run()
    assert_ok(at)
    assert at.code[0].value == (
        genesis.data.decode_bytes(probes.continuation(model, ids, 40, 0.8, 0.95, 0)) or "(end of text at once)"
    )


def test_a_continuation_is_shown_with_its_leading_line_breaks():
    """st.code drops one line break at each end of what it is given: '\nThe ...' showed as 'The ...'."""
    from genesis import io as gio
    from genesis.data import decode_bytes
    from pages.common import DEMO_DIR, EXAMPLE_TEXT

    model, ids = gio.load_folder(DEMO_DIR).eval(), list(EXAMPLE_TEXT.encode())
    texts = ((s, decode_bytes(probes.continuation(model, ids, 40, 0.8, 0.95, s))) for s in range(200))
    seed, text = next((s, t) for s, t in texts if t.startswith("\n") and t.strip())  # the demo starts many so
    at = open_app("run", fresh=False)
    at.number_input(key="run_seed").set_value(seed).run()
    at.button(key="run_sample").click().run()
    assert_ok(at)
    assert at.code[0].value == text


@pytest.mark.parametrize(
    "overrides",
    [
        genesis.PRESETS["tiny"],
        genesis.PRESETS["sequential"],
        {**genesis.PRESETS["classifier"], "n_outputs": 1},
        {**genesis.PRESETS["tiny"], "n_attentive_neurons": 0},  # every neuron may start
        {**genesis.PRESETS["tiny"], "n_neighbors": 0},  # routes end at once
        {**genesis.PRESETS["tiny"], "n_input": "bridge", "n_output": "bridge"},  # floats in: no text to run
    ],
    ids=["tiny", "sequential", "binary", "no-attentive", "no-neighbors", "bridge"],
)
def test_home_and_run_work_for_other_configs(overrides):
    query = {k: str(v) for k, v in genesis.preset("app", **overrides).user_dict().items()}
    at = open_app("run", {"text": "ab\ncd", **query})
    if overrides.get("n_input") == "bridge":
        assert any("reads floats" in i.value for i in at.info)
        return
    config = genesis.preset("app", **overrides)
    _, _, out = direct("ab", config)
    assert trace_named(charts(at)["run_wiring"], "route")["meta"]["route"] == out.trace.sample_sections(0)[0].route_of(
        0
    )
    at.switch_page("pages/home.py").run()
    for _ in range(40):  # the whole walkthrough
        if at.button(key="home_next").disabled:
            break
        at.button(key="home_next").click().run()
        assert_ok(at)
    assert at.button(key="home_next").disabled


def test_model_key_follows_the_model_object_and_every_weight_change():
    """The key of cached results: the same for an unchanged model, new after any in-place change,
    and never shared with a model built after another was freed (id() is reused then)."""
    from pages.common import model_key

    model = genesis.Genesis(genesis.preset("tiny"))
    key = model_key(model)
    assert model_key(model) == key
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, 256, (2, 8)), labels=torch.randint(0, 256, (2, 8))).loss.backward()
    optimizer.step()
    stepped = model_key(model)
    assert stepped != key
    model.load_state_dict(genesis.Genesis(genesis.preset("tiny", n_seed=1)).state_dict())
    assert model_key(model) not in (key, stepped)
    with torch.no_grad():
        model.sections[0].threshold[0] = 0.9
    assert len({key, stepped, model_key(model)}) == 3
    keys = set()
    for seed in range(20):  # freed and rebuilt: the same id() and addresses come back often
        keys.add(model_key(genesis.Genesis(genesis.preset("tiny", n_seed=seed))))
    assert len(keys) == 20

"""Aggregates over many traces (genesis.analysis) and their figures, on real tiny models."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch

from genesis import Genesis, GenesisConfig, analysis, stat_figures
from genesis.data import sample_texts
from genesis.tokenization import TextError, encode_text
from genesis.trace import STOP_BELOW_THRESHOLD

# Equal-length texts share a batch, so per-sample routing is tested with batch mates.
TEXTS = ["abc", "abd", "xyz", "hello world", "hello there", "The cat sat on the mat.", *sample_texts()[:14]]


def alone_routes(model: Genesis, texts: list[str]) -> list[list[list[int]]]:
    """Each text's route when it runs by itself (a batch of one: the definition of its own route)."""
    routes = []
    with torch.no_grad():
        for text in texts:
            ids, _ = encode_text(text, model.config.n_pos_size)
            routes.append(model(torch.tensor([ids]), trace=True).trace.sample_routes()[0])
    return routes


@pytest.fixture(scope="module")
def model() -> Genesis:
    from tests.conftest import build_model

    return build_model()


@pytest.fixture(scope="module")
def run(model) -> analysis.ActivationRun:
    return analysis.run_many(model, TEXTS, batch_size=4)


def test_each_input_takes_the_route_it_takes_alone(model, run):
    assert run.texts == TEXTS
    assert run.all_routes() == alone_routes(model, TEXTS)
    assert [run.route(i) for i in range(len(TEXTS))] == run.all_routes()
    assert model.config.n_routing == "batch"  # the shared model was copied, not changed
    assert run.inputs["count"].tolist() == [sum(map(len, r)) for r in run.all_routes()]


def test_batch_routing_of_one_equals_per_sample_routing(model, run):
    single = analysis.run_many(model, TEXTS, batch_size=1, routing="batch")
    assert single.all_routes() == run.all_routes()
    pd.testing.assert_frame_equal(single.candidates, run.candidates, check_exact=False, atol=1e-5)


def test_batch_routing_shares_the_choice_within_a_batch(model):
    # Texts of one length run as one batch, exactly as the model runs that batch (the original's
    # shared choice); the per-sample routes of the same texts are each one's own.
    texts = ["aaaa", "zzzz", "q9!~", "0000", "}{|~"]
    shared = analysis.run_many(model, texts, batch_size=8, routing="batch")
    assert shared.inputs["batch"].nunique() == 1
    with torch.no_grad():
        trace = model(torch.tensor([encode_text(t, 32)[0] for t in texts]), trace=True).trace
    assert shared.all_routes() == trace.sample_routes()
    for row in shared.sections.itertuples():  # a sample dropped before the shared route ends: its own reason
        if row.length < len(trace.sections[row.section].order):
            assert row.stop_reason == STOP_BELOW_THRESHOLD
        else:
            assert row.stop_reason == trace.sections[row.section].stop_reason
    assert analysis.run_many(model, texts, routing="sample").all_routes() == alone_routes(model, texts)


def test_length_batches_group_equal_lengths():
    assert analysis.length_batches([3, 1, 3, 2, 3], 2) == [[1], [3], [0, 2], [4]]
    with pytest.raises(ValueError, match="batch_size"):
        analysis.length_batches([1], 0)


def test_firing_frequency_counts_every_firing(model, run):
    counts = analysis.firing_frequency(run)
    assert counts.shape == (model.config.n_sections, model.config.n_neurons)
    assert counts.to_numpy().sum() == len(run.routes) == run.inputs["count"].sum()
    expected = np.zeros(counts.shape, dtype=int)
    for route in alone_routes(model, TEXTS):
        for section, neurons in enumerate(route):
            expected[section, neurons] += 1
    np.testing.assert_array_equal(counts.to_numpy(), expected)
    np.testing.assert_allclose(analysis.firing_frequency(run, normalize=True).to_numpy(), expected / len(TEXTS))


def test_start_distribution_and_route_lengths_cover_every_input(model, run):
    starts = analysis.start_distribution(run)
    assert list(starts.columns) == list(range(model.config.n_attentive_neurons))
    assert starts.sum(axis=1).tolist() == [len(TEXTS)] * model.config.n_sections
    lengths = analysis.route_lengths(run)
    assert lengths.sum(axis=0).tolist() == [len(TEXTS)] * model.config.n_sections
    routes = run.all_routes()
    for section in range(model.config.n_sections):
        assert lengths[section].to_dict() == {
            n: sum(len(r[section]) == n for r in routes) for n in range(1, model.config.n_neurons + 1)
        }
    assert analysis.stop_reasons(run).to_numpy().sum() == len(TEXTS) * model.config.n_sections


def test_transitions_are_the_hops_and_follow_the_wiring(model, run):
    hops = analysis.transitions(run)
    routes = run.all_routes()
    for section in range(model.config.n_sections):
        matrix = analysis.transition_matrix(run, section)
        assert matrix.to_numpy().sum() == sum(len(r[section]) - 1 for r in routes)
        pairs = [(a, b) for r in routes for a, b in zip(r[section], r[section][1:])]
        for (source, target), count in pd.Series(pairs).value_counts().items():
            assert matrix.loc[source, target] == count
        wiring = model.neighbor_lists()[section]
        for source, target in zip(*np.nonzero(matrix.to_numpy())):
            assert target in wiring[source] and target >= model.config.n_attentive_neurons
    assert hops["count"].sum() == sum(len(s) - 1 for r in routes for s in r)
    assert hops["count"].sum() > 0  # the perturbed model's routes do hop


def test_candidates_margins_agree_with_who_fired(model, run):
    c = run.candidates
    thresholds = model.thresholds()
    assert np.allclose(c["threshold"], [thresholds[s][n] for s, n in zip(c["section"], c["candidate"])])
    assert np.allclose(c["margin"], c["voltage"] - c["threshold"])
    assert (c.loc[c["fired"], "margin"] > 0).all()
    assert (c.loc[c["chosen"] & ~c["fired"], "margin"] <= 0).all()
    assert c["fired"].sum() == len(run.routes) - len(run.sections)  # every firing but the starts
    # One winner per hop, and it is the strongest candidate (per-sample routing: its own voltage).
    for _, hop in c.groupby(["input", "section", "hop"]):
        assert hop["chosen"].sum() == 1
        assert hop.loc[hop["chosen"], "voltage"].iloc[0] == hop["voltage"].max()


def test_near_miss_is_each_candidates_best_margin(run):
    matrix = analysis.near_miss(run)
    assert list(matrix.index) == list(range(len(TEXTS)))
    c = run.candidates
    for (i, section, neuron), margins in c.groupby(["input", "section", "candidate"])["margin"]:
        assert matrix.loc[i, analysis.neuron_label(section, neuron)] == pytest.approx(margins.max())
    assert matrix.notna().to_numpy().sum() == c.groupby(["input", "section", "candidate"]).ngroups
    misses = analysis.near_misses(run, limit=5)
    assert len(misses) == 5 and not misses["fired"].any()
    assert misses["margin"].is_monotonic_decreasing
    assert misses["margin"].iloc[0] == c.loc[~c["fired"], "margin"].max()


def test_entropy():
    assert analysis.entropy([7]) == 0.0
    assert analysis.entropy([5, 0, 0]) == 0.0
    assert analysis.entropy([]) == 0.0
    assert analysis.entropy([3, 3, 3, 3]) == pytest.approx(2.0)
    assert analysis.entropy([1, 3]) == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))


def test_balance_is_between_zero_and_its_maximum(model, run):
    table = analysis.balance(run)
    assert table["start_entropy_max"].tolist() == [1.0] * model.config.n_sections  # 2 attentive neurons
    assert table["firing_entropy_max"].iloc[0] == pytest.approx(math.log2(model.config.n_neurons))
    assert (table["start_entropy"] <= table["start_entropy_max"] + 1e-12).all()
    assert (table["firing_entropy"] <= table["firing_entropy_max"] + 1e-12).all()
    starts = analysis.start_distribution(run)
    assert table["start_entropy"].iloc[0] == pytest.approx(analysis.entropy(starts.loc[0]))


def test_route_table_and_diversity(model, run):
    table = analysis.route_table(run, top=100)
    assert table["count"].sum() == len(TEXTS)
    assert table["count"].is_monotonic_decreasing
    keys = analysis.route_keys(run)
    for row in table.itertuples():
        members = [text for text, key in zip(TEXTS, keys) if key == row.route]
        assert row.count == len(members) and row.share == len(members) / len(TEXTS)
        assert row.examples.startswith(" ".join(members[0].split())[:20])
    assert analysis.route_diversity(run) == pytest.approx(analysis.entropy(table["count"]))
    assert analysis.route_diversity(run) > 0
    same = analysis.run_many(model, ["one text"] * 6)
    assert analysis.route_diversity(same) == 0.0
    assert analysis.route_table(same)["count"].tolist() == [6]


def test_route_difference_on_handcrafted_routes():
    diff = analysis.route_difference([[1, 4, 5], [2, 3]], [[1, 4, 6], [2, 3]])
    first, second = diff.iloc[0], diff.iloc[1]
    assert (first["shared_prefix"], first["first_divergent_step"], first["neuron_a"], first["neuron_b"]) == (2, 2, 5, 6)
    assert second["same"] and second["shared_prefix"] == 2 and pd.isna(second["first_divergent_step"])
    prefix = analysis.route_difference([[1, 4]], [[1, 4, 7]]).iloc[0]
    assert (prefix["shared_prefix"], prefix["first_divergent_step"], prefix["neuron_b"]) == (2, 2, 7)
    assert pd.isna(prefix["neuron_a"])  # route A had already stopped
    start = analysis.route_difference([[0]], [[1]]).iloc[0]
    assert (start["shared_prefix"], start["first_divergent_step"]) == (0, 0)
    missing = analysis.route_difference([[0], [1]], [[0]])  # a section missing on one side
    assert len(missing) == 2 and missing.iloc[1]["route_b"] == "(no section 1)" and not missing.iloc[1]["same"]


def test_route_difference_reads_traces(model):
    with torch.no_grad():
        trace = model(torch.tensor([encode_text("hello", 32)[0]]), trace=True).trace
    diff = analysis.route_difference(trace, trace.sample_routes()[0])
    assert diff["same"].all()
    assert diff["shared_prefix"].tolist() == [len(r) for r in trace.sample_routes()[0]]


def test_with_fields_rewires_with_the_same_weights(model):
    before = model.neighbor_lists()
    copy = analysis.with_fields(model, n_seed=model.config.n_seed + 1)
    assert model.neighbor_lists() == before and model.config.n_seed == 1
    assert copy.neighbor_lists() != before and not copy.training
    for (name, a), b in zip(model.state_dict().items(), copy.state_dict().values()):
        assert torch.equal(a, b), name


def test_with_fields_keeps_the_whole_config_and_the_weights_dtype(model):
    named = analysis.with_fields(
        Genesis(GenesisConfig(**{**model.config.user_dict(), "id2label": {0: "a"}, "eos_token_id": 256})),
        n_routing="sample",
    )
    assert named.config.id2label == {0: "a"} and named.config.eos_token_id == 256  # used to be reset
    wide = analysis.with_fields(copy.deepcopy(model).double(), n_routing="sample")
    assert {p.dtype for p in wide.parameters()} == {torch.float64}  # used to come back float32


def test_edge_inputs_get_messages_that_name_the_problem(model, run):
    with pytest.raises(TypeError, match="not one text"):
        analysis.run_many(model, "hello")  # used to run five one-letter texts
    with pytest.raises(ValueError, match=r"section must be in \[0, 1\], got 5"):
        analysis.transition_matrix(run, 5)  # used to be an all-zero table
    empty = analysis.route_difference([], [])
    assert empty.empty and "first_divergent_step" in empty.columns  # used to be a KeyError


def test_seed_stability(model):
    texts = TEXTS[:8]
    table = analysis.seed_stability(model, [model.config.n_seed, 7, 8], texts)
    assert table["seed"].tolist() == [1, 7, 8]
    own = table.iloc[0]
    assert own["changed"] == 0 and own["changed_share"] == 0.0
    base = alone_routes(model, texts)
    for _, row in table.iloc[1:].iterrows():
        rewired = alone_routes(analysis.with_fields(model, n_seed=int(row["seed"])), texts)
        changed = sum(a != b for a, b in zip(base, rewired))
        assert row["changed"] == changed and row["changed_share"] == changed / len(texts)
        assert row["mean_shared_steps"] >= 1  # the start neuron does not depend on the wiring
    config_table = analysis.seed_stability(model.config, [model.config.n_seed], texts)
    assert config_table["changed"].tolist() == [0]


def test_parse_seeds():
    assert analysis.parse_seeds("1, 2 3,,2") == [1, 2, 3]
    for bad in ("", "1, x", "-1", " , ", "²", "١٢"):  # isdigit() alone takes the last two
        with pytest.raises(ValueError):
            analysis.parse_seeds(bad)
    with pytest.raises(ValueError, match="at most"):
        analysis.parse_seeds(" ".join(map(str, range(20))))


def test_compare_configs(model, make_config):
    other = make_config(n_neurons=6, n_neighbors=3)
    comparison = analysis.compare_configs({"model": model, "fresh": other}, TEXTS[:6], repeats=2)
    table = comparison.table
    assert table["config"].tolist() == ["model", "fresh"]
    assert table["parameters"].tolist() == [
        sum(p.numel() for p in model.parameters()),
        sum(p.numel() for p in Genesis(other).parameters()),
    ]
    assert (table["latency_ms"] > 0).all()
    assert table["mean_neurons_fired"][0] == pytest.approx(
        np.mean([sum(map(len, r)) for r in alone_routes(model, TEXTS[:6])])
    )
    assert table["route_diversity"][0] == analysis.route_diversity(comparison.runs["model"])
    assert comparison.runs["fresh"].n_neurons == 6
    unnamed = analysis.compare_configs([other, other], TEXTS[:2], repeats=1)
    assert unnamed.table["config"].tolist() == ["config 1", "config 2"]


def test_run_many_refuses_what_it_cannot_run(model, make_config):
    with pytest.raises(ValueError, match="no inputs"):
        analysis.run_many(model, [])
    with pytest.raises(TextError):
        analysis.run_many(model, ["fine", "   "])
    with pytest.raises(ValueError, match="routing"):
        analysis.run_many(model, ["x"], routing="global")
    bridge = Genesis(make_config(n_input="bridge", n_output="bridge")).eval()
    with pytest.raises(ValueError, match="n_input"):
        analysis.run_many(bridge, ["x"])
    assert analysis.runnable_problem(make_config(n_vocab_size=100)).startswith("n_vocab_size")


def test_run_many_reports_progress_and_truncation(model):
    calls = []
    long_text = "x" * 100  # n_pos_size is 32
    run = analysis.run_many(model, [*TEXTS[:5], long_text], batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (6, 6) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert run.inputs["truncated"].tolist() == [False] * 5 + [True]
    assert run.inputs["tokens"].iloc[-1] == 32


def test_tables_export_to_csv(run):
    for frame in (
        run.inputs,
        run.candidates,
        analysis.firing_frequency(run),
        analysis.near_miss(run),
        analysis.route_table(run),
        analysis.transitions(run),
        analysis.balance(run),
    ):
        text = frame.to_csv()
        assert len(text.splitlines()) >= len(frame) + 1


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"n_dim": 64, "n_section": "sequential", "n_causal": True, "n_seed": 7},
        {"n_cross_attention": True, "n_trainable_routing": True, "n_output": "sequence_classifier", "n_outputs": 3},
    ],
)
def test_config_from_url_round_trip(fields):
    wanted = {**analysis.app_defaults(), **fields}
    url = analysis.url_for_config(wanted, "http://localhost:8501/build")
    assert url.startswith("http://localhost:8501/build")
    assert ("?" in url) == bool(fields)
    assert analysis.config_from_url(url) == wanted
    assert analysis.config_from_url(url + "&text=hi+there&source=x") == wanted  # non-config params ignored
    query = url.partition("?")[2]
    assert analysis.config_from_url(query) == wanted


def test_config_from_url_names_the_bad_field():
    with pytest.raises(ValueError, match="n_dim"):
        analysis.config_from_url("http://h/?n_dim=big")
    with pytest.raises(ValueError, match="n_cross_attention"):
        analysis.config_from_url("?n_cross_attention=maybe")
    assert analysis.config_from_url("?n_causal=None")["n_causal"] is None
    assert analysis.config_from_url("?n_causal=false")["n_causal"] is False
    with pytest.raises(ValueError, match="n_causal"):  # not silently "no"
        analysis.config_from_url("?n_causal=maybe")
    for not_a_link in ("not a url", "javascript:alert(1)", "ftp://h/build?n_dim=64"):  # not silently the defaults
        with pytest.raises(ValueError, match="not a link from this app"):
            analysis.config_from_url(not_a_link)
    assert analysis.config_from_url("http://h:8501/build") == analysis.app_defaults()  # the defaults' own link


@pytest.mark.parametrize(
    "value, message",
    [
        ("64_0", "must be an integer, got '64_0'"),
        ("٦٤", "must be an integer"),
        ("6.4e1", "must be an integer"),
        ("0x40", "must be an integer"),
        ("9" * 5000, r"must be in \[1, 16384\], got a number of 5,000 digits"),
    ],
)
def test_url_integers_are_plain_ascii_digits_and_messages_stay_short(value, message):
    """int() took 64_0 and Arabic-Indic digits silently, and 5,000 digits raised Python's advice to
    call sys.set_int_max_str_digits; the message echoed all of them."""
    with pytest.raises(ValueError, match=f"n_dim: {message}") as raised:
        analysis.config_from_url(f"?n_dim={value}")
    assert len(str(raised.value)) < 120
    assert analysis.config_from_url("?n_dim=+64")["n_dim"] == 64
    with pytest.raises(ValueError, match=r"n_dim: must be in \[1, 16384\], got 10{30}"):  # an integer still
        GenesisConfig(**analysis.config_from_url("?n_dim=1" + "0" * 30))


def test_seeds_beyond_the_config_range_are_refused_in_a_short_message():
    for text in ("1 " + "9" * 5000, "9223372036854775808"):
        with pytest.raises(ValueError, match="seeds must be at most 9223372036854775807") as raised:
            analysis.parse_seeds(text)
        assert len(str(raised.value)) < 120


# -- figures ------------------------------------------------------------------------------------


def test_figures_show_the_tables(run):
    frequency = analysis.firing_frequency(run, normalize=True)
    heatmap = stat_figures.firing_heatmap(frequency, run.n_attentive)
    np.testing.assert_allclose(np.array(heatmap.data[0].z), frequency.to_numpy())
    starts = analysis.start_distribution(run)
    bars = stat_figures.start_bars(starts)
    assert [list(t.y) for t in bars.data] == starts.to_numpy().tolist()
    assert [t.marker.color for t in bars.data] == [stat_figures.color(s) for s in range(run.n_sections)]
    stops = stat_figures.stop_reason_bars(analysis.stop_reasons(run))  # drawn in the same tab as the starts
    assert {t.marker.color for t in stops.data}.isdisjoint(stat_figures.PALETTE)  # no reason looks like a section
    assert [t.name for t in stops.data] == list(analysis.stop_reasons(run).columns)
    matrix = analysis.transition_matrix(run, 1)
    np.testing.assert_array_equal(np.array(stat_figures.transition_heatmap(matrix, 1).data[0].z), matrix.to_numpy())
    near = analysis.near_miss(run)
    z = np.array(stat_figures.near_miss_heatmap(near, run.texts).data[0].z, dtype=float)
    np.testing.assert_array_equal(np.isnan(z), near.isna().to_numpy())
    np.testing.assert_allclose(z[~np.isnan(z)], near.to_numpy()[~np.isnan(z)])


def test_every_figure_keeps_zoom_across_reruns(model, run):
    comparison = analysis.compare_configs({"a": model}, TEXTS[:3], repeats=1)
    figures = [
        stat_figures.firing_heatmap(analysis.firing_frequency(run, True), run.n_attentive),
        stat_figures.start_bars(analysis.start_distribution(run)),
        stat_figures.route_length_bars(analysis.route_lengths(run)),
        stat_figures.stop_reason_bars(analysis.stop_reasons(run)),
        stat_figures.transition_heatmap(analysis.transition_matrix(run, 0), 0),
        stat_figures.near_miss_heatmap(analysis.near_miss(run), run.texts),
        stat_figures.balance_bars(analysis.balance(run)),
        stat_figures.comparison_bars(comparison.table),
        stat_figures.seed_stability_bars(analysis.seed_stability(model, [1], TEXTS[:3])),
    ]
    revisions = [f.layout.uirevision for f in figures]
    assert all(revisions) and len(set(revisions)) == len(revisions)
    assert all(f.layout.title.text for f in figures)
    bars = figures[-2]
    assert list(bars.data[0].y) == comparison.table["parameters"].tolist()

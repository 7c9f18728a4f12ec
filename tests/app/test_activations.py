"""The Activations page in AppTest: inputs from the sample set, typed lines or an upload; the
charts show exactly what genesis.analysis computes for the same model and texts."""

from __future__ import annotations

import numpy as np
import pytest

import genesis
from genesis import analysis
from genesis.data import sample_texts
from tests.app.conftest import assert_ok, charts, open_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app_model() -> genesis.Genesis:
    """The page's model: a fresh model from the default Build config (weights seeded by n_seed)."""
    return genesis.Genesis(genesis.preset("app")).eval()


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_sample_set_runs_on_arrival_and_charts_match_the_library(app_model):
    at = open_app("activations")
    run = analysis.run_many(app_model, sample_texts())
    drawn = charts(at)
    assert {"act_firing", "act_starts", "act_lengths", "act_transitions", "act_near_miss", "act_balance"} <= set(drawn)
    np.testing.assert_allclose(drawn["act_firing"]["data"][0]["z"], analysis.firing_frequency(run, normalize=True))
    starts = analysis.start_distribution(run)
    assert [trace["y"] for trace in drawn["act_starts"]["data"]] == starts.to_numpy().tolist()
    np.testing.assert_array_equal(drawn["act_transitions"]["data"][0]["z"], analysis.transition_matrix(run, 0))
    near = analysis.near_miss(run).to_numpy()
    z = np.array(drawn["act_near_miss"]["data"][0]["z"], dtype=float)
    np.testing.assert_allclose(z[~np.isnan(near)], near[~np.isnan(near)], rtol=1e-6)
    assert metric(at, "Inputs") == str(len(sample_texts()))
    assert metric(at, "Distinct routes") == str(len(set(analysis.route_keys(run))))
    assert at.get("progress")[0].value == 100
    labels = [b.label for b in at.get("download_button")]
    for name in ("firing_frequency", "route_table", "near_misses", "transitions", "balance", "candidates"):
        assert f"Download {name}.csv" in labels
    # Its routes are per-sample, the model's are batch: said, since the other pages' numbers differ.
    assert any(
        "The model's own mode, used by Home and Run, is batch routing (Compare routes each input alone)" in c.value
        for c in at.caption
    )


def test_typed_lines_with_shared_batch_routing(app_model):
    at = open_app("activations")
    at.radio(key="act_source").set_value("Typed lines").run()
    lines = ["same", "size", "the cat", "a dog!"]
    at.text_area(key="act_lines").set_value("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:])).run()
    assert at.warning and "press Run" in at.warning[0].value  # the old results are marked stale
    at.radio(key="act_routing").set_value("batch")
    at.button(key="act_run").click().run()
    assert_ok(at)
    assert not at.warning
    assert metric(at, "Inputs") == "4"
    assert not any("The model's own mode" in c.value for c in at.caption)  # the same mode: nothing to say
    run = analysis.run_many(app_model, lines, routing="batch")
    np.testing.assert_allclose(charts(at)["act_firing"]["data"][0]["z"], analysis.firing_frequency(run, normalize=True))
    at.selectbox(key="act_section").set_value(1).run()
    np.testing.assert_array_equal(charts(at)["act_transitions"]["data"][0]["z"], analysis.transition_matrix(run, 1))


def test_a_config_without_neighbors_says_why_hops_and_near_misses_are_empty():
    at = open_app("activations", {"n_neighbors": "0"})  # the sample set runs on arrival
    assert_ok(at)
    notes = [i.value for i in at.info]
    assert "No route hopped: every route ended at its start neuron" in " ".join(notes)
    assert any(n.startswith("No neuron was ever a candidate") for n in notes)
    assert not {"act_near_miss", "act_transitions"} & set(charts(at))  # no empty heatmaps with meaningless axes
    assert metric(at, "Distinct routes") != "0"


def test_emptied_typed_lines_say_why_run_is_off():
    at = open_app("activations")  # the sample set runs on arrival
    at.radio(key="act_source").set_value("Typed lines").run()
    at.text_area(key="act_lines").set_value("  \n\n").run()
    assert_ok(at)
    assert at.button(key="act_run").disabled
    assert any("Type at least one line" in i.value for i in at.info)
    assert [w.value for w in at.warning] == ["No inputs to run: the results below are from the last run."]


def test_uploaded_csv_runs_its_text_column():
    at = open_app("activations")
    at.radio(key="act_source").set_value("Uploaded .txt/.csv").run()
    at.file_uploader(key="act_upload").set_value(("inputs.csv", b"id,text\n1,hello\n2,world wide\n3,hi", "text/csv"))
    at.run()
    at.button(key="act_run").click().run()
    assert_ok(at)
    assert metric(at, "Inputs") == "3"
    assert not at.error


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"fine line\n\xff\xfe broken", "not valid UTF-8"),
        (b"  \n\n", "empty"),
        (b"line\n" * 250_000, "over the limit of 1,000,000 bytes"),
    ],
)
def test_invalid_upload_shows_a_message(content, message):
    at = open_app("activations")
    at.radio(key="act_source").set_value("Uploaded .txt/.csv").run()
    at.file_uploader(key="act_upload").set_value(("bad.txt", content, "text/plain")).run()
    assert_ok(at)
    assert any(message in e.value and "bad.txt" in e.value for e in at.error)
    assert at.button(key="act_run").disabled

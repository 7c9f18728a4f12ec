"""The Train page in AppTest: a tiny training starts in the background, its progress, loss curve and
routing snapshots appear, Stop stops it, and the trained model becomes the session's trained model."""

from __future__ import annotations

import time

import pytest
import torch

from genesis import Genesis
from tests.app.conftest import assert_ok, charts, open_app

pytestmark = pytest.mark.slow

TINY = {
    "n_dim": "32",
    "n_neurons": "6",
    "n_attentive_neurons": "2",
    "n_attentive_neuron_heads": "2",
    "n_neighbors": "3",
}


def poll_until(at, done, limit: float = 240.0):
    """Rerun the page (as the fragment's timer would) until `done(at)` or the limit passes."""
    deadline = time.monotonic() + limit
    while not done(at) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
        assert_ok(at)
    return at


def start(at, data: str, steps: int):
    at.selectbox(key="train_data").set_value(data).run()
    at.number_input(key="train_steps").set_value(steps).run()
    at.number_input(key="train_batch").set_value(8).run()
    if not at.number_input(key="train_block").disabled:  # tasks have their own length
        at.number_input(key="train_block").set_value(32).run()
    at.button(key="train_start").click().run()
    assert_ok(at)
    return at


def test_training_runs_shows_progress_and_publishes_the_model():
    at = open_app("train", query=TINY)
    assert at.button(key="train_start").label == "Start training"
    assert at.button(key="train_stop").disabled
    start(at, "brackets", 40)
    job = at.session_state["train_job"]
    poll_until(at, lambda at: "trained_model" in at.session_state or job.error)
    assert job.error is None
    assert job.result.stop_reason == "completed"
    figures = charts(at)
    curve = {d["name"]: d for d in figures["train_loss_chart"]["data"]}
    assert len(curve["train (per step)"]["y"]) == 40
    assert len(curve["validation"]["y"]) == len(job.result.evaluations) >= 3
    assert curve["validation"]["y"] == pytest.approx([e.val_loss for e in job.result.evaluations])  # what it measured
    metrics = {m.label: m.value for m in at.metric}  # says at which step validation was measured
    last = job.result.evaluations[-1]
    assert metrics[f"validation loss (step {last.step})"] == f"{last.val_loss:.3f}"
    assert metrics[f"validation accuracy (step {last.step})"] == f"{last.val_accuracy:.1%}"
    assert at.number_input(key="train_block").disabled  # a task's length is its own, not the window's
    firing = figures["train_firing_chart"]["data"]
    assert len(firing) == 2  # one heatmap per section: neurons × evaluations
    assert len(firing[0]["z"]) == 6 and len(firing[0]["z"][0]) == len(job.result.evaluations)
    assert "train_class_chart" in figures  # a classification task: firing per class
    model = at.session_state["trained_model"]
    assert isinstance(model, Genesis) and not model.training
    assert model.config.n_output == "sequence_classifier" and model.config.n_outputs == 2
    assert "brackets" in at.session_state["trained_label"]
    assert at.button(key="train_use").label == "Use it on the Run page"
    assert at.session_state["trained_files"][1][:8] != b""  # the download's safetensors bytes


def test_the_page_trains_what_the_library_trains_with_its_recipe():
    """The curve a session sees is the library's for the page's recipe, number for number, while the
    page reruns around the job. (In a real server other sessions build models and sample meanwhile;
    that those draws cannot move a run's is tested in test_training.py and test_threads.py.)"""
    from genesis import training

    at = open_app("train", query=TINY)
    start(at, "copy", 12)
    job = at.session_state["train_job"]
    poll_until(at, lambda at: "trained_model" in at.session_state or job.error)
    assert job.error is None and job.result.steps_done == 12
    model = Genesis(job.model.config)
    alone = training.train(model, job.data, job.config)
    assert [(e.step, e.train_loss, e.val_loss) for e in job.result.events] == [
        (e.step, e.train_loss, e.val_loss) for e in alone.events
    ]
    assert all(torch.equal(a, b) for a, b in zip(job.model.state_dict().values(), model.state_dict().values()))


def test_stop_ends_training_early_and_the_model_is_usable():
    at = open_app("train", query=TINY)
    start(at, "copy", 3000)
    poll_until(at, lambda at: len(at.session_state["train_job"].events()) >= 3)
    at.button(key="train_stop").click().run()
    poll_until(at, lambda at: "trained_model" in at.session_state)
    result = at.session_state["train_job"].result
    assert result.stop_reason == "stopped" and result.steps_done < 3000
    model = at.session_state["trained_model"]
    with torch.no_grad():
        out = model(torch.tensor([[104, 105]]))
    assert out.logits.shape == (1, 2, model.config.n_vocab_size)


def test_bad_upload_is_explained():
    at = open_app("train", query=TINY)
    at.selectbox(key="train_data").set_value("Upload a .txt file").run()
    assert_ok(at)
    assert any("Upload a .txt file" in i.value for i in at.info)
    assert at.button(key="train_start").disabled


def test_a_config_that_does_not_read_text_cannot_start():
    at = open_app("train", query={**TINY, "n_input": "bridge"})
    assert_ok(at)
    assert any("n_input='reading'" in e.value for e in at.error)
    assert at.button(key="train_start").disabled


def test_a_training_that_ends_on_another_page_is_still_published():
    at = open_app("train", query=TINY)
    start(at, "brackets", 20)
    job = at.session_state["train_job"]
    at.switch_page("pages/run.py").run()
    assert_ok(at)
    deadline = time.monotonic() + 240
    while not job.done and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.done and job.error is None
    assert "trained_model" not in at.session_state  # nothing has rerun since it ended
    at.run()  # any page's next run (here Run) publishes it through the sidebar picker
    assert_ok(at)
    assert at.session_state["trained_model"] is job.model
    assert "brackets" in at.session_state["trained_label"]


def test_a_training_stopped_while_waiting_for_a_slot_publishes_nothing():
    """With every slot taken, a third session waits; stopping it must not hand on its untrained model."""
    busy = []
    try:
        while True:  # sessions start trainings until one has to wait (the server has a few slots)
            at = start(open_app("train", query=TINY), "copy", 3000)
            job = at.session_state["train_job"]
            deadline = time.monotonic() + 2  # a free slot is taken within milliseconds
            while job.waiting and time.monotonic() < deadline:
                time.sleep(0.05)
            if job.waiting:
                break
            busy.append(at)
            assert len(busy) <= 4
        assert any("Waiting for a free training slot" in i.value for i in at.info)
        at.button(key="train_stop").click().run()
        poll_until(at, lambda at: job.done)
        assert job.cancelled and "trained_model" not in at.session_state
        assert any("Stopped before the first step" in i.value for i in at.info)
        assert not any("Waiting for a free training slot" in i.value for i in at.info)
    finally:
        for other in busy:
            other.session_state["train_job"].stop()
        for other in busy:
            assert other.session_state["train_job"].wait(60)

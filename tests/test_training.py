"""The training loop: it learns (classification well below chance, LM on the copy task), trained
routes differ between classes, the schedule, checkpoints round-trip, stopping, the background job,
and the Hugging Face Trainer path in one process (DDP has its own test)."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from genesis import Genesis, GenesisConfig, preset, training
from genesis import data as gdata
from genesis import io as gio
from genesis.training import TrainingConfig

SMALL = dict(preset("tiny").user_dict(), n_pos_size=32)  # d32, 2 sections of 6 neurons


def small_model(task: training.Task, **overrides) -> Genesis:
    return Genesis(training.config_for_task(GenesisConfig(**{**SMALL, **overrides}), task))


@pytest.fixture(scope="module")
def brackets():
    return training.load_data("brackets", examples=2000, seq_len=16)


@pytest.fixture(scope="module")
def trained_classifier(brackets):
    model = Genesis(training.config_for_task(preset("classifier"), brackets))  # d64, 2 sections of 8 neurons
    recipe = TrainingConfig(steps=150, batch_size=32, lr=3e-3, warmup=10, eval_every=50, eval_batches=4)
    return model, training.train(model, brackets, recipe)


def total_variation(a: list[list[float]], b: list[list[float]]) -> float:
    """Largest total-variation distance, over sections, between two firing profiles (normalised)."""
    distances = []
    for fa, fb in zip(a, b):
        pa, pb = [v / (sum(fa) or 1) for v in fa], [v / (sum(fb) or 1) for v in fb]
        distances.append(0.5 * sum(abs(x - y) for x, y in zip(pa, pb)))
    return max(distances)


def test_classification_loss_falls_well_below_chance(trained_classifier):
    model, result = trained_classifier
    chance = math.log(2)
    assert result.evaluations[0].val_loss > 0.9 * chance  # untrained: about chance
    assert result.final_val_loss < 0.5 * chance
    assert result.evaluations[-1].val_accuracy > 0.85
    assert not model.training


def test_trained_routes_differ_between_classes(trained_classifier, brackets):
    model, _ = trained_classifier
    batch = training.ExampleTask._rows(brackets.val, slice(0, 64))
    snapshot = training.route_snapshot(model, batch, class_names=brackets.class_names)
    unbalanced, balanced = snapshot.by_class["unbalanced"], snapshot.by_class["balanced"]
    assert total_variation(unbalanced, balanced) > 0.1
    # the class-wise views agree with the routes themselves
    routes = training.sample_routes(model, batch.input_ids)
    labels = batch.labels.tolist()
    by_label = {c: {str(r) for r, y in zip(routes, labels) if y == c} for c in (0, 1)}
    assert by_label[0] != by_label[1]


def test_snapshot_routes_are_each_input_alone_without_its_padding(trained_classifier, brackets):
    from genesis import probes

    model, _ = trained_classifier
    ids = training.ExampleTask._rows(brackets.val, slice(0, 24)).input_ids
    mask = torch.ones_like(ids)
    for i in range(len(ids)):  # right padding of 0-3 positions: four lengths
        mask[i, ids.shape[1] - i % 4 :] = 0
    alone = [probes.routes_alone(model, row[keep.bool()].tolist()) for row, keep in zip(ids, mask)]
    assert training.sample_routes(model, ids, mask) == alone
    assert len({str(route) for route in alone}) > 1


def test_snapshots_are_recorded_at_each_evaluation(trained_classifier):
    _, result = trained_classifier
    steps = [e.step for e in result.evaluations]
    assert steps == [0, 50, 100, 150]
    for event in result.evaluations:
        snap = event.snapshot
        assert snap.step == event.step and snap.samples == 24
        for section in range(2):
            assert sum(snap.start[section]) == pytest.approx(1.0)
            assert all(0.0 <= f <= 1.0 for f in snap.firing[section])
            # every route fires its start neuron, so firing >= start share
            assert all(f >= s - 1e-9 for f, s in zip(snap.firing[section], snap.start[section]))
            assert snap.route_length[section] == pytest.approx(sum(snap.firing[section]))


def test_lm_loss_falls_on_the_copy_task():
    task = training.load_data("copy", examples=1200, seq_len=16, seed=0)
    model = small_model(task)
    recipe = TrainingConfig(steps=150, batch_size=24, lr=5e-3, warmup=10, eval_every=75, eval_batches=4)
    result = training.train(model, task, recipe)
    first, last = result.evaluations[0].val_loss, result.final_val_loss
    assert first > math.log(100)  # untrained: near uniform over bytes
    assert last < first - 2.0  # from uniform over 258 ids to about the letters' entropy


def test_text_corpus_windows_and_events():
    text = gdata.stdlib_docstring_corpus(max_chars=40_000)
    model = Genesis(GenesisConfig(**SMALL))
    events = []
    recipe = TrainingConfig(steps=30, batch_size=4, block_size=24, eval_every=10, eval_batches=2, snapshot_samples=4)
    result = training.train(model, text, recipe, callback=events.append)
    assert [e.step for e in events] == list(range(31))
    assert all(e.tokens_per_s > 0 for e in events[1:])
    assert events[-1].val_loss is not None and result.tokens == 30 * 4 * 24
    elapsed = [e.elapsed for e in events]  # from the start, the first evaluation included (it was 0)
    assert 0 < elapsed[0] and elapsed == sorted(elapsed)


def test_schedule_warms_up_then_decays_to_min_lr():
    recipe = TrainingConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    lrs = [training.learning_rate(step, recipe) for step in range(100)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))
    assert max(lrs) == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert training.learning_rate(100, recipe) == pytest.approx(1e-4)


def test_bad_settings_are_refused_with_the_field_named(brackets):
    with pytest.raises(ValueError, match="steps"):
        TrainingConfig(steps=0)
    with pytest.raises(ValueError, match="min_lr"):
        TrainingConfig(lr=1e-3, min_lr=1e-2)
    for name, value in (("grad_clip", -1.0), ("grad_clip", 0), ("weight_decay", -0.1), ("beta2", 2.0), ("lr", "1e-3")):
        with pytest.raises(ValueError, match=name):  # a negative clip would flip every gradient
            TrainingConfig(**{name: value})
    wrong_types = [  # each used to pass, or to fail inside train() without the field's name
        ("warmup", "5"), ("early_stop_patience", "2"), ("checkpoint_every", 1.5), ("snapshot_samples", 2.5),
        ("seed", "a"), ("seed", 1.5), ("seed", 2**64), ("steps", True), ("batch_size", True),
        ("grad_clip", True), ("eval_at_start", "no"), ("output_dir", 5),
    ]  # fmt: skip
    for name, value in wrong_types:
        with pytest.raises(ValueError, match=f"^{name} must be"):
            TrainingConfig(**{name: value})
    with pytest.raises(ValueError, match="examples must be an integer >= 2"):
        training.load_data("brackets", examples=0)  # used to say "n must be >= 0, got -1"
    with pytest.raises(ValueError, match="no batches"):
        training.evaluate(small_model(brackets), [])  # used to divide by zero
    lm = Genesis(GenesisConfig(**SMALL))
    with pytest.raises(ValueError, match="n_output"):
        training.train(lm, brackets, TrainingConfig(steps=1))
    with pytest.raises(gdata.DataError, match="block_size"):
        training.as_task("too short", block_size=64)
    with pytest.raises(ValueError, match="longer than"):
        training.train(Genesis(GenesisConfig(**{**SMALL, "n_pos_size": 8})), "x" * 2000, TrainingConfig(steps=1))
    for n_input in ("bridge", "none"):  # the data is text: a model that reads floats cannot take it
        with pytest.raises(ValueError, match="n_input='reading'"):
            training.config_for_task(GenesisConfig(**{**SMALL, "n_input": n_input}), brackets)
        with pytest.raises(ValueError, match="n_input='reading'"):
            training.train(Genesis(GenesisConfig(**{**SMALL, "n_input": n_input})), "x" * 2000, TrainingConfig(steps=1))


def test_checkpoints_round_trip(tmp_path, brackets):
    model = small_model(brackets)
    recipe = TrainingConfig(
        steps=6, batch_size=8, eval_every=3, eval_batches=1, output_dir=str(tmp_path), checkpoint_every=3
    )
    training.train(model, brackets, recipe)
    for folder in (tmp_path, tmp_path / "checkpoint-3", tmp_path / "checkpoint-6"):
        assert (folder / "model.safetensors").is_file() and (folder / "training.json").is_file()
        assert not list(folder.glob("*.bin"))
    reasons = [
        json.loads((f / "training.json").read_text())["stop_reason"] for f in (tmp_path / "checkpoint-3", tmp_path)
    ]
    assert reasons == ["running", "completed"]  # a checkpoint is not the end of the run
    loaded = gio.load_folder(tmp_path)
    x = brackets.val.input_ids[:4]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).outputs, model(x).outputs, atol=1e-5, rtol=0)


def test_snapshots_take_as_many_inputs_as_asked_whatever_the_batch_size(brackets):
    recipe = TrainingConfig(steps=1, batch_size=4, eval_batches=1, snapshot_samples=10)
    result = training.train(small_model(brackets), brackets, recipe)
    assert [e.snapshot.samples for e in result.evaluations] == [10, 10]  # used to be capped at batch_size


def test_should_stop_ends_the_run_between_steps(brackets):
    model = small_model(brackets)
    calls = []

    def after_three():
        calls.append(1)
        return len(calls) > 3

    result = training.train(model, brackets, TrainingConfig(steps=50, batch_size=8, eval_batches=1), None, after_three)
    assert result.stop_reason == "stopped" and result.steps_done == 3
    assert [e.step for e in result.evaluations] == [0, 3]  # the stopped model is evaluated as it is
    shown = repr(result)  # a summary line, not every event
    assert shown.startswith("TrainingResult(") and "\n" not in shown and len(shown) < 400
    assert "steps_done=3" in shown and "stop_reason='stopped'" in shown and f"{result.final_val_loss:.4f}" in shown


def test_early_stop_counts_evaluations_without_progress():
    stopper = training.EarlyStopping(patience=2)
    assert [stopper.update(v) for v in (1.0, 0.9, 0.95, 0.9, 0.8, 0.85, 0.81)] == [
        False,
        False,
        False,
        True,
        False,
        False,
        True,
    ]
    assert not any(training.EarlyStopping(None).update(v) for v in (1.0, 2.0, 3.0))


def test_background_job_reports_progress_and_stops(brackets):
    model = small_model(brackets)
    job = training.TrainingJob(model, brackets, TrainingConfig(steps=5000, batch_size=8, eval_batches=1)).start()
    while len(job.events()) < 4 and job.running:
        job.wait(0.05)
    job.stop()
    assert job.wait(60)
    assert job.error is None
    assert job.result.stop_reason == "stopped" and job.result.steps_done < 5000
    assert job.events()[-1].step == job.result.steps_done
    assert not job.model.training
    assert job.publishable  # stopped after some steps: a trained model to hand on


def one_slot_taken(brackets) -> tuple[training.TrainingJob, training.TrainingJob]:
    """A job training in the only slot, and a second one waiting for it."""
    slots = threading.BoundedSemaphore(1)
    recipe = TrainingConfig(steps=5000, batch_size=8, eval_batches=1)
    first = training.TrainingJob(small_model(brackets), brackets, recipe, slots).start()
    second = training.TrainingJob(small_model(brackets), brackets, recipe, slots).start()
    while not first.events():
        first.wait(0.05)
    return first, second


def test_jobs_beyond_the_slots_wait_for_a_free_one(brackets):
    first, second = one_slot_taken(brackets)
    assert second.waiting and not second.events()
    first.stop()
    first.wait(60)
    while not second.events() and second.running:
        second.wait(0.05)
    second.stop()
    assert second.wait(60) and second.result.steps_done >= 0 and not second.waiting


def test_a_job_stopped_while_waiting_never_trains(brackets):
    first, waiting = one_slot_taken(brackets)
    assert waiting.waiting and not waiting.cancelled
    waiting.stop()
    assert waiting.wait(10) and waiting.cancelled and not waiting.waiting  # the page drops its "Waiting" note
    assert waiting.result is None and waiting.error is None and not waiting.events()
    assert not waiting.publishable  # nothing to publish
    first.stop()
    assert first.wait(60) and not first.cancelled


class Owner:
    """A job's owner (the app: a browser tab) that can go away and come back."""

    def __init__(self):
        self.connected = True
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.connected


def test_a_job_whose_owner_left_stops_after_the_grace_and_frees_its_slot(brackets, monkeypatch):
    monkeypatch.setattr(training.TrainingJob, "OWNER_CHECK_S", 0.05)
    slots = threading.BoundedSemaphore(1)
    recipe = TrainingConfig(steps=5000, batch_size=8, eval_batches=1)
    owner, other = Owner(), Owner()
    first = training.TrainingJob(small_model(brackets), brackets, recipe, slots, owner_alive=owner, grace=0.3).start()
    waiting = training.TrainingJob(small_model(brackets), brackets, recipe, slots, owner_alive=other, grace=0.3)
    waiting.start()
    while len(first.events()) < 2:
        first.wait(0.05)
    owner.connected = False  # a page reload: gone for less than the grace, then back
    time.sleep(0.1)
    owner.connected = True
    time.sleep(0.4)
    assert first.running and not first.abandoned and owner.asked >= 3
    owner.connected = False  # the tab is closed
    assert first.wait(30) and first.abandoned
    assert first.result.stop_reason == "stopped" and first.result.steps_done < 5000
    while not waiting.events() and waiting.running:  # the freed slot goes to the waiting job
        waiting.wait(0.05)
    assert waiting.events() and waiting.running and not waiting.abandoned
    other.connected = False  # its owner leaves too
    assert waiting.wait(30) and waiting.abandoned


def test_a_job_whose_owner_left_while_it_waited_never_trains(brackets, monkeypatch):
    monkeypatch.setattr(training.TrainingJob, "OWNER_CHECK_S", 0.05)
    slots = threading.BoundedSemaphore(1)
    recipe = TrainingConfig(steps=5000, batch_size=8, eval_batches=1)
    first = training.TrainingJob(small_model(brackets), brackets, recipe, slots).start()
    while not first.events():
        first.wait(0.05)
    owner = Owner()
    waiting = training.TrainingJob(small_model(brackets), brackets, recipe, slots, owner_alive=owner, grace=0.2)
    waiting.start()
    owner.connected = False
    assert waiting.wait(10) and waiting.cancelled and waiting.abandoned and not waiting.events()
    assert first.running and not first.abandoned  # a job without an owner check is never abandoned
    first.stop()
    assert first.wait(60)


def test_a_job_stopped_during_its_first_evaluation_hands_on_nothing(brackets):
    # The first evaluation runs before step 1; a Stop pressed then used to publish the untrained
    # model as "trained in this session (0 steps)".
    recipe = TrainingConfig(steps=5000, batch_size=8, eval_batches=50, snapshot_samples=64)
    job = training.TrainingJob(small_model(brackets), brackets, recipe).start()
    job.stop()
    assert job.wait(120) and job.result is not None and job.result.steps_done == 0
    assert job.cancelled and job.error is None and not job.publishable


def test_the_same_loop_trains_a_transformers_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=258, n_positions=32))
    text = gdata.stdlib_docstring_corpus(max_chars=20_000)
    result = training.train(gpt, text, TrainingConfig(steps=20, batch_size=4, block_size=32, lr=3e-3, eval_batches=2))
    assert result.final_val_loss < result.evaluations[0].val_loss
    assert result.evaluations[0].snapshot is None  # nothing to route


def test_a_plain_trainer_accumulating_gradients_sees_the_same_loss(tmp_path):
    """Genesis's loss is a mean: a Trainer that thought forward() took its num_items_in_batch skipped
    its own division, so gradient accumulation multiplied the loss and gradients by its steps."""
    from transformers import Trainer, TrainingArguments

    task = training.load_data("copy", examples=64, seq_len=8)
    train_set, _ = training.trainer_datasets(task)
    losses = {}
    for steps in (1, 2):
        args = TrainingArguments(
            output_dir=str(tmp_path / str(steps)), per_device_train_batch_size=8 // steps, gradient_accumulation_steps=steps,
            learning_rate=0.0, max_steps=1, logging_steps=1, report_to=[], use_cpu=True, seed=0, data_seed=0,
            dataloader_drop_last=True,
        )  # fmt: skip
        trainer = Trainer(
            model=small_model(task), args=args, train_dataset=torch.utils.data.Subset(train_set, range(8))
        )
        trainer.train()
        losses[steps] = next(row["loss"] for row in trainer.state.log_history if "loss" in row)
    # Not bit-equal: dropout masks and the batch-mean routing differ between 8 rows and 2 x 4.
    assert losses[2] == pytest.approx(losses[1], rel=0.05)


def test_a_trainer_evaluates_with_compute_metrics(tmp_path):
    """The outputs held an int (the activation count), which the Trainer could not gather."""
    from transformers import Trainer, TrainingArguments

    task = training.load_data("brackets", examples=40, seq_len=12)
    _, eval_set = training.trainer_datasets(task)
    seen = []

    def metrics(prediction) -> dict:
        seen.append(np.asarray(prediction.predictions).shape)
        return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=8, report_to=[], use_cpu=True)
    result = Trainer(model=small_model(task), args=args, eval_dataset=eval_set, compute_metrics=metrics).evaluate()
    assert seen == [(len(eval_set), task.n_classes)]  # the logits, nothing else
    assert 0 <= result["eval_accuracy"] <= 1 and math.isfinite(result["eval_loss"])


def test_hugging_face_trainer_trains_genesis(tmp_path):
    task = training.load_data("copy", examples=1000, seq_len=16)
    model = small_model(task)
    recipe = TrainingConfig(steps=40, batch_size=16, lr=5e-3, warmup=4, eval_every=40)
    trainer = training.make_trainer(model, task, recipe, tmp_path, logging_steps=5)
    assert trainer.args.ddp_find_unused_parameters is True
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    assert trainer.evaluate()["eval_loss"] < before - 1.0
    trainer.save_model(str(tmp_path / "final"))
    assert (tmp_path / "final" / "model.safetensors").is_file()
    gio.load_folder(tmp_path / "final")


def test_figures_draw_the_run(trained_classifier):
    from genesis.training_figures import class_firing_figure, loss_figure, routing_over_training

    _, result = trained_classifier
    loss = loss_figure(result.events)
    names = [trace.name for trace in loss.data]
    assert names == ["train (per step)", "train (smoothed)", "validation"]
    assert len(loss.data[0].y) == 150 and list(loss.data[2].x) == [0, 50, 100, 150]
    snapshots = [e.snapshot for e in result.evaluations]
    firing = routing_over_training(snapshots, "firing", n_attentive=2)
    assert len(firing.data) == 2 and len(firing.data[0].z) == 8 and len(firing.data[0].z[0]) == 4
    starts = routing_over_training(snapshots, "start", n_attentive=2)
    assert len(starts.data[0].z) == 2  # only attentive neurons can start a route
    classes = class_firing_figure(snapshots[-1])
    assert [trace.name for trace in classes.data] == ["unbalanced", "balanced"] and len(classes.data[0].y) == 16
    assert all(fig.layout.uirevision for fig in (loss, firing, starts, classes))


def test_a_diverging_run_stops_and_is_not_saved(brackets, tmp_path):
    """A loss that turns NaN ruins the weights: the run stops there, and neither train() nor the app's
    job hands the model on as trained."""
    recipe = TrainingConfig(steps=20, batch_size=8, lr=1e6, min_lr=0.0, eval_batches=1, output_dir=str(tmp_path))
    result = training.train(small_model(brackets), brackets, recipe)
    assert result.stop_reason == training.DIVERGED and result.steps_done < 20
    assert not math.isfinite(result.events[-1].train_loss)
    assert not (tmp_path / "model.safetensors").exists()
    job = training.TrainingJob(small_model(brackets), brackets, replace(recipe, output_dir=None)).start()
    assert job.wait(60) and "NaN or infinite" in job.error and "lower learning rate" in job.error
    assert not job.publishable


def test_a_diverged_job_is_never_seen_with_a_result_and_no_error(brackets, monkeypatch):
    """The app publishes a job's model once it has a result and no error, from any page's rerun: the
    result used to be set before the divergence error, so a rerun in between published NaN weights."""
    message = training.diverged_message
    monkeypatch.setattr(training, "diverged_message", lambda result: time.sleep(0.3) or message(result))
    recipe = TrainingConfig(steps=20, batch_size=8, lr=1e6, min_lr=0.0, eval_batches=1)
    job = training.TrainingJob(small_model(brackets), brackets, recipe).start()
    seen = set()
    while not job.done:
        seen.add((job.result is not None, job.error is not None, job.publishable))
        time.sleep(0.001)
    assert (True, False, False) not in seen and not any(publishable for *_, publishable in seen)
    assert job.error and not job.publishable


@pytest.mark.parametrize("field, value", [("lr", float("inf")), ("lr", float("nan")), ("min_lr", float("-inf"))])
def test_training_config_refuses_non_finite_rates(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        TrainingConfig(**{field: value})


def test_a_classifier_shows_its_task_class_names(brackets, tmp_path):
    """The task's class names travel in config.id2label (save_pretrained keeps them), so the app's
    class chart says "balanced" rather than "class 1"."""
    from genesis import figures, probes

    config = training.config_for_task(preset("classifier"), brackets)
    assert brackets.class_names and probes.class_names(config) == brackets.class_names
    assert probes.class_names(preset("classifier", n_output="sequence_classifier", n_outputs=2)) is None
    chart = figures.class_probability_figure([0.3, 0.7], probes.class_names(config))
    assert list(chart.data[0].x) == brackets.class_names
    Genesis(config).save_pretrained(tmp_path)
    assert probes.class_names(Genesis.from_pretrained(tmp_path).config) == brackets.class_names


def test_a_trained_language_model_stops_at_end_of_text_after_reloading(tmp_path):
    """Training data is bytes, so the config carries the byte tokenizer's end-of-text and pad ids:
    save_pretrained writes them to generation_config.json, and generate() stops without being told."""
    task = training.as_task("abcdefgh" * 200, block_size=16)
    config = training.config_for_task(preset("tiny"), task)
    assert (config.eos_token_id, config.pad_token_id) == (gdata.EOS_ID, gdata.PAD_ID)
    model = Genesis(config).eval()
    with torch.no_grad():
        model.output.lm_head.bias[gdata.EOS_ID] = 100.0  # it now always says end-of-text
    model.save_pretrained(tmp_path)
    reloaded = Genesis.from_pretrained(tmp_path).eval()
    assert json.loads((tmp_path / "generation_config.json").read_text())["eos_token_id"] == gdata.EOS_ID
    out = reloaded.generate(torch.tensor([[97, 98]]), max_new_tokens=10, do_sample=False)
    assert out[0, 2:].tolist() == [gdata.EOS_ID]  # used to run all 10 tokens


def test_the_shipped_demo_is_what_its_recipe_builds():
    """assets/demo (made by `python3 dev.py demo`) keeps in step with demo_recipe, end-of-text included."""
    from genesis import io as gio

    config, _ = training.demo_recipe()
    shipped = gio.load_folder(Path(__file__).resolve().parents[1] / "assets" / "demo").config
    assert shipped.user_dict() == config.user_dict()
    assert (shipped.eos_token_id, shipped.pad_token_id) == (config.eos_token_id, config.pad_token_id) == (256, 257)


def test_numpy_numbers_are_numbers_and_odd_settings_are_named():
    import numpy as np

    recipe = TrainingConfig(steps=np.int64(10), lr=np.float32(1e-3))  # used to be "must be an integer"
    assert recipe.steps == 10
    with pytest.raises(ValueError, match=r"snapshot_samples must be an integer in \[0, 4096\]"):
        TrainingConfig(snapshot_samples=10**4)  # each one is routed at every evaluation
    for grace in (float("nan"), float("inf"), -1, "1"):
        with pytest.raises(ValueError, match="grace must be a finite number of seconds"):
            training.TrainingJob(None, None, TrainingConfig(), grace=grace)


def test_a_run_gives_the_same_weights_while_other_threads_draw_random_numbers(brackets):
    """Two browser sessions train at once (the app has two slots) while others sample text: a run's
    batches and dropout masks come from its own generator, so what it trains does not depend on them.
    With torch's global generator (reseeded by each run, drawn by all) the weights differed."""
    recipe = TrainingConfig(steps=6, batch_size=8, eval_every=6, eval_batches=1)

    def trained() -> dict[str, torch.Tensor]:
        model = small_model(brackets)
        training.train(model, brackets, recipe)
        return model.state_dict()

    alone = trained()
    stop = threading.Event()

    def draw() -> None:  # what other sessions do: seed and draw from the global generator, build models
        while not stop.is_set():
            torch.manual_seed(1)
            torch.rand(100)
            small_model(brackets)
            time.sleep(0.01)  # leave the runs some of the GIL

    others = [threading.Thread(target=draw) for _ in range(2)]
    for thread in others:
        thread.start()
    try:
        together = [trained() for _ in range(2)]
    finally:
        stop.set()
        for thread in others:
            thread.join()
    for weights in together:
        assert all(torch.equal(weights[k], alone[k]) for k in alone)


def test_the_interpreter_exits_cleanly_while_a_job_trains():
    """A stopped app server ends its Python while a session's job trains: the job's daemon thread,
    still inside torch at shutdown, aborted the process (SIGABRT, "terminate called without an active
    exception"). Jobs are now stopped between steps at exit."""
    import subprocess
    import sys

    code = (
        "from genesis import Genesis, GenesisConfig, preset, training\n"
        "task = training.load_data('brackets', examples=200, seq_len=16)\n"
        "model = Genesis(training.config_for_task(GenesisConfig(**preset('tiny').user_dict()), task))\n"
        "job = training.TrainingJob(model, task, training.TrainingConfig(steps=100000, batch_size=8)).start()\n"
        "while len(job.events()) < 2:\n"
        "    job.wait(0.05)\n"
        "print('training', flush=True)\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "training"
    assert done.returncode == 0 and "terminate called" not in done.stderr, done.stderr[-2000:]

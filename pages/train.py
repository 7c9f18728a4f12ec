"""Train: pick data and steps, start and stop training, watch the loss fall and the routing organise
itself, then use the trained model on every page or download it.

Training runs in a background thread owned by this browser session (genesis.training.TrainingJob);
a fragment polls its progress every second while it runs, so the page stays responsive and Stop works.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from genesis import data as gdata
from genesis import training
from genesis.configuration import human, plural
from genesis.modeling import Genesis
from genesis.training_figures import class_firing_figure, loss_figure, routing_over_training
from pages.common import SOURCES, config_fields, model_picker, page_header, publish_trained, validate_fields

TRAINED = SOURCES[2]  # "Trained in this session"
UPLOAD = "Upload a .txt file"
DATA_LABELS = {
    training.CORPUS: "Python docstrings (built-in text, byte-level LM)",
    **{name: f"{name} (classification task)" for name in gdata.TASKS},
    **{name: f"{name} (sequence task, LM)" for name in gdata.LM_TASKS},
    UPLOAD: UPLOAD,
}
MAX_STEPS = 3000  # a session's thread runs until done or stopped; keep it bounded
CONCURRENT_JOBS = 2  # trainings at once in this server process (2 CPU cores); others wait


@st.cache_resource
def job_slots() -> threading.Semaphore:
    """Shared by every session of this server: how many trainings may run at once."""
    return threading.BoundedSemaphore(CONCURRENT_JOBS)


@st.cache_resource(show_spinner="Preparing the data…")
def builtin_task(name: str, block_size: int) -> training.Task:
    """Built-in data, shared read-only by all sessions (training only indexes it)."""
    return training.load_data(name, block_size=block_size)


def read_task(choice: str, block_size: int) -> tuple[training.Task | None, str | None, str | None]:
    """(task, a note on what to do, what is wrong with the uploaded file)."""
    if choice != UPLOAD:
        return builtin_task(choice, block_size), None, None
    upload = st.file_uploader("Text file (.txt, UTF-8)", type=["txt"], key="train_upload")
    if upload is None:
        return None, "Upload a .txt file to train on it.", None
    try:
        return training.as_task(gdata.load_text_file(upload.getvalue()), block_size, name=upload.name), None, None
    except (gdata.DataError, ValueError) as e:
        return None, None, f"{upload.name}: {e}"


def session_connected() -> Callable[[], bool] | None:
    """Asks, from any thread, whether this browser session still has a tab open (None without a
    server, as under AppTest). A training job stops once this has said no for longer than Streamlit
    keeps a disconnected session for reconnection: after that, nobody can see its result."""
    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return None
    server, session_id = runtime.get_instance(), ctx.session_id
    return lambda: server.is_active_session(session_id)


def use_trained_model() -> None:
    # The picker's own state is dropped rather than set: a selectbox given both an index and a
    # value through session state logs a warning. Recreated, it starts at model_source.
    st.session_state["model_source"] = TRAINED
    st.session_state.pop("model_source_widget", None)


def draw_progress(job: training.TrainingJob, description: str) -> None:
    """Progress, curves and routing snapshots; reruns itself every second while the job runs."""
    events = job.events()
    last = events[-1] if events else None
    if job.waiting:
        st.info("Waiting for a free training slot (other sessions are training)…")
    done = last.step if last else 0
    st.progress(done / job.config.steps, text=progress_text(job, last))
    if last is not None:
        cols = st.columns(4)
        train_losses = [e.train_loss for e in events if e.train_loss is not None]
        evaluations = [e for e in events if e.val_loss is not None]
        at = f" (step {evaluations[-1].step})" if evaluations else ""  # evaluated every eval_every steps only
        cols[0].metric("train loss", f"{train_losses[-1]:.3f}" if train_losses else "–")
        cols[1].metric(f"validation loss{at}", f"{evaluations[-1].val_loss:.3f}" if evaluations else "–")
        if evaluations and evaluations[-1].val_accuracy is not None:
            cols[2].metric(f"validation accuracy{at}", f"{evaluations[-1].val_accuracy:.1%}")
        else:
            cols[2].metric("tokens / s", f"{last.tokens_per_s:,.0f}" if last.step else "–")
        cols[3].metric("elapsed", f"{last.elapsed:.0f} s")
        st.plotly_chart(loss_figure(events), key="train_loss_chart")
        draw_routing([e.snapshot for e in evaluations if e.snapshot is not None], job.model.config.n_attentive_neurons)
    if job.error:
        st.error(f"Training failed: {job.error}")
    elif job.cancelled:
        st.info("Stopped before the first step: nothing was trained.")
    elif job.publishable and st.session_state.get("train_published") != id(job):
        publish_trained(job, description)
        st.rerun()  # the whole page: buttons, sidebar and downloads follow


def progress_text(job: training.TrainingJob, last: training.TrainingEvent | None) -> str:
    """Where the run is, what it is doing now, and (once it has taken a few steps) how long it has left."""
    steps, done = job.config.steps, last.step if last else 0
    text = f"step {done} / {steps}"
    if job.waiting or job.done or job.stopping:  # no estimate for steps that will not run
        return text
    if last is None:
        return text + " · evaluating the untrained model…" if job.config.eval_at_start else text
    if done >= 3 and last.elapsed > 0:
        left = last.elapsed / done * (steps - done)
        text += f" · about {left / 60:.0f} min left" if left >= 90 else f" · about {left:.0f} s left"
    return text


def draw_routing(snapshots: list[training.RouteSnapshot], n_attentive: int) -> None:
    if not snapshots:
        return
    latest = snapshots[-1]
    st.subheader("Routing during training")
    st.caption(
        f"Each evaluation routes the same {latest.samples} validation inputs, each alone. "
        f"Now: {latest.distinct_routes} distinct routes; mean route length per section "
        + ", ".join(f"{length:.1f}" for length in latest.route_length)
        + "."
    )
    st.plotly_chart(routing_over_training(snapshots, "start", n_attentive), key="train_start_chart")
    st.plotly_chart(routing_over_training(snapshots, "firing", n_attentive), key="train_firing_chart")
    if latest.by_class:
        st.plotly_chart(class_firing_figure(latest), key="train_class_chart")


def draw_result(job: training.TrainingJob) -> None:
    result = job.result
    if result is None or st.session_state.get("train_published") != id(job):
        return
    st.success(
        f"{result.stop_reason.capitalize()} after {plural(result.steps_done, 'step')} "
        f"({result.seconds:.0f} s). "
        f"The model is now available as **{TRAINED}** in the sidebar's model picker."
    )
    config_bytes, weights_bytes = st.session_state["trained_files"]
    cols = st.columns(3)
    if cols[0].button("Use it on the Run page", on_click=use_trained_model, key="train_use"):
        st.switch_page("pages/run.py")
    cols[1].download_button(
        "Download config.json", config_bytes, "config.json", "application/json", key="train_dl_config"
    )
    cols[2].download_button(
        "Download model.safetensors",
        weights_bytes,
        "model.safetensors",
        "application/octet-stream",
        key="train_dl_weights",
    )


active = model_picker()
page_header("Train", active)
job: training.TrainingJob | None = st.session_state.get("train_job")
running = job is not None and job.running

st.markdown(
    "Train a fresh model with the **Build** config on built-in data or your own text, and watch where "
    "routes start and which neurons fire change as the loss falls. By default routing itself does not "
    "learn (voltages only choose and compare, so dendrites, somas and thresholds get no gradient): routes "
    "change because the signal reaching each neuron does. Turn on `n_trainable_routing` on **Build** to "
    "let gradients reach them."
)
left, right = st.columns(2)
with left:
    choice = st.selectbox("Data", list(DATA_LABELS), format_func=DATA_LABELS.get, key="train_data", disabled=running)
    if choice in gdata.TASKS or choice in gdata.LM_TASKS:
        st.caption(gdata.describe_task(choice))
    text_data = choice not in gdata.TASKS and choice not in gdata.LM_TASKS  # tasks have their own length
    block = st.number_input(
        "Window (bytes)",
        16,
        256,
        64,
        step=16,
        key="train_block",
        disabled=running or not text_data,
        help="Length of the text windows a model trains on (text data only: a task has its own length).",
    )
    task, data_note, data_error = read_task(choice, int(block)) if not running else (None, None, None)
with right:
    steps = st.number_input("Steps", 10, MAX_STEPS, 300, step=10, key="train_steps", disabled=running)
    batch = st.number_input("Batch size", 1, 64, 12, key="train_batch", disabled=running)
    lr = st.number_input("Learning rate", 1e-5, 1e-1, 2e-3, format="%g", step=5e-4, key="train_lr", disabled=running)

base, config_error = validate_fields(config_fields())
config = None
if task is not None and base is not None:
    try:
        config = training.config_for_task(base, task)
    except ValueError as e:
        config_error = str(e)
if config is not None:
    head = f"a classifier with {task.n_classes} outputs" if task.kind == "classification" else "a language model"
    st.caption(
        f"Config: the Build config (d{config.n_dim}, {config.n_sections}×{config.n_neurons} neurons, "
        f"{config.n_routing} routing{', trainable' if config.n_trainable_routing else ''}) as {head}; "
        f"{task.describe()}. Change the config on the Build page."
    )
if data_note and not running:
    st.info(data_note)
if data_error and not running:
    st.error(f"Cannot train on this file: {data_error}")
if config_error and not running:
    st.error(f"The Build config cannot be trained: {config_error}")

start_col, stop_col, _ = st.columns([1, 1, 4])
start = start_col.button("Start training", type="primary", disabled=running or config is None, key="train_start")
stop = stop_col.button("Stop training", disabled=not running, key="train_stop")
if stop and job is not None:
    job.stop()
if start and config is not None:
    recipe = training.TrainingConfig(
        steps=int(steps),
        batch_size=int(batch),
        lr=float(lr),
        warmup=min(50, int(steps) // 10),
        min_lr=float(lr) / 10,
        block_size=int(block),
        eval_every=max(5, int(steps) // 20),
        eval_batches=4,
        snapshot_samples=16,
    )
    model = Genesis(config)  # this session's own model: never the cached, shared ones
    grace = float(st.get_option("server.disconnectedSessionTTL"))
    job = training.TrainingJob(model, task, recipe, job_slots(), owner_alive=session_connected(), grace=grace)
    st.session_state["train_job"] = job.start()
    st.session_state["train_description"] = f"{task.name}, {human(model.num_parameters())} parameters"
    st.rerun()

if job is not None:
    description = st.session_state.get("train_description", "")
    if job.stopping:
        st.caption("Stopping after this step, then one last evaluation…")
    st.fragment(draw_progress, run_every=1.0 if running else None)(job, description)
    draw_result(job)

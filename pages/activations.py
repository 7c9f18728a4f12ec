"""Activations: many inputs at once — who fires, where routes start, how they hop, who almost fired."""

import streamlit as st

from genesis import analysis, stat_figures
from genesis.data import DataError, load_lines, sample_texts, text_lines
from pages.common import model_key, model_picker, page_header, stop_without_model

MAX_INPUTS = 500  # about 5 s on 2 CPU cores with the app config
MAX_UPLOAD_BYTES = 1_000_000
SOURCES = ("Built-in sample set", "Typed lines", "Uploaded .txt/.csv")
ROUTING = {
    "sample": "each input alone (per-sample routing)",
    "batch": "shared choice within each batch (the original)",
}
EXAMPLE_LINES = "The cat sat on the mat.\nThe dog sat on the log.\ndef add(a, b): return a + b\n1, 2, 3, 4, 5"


def read_inputs(source: str) -> list[str]:
    """The texts chosen on the page ([] with a message when there are none)."""
    if source == SOURCES[0]:
        return sample_texts()
    if source == SOURCES[1]:
        typed = st.text_area("One input per line", EXAMPLE_LINES, height=140, key="act_lines")
        lines = text_lines(typed)
        if not lines:
            st.info("Type at least one line to run.")
        return lines
    upload = st.file_uploader(
        "A .txt file (one input per line) or a .csv (its `text` column; without one, every row's first cell)",
        type=["txt", "csv"],
        key="act_upload",
    )
    if upload is None:
        st.info("Upload a file to run its lines.")
        return []
    try:
        return load_lines(upload.getvalue(), filename_hint=upload.name, max_bytes=MAX_UPLOAD_BYTES)
    except DataError as e:
        st.error(f"{upload.name}: {e}")
        return []


def table(title: str, frame, name: str, index: bool = True) -> None:
    """A table with its CSV download."""
    st.markdown(f"**{title}**")
    st.dataframe(frame, hide_index=not index)
    st.download_button(
        f"Download {name}.csv",
        frame.to_csv(index=index),
        f"{name}.csv",
        "text/csv",
        key=f"csv_{name}",
        on_click="ignore",
    )


active = model_picker()
page_header("Activations", active)
if active is None:
    stop_without_model()
if problem := analysis.runnable_problem(active.model.config):
    st.error(problem)
    st.stop()

source = st.radio("Inputs", SOURCES, horizontal=True, key="act_source")
texts = read_inputs(source)
if len(texts) > MAX_INPUTS:
    st.warning(f"{len(texts)} inputs: only the first {MAX_INPUTS} are run.")
    texts = texts[:MAX_INPUTS]
routing = st.radio(
    "Routes",
    list(ROUTING),
    format_func=ROUTING.get,
    horizontal=True,
    key="act_routing",
    help="Inputs are batched by equal length (never padded: the soma would average the padding in). "
    "In the original, a batch shares each choice, so a route depends on its batch mates.",
)
key = (model_key(active.model), active.label, routing, tuple(texts))  # id() comes back for a new model
pressed = st.button("Run", type="primary", key="act_run", disabled=not texts)
stored = st.session_state.get("activations")
if texts and (pressed or (stored is None and source == SOURCES[0])):
    bar = st.progress(0.0, text="Running…")
    try:
        run = analysis.run_many(
            active.model,
            texts,
            routing=routing,
            progress=lambda done, total: bar.progress(done / total, text=f"{done}/{total} inputs"),
        )
    except ValueError as e:
        st.error(str(e))
        st.stop()
    stored = st.session_state["activations"] = (key, run)
if stored is None:
    st.info("Choose inputs and press Run.")
    st.stop()
if not texts:
    st.warning("No inputs to run: the results below are from the last run.")
elif stored[0] != key:
    st.warning("The model, inputs or routing changed since these results: press Run to update them.")
run = stored[1]

columns = st.columns(4)
columns[0].metric("Inputs", run.n_inputs)
columns[1].metric("Mean neurons fired", f"{run.inputs['count'].mean():.2f}")
columns[2].metric("Distinct routes", len(set(analysis.route_keys(run))))
columns[3].metric("Route diversity", f"{analysis.route_diversity(run):.2f} bits")
if run.routing != active.model.config.n_routing:  # other pages route as the model does
    st.caption(
        f"Routes here: {ROUTING[run.routing]}. The model's own mode, used by Home and Run, "
        f"is {active.model.config.n_routing} routing (Compare routes each input alone)."
    )
if run.inputs["truncated"].any():
    st.caption(f"{int(run.inputs['truncated'].sum())} input(s) were cut to their last n_pos_size tokens.")

firing, starts_tab, hops_tab, misses_tab, balance_tab, routes_tab = st.tabs(
    ["Firing", "Starts and lengths", "Transitions", "Near misses", "Balance", "Routes"]
)
with firing:
    frequency = analysis.firing_frequency(run, normalize=True)
    st.plotly_chart(stat_figures.firing_heatmap(frequency, run.n_attentive), key="act_firing")
    table("Share of inputs each neuron fired for", frequency, "firing_frequency")
with starts_tab:
    starts, lengths, stops = analysis.start_distribution(run), analysis.route_lengths(run), analysis.stop_reasons(run)
    st.plotly_chart(stat_figures.start_bars(starts), key="act_starts")
    st.plotly_chart(stat_figures.route_length_bars(lengths), key="act_lengths")
    st.plotly_chart(stat_figures.stop_reason_bars(stops), key="act_stops")
    table("Start neurons", starts, "start_distribution")
    table("Route lengths", lengths, "route_lengths")
    table("Stop reasons", stops, "stop_reasons")
no_hops = "every route ended at its start neuron (in a config without neighbors, no route can hop)."
with hops_tab:
    if analysis.transitions(run).empty:
        st.info(f"No route hopped: {no_hops}")
    else:
        section = st.selectbox("Section", range(run.n_sections), key="act_section")
        st.plotly_chart(
            stat_figures.transition_heatmap(analysis.transition_matrix(run, section), section), key="act_transitions"
        )
    table("Every hop that fired, counted", analysis.transitions(run), "transitions", index=False)
with misses_tab:
    st.caption(
        "Each candidate's best voltage − threshold per input. Blue: above its threshold (it fired, or another "
        "candidate was chosen: the highest voltage, or in batch routing the highest batch mean); red: below. "
        "NaN: never a candidate for that input."
    )
    if run.candidates.empty:
        st.info(f"No neuron was ever a candidate: {no_hops}")
    else:
        st.plotly_chart(stat_figures.near_miss_heatmap(analysis.near_miss(run), run.texts), key="act_near_miss")
    table("Who almost fired", analysis.near_misses(run), "near_misses", index=False)
    st.caption(
        "Candidates that did not fire, highest margin first. A positive margin: above its threshold, but "
        "another candidate was chosen; a negative one: below its threshold. Hops count from 1, as on Home and Run."
    )
    table("Every candidate at every hop", run.candidates, "candidates", index=False)
with balance_tab:
    entropies = analysis.balance(run)
    st.plotly_chart(stat_figures.balance_bars(entropies), key="act_balance")
    table("Entropy per section (bits)", entropies, "balance", index=False)
with routes_tab:
    table("Most common routes", analysis.route_table(run), "route_table", index=False)
    table("Every input", run.inputs, "inputs", index=False)
    table("Every route step", run.routes, "routes", index=False)

"""Run: text in; the outputs; the route on the wiring, step by step; batch vs alone; causality;
what-if on one threshold; the trace as JSON/CSV."""

import json

import streamlit as st

from genesis import figures, probes
from genesis.data import decode_bytes, text_lines
from genesis.tokenization import TextError
from pages.common import (
    config_json,
    model_key,
    model_picker,
    page_header,
    private_copy,
    stop_without_model,
    text_widget,
    tokens_table,
    wiring_figure,
)

MAX_LINES = 128  # one input per line: each also runs alone (batch vs alone); 500 lines took 2.4 s


@st.cache_data(max_entries=32, show_spinner="Running the model once per replaced position…")
def causality(_model, key: str, ids: tuple[int, ...]) -> probes.Causality:
    return probes.causality(_model, list(ids))


@st.cache_data(max_entries=32, show_spinner=False)
def batch_vs_alone(_model, key: str, lines: tuple[tuple[int, ...], ...]) -> list[probes.LineRoutes]:
    return probes.batch_vs_alone(_model, [list(ids) for ids in lines])[1]


def route_text(route: list[int]) -> str:
    return " → ".join(map(str, route)) or "—"


active = model_picker()
page_header("Run", active)
if active is None:
    stop_without_model()
model, config = active.model, active.model.config
key = config_json(config)

text = text_widget("Text", "run_text_input", area=True, height=100)
buttons = st.columns([1, 4])
buttons[0].button("Run", type="primary", key="run_button")
per_line = buttons[1].toggle("One input per line (a batch)", value=True, key="run_per_line")
lines = text_lines(text) if per_line else [text]
if len(lines) > MAX_LINES:
    st.warning(f"{len(lines)} lines: only the first {MAX_LINES} are run here (the Activations page runs larger sets).")
    lines = lines[:MAX_LINES]
try:
    encoded = [probes.encode_for(config, line) for line in lines or [text]]
except TextError as e:
    st.info(f"Nothing to run: {e}.")
    st.stop()
for number, (_, note) in enumerate(encoded, start=1):
    if note:
        st.warning(f"Line {number}: {note}" if len(encoded) > 1 else f"Truncated: {note}")
all_ids = [ids for ids, _ in encoded]
line = 0
if len(all_ids) > 1:
    line = st.selectbox(
        "Line to show", range(len(all_ids)), format_func=lambda i: f"{i + 1}: {lines[i][:60]}", key="run_line"
    )
    st.caption(
        f"Each of the {len(all_ids)} lines is an input of its own here; Home runs the whole text as one input "
        "(turn off 'One input per line' to do so here)."
    )
ids = all_ids[line]
output = probes.run(model, ids)  # the route of one input is the one it takes alone (batch of one)
trace = output.trace
sections = trace.sample_sections(0)  # in per-sample routing, the input's own section traces
tokens_table(ids)

# -- outputs -------------------------------------------------------------------------------------
if config.n_output == "causal_lm":
    left, right = st.columns(2)
    top = probes.top_k_next(output, 10)
    left.plotly_chart(
        figures.top_k_figure([probes.token_label(t) for t, _ in top], [p for _, p in top]), key="run_topk"
    )
    with right:
        st.markdown("**Sampled continuation**")
        knobs = st.columns(4)
        temperature = knobs[0].slider("temperature", 0.0, 2.0, 0.8, 0.05, key="run_temperature")
        greedy = temperature == 0  # the likeliest token each time: top-p plays no part
        top_p = knobs[1].slider("top-p", 0.05, 1.0, 0.95, 0.05, key="run_top_p", disabled=greedy)
        new_tokens = knobs[2].slider("tokens", 1, 100, 40, key="run_new_tokens")
        seed = knobs[3].number_input("seed", 0, 2**31 - 1, 0, key="run_seed")
        request = (model_key(model), tuple(ids), temperature, top_p, new_tokens, seed)
        if st.button("Sample a continuation", key="run_sample"):
            try:
                new = probes.continuation(model, ids, new_tokens, temperature, top_p, seed)
                st.session_state["run_continuation"] = (request, new)
            except ValueError as e:
                st.warning(f"No continuation: {e}.")
        held = st.session_state.get("run_continuation")
        if held and held[0] == request:
            text = decode_bytes(held[1])
            shown = text if text.strip() else f"(only whitespace: {text!r})" if text else "(end of text at once)"
            st.code(f"\n{shown}\n", language=None)  # st.code drops one line break at each end: these
elif config.n_output == "sequence_classifier":
    st.plotly_chart(
        figures.class_probability_figure(probes.class_probabilities(output), probes.class_names(config)),
        key="run_classes",
    )
else:
    st.caption(f"Output: a tensor of shape {tuple(output.outputs.shape)}.")

# -- the route, step by step ------------------------------------------------------------------------
st.subheader("Route")
st.caption(
    "  ·  ".join(f"section {s.section}: {route_text(s.route_of(0))} ({s.stop_reason})" for s in sections)
    + f"  ·  {trace.count} neurons fired"
)
section_index = 0
if config.n_sections > 1:
    section_index = st.radio("Section", range(config.n_sections), horizontal=True, key="run_section")
section = sections[section_index]
route = section.route_of(0)
thresholds = tuple(model.thresholds()[section_index])
n_attentive = trace.attentive[section_index]


@st.fragment  # moving the step slider reruns only this part of the page
def step_through() -> None:
    step = 0
    if section.hops:
        step = st.slider("Step through the route", 0, len(section.hops), len(section.hops), key="run_step")
    left, right = st.columns(2)
    so_far, not_fired = probes.route_at_step(section, step)
    figure = wiring_figure(key, section_index, thresholds, tuple(so_far), not_fired=not_fired)
    left.plotly_chart(figure, key="run_wiring")
    right.plotly_chart(figures.hop_step_figure(section, step, n_attentive=n_attentive), key="run_hop")
    if step == len(section.hops):
        right.info(f"The route stopped: {probes.STOP_EXPLAINED.get(section.stop_reason, section.stop_reason)}.")


step_through()

# -- batch vs alone ---------------------------------------------------------------------------------
if len(all_ids) > 1:
    st.subheader("In a batch vs alone")
    st.caption(
        "In batch routing (the original) the start neuron and every next one are chosen by the batch's mean "
        "voltage, and "
        "padding enters each voltage's average over positions, so a line's route in a batch can "
        "differ from its route alone."
    )
    rows = batch_vs_alone(model, model_key(model), tuple(map(tuple, all_ids)))
    st.dataframe(
        {
            "line": [r.line + 1 for r in rows],
            "text": [lines[r.line][:40] for r in rows],
            "route in the batch": [" | ".join(map(route_text, r.batch)) for r in rows],
            "route alone": [" | ".join(map(route_text, r.alone)) for r in rows],
            "differs in sections": [", ".join(map(str, r.differing_sections)) or "—" for r in rows],
        },
        hide_index=True,
    )

# -- what-if ----------------------------------------------------------------------------------------
st.subheader("What if one threshold were different?")


@st.fragment  # dragging the threshold reruns only this part of the page
def what_if_view() -> None:
    controls, picture = st.columns([1, 2])
    plain = list(range(n_attentive, config.n_neurons)) or list(range(config.n_neurons))
    first_choice = section.hops[0].chosen if section.hops else plain[0]
    choice_key, seen_key = f"whatif_neuron_{section_index}", f"whatif_default_{section_index}"
    if st.session_state.get(seen_key) != first_choice or st.session_state.get(choice_key) not in plain:
        # A new route (new text or model): start from its first hop, not the previous text's neuron.
        st.session_state[seen_key] = st.session_state[choice_key] = first_choice
    neuron = controls.selectbox(f"Neuron of section {section_index}", plain, key=choice_key)
    current = thresholds[neuron]
    value = controls.slider(
        f"Its threshold (the model's: {current:.3f})", min(0.0, current), max(1.0, current), current, 0.005,
        format="%.3f", key=f"whatif_{section_index}_{neuron}_{model_key(model)}",  # another model: its own value
    )  # fmt: skip
    edited = probes.set_threshold(private_copy(model), model, section_index, neuron, value)
    what_if = probes.routes_alone(edited, ids)
    changed_thresholds = tuple(edited.thresholds()[section_index])
    title = f"Section {section_index}: route vs what-if"  # the legend says which line is which
    figure = wiring_figure(key, section_index, changed_thresholds, tuple(route), tuple(what_if[section_index]), title)
    picture.plotly_chart(figure, key="run_whatif")
    for i, (before, after) in enumerate(zip(trace.sample_routes()[0], what_if)):
        change = (
            f"{route_text(before)} ⇒ **{route_text(after)}**"
            if after != before
            else f"{route_text(before)} (unchanged)"
        )
        controls.markdown(f"Section {i}: {change}")
    controls.caption("The change is made on this session's own copy of the model; the shared model is untouched.")


what_if_view()

# -- causality --------------------------------------------------------------------------------------
if config.n_output == "causal_lm" and st.toggle("Causality view", key="run_causality"):
    result = causality(model, model_key(model), tuple(ids))
    st.plotly_chart(figures.causality_figure(result, [probes.token_label(t) for t in ids]), key="run_causality_chart")
    leak = max(result.leak(), default=0)
    if not config.n_attentive_neurons:
        why = "This model has no attention, but a neuron's voltage averages over all positions, so"
    elif not config.is_causal:
        why = "This model's attention is not causal (n_causal is off): every position sees later tokens."
    else:
        why = "Attention is causal, but a neuron's voltage averages over all positions, so"
    if not config.n_attentive_neurons or config.is_causal:
        why += " a later token can change the route and through it every earlier output (SPEC, flaw 3)."
        if leak == 0:
            why += " Here no replacement changed the route, so no earlier output changed."
    st.caption(f"{why} Largest change at an earlier position: {leak:.4f}.")

# -- exports ----------------------------------------------------------------------------------------
cols = st.columns(3)
cols[0].download_button("Trace (JSON)", json.dumps(trace.to_dict()), "trace.json", key="run_trace_json")
cols[1].download_button("Route (CSV)", trace.to_frame("route").to_csv(index=False), "route.csv", key="run_route_csv")
candidates_csv = trace.to_frame("candidates").to_csv(index=False)
cols[2].download_button("Candidates (CSV)", candidates_csv, "candidates.csv", key="run_candidates_csv")

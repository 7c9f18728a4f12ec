"""Compare: two to four configurations side by side on the same inputs."""

import json

import streamlit as st

from genesis import PRESETS, analysis, preset, stat_figures
from genesis import io as gio
from genesis.configuration import FIELDS
from genesis.data import sample_texts
from pages.common import (
    config_fields,
    config_json,
    model_for_fields,
    model_picker,
    page_header,
    validate_fields,
    wiring_figure,
)

BUILD, SIDEBAR, UPLOAD, URL = "Current Build config", "Sidebar model", "Uploaded config JSON", "Shared app URL"
CHOICES = (BUILD, SIDEBAR, *(f"Preset: {name}" for name in PRESETS), UPLOAD, URL)
DEFAULT_CHOICES = (BUILD, "Preset: tiny", "Preset: sequential", "Preset: classifier")


def slot_fields(choice: str, slot: int) -> tuple[dict | None, str | None]:
    """The config fields a slot asks for, or an error message (widgets for upload/URL included)."""
    if choice == BUILD:
        return config_fields(), None
    if choice.startswith("Preset: "):
        return preset(choice.removeprefix("Preset: ")).user_dict(), None
    if choice == UPLOAD:
        upload = st.file_uploader("config.json", type=["json"], key=f"cmp_upload_{slot}")
        if upload is None:
            return None, "upload a config.json"
        try:
            return gio.read_config(upload.getvalue(), upload.name).user_dict(), None
        except gio.LoadError as e:
            return None, str(e)
    url = st.text_input("App URL", key=f"cmp_url_{slot}", placeholder="http://localhost:8501/build?n_dim=64")
    if not url.strip():
        return None, "paste a URL shared from this app"
    try:
        fields = analysis.config_from_url(url)
    except ValueError as e:
        return None, f"URL: {e}"
    if not any(f"{name}=" in url for name in FIELDS):  # a link to a page, or to a model a link cannot carry
        st.caption("This link names no config field: it stands for the app's default config (weights from its seed).")
    return fields, None


def slot_model(choice: str, slot: int):
    """(label, model) for one slot, or None after showing why not."""
    if choice == SIDEBAR:
        if active is None:
            st.error("No model is chosen in the sidebar.")
            return None
        model, label = active.model, active.label
    else:
        fields, error = slot_fields(choice, slot)
        config, error = validate_fields(fields) if fields is not None else (None, error)
        if error:
            st.error(error)
            return None
        model, label = model_for_fields(config.user_dict()), choice.removeprefix("Preset: ")
    if problem := analysis.runnable_problem(model.config):
        st.error(problem)
        return None
    c = model.config
    st.caption(f"d{c.n_dim}, {c.n_sections}×{c.n_neurons} neurons ({c.n_attentive_neurons} attentive), seed {c.n_seed}")
    return f"{slot + 1}: {label}", model


def csv_button(frame, name: str) -> None:
    st.download_button(
        f"Download {name}.csv", frame.to_csv(index=False), f"{name}.csv", key=f"csv_{name}", on_click="ignore"
    )


active = model_picker()
page_header("Compare", active)
st.caption("Presets and URLs are fresh models (weights seeded by n_seed); sizes are kept within the app's budget.")

count = st.slider("Configurations", 2, 4, 2, key="cmp_count")
models = {}
for slot, column in enumerate(st.columns(count)):
    with column:
        choice = st.selectbox(
            f"Configuration {slot + 1}", CHOICES, CHOICES.index(DEFAULT_CHOICES[slot]), key=f"cmp_{slot}"
        )
        if picked := slot_model(choice, slot):
            models[picked[0]] = picked[1]
n_texts = st.slider("Inputs (from the built-in sample set)", 4, len(sample_texts()), 12, key="cmp_texts")
texts = sample_texts()[:n_texts]
if len(models) < 2:
    st.info("Choose at least two usable configurations.")
    st.stop()

key = json.dumps([[name, id(model), model.config.user_dict()] for name, model in models.items()] + texts)
pressed = st.button("Compare", type="primary", key="cmp_run")
stored = st.session_state.get("comparison")
if pressed or stored is None:
    bar = st.progress(0.0, text="Comparing…")
    comparison = analysis.compare_configs(
        models, texts, progress=lambda done, total: bar.progress(done / total, text=f"{done}/{total} configurations")
    )
    stored = st.session_state["comparison"] = (key, comparison, models, texts)
elif stored[0] != key:
    st.warning("The configurations or inputs changed since this comparison: press Compare to update it.")
key, comparison, models, texts = stored

st.dataframe(comparison.table, hide_index=True)
st.caption(
    "latency_ms: median of several forwards of the median-length input, one configuration after another on this "
    "server's CPU. Other work on the machine (other sessions, a training) inflates it: press Compare again "
    "to measure anew."
)
csv_button(comparison.table, "comparison")
st.plotly_chart(stat_figures.comparison_bars(comparison.table), key="cmp_bars")

st.subheader("Wiring and the route of one input")
left, right = st.columns(2)
text_index = left.selectbox("Input", range(len(texts)), format_func=lambda i: texts[i], key="cmp_input")
section = right.selectbox("Section", range(max(m.config.n_sections for m in models.values())), key="cmp_section")
for column, (name, model) in zip(st.columns(len(models)), models.items()):
    with column:
        if section >= model.config.n_sections:
            st.caption(f"{name} has no section {section}.")
            continue
        route = tuple(comparison.runs[name].route(text_index)[section])
        thresholds = tuple(model.thresholds()[section])
        figure = wiring_figure(config_json(model.config), section, thresholds, route, title=name, height=340)
        st.plotly_chart(figure, key=f"cmp_wiring_{name}")

names = list(models)
a, b = st.columns(2)
name_a = a.selectbox("Route A", names, 0, key="cmp_a")
name_b = b.selectbox("Route B", names, 1, key="cmp_b")
difference = analysis.route_difference(
    comparison.runs[name_a].route(text_index), comparison.runs[name_b].route(text_index)
)
st.dataframe(difference, hide_index=True)
csv_button(difference, "route_difference")

st.subheader("Wiring-seed stability")
st.caption("Same weights, rewired with each n_seed: the share of inputs whose route changes.")
left, right = st.columns(2)
seed_model = left.selectbox("Configuration", names, key="cmp_seed_model")
seeds_text = right.text_input("Seeds", "1, 2, 3, 4, 5", key="cmp_seeds")
try:
    seeds = analysis.parse_seeds(seeds_text)
except ValueError as e:
    st.error(str(e))
    st.stop()
seed_key = json.dumps([key, seed_model, seeds])
stored = st.session_state.get("seed_stability")
if stored is None or stored[0] != seed_key:  # deterministic: recompute only when something changed
    with st.spinner("Rewiring…"):
        try:
            stability = analysis.seed_stability(models[seed_model], seeds, texts)
        except ValueError as e:
            st.error(str(e))
            st.stop()
    stored = st.session_state["seed_stability"] = (seed_key, stability)
st.plotly_chart(stat_figures.seed_stability_bars(stored[1]), key="cmp_seeds_chart")
st.dataframe(stored[1], hide_index=True)
csv_button(stored[1], "seed_stability")

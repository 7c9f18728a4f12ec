"""Build: every config field as a control, presets, the parameter count and each section's wiring."""

import json

import streamlit as st

import genesis
from genesis import compat, graphs
from genesis import io as gio
from genesis.configuration import FIELDS, INPUT_MODES, OUTPUT_MODES, ROUTING_MODES, SECTION_MODES
from pages.common import (
    SOURCES,
    config_fields,
    config_figure,
    config_json,
    fitting_config,
    model_picker,
    page_header,
    parse_fields,
    set_config_fields,
    validate_fields,
    wiring_figure,
    wiring_graphml,
    wiring_too_large,
)

# field -> (widget, options or (min, max)); sliders get wider when a URL or upload goes beyond them.
CONTROLS = {
    "n_dim": ("select_slider", [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 640, 768, 1024, 1280]),
    "n_sections": ("slider", (1, 8)),
    "n_neurons": ("slider", (1, 64)),
    "n_attentive_neurons": ("slider", (0, 16)),
    "n_attentive_neuron_heads": ("select_slider", [1, 2, 4, 8, 16, 32]),
    "n_neighbors": ("slider", (0, 16)),
    "n_dendritics": ("slider", (0, 8)),
    "n_synapses": ("slider", (0, 8)),
    "n_pos_size": ("select_slider", [16, 32, 64, 128, 256, 512, 1024, 2048]),
    "n_vocab_size": ("number", None),
    "n_outputs": ("number", None),
    "n_seed": ("number", None),
    "n_input": ("select", INPUT_MODES),
    "n_section": ("select", SECTION_MODES),
    "n_output": ("select", OUTPUT_MODES),
    "n_routing": ("select", ROUTING_MODES),
    "n_causal": ("select", [None, True, False]),
    "n_cross_attention": ("checkbox", None),
    "n_trainable_routing": ("checkbox", None),
}
HELP = {
    "n_dim": "model width; split mode gives each section n_dim / n_sections",
    "n_sections": "sections of neurons",
    "n_neurons": "neurons per section",
    "n_attentive_neurons": "the first ones; they carry attention and are the only start neurons",
    "n_attentive_neuron_heads": "attention heads; must divide the section width",
    "n_neighbors": "each neuron's wired neighbors (drawn with n_seed)",
    "n_dendritics": "dendrite units per neuron (before the soma's voltage)",
    "n_synapses": "synapse units per neuron (after the axon)",
    "n_pos_size": "learned positions: the longest input",
    "n_vocab_size": "vocabulary (258 = bytes + end-of-text + pad)",
    "n_outputs": "classes of a sequence classifier",
    "n_seed": "seed of the neighbor wiring (and of a fresh model's weights)",
    "n_input": "reading: token ids; bridge: floats",
    "n_section": "split: sections side by side, each on its own learned projection of the input (n_dim / "
    "n_sections wide); sequential: one after another at full width",
    "n_output": "what the model predicts",
    "n_routing": "batch: the original (one choice for the whole batch); sample: each input its own route",
    "n_causal": "causal attention (default: only for a language model)",
    "n_cross_attention": "attentive start neurons attend to a second input y",
    "n_trainable_routing": "let gradients reach dendrites, somas and thresholds (straight-through)",
}
CAUSAL_LABELS = {None: "auto (causal for an LM)", True: "causal", False: "both ways"}
GROUPS = {
    "Sizes": ["n_dim", "n_sections", "n_neurons", "n_attentive_neurons", "n_attentive_neuron_heads", "n_pos_size"],
    "Neurons and wiring": ["n_neighbors", "n_dendritics", "n_synapses", "n_seed", "n_routing", "n_trainable_routing"],
    "Input and output": [
        "n_input",
        "n_output",
        "n_vocab_size",
        "n_outputs",
        "n_section",
        "n_causal",
        "n_cross_attention",
    ],
}


def _key(name: str) -> str:
    return f"build_{name}"


def _to_widget(name: str, value):
    return CAUSAL_LABELS[value] if name == "n_causal" and value in CAUSAL_LABELS else value


def _from_widget(name: str):
    value = st.session_state[_key(name)]
    return next((k for k, label in CAUSAL_LABELS.items() if label == value), value) if name == "n_causal" else value


def _from_widgets() -> None:
    set_config_fields({name: _from_widget(name) for name in FIELDS})


def _show(values: dict) -> None:
    for name in FIELDS:
        st.session_state[_key(name)] = _to_widget(name, values[name])


def _apply(values: dict) -> None:
    set_config_fields(values)
    _show(values)


def _apply_preset() -> None:
    if (name := st.session_state["build_preset"]) in genesis.PRESETS:
        _apply(genesis.preset(name).user_dict())


def _apply_upload() -> None:
    upload = st.session_state.get("build_upload")
    if upload is None:
        return
    try:
        _apply(gio.read_config(upload.getvalue(), upload.name).user_dict())
        st.session_state["build_upload_message"] = ("success", f"Loaded {upload.name}.")
    except gio.LoadError as e:
        st.session_state["build_upload_message"] = ("error", f"Upload refused: {e}")


def _control(name: str, value) -> None:
    widget, spec = CONTROLS[name]
    kw = dict(key=_key(name), help=HELP[name], on_change=_from_widgets)
    if widget == "slider":
        st.slider(name, min(spec[0], value), max(spec[1], value), step=1, **kw)
    elif widget == "select_slider":
        st.select_slider(name, sorted(set(spec) | {value}), **kw)
    elif widget == "number":
        st.number_input(name, step=1, **kw)
    elif widget == "checkbox":
        st.checkbox(name, **kw)
    else:
        options = [_to_widget(name, v) for v in spec]
        st.selectbox(name, options + ([value] if value not in options else []), **kw)


def draw_wiring(config: genesis.GenesisConfig, key: str) -> None:
    starts = (
        "Attentive neurons (red) are where routes start; a route only hops to plain neurons (blue) that have "
        "not fired yet."
        if config.n_attentive_neurons
        else "This config has no attentive neurons, so a route starts at whichever neuron has the highest "
        "voltage (any of them) and hops to neighbors that have not fired yet."
    )
    st.caption(
        f"Each neuron's arrows go to its neighbors. {starts} A cross marks a plain neuron that no "
        "start neuron can ever reach: it never fires, whatever the weights."
    )
    sections = list(range(config.n_sections))
    if len(sections) > 2:
        sections = [st.select_slider("Section to show", sections, key="build_section")]
    for column, i in zip(st.columns(len(sections)), sections):
        graph = graphs.wiring_graph(config, i)
        unreachable, reach = graphs.unreachable_neurons(graph), graphs.reachability(graph)
        column.plotly_chart(wiring_figure(key, i), key=f"build_wiring_{i}")
        column.caption(
            f"Unreachable in section {i}: {', '.join(map(str, unreachable))}"
            if unreachable
            else f"Every neuron of section {i} can be reached from some start neuron."
        )
        column.dataframe(
            {
                "start neuron": list(reach),
                "neurons its routes can reach (itself too)": [len(r) for r in reach.values()],
            },
            hide_index=True,
        )


active = model_picker()
page_header("Build", active)
if active is None or active.source != SOURCES[1]:  # the header names the sidebar's model, not this config
    st.caption(
        "This page shows the Build config, not the model above: pick 'Fresh model from the Build config' in "
        "the sidebar to run it."
    )
fields = config_fields()
_show(fields)  # widgets show the current config (it may come from a URL, a preset or an upload)
matching = next((p for p in genesis.PRESETS if genesis.preset(p).user_dict() == fields), "custom")
st.session_state["build_preset"] = matching

top = st.columns([1, 1, 2])
top[0].selectbox("Preset", ["custom", *genesis.PRESETS], key="build_preset", on_change=_apply_preset)
top[1].file_uploader("Load a config.json", type=["json"], key="build_upload", on_change=_apply_upload)
if message := st.session_state.pop("build_upload_message", None):
    getattr(top[2], message[0])(message[1])
top[2].caption(
    "Every change goes into the page's URL: share it to share this config. The sidebar's "
    "'Fresh model from the Build config' runs it on the other pages."
)
for column, (group, names) in zip(st.columns(len(GROUPS)), GROUPS.items()):
    with column:
        st.subheader(group)
        for name in names:
            _control(name, _to_widget(name, fields[name]))

config, error = parse_fields(fields)
if error:
    st.error(f"This combination does not work: {error}")
    st.stop()
_, size_error = validate_fields(fields)
if size_error:
    drawn = "counted below" if wiring_too_large(config) else "drawn and counted below"
    st.warning(f"{size_error} It is {drawn} but cannot be built in this app.")
    if (smaller := fitting_config(config)) is not None and smaller.user_dict() != fields:
        # Its sizes need not be on the sliders (halving 640 gives 320): one click sets them all.
        st.button("Use the smaller config", on_click=_apply, args=(smaller.user_dict(),), key="build_use_smaller")

key = config_json(config)
st.plotly_chart(config_figure("parameters", key), key="build_parameters")

st.subheader("Wiring")
too_large = wiring_too_large(config)
if too_large:  # drawing it would take minutes and hang the browser
    st.info(f"Not drawn: {too_large}.")
else:
    draw_wiring(config, key)

st.subheader("Export")
cols = st.columns(3)
as_json = json.dumps({"model_type": "genesis", **config.user_dict()}, indent=2)  # AutoConfig reads model_type
cols[0].download_button("config.json (this app)", as_json, "config.json")
cols[1].download_button(
    "config.json (original code base)", json.dumps(compat.config_to_original(config), indent=2), "original_config.json"
)
if not too_large:
    cols[2].download_button("Wiring (GraphML)", wiring_graphml(key), "wiring.graphml")

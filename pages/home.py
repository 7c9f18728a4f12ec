"""Home: what Genesis is, its architecture from the current config, and one input's pass step by step."""

import streamlit as st

from genesis import GenesisConfig, figures, probes
from genesis.tokenization import TextError
from pages.common import (
    SOURCES,
    config_fields,
    config_figure,
    config_json,
    model_picker,
    page_header,
    parse_fields,
    pick_source,
    show_model,
    source_config,
    stop_without_model,
    text_widget,
    tokens_table,
    wiring_figure,
)


def architecture(config: GenesisConfig | None) -> None:
    if config is not None:
        st.plotly_chart(config_figure("architecture", config_json(config)), key="home_architecture")
        st.caption(
            "Generated from the config of the model the sidebar shows: hover a box for its sizes. Change "
            f"the config on Build and pick '{SOURCES[1]}' in the sidebar to see yours."
        )


source = pick_source()
page_header("Genesis Explorer", None)
model_line = st.empty()  # says which model once it is loaded, below
st.markdown(
    "**Genesis** is a network of *neurons* grouped in *sections*. In each section an *indexer* picks "
    "a start neuron (one of the attentive neurons, the ones with attention; any neuron in a config "
    "without them), which fires and then "
    "offers its signal to its wired neighbors that are plain (not attentive) and have not fired yet: the one "
    "with the highest *voltage* fires next if that "
    "voltage exceeds its *threshold*. So each input takes a **route** through a few neurons instead "
    "of through every layer. Build a network on **Build**, run text on **Run**, watch many inputs on "
    "**Activations**, compare configs on **Compare** and train one on **Train**."
)

# Drawn from the config before the model is loaded: on a fresh server, loading it imports
# transformers' model code first (≈ 1.2 s), which this chart does not need.
early = source_config(source)
architecture(early)
active = model_picker(source)
show_model(active, model_line)
config = active.model.config if active else parse_fields(config_fields())[0]
if early is None:  # a trained or uploaded model: its config comes with it
    architecture(config)
if active is None:
    stop_without_model()

st.subheader("One input, step by step")
text = text_widget("Input", "home_text", area=True, height=68)
try:
    ids, note = probes.encode_for(config, text)
except TextError as e:
    st.info(f"The walkthrough needs text to read: {e}.")
    st.stop()
output = probes.run(active.model, ids)
steps = probes.walkthrough(config, output.trace)
index = min(st.session_state.get("home_step", 0), len(steps) - 1)


def _move(delta: int) -> None:
    st.session_state["home_step"] = max(0, min(index + delta, len(steps) - 1))


step = steps[index]
picture, words = st.columns([3, 2])
with words:
    st.markdown(f"**Step {index + 1} of {len(steps)} · {step.title}**")
    st.write(step.text)
    back, forward = st.columns(2)
    back.button("◀ Back", on_click=_move, args=(-1,), disabled=index == 0, key="home_back")
    forward.button("Next ▶", on_click=_move, args=(1,), disabled=index == len(steps) - 1, key="home_next")
    if note:
        st.caption(note)
with picture:
    if step.kind == "input":
        tokens_table(ids)
    elif step.kind in ("start", "hop"):
        section = output.trace.sample_sections(0)[step.section]  # per-sample routing: its own trace
        route, not_fired = probes.route_at_step(section, step.step)
        thresholds = tuple(active.model.thresholds()[step.section])
        figure = wiring_figure(config_json(config), step.section, thresholds, tuple(route), not_fired=not_fired)
        st.plotly_chart(figure, key="home_wiring")
        n_attentive = output.trace.attentive[step.section]
        st.plotly_chart(figures.hop_step_figure(section, step.step, n_attentive=n_attentive), key="home_step_chart")
    elif step.kind == "output" and config.n_output == "causal_lm":
        top = probes.top_k_next(output, 10)
        st.plotly_chart(figures.top_k_figure([probes.token_label(t) for t, _ in top], [p for _, p in top]))
    elif step.kind == "output" and config.n_output == "sequence_classifier":
        st.plotly_chart(
            figures.class_probability_figure(probes.class_probabilities(output), probes.class_names(config))
        )
    else:
        st.plotly_chart(config_figure("architecture", config_json(config)), key="home_step_architecture")

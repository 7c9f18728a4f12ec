"""Shared by every page (not a page itself): the current config, the sidebar model picker,
cached models and the URL state. Widgets and caching only; the logic lives in `genesis`.
"""

from __future__ import annotations

import itertools
import json
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st

import genesis
from genesis import figures, graphs, probes
from genesis import io as gio
from genesis.configuration import (
    FIELDS,
    ConfigError,
    SizeError,
    changed_fields,
    check_size,
    fields_from_query,
    smaller_config,
)

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "assets" / "demo"
APP_DEFAULT = genesis.preset("app").user_dict()
# The app refuses configs bigger than this (2 CPU cores); the library's own limit is higher.
APP_MAX_PARAMETERS = 30_000_000
APP_MAX_ACTIVATION_BYTES = 2 * 2**30
APP_MAX_ARROWS = 8192  # wiring arrows per section (n_neurons x n_neighbors) the app draws: 1.2 MB of chart
SOURCES = ("Demo model (trained)", "Fresh model from the Build config", "Trained in this session", "Uploaded model")
EXAMPLE_TEXT = "The quick brown fox jumps over the lazy dog."
URL_TEXT_LIMIT = 1000  # longer texts stay in the session but not in the shareable URL


@dataclass
class ActiveModel:
    model: genesis.Genesis
    label: str  # what every page says it shows
    source: str


# -- config and URL state ---------------------------------------------------------------------


# Page settings a user expects to find as they left them after visiting another page, by page.
# Streamlit forgets a widget's value once a run does not draw it; assigning it to itself while its
# page is not shown (app.py, every run) keeps it. Choices whose options depend on other settings (a
# section, a line) are left out.
KEPT_SETTINGS = {
    "run": ("run_per_line", "run_temperature", "run_top_p", "run_new_tokens", "run_seed", "run_causality"),
    "compare": (
        *("cmp_count", "cmp_texts", "cmp_seeds"),
        *(f"cmp_{slot}" for slot in range(4)),
        *(f"cmp_url_{slot}" for slot in range(4)),
    ),
    "train": ("train_data", "train_block", "train_steps", "train_batch", "train_lr"),
    "activations": ("act_source", "act_lines", "act_routing"),
}


def keep_page_settings(shown: str) -> None:
    """Keep the settings of every page but the one shown (its widgets keep their own; assigning
    one that is drawn in the same run would make Streamlit warn of a value set twice)."""
    for page, keys in KEPT_SETTINGS.items():
        if page == shown:
            continue
        for key in keys:
            if key in st.session_state:
                st.session_state[key] = st.session_state[key]


def config_fields() -> dict[str, Any]:
    """The current Build config (user fields). First call of a session reads the URL."""
    if "config_fields" not in st.session_state:
        fields, bad = fields_from_query(st.query_params.to_dict(), APP_DEFAULT)
        if bad:
            st.session_state["url_warning"] = f"ignored invalid URL value(s) for {', '.join(bad)}"
        st.session_state["config_fields"] = fields
        if "source" in st.query_params and st.query_params["source"] in SOURCES:
            st.session_state["model_source"] = st.query_params["source"]
        if "text" in st.query_params:
            st.session_state["run_text"] = st.query_params["text"]
    return st.session_state["config_fields"]


def set_config_fields(fields: dict[str, Any]) -> None:
    st.session_state["config_fields"] = dict(fields)


def parse_fields(fields: dict[str, Any]) -> tuple[genesis.GenesisConfig | None, str | None]:
    """Like validate_fields but without the app's size budget (a config too big to build here can
    still be drawn and counted)."""
    try:
        return gio.config_from_dict(fields), None
    except (ConfigError, ValueError) as e:
        return None, str(e)


def validate_fields(fields: dict[str, Any]) -> tuple[genesis.GenesisConfig | None, str | None]:
    """(config, None) or (None, a message that names the field): never raises."""
    config, error = parse_fields(fields)
    if error:
        return None, error
    try:
        check_size(config, *_limits(config))
    except SizeError as e:
        return None, f"Too large for this app: {e}. {_suggestion(config)}"
    if problem := wiring_too_large(config):
        return None, f"Too large for this app: {problem}. {_suggestion(config)}"
    return config, None


# What makes Markdown of text inside a line (emphasis, code, links, HTML, strikethrough, formulas, tables).
MARKDOWN_ESCAPES = str.maketrans({c: "\\" + c for c in "\\`*_[]<>~$|"})


def wiring_too_large(config: genesis.GenesisConfig) -> str | None:
    """Why a section's wiring is too large to draw (every page draws it), or None."""
    arrows = config.n_neurons * config.n_neighbors
    if arrows <= APP_MAX_ARROWS:
        return None
    return (
        f"each section's wiring has {arrows:,} arrows (n_neurons × n_neighbors), more than the "
        f"{APP_MAX_ARROWS:,} the app draws: use fewer neurons or neighbors"
    )


def _limits(config: genesis.GenesisConfig) -> tuple:
    """check_size's limits in the app: parameters, activations of a batch of 8 of up to 256 tokens."""
    return APP_MAX_PARAMETERS, APP_MAX_ACTIVATION_BYTES, 8, min(config.n_pos_size, 256)


def fitting_config(config: genesis.GenesisConfig) -> genesis.GenesisConfig | None:
    """A config like `config` that the app can build (the library's own shrinking), or None."""
    found = _fitting_config(config_json(config))
    return None if found is None else gio.config_from_dict(json.loads(found))


@st.cache_data(max_entries=64, show_spinner=False)
def _fitting_config(config_json: str) -> str | None:
    # Asked twice per run of an oversized config (the message, then the button): shrink once.
    config = gio.config_from_dict(json.loads(config_json))
    smaller = smaller_config(config, *_limits(config))
    if smaller is None:
        return None
    fields = smaller.user_dict()
    if wiring_too_large(smaller):  # the app's own limit, which the library's shrinking does not know
        fields["n_neighbors"] = APP_MAX_ARROWS // smaller.n_neurons
        if not fields["n_neighbors"]:
            return None
    return json.dumps(fields, sort_keys=True)


def _suggestion(config: genesis.GenesisConfig) -> str:
    """Name the fields to change."""
    smaller = fitting_config(config)
    if smaller is None:
        return "Try a smaller config."
    changes = [f"{k}={v}" for k, v in smaller.user_dict().items() if v != getattr(config, k)]
    return f"A smaller config that fits: {', '.join(changes)}."


def current_text() -> str:
    """The input text shared by Home and Run (and the URL)."""
    return st.session_state.get("run_text", EXAMPLE_TEXT)


def set_text(text: str) -> None:
    st.session_state["run_text"] = text


def text_widget(label: str, key: str, area: bool = False, **kw: Any) -> str:
    """A text box showing the shared input text; editing it changes the text on every page and in
    the URL."""
    st.session_state[key] = current_text()

    def changed() -> None:
        set_text(st.session_state[key])

    (st.text_area if area else st.text_input)(label, key=key, on_change=changed, **kw)
    return current_text()


def tokens_table(ids: list[int]) -> None:
    """The tokens as a one-row-per-field table (position across), readable labels for bytes."""
    st.dataframe(
        {"": ["token", "id"], **{str(i): [probes.token_label(t), str(t)] for i, t in enumerate(ids)}},
        hide_index=True,
    )


def config_json(config: genesis.GenesisConfig) -> str:
    """The canonical cache key of a config."""
    return json.dumps(config.user_dict(), sort_keys=True)


def sync_url(**extra: str) -> None:
    """Write the config fields that differ from the app default (and extras) into the URL."""
    fields = config_fields()
    wanted = changed_fields(fields, APP_DEFAULT)
    source = st.session_state.get("model_source")
    if source and source != SOURCES[0]:
        wanted["source"] = source
    wanted.update({k: v for k, v in extra.items() if v})
    current = {k: st.query_params[k] for k in st.query_params}
    for key in current.keys() - wanted.keys():
        if key in FIELDS or key == "source" or key in extra:
            del st.query_params[key]
    for key, value in wanted.items():
        if current.get(key) != value:
            st.query_params[key] = value


# -- models -------------------------------------------------------------------------------------


@st.cache_resource(max_entries=16, show_spinner="Building the model…")
def build_model(config_json: str) -> genesis.Genesis:
    """One model per config, shared by all sessions: forward keeps no state on modules, so it is
    safe from several sessions at once. Never mutate it; copy it first."""
    return genesis.Genesis(gio.config_from_dict(json.loads(config_json))).eval()


def demo_available() -> bool:
    return (DEMO_DIR / "model.safetensors").exists()


@st.cache_resource(show_spinner="Loading the demo model…")
def demo_model() -> tuple[genesis.Genesis | None, dict[str, Any]]:
    if not demo_available():
        return None, {}
    info_path = DEMO_DIR / "training.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return gio.load_folder(DEMO_DIR), info


@st.cache_resource
def tokenizer():
    return genesis.byte_tokenizer()


_MODEL_NUMBERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MODEL_NUMBERS_LOCK = threading.Lock()
_NEXT_NUMBER = itertools.count()


def model_key(model: genesis.Genesis) -> str:
    """Keys caches of results: this model object (a number of its own, never reused as id() is by a
    model built where a freed one was) and where its weights are and how often they were changed in
    place (optimizer steps and loads bump the version counters). Summing the weights did the same
    in 0.14 s a call at the app's size limit, three calls per Run."""
    with _MODEL_NUMBERS_LOCK:
        if (number := _MODEL_NUMBERS.get(model)) is None:
            number = _MODEL_NUMBERS[model] = next(_NEXT_NUMBER)
    state = hash(tuple((p.data_ptr(), p._version) for p in model.parameters()))
    return f"{number}:{state}"


def private_copy(model: genesis.Genesis) -> genesis.Genesis:
    """This session's own copy of `model` to change (the cached models are shared: never mutate
    them). Kept until the session picks another model."""
    key = model_key(model)
    held = st.session_state.get("private_copy")
    if held is None or held[0] != key:
        held = (key, probes.copy_for_edits(model))
        st.session_state["private_copy"] = held
    return held[1]


# -- figures (cached: a rerun after a slider move must redraw at once) ------------------------------


@st.cache_resource(max_entries=256, show_spinner=False)
def wiring_figure(
    config_json: str,
    section: int,
    thresholds: tuple[float, ...] | None = None,
    route: tuple[int, ...] | None = None,
    other_route: tuple[int, ...] | None = None,
    title: str | None = None,
    not_fired: tuple[int, int] | None = None,
    height: int | None = None,
) -> go.Figure:
    """A section's wiring (and routes) as a figure. Shared across sessions like the models: the
    figure is never changed after it is built (st.plotly_chart only reads it). A model's wiring
    follows from its config; its thresholds come separately."""
    config = gio.config_from_dict(json.loads(config_json))
    graph = graphs.wiring_graph(config, section, list(thresholds) if thresholds is not None else None)
    sized = {} if height is None else {"height": height}
    return figures.wiring_figure(
        graph, route, other_route, title=title, uirevision=f"wiring-{section}", not_fired=not_fired, **sized
    )


@st.cache_resource(max_entries=64, show_spinner=False)
def config_figure(kind: str, config_json: str) -> go.Figure:
    """The "architecture" or "parameters" figure of a config (shared, never changed after it is built)."""
    config = gio.config_from_dict(json.loads(config_json))
    return {"architecture": figures.architecture_figure, "parameters": figures.parameter_breakdown_figure}[kind](config)


@st.cache_data(max_entries=64, show_spinner=False)
def wiring_graphml(config_json: str) -> str:
    config = gio.config_from_dict(json.loads(config_json))
    return graphs.to_graphml([graphs.wiring_graph(config, i) for i in range(config.n_sections)])


def model_for_fields(fields: dict[str, Any]) -> genesis.Genesis | None:
    config, error = validate_fields(fields)
    if error:
        return None
    return build_model(json.dumps(config.user_dict(), sort_keys=True))


def leave_pages_directory_mode() -> None:
    """Streamlit treats a `pages/` folder beside app.py as old-style multipage mode until app.py's
    st.navigation has run once in the process, so a deep link (/run?...) opened first on a fresh
    server would run the page without app.py. Switch that mode off and rerun through app.py."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        # Only on a session's first run: a later rerun would drop a pressed button (AppTest resets
        # this flag before every run, so its runs would each lose their click).
        if not st.session_state.get("_left_pages_directory_mode"):
            st.session_state["_left_pages_directory_mode"] = True
            st.rerun()


def publish_trained(job, description: str) -> None:
    """The finished (or stopped) model becomes the session's trained model, on every page."""
    result = job.result
    loss = f", val loss {result.final_val_loss:.3f}" if result and result.final_val_loss is not None else ""
    steps = result.steps_done if result else 0
    st.session_state["trained_model"] = job.model.eval()
    st.session_state["trained_label"] = f"trained in this session ({description}, {steps} steps{loss})"
    st.session_state["trained_files"] = gio.model_to_bytes(job.model)
    st.session_state["train_published"] = id(job)


def _publish_finished_training() -> None:
    """A training that ended while its page was not shown still becomes the session's trained model."""
    job = st.session_state.get("train_job")
    if job is not None and job.publishable and st.session_state.get("train_published") != id(job):
        publish_trained(job, st.session_state.get("train_description", "training"))


def pick_source() -> str:
    """The sidebar's model choice (one of SOURCES), without loading the model: `model_picker(source)`
    loads it. Home draws its first chart in between."""
    leave_pages_directory_mode()
    _publish_finished_training()
    config_fields()  # a session's first run reads the source from the URL
    available = [s for s in SOURCES if s != SOURCES[0] or demo_available()]
    default = st.session_state.get("model_source", available[0])
    source = st.sidebar.selectbox(
        "Model", available, index=available.index(default) if default in available else 0, key="model_source_widget"
    )
    st.session_state["model_source"] = source
    return source


def source_config(source: str) -> genesis.GenesisConfig | None:
    """The config of the model `source` gives, read without loading that model (nor the model
    code: a fresh server's first chart need not wait for it); None for a trained or uploaded model."""
    if source == SOURCES[0]:
        return demo_config()
    if source == SOURCES[1]:
        return parse_fields(config_fields())[0]
    return None


@st.cache_resource(show_spinner=False)
def demo_config() -> genesis.GenesisConfig:
    return gio.read_config(DEMO_DIR / "config.json")


def model_picker(source: str | None = None) -> ActiveModel | None:
    """The sidebar picker shared by every page (`source`: already picked by pick_source). Returns
    None (with a message) when nothing is usable."""
    source = source or pick_source()
    fields = config_fields()
    with st.sidebar:
        if source == SOURCES[0]:
            demo, info = demo_model()
            return ActiveModel(demo, f"demo model ({info.get('summary', 'trained on built-in data')})", source)
        if source == SOURCES[1]:
            config, error = validate_fields(fields)
            if error:
                st.error(f"The Build config is invalid: {error}")
                return None
            return ActiveModel(
                model_for_fields(fields),
                f"fresh model from the Build config (d{config.n_dim}, "
                f"{config.n_sections}×{config.n_neurons} neurons, seed {config.n_seed})",
                source,
            )
        if source == SOURCES[2]:
            trained = st.session_state.get("trained_model")
            if trained is None:
                st.info("No model trained in this session yet: use the Train page.")
                return None
            return ActiveModel(trained, st.session_state.get("trained_label", "model trained in this session"), source)
        return _uploaded_model()


def _uploaded_model() -> ActiveModel | None:
    config_file = st.file_uploader("config.json", type=["json"], key="upload_config")
    weights_file = st.file_uploader("model.safetensors", type=["safetensors"], key="upload_weights")
    if config_file is None or weights_file is None:
        uploaded = st.session_state.get("uploaded_model")
        if uploaded is None:
            st.info("Upload a config.json and a model.safetensors (saved by this app or `save_pretrained`).")
            return None
        return uploaded
    try:
        # The app's limits, as for a Build config, before the weights are read: the parameter count,
        # the activations of what the pages run, and the arrows every page draws.
        config = gio.read_config(config_file.getvalue(), config_file.name)
        check_size(config, *_limits(config))
        if problem := wiring_too_large(config):
            raise ValueError(f"too large for this app: {problem}")
        model = gio.load_model(
            config_file.getvalue(),
            weights_file.getvalue(),
            config_file.name,
            weights_file.name,
            max_parameters=APP_MAX_PARAMETERS,
        )
    except SizeError as e:
        st.error(f"Upload refused: too large for this app: {e}")
        return None
    except ValueError as e:
        st.error(f"Upload refused: {e}")
        return None
    active = ActiveModel(model, f"uploaded model ({weights_file.name})", SOURCES[3])
    st.session_state["uploaded_model"] = active
    return active


def page_header(title: str, active: ActiveModel | None) -> None:
    """Title plus the line every page shows: which model this is. Also puts the config and text
    back into the URL: Streamlit clears query parameters when the user switches pages."""
    text = current_text()
    sync_url(text=text[:URL_TEXT_LIMIT] if text != EXAMPLE_TEXT else "")
    st.title(title)
    if warning := st.session_state.pop("url_warning", None):
        st.warning(warning)
    show_model(active)


def stop_without_model() -> None:
    """End a page that needs a model when there is none; the sidebar says why (refused upload, no
    trained model yet, invalid Build config)."""
    st.info("No model to show: choose one, or fix the one chosen, under **Model** in the sidebar.")
    st.stop()


def show_model(active: ActiveModel | None, where: Any = st) -> None:
    """The line that says which model a page shows (`where`: a placeholder filled later)."""
    if active is not None:
        where.caption(f"Model: **{active.label.translate(MARKDOWN_ESCAPES)}**")  # a file's name is not Markdown

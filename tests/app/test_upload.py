"""The sidebar's model upload in AppTest: the app's own limits hold for an uploaded model as for a
Build config, and a file's name is shown as it is, not read as Markdown."""

from __future__ import annotations

import genesis
from genesis import io as gio
from pages.common import SOURCES
from tests.app.conftest import assert_ok, open_app


def upload(at, config_json: bytes, weights: bytes, weights_name: str = "model.safetensors"):
    at.selectbox(key="model_source_widget").set_value(SOURCES[3]).run()
    at.sidebar.file_uploader(key="upload_config").set_value(("config.json", config_json, "application/json"))
    at.sidebar.file_uploader(key="upload_weights").set_value((weights_name, weights, "application/octet-stream"))
    at.run()
    assert_ok(at)
    return at


def test_an_upload_beyond_the_apps_wiring_limit_is_refused():
    """A 130 KB model with 1024 neurons of 200 neighbors each was taken: the Run page then spent
    minutes drawing 32 MB wiring charts. The Build page refuses the same config."""
    model = genesis.Genesis(
        genesis.preset("tiny", n_dim=4, n_attentive_neuron_heads=1, n_neurons=1024, n_neighbors=200, n_pos_size=16)
    )
    at = upload(open_app("run"), *gio.model_to_bytes(model))
    errors = [e.value for e in at.error]
    assert any("Upload refused: too large for this app: each section's wiring has 204,800 arrows" in e for e in errors)
    assert not at.get("plotly_chart")  # nothing drawn of it


def test_an_uploaded_models_name_is_shown_as_it_is():
    model = genesis.Genesis(genesis.preset("tiny")).eval()
    at = upload(open_app("run"), *gio.model_to_bytes(model), weights_name="**bold** [x](y).safetensors")
    assert not at.error
    model_line = next(c.value for c in at.caption if c.value.startswith("Model:"))
    assert "\\*\\*bold\\*\\* \\[x\\](y)" in model_line  # Markdown sees characters, not emphasis or a link

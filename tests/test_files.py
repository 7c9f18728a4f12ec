"""Hostile and broken files: only JSON and safetensors are ever read, pickle is never unpickled, and
every refusal says what is wrong. Checked through genesis.io and through the app's uploaders.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors

import genesis
from genesis import io as gio
from genesis.configuration import SizeError
from tests.app.conftest import assert_ok, open_app

TINY = dict(
    n_dim=16,
    n_sections=2,
    n_neurons=4,
    n_attentive_neurons=1,
    n_attentive_neuron_heads=2,
    n_vocab_size=258,
    n_pos_size=16,
    n_neighbors=2,
)


@pytest.fixture(scope="module")
def model() -> genesis.Genesis:
    return genesis.Genesis(genesis.GenesisConfig(**TINY)).eval()


@pytest.fixture(scope="module")
def files(model) -> tuple[bytes, bytes]:
    return gio.model_to_bytes(model)


@pytest.fixture(scope="module")
def state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# Pickle: never unpickled


class Payload:
    """Unpickling this creates `marker` (builtins.open in write mode): proof if it ever runs."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickles(marker: Path) -> dict[str, bytes]:
    """The same live payload in every shape a checkpoint comes in."""
    out = {f"protocol {p}": pickle.dumps(Payload(marker), protocol=p) for p in (0, 2, 3, 4, 5)}
    path = marker.parent / "saved.pt"
    torch.save({"weight": Payload(marker)}, path)  # zip archive holding a pickle
    out["torch.save"] = path.read_bytes()
    torch.save({"weight": Payload(marker)}, path, _use_new_zipfile_serialization=False)
    out["torch.save legacy"] = path.read_bytes()
    path.unlink()
    return out


PICKLE_NAMES = ("pytorch_model.bin", "model.pt", "model.pth", "model.pkl", "model.ckpt", "model.safetensors", "weights")


def test_the_payload_is_live(tmp_path):
    """The control: unpickling really would create the marker."""
    marker = tmp_path / "control"
    pickle.loads(pickles(marker)["protocol 4"])
    assert marker.exists()


def test_pickle_is_refused_everywhere_and_never_unpickled(tmp_path, files):
    marker = tmp_path / "pwned"
    config_json, _ = files
    refused = 0
    for kind, payload in pickles(marker).items():
        for name in PICKLE_NAMES:
            on_disk = tmp_path / name
            on_disk.write_bytes(payload)
            for load, args in (
                (gio.read_weights, (payload, name)),
                (gio.read_weights, (on_disk,)),
                (gio.load_model, (config_json, payload, "config.json", name)),
                (gio.load_model, (config_json, on_disk)),
            ):
                with pytest.raises(gio.LoadError) as raised:
                    load(*args)
                message = str(raised.value)
                assert name in message
                assert "pickle" in message or "safetensors" in message, message
                refused += 1
            with pytest.raises(gio.LoadError):
                gio.read_config(payload, "config.json")  # a pickle posing as config.json
            on_disk.unlink()
        assert not marker.exists(), f"{kind} was unpickled"
    assert refused == 7 * len(PICKLE_NAMES) * 4


def test_folders_with_pickles_are_refused(tmp_path, files):
    marker = tmp_path / "pwned"
    payload = pickles(marker)["torch.save"]
    config_json, _ = files
    only_bin = tmp_path / "only_bin"
    only_bin.mkdir()
    (only_bin / "config.json").write_bytes(config_json)
    (only_bin / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(gio.LoadError, match=r"only pickle checkpoint\(s\) found \(pytorch_model.bin\)"):
        gio.load_folder(only_bin)
    disguised = tmp_path / "disguised"
    disguised.mkdir()
    (disguised / "config.json").write_bytes(config_json)
    (disguised / "model.safetensors").write_bytes(payload)
    with pytest.raises(gio.LoadError, match="is a pickle/torch.save file, whatever its name"):
        gio.load_folder(disguised)
    assert not marker.exists()


def test_incomplete_folders_say_what_is_missing(tmp_path, model):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(gio.LoadError, match="empty: no config.json here"):
        gio.load_folder(empty)
    with pytest.raises(ValueError, match="no config.json here"):  # it built the full-size default model
        genesis.Genesis.from_pretrained(empty)
    with pytest.raises(gio.LoadError, match="not a folder"):
        gio.load_folder(tmp_path / "nowhere")
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="10KB")
    assert not (sharded / "model.safetensors").exists()
    with pytest.raises(gio.LoadError, match="sharded checkpoint; load it with Genesis.from_pretrained"):
        gio.load_folder(sharded)
    assert torch.equal(genesis.Genesis.from_pretrained(sharded).output.lm_head.bias, model.output.lm_head.bias)


def test_hugging_face_loading_of_a_pickle_runs_no_code(tmp_path, files):
    """Not our loader, but a user may call from_pretrained on a .bin folder: torch's weights-only
    unpickler must refuse the payload."""
    marker = tmp_path / "pwned"
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**TINY, "model_type": "genesis"}))
    (folder / "pytorch_model.bin").write_bytes(pickles(marker)["torch.save"])
    with pytest.raises(Exception):  # noqa: B017 (whatever Hugging Face raises, it must not load)
        genesis.Genesis.from_pretrained(folder)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# Broken and hostile config files

BAD_CONFIGS: list[tuple[str, bytes, str]] = [
    ("malformed", b'{"n_dim": 32,', "malformed JSON at line 1"),
    ("unquoted key", b"{n_dim: 32}", "malformed JSON at line 1, column 2"),
    ("empty", b"", "malformed JSON"),
    ("list", b"[1, 2]", "must be a JSON object of config fields, got list"),
    ("string", b'"n_dim"', "must be a JSON object of config fields, got str"),
    ("unknown field", b'{"n_dimm": 32}', "unknown field(s) n_dimm"),
    ("another model", b'{"model_type": "gpt2"}', "model_type is 'gpt2', not 'genesis'"),
    ("string number", b'{"n_dim": "32"}', "n_dim: must be an integer"),
    ("float", b'{"n_dim": 32.5}', "n_dim: must be an integer"),
    ("bool as int", b'{"n_neurons": true}', "n_neurons: must be an integer"),
    ("negative", b'{"n_neighbors": -1}', "n_neighbors: must be in [0, 1023], got -1"),
    ("NaN", b'{"n_dim": NaN}', "NaN is not valid JSON"),
    ("Infinity", b'{"n_dim": Infinity}', "Infinity is not valid JSON"),
    ("huge number", b'{"n_dim": 1e999}', "n_dim: must be an integer"),
    ("huge int", b'{"n_dim": ' + b"9" * 4000 + b"}", "n_dim"),
    ("over 4,300 digits", b'{"n_dim": ' + b"9" * 5000 + b"}", "a number in it is far too long"),  # not Python's advice
    ("class key of 5,000 digits", b'{"n_output": "sequence_classifier", "n_outputs": 2, "id2label": {"0": "a", "1' + b"0" * 5000 + b'": "b"}}', "id2label: class '1000"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("not UTF-8", b'{"n_dim": "\xff"}', "not UTF-8 text (byte 11)"),
    ("UTF-16", '{"n_dim": 32}'.encode("utf-16"), "not UTF-8 text (byte 0)"),
    ("unknown mode", b'{"n_output": "regression"}', "n_output: must be one of"),
    ("section typo", b'{"n_section": "Split"}', "n_section: must be 'split' or 'sequential', got 'Split'"),
    ("section null", b'{"n_section": null}', "n_section: must be 'split' or 'sequential', got None"),
    ("bad bool", b'{"n_cross_attention": "yes"}', "n_cross_attention: must be true or false"),
    ("indivisible", b'{"n_dim": 30, "n_sections": 4}', "n_dim: must be divisible by n_sections=4"),
    ("heads", b'{"n_dim": 30, "n_sections": 1, "n_attentive_neuron_heads": 4}', "n_attentive_neuron_heads: must divide"),
    ("neighbors", b'{"n_neurons": 4, "n_neighbors": 4, "n_attentive_neurons": 1}', "n_neighbors: must be in [0, n_neurons-1=3]"),
    ("too big", b" " * 1_000_001 + b"{}", "1,000,003 bytes is over the limit of 1,000,000 bytes"),
]  # fmt: skip


@pytest.mark.parametrize("label, data, expected", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_files_are_refused_with_the_reason(label, data, expected):
    with pytest.raises(gio.LoadError) as raised:
        gio.read_config(data, "config.json")
    assert str(raised.value).startswith("config.json: ")
    assert expected in str(raised.value)


def test_a_byte_order_mark_and_hugging_face_bookkeeping_are_accepted(model):
    saved = json.dumps({**model.config.to_dict(), "architectures": ["Genesis"]}).encode()
    assert gio.read_config(b"\xef\xbb\xbf" + saved).user_dict() == model.config.user_dict()


def test_an_oversized_config_is_refused_before_its_weights_are_read(tmp_path):
    huge = json.dumps(dict(n_dim=16384, n_sections=1, n_neurons=1024, n_neighbors=3, n_attentive_neurons=0))
    never_read = tmp_path / "model.safetensors"  # does not exist: reading it would say "not found"
    with pytest.raises(SizeError, match=r"config has 1\.\d+T parameters, over the limit of 400M"):
        gio.load_model(huge.encode(), never_read)


# ---------------------------------------------------------------------------------------------
# Broken and hostile weight files


def raw_safetensors(header: dict, body: bytes = b"", header_size: int | None = None) -> bytes:
    """A safetensors file written by hand, so it can lie."""
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded) if header_size is None else header_size) + encoded + body


def _entry(dtype: str, shape: list[int], start: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [start, end]}


def bad_weights(state: dict[str, torch.Tensor], valid: bytes) -> list[tuple[str, bytes, str]]:
    first = next(iter(state))
    dropped = {k: v for k, v in state.items() if k != "sections.0.threshold"}
    wrong_shape = {**state, "sections.1.norm": torch.zeros(3, 3)}
    nan = {**state, "sections.0.soma.weight": state["sections.0.soma.weight"].clone().fill_(float("nan"))}
    inf = {**state, "output.lm_head.bias": state["output.lm_head.bias"].clone().fill_(float("inf"))}
    beyond_float32 = {**state, "input.wte.weight": state["input.wte.weight"].double().fill_(1e300)}
    original_missing = {"sections.0.neurons.0.n_threshold": torch.tensor(0.5)}
    return [
        ("empty", b"", "0 bytes is too short for a safetensors file"),
        ("seven bytes", b"\x01" * 7, "too short"),
        ("text", b"hello, this is not a tensor file", "header claims"),
        ("truncated", valid[: len(valid) // 2], "truncated"),
        ("last byte cut", valid[:-1], "truncated"),
        ("header length past the end", raw_safetensors({}, header_size=10**6), "header claims 1,000,000 bytes"),
        ("huge header length", raw_safetensors({}, header_size=2**63), "header claims 9,223,372,036,854,775,808 bytes"),
        ("header not JSON", struct.pack("<Q", 4) + b"{{{{", "header is not valid JSON"),
        ("header a list", raw_safetensors([]), "header is not a JSON object"),  # type: ignore[arg-type]
        ("entry without offsets", raw_safetensors({"w": {"dtype": "F32", "shape": [1]}}), "lacks dtype, shape or data_offsets"),
        ("offsets past the end", raw_safetensors({"w": _entry("F32", [4], 0, 16)}, b"\0" * 8), "ends at byte 16 of the data but the file has only 8"),
        ("shape disagrees with offsets", raw_safetensors({"w": _entry("F32", [100], 0, 8)}, b"\0" * 8), "not a valid safetensors file"),
        ("overlapping tensors", raw_safetensors({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [2], 4, 12)}, b"\0" * 12), "not a valid safetensors file"),
        ("integer weights", save_safetensors({first: torch.zeros(3, dtype=torch.int64)}), "has dtype I64; weights must be floats"),
        ("bool weights", save_safetensors({first: torch.zeros(3, dtype=torch.bool)}), "has dtype BOOL"),
        ("byte weights", save_safetensors({first: torch.zeros(3, dtype=torch.uint8)}), "has dtype U8"),
        ("NaN weights", save_safetensors(nan), "tensor sections.0.soma.weight contains NaN or infinite values"),
        ("inf weights", save_safetensors(inf), "tensor output.lm_head.bias contains NaN or infinite values"),
        ("float64 beyond float32", save_safetensors(beyond_float32), "tensor input.wte.weight has values too large for float32"),
        ("missing key", save_safetensors(dropped), "missing sections.0.threshold"),
        ("extra key", save_safetensors({**state, "evil.extra": torch.zeros(1)}), "unexpected evil.extra"),
        ("wrong shape", save_safetensors(wrong_shape), "shape sections.1.norm is (3, 3) in the file, the config needs (4, 8)"),
        ("no tensors", save_safetensors({}), "weights do not fit the config: missing"),
        ("original layout, incomplete", save_safetensors(original_missing), "does not fit the config: missing input.wte.weight"),
    ]  # fmt: skip


def test_bad_weight_files_are_refused_with_the_reason(files, state):
    config_json, valid = files
    cases = bad_weights(state, valid)
    for label, data, expected in cases:
        with pytest.raises(gio.LoadError) as raised:
            gio.load_model(config_json, data, "config.json", "model.safetensors")
        message = str(raised.value)
        assert message.startswith("model.safetensors: "), (label, message)
        assert expected in message, (label, message)
    assert len(cases) == 24


def test_weights_over_the_size_limit_are_refused_before_reading(tmp_path, files):
    _, valid = files
    with pytest.raises(gio.LoadError, match=f"{len(valid):,} bytes is over the limit of 1,000 bytes"):
        gio.read_weights(valid, "model.safetensors", max_bytes=1000)
    sparse = tmp_path / "model.safetensors"  # 600 MB on paper, nothing on disk
    with sparse.open("wb") as f:
        f.truncate(600 * 2**20)
    with pytest.raises(gio.LoadError, match="629,145,600 bytes is over the limit of 536,870,912 bytes"):
        gio.read_weights(sparse)


def test_valid_files_round_trip(model, files, state):
    config_json, weights = files
    loaded = gio.load_model(config_json, weights)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    half = gio.load_model(config_json, save_safetensors({k: v.half() for k, v in state.items()}))
    assert half.sections[0].soma.weight.dtype == torch.float32  # converted, not refused


def test_class_names_and_token_ids_survive_every_way_of_saving_and_loading(tmp_path):
    config = genesis.preset(
        "classifier", n_outputs=3, id2label={0: "neg", 1: "mixed", 2: "pos"}, eos_token_id=256, pad_token_id=257
    )
    model = genesis.Genesis(config).eval()
    model.save_pretrained(tmp_path)
    for loaded in (gio.load_folder(tmp_path), gio.load_model(*gio.model_to_bytes(model))):  # CLI, app downloads
        assert loaded.config.id2label == {0: "neg", 1: "mixed", 2: "pos"}  # used to come back as LABEL_0, ...
        assert (loaded.config.eos_token_id, loaded.config.pad_token_id) == (256, 257)  # used to be None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"eos_token_id": 999}, "eos_token_id: must be null or a token id in [0, 257], got 999"),
        ({"pad_token_id": True}, "pad_token_id: must be null or a token id"),
        ({"id2label": {"0": "a"}}, "id2label: must map each of the 2 classes to a name"),
        ({"id2label": {"0": "a", "7": "b"}}, "id2label: class '7' is not in [0, 1]"),
        ({"id2label": {"0": "a", "1": "b" * 201}}, "id2label: class 1's name must be text of at most 200"),
    ],
)
def test_bad_class_names_or_token_ids_are_refused_by_name(change, message):
    values = {**genesis.preset("classifier").user_dict(), **change}
    with pytest.raises(gio.LoadError, match=re.escape(f"config.json: {message}")):
        gio.read_config(json.dumps(values).encode())


# ---------------------------------------------------------------------------------------------
# The app's uploaders (AppTest drives st.file_uploader)


def upload(at, config_json: bytes, weights: tuple[str, bytes]) -> None:
    """Put files into the sidebar's two uploaders and rerun (widgets are looked up afresh each run)."""
    at.sidebar.file_uploader(key="upload_config").set_value(("config.json", config_json, "application/json"))
    at.sidebar.file_uploader(key="upload_weights").set_value((*weights, "application/octet-stream"))
    at.run()
    assert_ok(at)


@pytest.mark.slow
def test_the_sidebar_uploader_refuses_hostile_files_and_loads_good_ones(tmp_path, files, state):
    marker = tmp_path / "pwned"
    config_json, valid = files
    at = open_app()
    at.sidebar.selectbox(key="model_source_widget").set_value("Uploaded model").run()
    assert_ok(at)
    hostile = [("model.safetensors", pickles(marker)["protocol 4"], "is a pickle/torch.save file")]
    hostile += [("model.safetensors", data, expected) for _, data, expected in bad_weights(state, valid)[:12]]
    for name, data, expected in hostile:
        upload(at, config_json, (name, data))
        errors = [e.value for e in at.sidebar.error]
        assert any(e.startswith("Upload refused: ") and expected in e for e in errors), (expected, errors)
        assert any("No model to show" in i.value for i in at.main.info)  # the page points to the sidebar
    upload(at, b"{n_dim: 3", ("model.safetensors", valid))
    assert any("malformed JSON" in e.value for e in at.sidebar.error)
    assert not marker.exists()
    upload(at, config_json, ("model.safetensors", valid))
    assert not at.sidebar.error
    assert any("uploaded model (model.safetensors)" in c.value for c in at.caption)
    # A client that bypasses the browser's file picker: Streamlit itself refuses the extension.
    at.sidebar.file_uploader(key="upload_weights").set_value(("evil.pkl", pickles(marker)["protocol 4"], "x"))
    at.run()
    assert any("Invalid file extension: `.pkl`" in e.value for e in at.exception)
    assert not marker.exists()


@pytest.mark.slow
def test_the_build_page_config_uploader_explains_refusals():
    at = open_app("build")
    for _, data, expected in BAD_CONFIGS[:-1]:  # the size case would only repeat the library's
        at.file_uploader(key="build_upload").set_value(("config.json", data, "application/json")).run()
        assert_ok(at)
        errors = [e.value for e in at.error]
        assert any(expected in e for e in errors), (expected, errors)


def test_class_names_come_back_in_both_directions(tmp_path):
    config = genesis.preset("classifier", id2label={0: "neg", 1: "pos"})
    genesis.Genesis(config).save_pretrained(tmp_path)
    loaded = gio.load_folder(tmp_path).config
    assert loaded.label2id == {"neg": 0, "pos": 1}  # used to stay LABEL_0, LABEL_1 beside the real names


def test_the_apps_downloads_load_with_the_auto_classes(tmp_path):
    """The app's "Download config.json" had no model_type: AutoModel* said "Unrecognized model"."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    config = genesis.preset("classifier", n_outputs=3, id2label={0: "neg", 1: "mixed", 2: "pos"})
    model = genesis.Genesis(config).eval()
    config_json, weights = gio.model_to_bytes(model)
    (tmp_path / "config.json").write_bytes(config_json)
    (tmp_path / "model.safetensors").write_bytes(weights)
    x = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    for auto in (AutoModel, AutoModelForSequenceClassification):
        loaded = auto.from_pretrained(tmp_path).eval()
        assert loaded.config.id2label == {0: "neg", 1: "mixed", 2: "pos"}
        with torch.no_grad():
            assert torch.equal(loaded(x).outputs, model(x).outputs)
    assert AutoConfig.from_pretrained(tmp_path).user_dict() == config.user_dict()


def test_weights_far_smaller_than_the_config_are_refused_before_the_model_is_built():
    """A 350M-parameter config.json beside a 157 KB safetensors took 2.4 GB and 49 s to refuse: the
    model was built at the config's size before the shapes were compared."""
    config_json, weights = gio.model_to_bytes(genesis.Genesis(genesis.preset("tiny")))
    big = {**json.loads(config_json), "n_dim": 1024, "n_neurons": 64, "n_attentive_neuron_heads": 4}
    with pytest.raises(
        gio.LoadError,
        match=r"weights do not fit the config: .*shape input.wte.weight is \(258, 32\) in the file, the config needs \(258, 1024\)",
    ):
        gio.load_model(json.dumps(big).encode(), weights)

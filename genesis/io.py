"""Loading models from files a user hands us: only JSON and safetensors, never pickle.

Every refusal is a `LoadError` (a ValueError) whose message says what is wrong with which file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .compat import CheckpointError, config_from_original, convert_state_dict
from .configuration import (
    FIELDS,
    SECTION_MODES,
    ConfigError,
    GenesisConfig,
    check_size,
    clip,
    placeholder_labels,
    validate_with,
)

if TYPE_CHECKING:  # the model code loads on first use: configs, their figures and files need none of it
    from .modeling import Genesis

MAX_CONFIG_BYTES = 1_000_000
MAX_WEIGHTS_BYTES = 512 * 2**20
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own cap on the JSON header
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Keys Hugging Face writes into a config.json beside the Genesis fields; anything else is refused.
HF_BOOKKEEPING = {
    "model_type", "architectures", "transformers_version", "dtype", "torch_dtype", "use_cache",
    "tie_word_embeddings", "eos_token_id", "pad_token_id", "bos_token_id", "_name_or_path",
    "output_hidden_states", "output_attentions", "return_dict", "chunk_size_feed_forward",
    "is_encoder_decoder", "problem_type", "id2label", "label2id",
}  # fmt: skip


class LoadError(ValueError):
    """A file that cannot be loaded; the message names the file and the problem."""


def _read(source: bytes | str | Path, name: str, limit: int) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        name = path.name
        if not path.is_file():
            raise LoadError(f"{name}: file not found")
        if path.stat().st_size > limit:
            raise LoadError(f"{name}: {path.stat().st_size:,} bytes is over the limit of {limit:,} bytes")
        data = path.read_bytes()
    if len(data) > limit:
        raise LoadError(f"{name}: {len(data):,} bytes is over the limit of {limit:,} bytes")
    return data, name


def read_config(
    source: bytes | str | Path | dict,
    name: str = "config.json",
    max_bytes: int = MAX_CONFIG_BYTES,
    identity: bool = True,
) -> GenesisConfig:
    """A config from JSON: the original's flat config.json or one saved by save_pretrained. With
    `identity`, also what names the model's tokens and classes (IDENTITY: end-of-text and pad ids,
    class names), checked like the fields."""
    if isinstance(source, dict):
        values = source
    else:
        data, name = _read(source, name, max_bytes)
        values = _parse_json(data, name)
    where = f"{name}: " if name else ""  # fields from a URL or widgets: the field names say enough
    if not isinstance(values, dict):
        raise LoadError(f"{where}must be a JSON object of config fields, got {type(values).__name__}")
    if values.get("model_type", "genesis") != "genesis":
        raise LoadError(f"{where}model_type is {values.get('model_type')!r}, not 'genesis'")
    unknown = sorted(map(str, set(values) - set(FIELDS) - HF_BOOKKEEPING))
    if unknown:
        raise LoadError(f"{where}unknown field(s) {', '.join(unknown)}; known fields: {', '.join(FIELDS)}")
    fields = {k: v for k, v in values.items() if k in FIELDS}
    if fields.get("n_section", "split") not in SECTION_MODES:  # a typo would silently run sequentially
        raise LoadError(
            f"{where}n_section: must be 'split' or 'sequential', got {fields['n_section']!r} (the original ran "
            "anything but 'split' one section after another: write 'sequential' for that)"
        )
    try:
        config = config_from_original(fields)
    except ConfigError as e:
        raise LoadError(f"{where}{e}") from None
    if identity:
        for key, value in _identity(values, config, where).items():
            setattr(config, key, value)
        if "id2label" in values:
            config.label2id = {name: index for index, name in config.id2label.items()}
    return config


IDENTITY = ("eos_token_id", "pad_token_id", "bos_token_id", "id2label")
MAX_LABEL_CHARS = 200


def _identity(values: dict, config: GenesisConfig, where: str) -> dict[str, Any]:
    """The IDENTITY keys present in `values`, refused by name unless they fit `config`."""
    found: dict[str, Any] = {k: values[k] for k in ("eos_token_id", "pad_token_id", "bos_token_id") if k in values}
    try:
        validate_with(config, **found)  # the token ids, as a config made with them checks them
    except ConfigError as e:
        raise LoadError(f"{where}{e}") from None
    labels = values.get("id2label")
    if labels is not None:
        if not isinstance(labels, dict) or len(labels) != config.num_labels:
            raise LoadError(f"{where}id2label: must map each of the {config.num_labels} classes to a name")
        names = {}
        for key, label in labels.items():
            digits = isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 9
            index = int(key) if digits else key  # (int() refuses 4,300+ digits in its own words)
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < config.num_labels:
                raise LoadError(f"{where}id2label: class {clip(repr(key), 40)} is not in [0, {config.num_labels - 1}]")
            if not isinstance(label, str) or len(label) > MAX_LABEL_CHARS:
                raise LoadError(
                    f"{where}id2label: class {index}'s name must be text of at most {MAX_LABEL_CHARS} characters"
                )
            names[index] = label
        found["id2label"] = names
    return found


def _parse_json(data: bytes, name: str) -> Any:
    def refuse_constant(constant: str):  # Python's json accepts NaN and Infinity; JSON does not
        raise LoadError(f"{name}: {constant} is not valid JSON (use a number)")

    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark is harmless
    except UnicodeDecodeError as e:
        raise LoadError(f"{name}: not UTF-8 text (byte {e.start})") from None
    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as e:
        raise LoadError(f"{name}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise LoadError(f"{name}: JSON nested too deeply to be a config") from None
    except LoadError:
        raise
    except ValueError:  # Python's own limit: an integer of over 4,300 digits
        raise LoadError(f"{name}: a number in it is far too long to be a config value") from None


def read_weights(
    source: bytes | str | Path, name: str = "model.safetensors", max_bytes: int = MAX_WEIGHTS_BYTES
) -> dict[str, torch.Tensor]:
    """Float tensors from a safetensors file, each checked. Pickle-based formats are refused unopened:
    this module never calls pickle or torch.load."""
    if isinstance(source, (str, Path)):
        name = Path(source).name
    if name.lower().endswith(PICKLE_SUFFIXES):
        raise LoadError(f"{name}: pickle-based checkpoints are refused (they can run code); use safetensors")
    data, name = _read(source, name, max_bytes)
    if _looks_like_pickle(data):
        raise LoadError(f"{name}: is a pickle/torch.save file, whatever its name; refused (it could run code)")
    entries = _safetensors_header(data, name)
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as e:  # safetensors raises its own error types for every malformed file
        raise LoadError(f"{name}: not a valid safetensors file ({e})") from None
    for key in entries:
        if not torch.isfinite(tensors[key]).all():
            raise LoadError(f"{name}: tensor {key} contains NaN or infinite values")
    return tensors


def _looks_like_pickle(data: bytes) -> bool:
    """Pickle protocols 2-5 start with PROTO (0x80, version); torch.save writes a zip archive."""
    return (len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5) or data[:4] == b"PK\x03\x04"


def _safetensors_header(data: bytes, name: str) -> dict[str, Any]:
    """Check the header against the file before safetensors reads it, to say exactly what is wrong."""
    if len(data) < 8:
        raise LoadError(f"{name}: {len(data)} bytes is too short for a safetensors file (truncated?)")
    size = int.from_bytes(data[:8], "little")
    if size > min(len(data) - 8, MAX_HEADER_BYTES):
        raise LoadError(
            f"{name}: header claims {size:,} bytes but the file has {len(data) - 8:,} after the length "
            "(truncated, or not a safetensors file)"
        )
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise LoadError(f"{name}: the safetensors header is not valid JSON (not a safetensors file?)") from None
    if not isinstance(header, dict):
        raise LoadError(f"{name}: the safetensors header is not a JSON object")
    body = len(data) - 8 - size
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    for key, entry in entries.items():
        if not (isinstance(entry, dict) and {"dtype", "shape", "data_offsets"} <= set(entry)):
            raise LoadError(f"{name}: tensor {key}: header entry lacks dtype, shape or data_offsets")
        if entry["dtype"] not in FLOAT_DTYPES:
            raise LoadError(f"{name}: tensor {key} has dtype {entry['dtype']}; weights must be floats")
        offsets = entry["data_offsets"]
        if isinstance(offsets, list) and len(offsets) == 2 and isinstance(offsets[1], int) and offsets[1] > body:
            raise LoadError(
                f"{name}: tensor {key} ends at byte {offsets[1]:,} of the data but the file has only {body:,} "
                "(truncated)"
            )
    return entries


def state_dict_for(model: Genesis, tensors: dict[str, torch.Tensor], name: str = "weights") -> dict[str, torch.Tensor]:
    """Accept this project's keys or the original's per-neuron keys; say exactly what does not fit."""
    ours = model.state_dict()
    if any(".neurons." in k for k in tensors):
        try:
            return _finite(convert_state_dict(tensors, model), name)
        except CheckpointError as e:
            raise LoadError(f"{name}: {e}") from None
    missing = sorted(set(ours) - set(tensors))
    extra = sorted(set(tensors) - set(ours))
    wrong = [
        f"{k} is {tuple(tensors[k].shape)} in the file, the config needs {tuple(ours[k].shape)}"
        for k in ours
        if k in tensors and tensors[k].shape != ours[k].shape
    ]
    problems = (
        [f"missing {k}" for k in missing[:5]]
        + [f"unexpected {k}" for k in extra[:5]]
        + [f"shape {w}" for w in wrong[:5]]
    )
    if problems:
        raise LoadError(f"{name}: weights do not fit the config: {'; '.join(problems)}")
    return _finite({k: tensors[k].to(ours[k].dtype) for k in ours}, name)


def _finite(state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """read_weights checked the file's own values; float64 ones beyond float32's range become inf here."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise LoadError(f"{name}: tensor {key} has values too large for {str(tensor.dtype).removeprefix('torch.')}")
    return state


def load_model(
    config: bytes | str | Path | dict,
    weights: bytes | str | Path,
    config_name: str = "config.json",
    weights_name: str = "model.safetensors",
    **size_limits: Any,
) -> Genesis:
    """A model (eval mode) from a config JSON and a safetensors file, checked at every step.

    `size_limits` go to configuration.check_size (max_parameters=None lifts that limit); an
    oversized config is refused before the weights are even read.
    """
    cfg = read_config(config, config_name)
    check_size(cfg, **size_limits)
    tensors = read_weights(weights, weights_name)
    from .modeling import Genesis

    with torch.device("meta"):  # shapes only: what does not fit is said before the config's size is allocated
        shapes = Genesis(cfg, **size_limits)
    state = state_dict_for(shapes, tensors, weights_name)
    model = Genesis(cfg, **size_limits)
    model.load_state_dict(state)
    return model.eval()


def load_folder(folder: str | Path, **size_limits: Any) -> Genesis:
    """A folder written by save_pretrained (config.json + model.safetensors)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LoadError(f"{folder}: not a folder")
    if not (folder / "model.safetensors").exists():
        pickles = sorted(p.name for p in folder.glob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise LoadError(
                f"{folder.name}: only pickle checkpoint(s) found ({', '.join(pickles)}); refused, use safetensors"
            )
        if (folder / "model.safetensors.index.json").exists():
            raise LoadError(
                f"{folder.name}: a sharded checkpoint; load it with Genesis.from_pretrained, or save it in one file "
                "(save_pretrained without max_shard_size)"
            )
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise LoadError(f"{folder.name}: no {name} here (a model folder holds config.json and model.safetensors)")
    return load_model(folder / "config.json", folder / "model.safetensors", **size_limits)


def model_to_bytes(model: Genesis) -> tuple[bytes, bytes]:
    """(config.json, model.safetensors) as bytes, for a download button."""
    identity = {key: getattr(model.config, key, None) for key in IDENTITY}
    if identity["id2label"] is not None and placeholder_labels(identity["id2label"]):
        del identity["id2label"]  # transformers' LABEL_0, ... say nothing
    # model_type: what the Auto classes read to know the folder is a Genesis one
    config = json.dumps({"model_type": "genesis", **model.config.user_dict(), **identity}, indent=2).encode()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return config, save_safetensors_bytes(state)


def config_from_dict(values: dict[str, Any]) -> GenesisConfig:
    """A config from user fields (URL, widgets), with LoadError for unknown names."""
    return read_config(values, "", identity=False)

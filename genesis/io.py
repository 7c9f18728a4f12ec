"""Loading models from files a user hands us: only JSON and safetensors, never pickle.

Every refusal is a `LoadError` (a ValueError) whose message says what is wrong with which file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .compat import CheckpointError, config_from_original, convert_state_dict
from .configuration import FIELDS, ConfigError, GenesisConfig
from .modeling import Genesis

MAX_CONFIG_BYTES = 1_000_000
MAX_WEIGHTS_BYTES = 512 * 2**20
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


def read_config(source: bytes | str | Path | dict, name: str = "config.json") -> GenesisConfig:
    """A config from JSON: the original's flat config.json or one saved by save_pretrained."""
    if isinstance(source, dict):
        values = source
    else:
        data, name = _read(source, name, MAX_CONFIG_BYTES)
        try:
            values = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise LoadError(f"{name}: not UTF-8 text (byte {e.start})") from None
        except json.JSONDecodeError as e:
            raise LoadError(f"{name}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(values, dict):
        raise LoadError(f"{name}: must be a JSON object of config fields, got {type(values).__name__}")
    if values.get("model_type", "genesis") != "genesis":
        raise LoadError(f"{name}: model_type is {values.get('model_type')!r}, not 'genesis'")
    unknown = sorted(set(values) - set(FIELDS) - HF_BOOKKEEPING)
    if unknown:
        raise LoadError(f"{name}: unknown field(s) {', '.join(unknown)}; known fields: {', '.join(FIELDS)}")
    fields = {k: v for k, v in values.items() if k in FIELDS}
    try:
        return config_from_original(fields)
    except ConfigError as e:
        raise LoadError(f"{name}: {e}") from None


def read_weights(source: bytes | str | Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file. Pickle-based formats are refused without being opened."""
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() in PICKLE_SUFFIXES:
        raise LoadError(
            f"{Path(source).name}: pickle-based checkpoints are refused (they can run code); use safetensors"
        )
    if name.lower().endswith(PICKLE_SUFFIXES):
        raise LoadError(f"{name}: pickle-based checkpoints are refused (they can run code); use safetensors")
    data, name = _read(source, name, MAX_WEIGHTS_BYTES)
    if data[:2] == b"\x80\x04" or data[:2] == b"\x80\x02" or data[:4] == b"PK\x03\x04":
        raise LoadError(f"{name}: looks like a pickle/torch.save file, which is refused; use safetensors")
    if len(data) < 8:
        raise LoadError(f"{name}: truncated ({len(data)} bytes): not a safetensors file")
    header = int.from_bytes(data[:8], "little")
    if header > len(data) - 8:
        raise LoadError(
            f"{name}: truncated or not safetensors (header of {header:,} bytes in a {len(data):,}-byte file)"
        )
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as e:  # safetensors raises its own error types for every malformed file
        raise LoadError(f"{name}: not a valid safetensors file ({e})") from None
    return tensors


def state_dict_for(model: Genesis, tensors: dict[str, torch.Tensor], name: str = "weights") -> dict[str, torch.Tensor]:
    """Accept this project's keys or the original's per-neuron keys; say exactly what does not fit."""
    ours = model.state_dict()
    if any(".neurons." in k for k in tensors):
        try:
            return convert_state_dict(tensors, model)
        except CheckpointError as e:
            raise LoadError(f"{name}: {e}") from None
    missing = sorted(set(ours) - set(tensors))
    extra = sorted(set(tensors) - set(ours))
    wrong = [
        f"{k} {tuple(tensors[k].shape)} != {tuple(ours[k].shape)}"
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
    return {k: tensors[k].to(ours[k].dtype) for k in ours}


def load_model(
    config: bytes | str | Path | dict,
    weights: bytes | str | Path,
    config_name: str = "config.json",
    weights_name: str = "model.safetensors",
    **size_limits: Any,
) -> Genesis:
    """A model (eval mode) from a config JSON and a safetensors file, checked at every step."""
    cfg = read_config(config, config_name)
    tensors = read_weights(weights, weights_name)
    model = Genesis(cfg, **size_limits)
    model.load_state_dict(state_dict_for(model, tensors, weights_name))
    return model.eval()


def load_folder(folder: str | Path, **size_limits: Any) -> Genesis:
    """A folder written by save_pretrained (config.json + model.safetensors)."""
    folder = Path(folder)
    if any(folder.glob("*.bin")) and not (folder / "model.safetensors").exists():
        raise LoadError(f"{folder}: only a pickle checkpoint (.bin) found; it is refused, use safetensors")
    return load_model(folder / "config.json", folder / "model.safetensors", **size_limits)


def model_to_bytes(model: Genesis) -> tuple[bytes, bytes]:
    """(config.json, model.safetensors) as bytes, for a download button."""
    config = json.dumps(model.config.user_dict(), indent=2).encode()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return config, save_safetensors_bytes(state)


def config_from_dict(values: dict[str, Any]) -> GenesisConfig:
    """A config from user fields (URL, widgets), with LoadError for unknown names."""
    return read_config(values, "config")

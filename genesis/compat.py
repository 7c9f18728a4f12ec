"""The original code base's checkpoints: its flat config.json and its per-neuron state-dict keys.

Here a section stores its neurons' weights stacked; this module maps
`sections.i.neurons.j.dendritics.k.fc_out.weight` to `sections.i.dendrites.weight[j, k]` and so on,
in both directions. Everything outside the sections already has the original's names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from .configuration import FIELDS, ConfigError, GenesisConfig
from .modeling import Genesis

ORIGINAL_FIELDS = FIELDS[:16]  # the article's fields plus n_section; the rest are this project's

# original per-neuron key (after "sections.i.neurons.j.") -> (our parameter, index builder)
_NEURON_KEY = re.compile(r"^sections\.(\d+)\.neurons\.(\d+)\.(.+)$")
_PART_MAP = [
    (re.compile(r"^dendritics\.(\d+)\.fc_out\.weight$"), "dendrites.weight", 2),
    (re.compile(r"^dendritics\.(\d+)\.ln\.weight$"), "dendrites.norm", 2),
    (re.compile(r"^synapses\.(\d+)\.fc_out\.weight$"), "synapses.weight", 2),
    (re.compile(r"^synapses\.(\d+)\.ln\.weight$"), "synapses.norm", 2),
    (re.compile(r"^axon\.fc_out\.weight$"), "axon.weight", 1),
    (re.compile(r"^axon\.ln\.weight$"), "axon.norm", 1),
    (re.compile(r"^axon\.to_q\.weight$"), "attention.q", 0),
    (re.compile(r"^axon\.to_k\.weight$"), "attention.k", 0),
    (re.compile(r"^axon\.to_v\.weight$"), "attention.v", 0),
    (re.compile(r"^soma\.fc_out\.weight$"), "soma.weight", 0),
    (re.compile(r"^ln\.weight$"), "norm", 0),
    (re.compile(r"^n_threshold$"), "threshold", 0),
]


class CheckpointError(ValueError):
    """A state dict that does not fit the configuration; the message lists what is wrong."""


def config_from_original(config: Mapping[str, Any], strict: bool = True) -> GenesisConfig:
    """The original's flat config.json -> GenesisConfig (its None modes become "none")."""
    if not isinstance(config, Mapping):
        raise ConfigError("config", f"must be a JSON object of fields, got {type(config).__name__}")
    unknown = sorted(set(config) - set(FIELDS))
    if unknown and strict:
        raise ConfigError(unknown[0], f"is not a Genesis field (known: {', '.join(FIELDS)})")
    values = {k: v for k, v in config.items() if k in FIELDS}
    for mode in ("n_input", "n_output"):
        if mode in values and values[mode] is None:
            values[mode] = "none"
    if "n_section" in values and values["n_section"] != "split":
        values["n_section"] = "sequential"  # the original: anything but "split" runs sequentially
    return GenesisConfig(**values)


def _target(key: str) -> tuple[str, tuple[int, ...]] | None:
    """Our parameter name and the index into it for one original per-neuron key."""
    match = _NEURON_KEY.match(key)
    if not match:
        return None
    section, neuron, rest = int(match[1]), int(match[2]), match[3]
    for pattern, name, arity in _PART_MAP:
        part = pattern.match(rest)
        if part:
            index = (neuron, int(part[1])) if arity == 2 else (neuron, 0) if arity == 1 else (neuron,)
            return f"sections.{section}.{name}", index
    return None


def convert_state_dict(original: Mapping[str, torch.Tensor], model: Genesis) -> dict[str, torch.Tensor]:
    """Original keys -> this model's state dict. Missing, unexpected or mis-shaped keys raise CheckpointError."""
    ours = {k: v.detach().clone() for k, v in model.state_dict().items()}
    filled = {k: torch.zeros(v.shape, dtype=torch.bool) for k, v in ours.items()}
    original, problems = _resolve_indexer_aliases(original)
    for key, value in original.items():
        target = _target(key)
        name, index = target if target else (key, ())
        if name not in ours:
            problems.append(f"unexpected key {key}")
            continue
        slot = ours[name][index] if _index_ok(ours[name], index) else None
        if slot is None or value.numel() != slot.numel():
            problems.append(f"{key}: shape {tuple(value.shape)} does not fit {_shape(slot)}")
            continue
        if index:
            ours[name][index] = value.reshape(slot.shape).to(slot.dtype)
            filled[name][index] = True
        else:
            ours[name] = value.reshape(slot.shape).to(slot.dtype)
            filled[name][...] = True
    missing = [k for k, f in filled.items() if not bool(f.all())]
    problems += [f"missing weights for {k}" for k in missing]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise CheckpointError(f"the state dict does not fit the config: {shown}")
    return ours


def _resolve_indexer_aliases(original: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The original's Indexer holds the section's neurons too, so each appears twice in its state
    dict (`sections.i.indexer.neurons.j.*`). Keep one copy; two copies that differ are an error."""
    merged: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for key, value in original.items():
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key} is not a tensor")
            continue
        primary = _INDEXER_ALIAS.sub(r"sections.\1.neurons.", key)
        if primary != key and primary in original:
            if not torch.equal(original[primary], value):
                problems.append(f"{key} differs from {primary}")
            continue
        merged[primary] = value
    return merged, problems


_INDEXER_ALIAS = re.compile(r"^sections\.(\d+)\.indexer\.neurons\.")


def _shape(slot: torch.Tensor | None) -> str:
    return "the config (index out of range)" if slot is None else str(tuple(slot.shape))


def _index_ok(tensor: torch.Tensor, index: tuple[int, ...]) -> bool:
    return all(0 <= i < n for i, n in zip(index, tensor.shape))


def from_original(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> Genesis:
    """A model (in eval mode) from the original's config.json dict and state dict."""
    model = Genesis(config_from_original(config), max_parameters=None, max_activation_bytes=None)
    model.load_state_dict(convert_state_dict(state_dict, model))
    return model.eval()


def to_original(model: Genesis) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """This model as the original's config.json dict and per-neuron state dict."""
    config = {k: getattr(model.config, k) for k in ORIGINAL_FIELDS}
    for mode in ("n_input", "n_output"):
        if config[mode] == "none":
            config[mode] = None
    ours = model.state_dict()
    state: dict[str, torch.Tensor] = {k: v.clone() for k, v in ours.items() if not k.startswith("sections.")}
    for i, section in enumerate(model.sections):
        for j in range(section.n_neurons):
            base = f"sections.{i}.neurons.{j}."
            for k in range(section.dendrites.n_units):
                state[base + f"dendritics.{k}.fc_out.weight"] = section.dendrites.weight[j, k].detach().clone()
                state[base + f"dendritics.{k}.ln.weight"] = section.dendrites.norm[j, k].detach().clone()
            for k in range(section.synapses.n_units):
                state[base + f"synapses.{k}.fc_out.weight"] = section.synapses.weight[j, k].detach().clone()
                state[base + f"synapses.{k}.ln.weight"] = section.synapses.norm[j, k].detach().clone()
            state[base + "axon.fc_out.weight"] = section.axon.weight[j, 0].detach().clone()
            state[base + "axon.ln.weight"] = section.axon.norm[j, 0].detach().clone()
            if j < section.n_attentive:
                for name in ("q", "k", "v"):
                    state[base + f"axon.to_{name}.weight"] = getattr(section.attention, name)[j].detach().clone()
            state[base + "soma.fc_out.weight"] = section.soma.weight[j : j + 1].detach().clone()
            state[base + "ln.weight"] = section.norm[j].detach().clone()
            state[base + "n_threshold"] = section.threshold[j].detach().clone()
    for key in [k for k in state if k.startswith("sections.")]:  # the Indexer's aliases, as the original saves them
        state[key.replace(".neurons.", ".indexer.neurons.", 1)] = state[key]
    return config, state

"""The original code base's checkpoints: its flat config.json and its per-neuron state-dict keys.

Here a section stores its neurons' weights stacked; this module maps
`sections.i.neurons.j.dendritics.k.fc_out.weight` to `sections.i.dendrites.weight[j, k]` and so on,
in both directions. Everything outside the sections already has the original's names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from .configuration import FIELDS, ConfigError, GenesisConfig, estimate_size, human

if TYPE_CHECKING:  # the model code loads on first use: configs, their figures and files need none of it
    from .modeling import Genesis

ORIGINAL_FIELDS = FIELDS[:16]  # the article's fields plus n_section; the rest are this project's


class CheckpointError(ValueError):
    """A state dict that does not fit the configuration; the message names the keys that are wrong."""


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


def original_layout(model: Genesis) -> list[tuple[str, str, tuple]]:
    """Every tensor of the original's checkpoint for this model's config: (original key, our
    state-dict name, index into it giving the original's shape). Both directions read this table."""
    layout = [(name, name, ()) for name in model.state_dict() if not name.startswith("sections.")]
    for i, section in enumerate(model.sections):
        ours = f"sections.{i}."
        for j in range(section.n_neurons):
            base = f"sections.{i}.neurons.{j}."
            for chain, name in (("dendritics", "dendrites"), ("synapses", "synapses")):
                for k in range(getattr(section, name).n_units):
                    layout.append((f"{base}{chain}.{k}.fc_out.weight", f"{ours}{name}.weight", (j, k)))
                    layout.append((f"{base}{chain}.{k}.ln.weight", f"{ours}{name}.norm", (j, k)))
            layout.append((f"{base}axon.fc_out.weight", f"{ours}axon.weight", (j, 0)))
            layout.append((f"{base}axon.ln.weight", f"{ours}axon.norm", (j, 0)))
            if j < section.n_attentive:
                for q in ("q", "k", "v"):
                    layout.append((f"{base}axon.to_{q}.weight", f"{ours}attention.{q}", (j,)))
            layout.append((f"{base}soma.fc_out.weight", f"{ours}soma.weight", (slice(j, j + 1),)))  # (1, D)
            layout.append((f"{base}ln.weight", f"{ours}norm", (j,)))
            layout.append((f"{base}n_threshold", f"{ours}threshold", (j,)))
    return layout


def convert_state_dict(original: Mapping[str, torch.Tensor], model: Genesis) -> dict[str, torch.Tensor]:
    """Original keys -> this model's state dict. Missing, unexpected or mis-shaped keys raise
    CheckpointError naming them (with the original's key names)."""
    ours = {k: v.detach().clone() for k, v in model.state_dict().items()}
    _check_tensors(original)
    given, problems = _resolve_indexer_aliases(original)
    for key, name, index in original_layout(model):
        value = given.pop(key, None)
        if value is None:
            problems.append(f"missing {key}")
            continue
        slot = ours[name][index]
        # Tolerate unit axes (a threshold saved as (1,) rather than a scalar), nothing else.
        if _squeezed(value.shape) != _squeezed(slot.shape):
            problems.append(f"{key}: shape {tuple(value.shape)} does not fit {tuple(slot.shape)}")
            continue
        ours[name][index] = value.reshape(slot.shape).to(slot.dtype)
    problems += [f"unexpected key {key}" for key in given]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise CheckpointError(f"the state dict does not fit the config: {shown}")
    return ours


def _check_tensors(original: Mapping[str, torch.Tensor]) -> None:
    """Names are strings and values finite real float tensors with data: nothing is cast silently."""
    if not isinstance(original, Mapping):
        raise CheckpointError(f"the state dict must be a mapping of names to tensors, got {type(original).__name__}")
    for key, value in original.items():
        if not isinstance(key, str):
            raise CheckpointError(f"state dict key {key!r} is not a string")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{key}: a {type(value).__name__}, not a tensor")
        if not value.is_floating_point() or value.is_complex():
            raise CheckpointError(f"{key}: dtype {value.dtype}; weights must be real floats")
        if value.is_meta:
            raise CheckpointError(f"{key}: a meta tensor (no data)")
        if not torch.isfinite(value).all():
            raise CheckpointError(f"{key}: contains NaN or infinite values")


def _squeezed(shape: torch.Size) -> list[int]:
    return [n for n in shape if n != 1]


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
            other = original[primary]
            if not isinstance(other, torch.Tensor) or other.shape != value.shape or not torch.equal(other, value):
                problems.append(f"{key} differs from {primary}")
            continue
        merged[primary] = value
    return merged, problems


_INDEXER_ALIAS = re.compile(r"^sections\.(\d+)\.indexer\.neurons\.")


def from_original(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> Genesis:
    """A model (in eval mode) from the original's config.json dict and state dict.

    No size limit (the state dict is in memory already), but a config that needs more parameters than
    the state dict holds is refused before the model is built: it cannot be the checkpoint's config.
    """
    from .modeling import Genesis

    cfg = config_from_original(config)
    if not isinstance(state_dict, Mapping):  # the tensors themselves are checked by convert_state_dict
        raise CheckpointError(f"the state dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    held = {id(t): t.numel() for t in state_dict.values() if isinstance(t, torch.Tensor)}  # aliases once
    needed = estimate_size(cfg, batch_size=1).total
    if needed > sum(held.values()):
        raise CheckpointError(
            f"the config needs {human(needed)} parameters but the state dict holds {human(sum(held.values()))}: "
            "it was not saved with this config"
        )
    model = Genesis(cfg, max_parameters=None, max_activation_bytes=None)
    model.load_state_dict(convert_state_dict(state_dict, model))
    return model.eval()


def config_to_original(config: GenesisConfig) -> dict[str, Any]:
    """A config as the original's flat config.json dict (its fields only; "none" modes as null)."""
    values = {k: getattr(config, k) for k in ORIGINAL_FIELDS}
    for mode in ("n_input", "n_output"):
        if values[mode] == "none":
            values[mode] = None
    return values


def to_original(model: Genesis) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """This model as the original's config.json dict and per-neuron state dict.

    Only the original's fields are kept: n_causal, n_routing and n_trainable_routing are this
    project's options, and from_original gives them their defaults.
    """
    model._check_structure()  # a field changed after build (n_seed: another wiring) would not round-trip
    config = config_to_original(model.config)
    ours = model.state_dict()
    state = {key: ours[name][index].clone() for key, name, index in original_layout(model)}
    for key in [k for k in state if k.startswith("sections.")]:  # the Indexer's aliases, as the original saves them
        state[key.replace(".neurons.", ".indexer.neurons.", 1)] = state[key]
    return config, state

"""Genesis: a brain-inspired network of routed neurons, in PyTorch with Hugging Face conventions.

The model and the tokenizer load on first use (`genesis.Genesis`, `from genesis import Genesis`):
transformers' model code takes longer to import than everything else here together, and a config,
its figures and graphs need none of it (the app draws its first chart that way). AutoConfig,
AutoModel, AutoModelForCausalLM and AutoModelForSequenceClassification know Genesis from
`import genesis` on (the last two make a Genesis that refuses any other n_output).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import transformers
from transformers import AutoConfig

from .configuration import (
    AUTO_CLASSES,
    PRESETS,
    ConfigError,
    GenesisConfig,
    SizeError,
    check_size,
    estimate_size,
    parameter_breakdown,
    preset,
)
from .trace import Candidate, Hop, RoutingTrace, SectionTrace

if TYPE_CHECKING:
    from .modeling import (
        Genesis,
        GenesisForCausalLM,
        GenesisForSequenceClassification,
        GenesisOutput,
        default_device,
        neighbor_wiring,
    )
    from .tokenization import byte_tokenizer, load_tokenizer

# Public name → the submodule that defines it, imported on first access (PEP 562).
_LAZY = {
    "Genesis": "modeling",
    "GenesisForCausalLM": "modeling",
    "GenesisForSequenceClassification": "modeling",
    "GenesisOutput": "modeling",
    "default_device": "modeling",
    "neighbor_wiring": "modeling",
    "byte_tokenizer": "tokenization",
    "load_tokenizer": "tokenization",
}

__all__ = [
    "PRESETS",
    "Candidate",
    "ConfigError",
    "Genesis",
    "GenesisConfig",
    "GenesisForCausalLM",
    "GenesisForSequenceClassification",
    "GenesisOutput",
    "Hop",
    "RoutingTrace",
    "SectionTrace",
    "SizeError",
    "byte_tokenizer",
    "check_size",
    "default_device",
    "estimate_size",
    "load_tokenizer",
    "neighbor_wiring",
    "parameter_breakdown",
    "preset",
]


def __getattr__(name: str) -> Any:
    """The lazily loaded names above, and submodules (`genesis.modeling` after `import genesis`)."""
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if not name.startswith("_"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise  # the submodule exists but one of its own imports is missing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _ModelOnFirstUse(type):
    """Stands in for a model class (by its name) in the Auto* mappings until genesis.modeling is
    imported, which then registers the class itself: from_pretrained (any attribute) imports it."""

    def __getattr__(cls, name: str) -> Any:
        return getattr(getattr(importlib.import_module(".modeling", __name__), cls.__name__), name)


AutoConfig.register("genesis", GenesisConfig, exist_ok=True)
for _auto, _model in AUTO_CLASSES.items():
    _stand_in = _ModelOnFirstUse(_model, (), {"config_class": GenesisConfig, "__module__": __name__})
    getattr(transformers, _auto).register(GenesisConfig, _stand_in, exist_ok=True)

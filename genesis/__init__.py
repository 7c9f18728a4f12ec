"""Genesis: a brain-inspired network of routed neurons, in PyTorch with Hugging Face conventions."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration import (
    PRESETS,
    ConfigError,
    GenesisConfig,
    SizeError,
    check_size,
    estimate_size,
    parameter_breakdown,
    preset,
)
from .modeling import Genesis, GenesisOutput, default_device, neighbor_wiring
from .tokenization import byte_tokenizer, load_tokenizer
from .trace import Candidate, Hop, RoutingTrace, SectionTrace

AutoConfig.register("genesis", GenesisConfig, exist_ok=True)
AutoModel.register(GenesisConfig, Genesis, exist_ok=True)
AutoModelForCausalLM.register(GenesisConfig, Genesis, exist_ok=True)

__all__ = [
    "PRESETS",
    "Candidate",
    "ConfigError",
    "Genesis",
    "GenesisConfig",
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

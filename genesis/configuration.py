"""GenesisConfig: the article's fields, validation, presets and size estimates.

Every check lives here so that a bad combination is refused with a message naming the field
before any tensor is allocated.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from transformers import PreTrainedConfig


class ConfigError(ValueError):
    """An invalid Genesis configuration; the message names the field and the allowed range."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class SizeError(ValueError):
    """A configuration whose estimated size is over the caller's budget."""

    def __init__(self, message: str, estimate: SizeEstimate):
        super().__init__(message)
        self.estimate = estimate


INPUT_MODES = ("reading", "bridge", "none")
OUTPUT_MODES = ("causal_lm", "sequence_classifier", "bridge", "none")
# transformers' Auto classes that know Genesis (from `import genesis` on) and the class each makes.
AUTO_CLASSES = {
    "AutoModel": "Genesis",
    "AutoModelForCausalLM": "GenesisForCausalLM",
    "AutoModelForSequenceClassification": "GenesisForSequenceClassification",
}
SECTION_MODES = ("split", "sequential")
ROUTING_MODES = ("batch", "sample")

# Fields a user may set (the article's, plus n_section and this project's extensions).
FIELDS = (
    "n_dim",
    "n_input",
    "n_section",
    "n_sections",
    "n_neurons",
    "n_attentive_neurons",
    "n_attentive_neuron_heads",
    "n_cross_attention",
    "n_dendritics",
    "n_synapses",
    "n_vocab_size",
    "n_pos_size",
    "n_neighbors",
    "n_output",
    "n_outputs",
    "n_seed",
    "n_causal",
    "n_routing",
    "n_trainable_routing",
)

# Upper bounds keep a typo (n_dim=1e9) from reaching the allocator; the size guard is finer.
INT_LIMITS = {
    "n_dim": (1, 16384),
    "n_sections": (1, 64),
    "n_neurons": (1, 1024),
    "n_attentive_neurons": (0, 1024),
    "n_attentive_neuron_heads": (1, 256),
    "n_dendritics": (0, 64),
    "n_synapses": (0, 64),
    "n_vocab_size": (1, 1_000_000),
    "n_pos_size": (1, 1_000_000),
    "n_neighbors": (0, 1023),
    "n_outputs": (1, 100_000),
    "n_seed": (0, 2**63 - 1),
}


class GenesisConfig(PreTrainedConfig):
    """Configuration of a Genesis network (defaults are the original code base's)."""

    model_type = "genesis"
    # The Trainer's predictions are the logits: the activation count (an int), the trace and the
    # head's other view of them are left out (an int in them failed evaluate() with compute_metrics).
    keys_to_ignore_at_inference = ["outputs", "neuron_activation_count", "trace", "hidden_states"]

    n_dim: int = 1280
    n_input: str = "reading"
    n_section: str = "split"
    n_sections: int = 2
    n_neurons: int = 16
    n_attentive_neurons: int = 4
    n_attentive_neuron_heads: int = 16
    n_cross_attention: bool = False
    n_dendritics: int = 2
    n_synapses: int = 1
    n_vocab_size: int = 50257
    n_pos_size: int = 2048
    n_neighbors: int = 4
    n_output: str = "causal_lm"
    n_outputs: int = 1
    n_seed: int = 42
    # Extensions (defaults keep the original behaviour).
    n_causal: bool | None = None
    n_routing: str = "batch"
    n_trainable_routing: bool = False
    # Hugging Face bookkeeping: no KV cache, and the LM head is not tied to the embeddings.
    use_cache: bool = False
    tie_word_embeddings: bool = False
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None

    def __post_init__(self, **kwargs: Any):
        for name in kwargs:  # transformers keeps unknown keywords as attributes: a typo would be ignored
            if name.startswith("n_") and name not in FIELDS:
                close = difflib.get_close_matches(name, FIELDS, n=1)
                raise ConfigError(name, "is not a Genesis field" + (f" (did you mean {close[0]}?)" if close else ""))
        # Class names or a count given by the caller (not transformers' LABEL_0, LABEL_1 defaults).
        labels_given = "num_labels" in kwargs or (
            isinstance(self.id2label, dict) and not placeholder_labels(self.id2label)
        )
        super().__post_init__(**kwargs)
        self.use_cache = False
        validate(self)  # names a bad n_outputs before the labels are compared with it
        if labels_given:
            check_labels(self)
        else:
            sync_labels(self)

    # Derived values live here, not in constructors.
    @property
    def inner_dim(self) -> int:
        """Width a section works at: a slice of n_dim in split mode, n_dim otherwise."""
        return self.n_dim // self.n_sections if self.n_section == "split" else self.n_dim

    @property
    def is_causal(self) -> bool:
        return self.n_output == "causal_lm" if self.n_causal is None else bool(self.n_causal)

    @property
    def vocab_size(self) -> int:  # generate() and Trainer look for this name
        return self.n_vocab_size

    @vocab_size.setter
    def vocab_size(self, value: int) -> None:  # resize_token_embeddings sets it
        self.n_vocab_size = value
        validate(self)

    def user_dict(self) -> dict[str, Any]:
        """The user-settable fields only (what the app puts in a URL or a JSON download)."""
        return {name: getattr(self, name) for name in FIELDS}


def sync_labels(config: Any) -> None:
    """A classifier's placeholder class names (LABEL_0, ...: transformers' default of 2, or a saved
    config's) follow n_outputs, also when n_outputs is changed after the config was made."""
    names, outputs = getattr(config, "id2label", None), config.n_outputs
    if config.n_output != "sequence_classifier" or not _is_int(outputs) or outputs < 1:
        return
    if (names is None or placeholder_labels(names)) and config.num_labels != outputs:
        config.num_labels = outputs  # pipelines read the labels from here


def placeholder_labels(id2label: dict) -> bool:
    """transformers' default class names (LABEL_0, LABEL_1, ...): no names were given."""
    return all(str(name) == f"LABEL_{key}" for key, name in id2label.items())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_with(config: Any, **changes: Any) -> None:
    """validate() the config as it would be with `changes`, leaving it as it is."""
    trial = copy.copy(config)
    trial.__dict__.update(changes)
    validate(trial)


def validate(config: Any) -> None:
    """Raise ConfigError naming the first invalid field of `config` (any object with the fields)."""
    for name, (low, high) in INT_LIMITS.items():
        value = getattr(config, name)
        if not _is_int(value):
            raise ConfigError(name, f"must be an integer in [{low}, {high}], got {value!r}")
        if not low <= value <= high:
            raise ConfigError(name, f"must be in [{low}, {high}], got {value}")
    for name, allowed in (
        ("n_input", INPUT_MODES),
        ("n_output", OUTPUT_MODES),
        ("n_section", SECTION_MODES),
        ("n_routing", ROUTING_MODES),
    ):
        value = getattr(config, name)
        if value not in allowed:
            raise ConfigError(name, f"must be one of {', '.join(map(repr, allowed))}, got {clip(repr(value), 60)}")
    for name in ("n_cross_attention", "n_trainable_routing"):
        if not isinstance(getattr(config, name), bool):
            raise ConfigError(name, f"must be true or false, got {getattr(config, name)!r}")
    if config.n_causal is not None and not isinstance(config.n_causal, bool):
        raise ConfigError("n_causal", f"must be null, true or false, got {config.n_causal!r}")
    for name in ("eos_token_id", "pad_token_id", "bos_token_id"):  # a saved config must load again
        value = getattr(config, name, None)
        if value is not None and (not _is_int(value) or not 0 <= value < config.n_vocab_size):
            raise ConfigError(name, f"must be null or a token id in [0, {config.n_vocab_size - 1}], got {value!r}")
    if config.n_section == "split" and config.n_dim % config.n_sections:
        raise ConfigError(
            "n_dim", f"must be divisible by n_sections={config.n_sections} in split mode, got {config.n_dim}"
        )
    inner = config.n_dim // config.n_sections if config.n_section == "split" else config.n_dim
    if config.n_attentive_neurons > config.n_neurons:
        raise ConfigError(
            "n_attentive_neurons", f"must be in [0, n_neurons={config.n_neurons}], got {config.n_attentive_neurons}"
        )
    if config.n_attentive_neurons and inner % config.n_attentive_neuron_heads:
        raise ConfigError(
            "n_attentive_neuron_heads",
            f"must divide the section width {inner} (n_dim/n_sections in split mode), "
            f"got {config.n_attentive_neuron_heads}",
        )
    if config.n_neighbors > config.n_neurons - 1:
        raise ConfigError(
            "n_neighbors", f"must be in [0, n_neurons-1={config.n_neurons - 1}], got {config.n_neighbors}"
        )
    if config.n_cross_attention and config.n_attentive_neurons == 0:
        raise ConfigError("n_cross_attention", "needs n_attentive_neurons >= 1 (only attentive neurons attend)")
    if config.n_output == "sequence_classifier" and config.n_outputs < 1:
        raise ConfigError("n_outputs", f"must be >= 1, got {config.n_outputs}")
    if getattr(config, "tie_word_embeddings", False):  # accepted and silently not done, before
        raise ConfigError(
            "tie_word_embeddings", "must be false: the LM head has weights of its own, as in the original"
        )
    names = getattr(config, "id2label", None)  # placeholder names follow n_outputs (sync_labels)
    if not (isinstance(names, dict) and placeholder_labels(names)):
        check_labels(config)


def check_labels(config: Any) -> None:
    """A classifier's class count (transformers' num_labels, from num_labels or id2label) is n_outputs."""
    labels = getattr(config, "num_labels", None)
    if config.n_output == "sequence_classifier" and labels not in (None, config.n_outputs):
        raise ConfigError(
            "num_labels",
            f"is {labels} (num_labels or id2label) but the classifier has n_outputs={config.n_outputs}: "
            f"set n_outputs={labels}, or leave num_labels and id2label out",
        )


PRESETS: dict[str, dict[str, Any]] = {
    # The original code base's defaults.
    "original": {},
    # The app's default: fast on 2 CPU cores, byte vocabulary (256 bytes + end-of-text + pad).
    "app": dict(
        n_dim=128,
        n_sections=2,
        n_neurons=16,
        n_attentive_neurons=4,
        n_attentive_neuron_heads=4,
        n_vocab_size=258,
        n_pos_size=256,
        n_neighbors=4,
        n_seed=42,
    ),
    # Smallest useful model, for tests and quick experiments.
    "tiny": dict(
        n_dim=32,
        n_sections=2,
        n_neurons=6,
        n_attentive_neurons=2,
        n_attentive_neuron_heads=2,
        n_vocab_size=258,
        n_pos_size=64,
        n_neighbors=3,
    ),
    # A byte-level binary classifier for the synthetic tasks.
    "classifier": dict(
        n_dim=64,
        n_sections=2,
        n_neurons=8,
        n_attentive_neurons=2,
        n_attentive_neuron_heads=4,
        n_vocab_size=258,
        n_pos_size=64,
        n_neighbors=3,
        n_output="sequence_classifier",
        n_outputs=2,
    ),
    # Four sections one after another at full width.
    "sequential": dict(
        n_dim=96,
        n_section="sequential",
        n_sections=4,
        n_neurons=8,
        n_attentive_neurons=2,
        n_attentive_neuron_heads=4,
        n_vocab_size=258,
        n_pos_size=256,
        n_neighbors=3,
    ),
}


def preset(name: str, **overrides: Any) -> GenesisConfig:
    """A named configuration ("original", "app", "tiny", ...), optionally with fields overridden."""
    if name not in PRESETS:
        raise ConfigError("preset", f"must be one of {', '.join(map(repr, PRESETS))}, got {name!r}")
    return GenesisConfig(**{**PRESETS[name], **overrides})


# ---------------------------------------------------------------------------------------------
# Size estimates (before anything is built)


class SizeEstimate(dict):
    """Parameter counts by part, plus `total` and `activation_bytes` for a given batch and length."""

    @property
    def total(self) -> int:
        return sum(v for k, v in self.items() if k != "activation_bytes")


def parameter_breakdown(config: GenesisConfig) -> dict[str, int]:
    """Parameters by part: input, dendrites, somas, axons/attention, synapses, splits/combiner, output."""
    n, d, v, inner = config.n_dim, config.n_vocab_size, config.n_pos_size, config.inner_dim
    unit = inner * inner + inner  # Linear without bias + LayerNorm weight
    cells = config.n_sections * config.n_neurons
    parts = {
        "input": {"reading": v * n + d * n + n * n + 3 * n, "bridge": n * n + 3 * n, "none": 0}[config.n_input],
        "dendrites": cells * config.n_dendritics * unit,
        "somas": cells * inner,
        "axons": cells * unit,
        "attention": config.n_sections * config.n_attentive_neurons * 3 * inner * inner,
        "synapses": cells * config.n_synapses * unit,
        "neuron norms + thresholds": cells * (inner + 1),
        "splits/combiner": 0,
        "output": {
            "causal_lm": n * d + d,
            "sequence_classifier": n * config.n_outputs + config.n_outputs,
            "bridge": n * n + 3 * n,
            "none": 0,
        }[config.n_output],
    }
    if config.n_section == "split":
        splits = config.n_sections * (n * inner + inner) * (2 if config.n_cross_attention else 1)
        parts["splits/combiner"] = splits + n * n + 3 * n
    return parts


def estimate_size(config: GenesisConfig, batch_size: int = 8, seq_len: int | None = None) -> SizeEstimate:
    """Parameters by part and a rough activation-memory bound (bytes, float32) for one forward."""
    validate(config)  # a config changed after construction is checked again before anything is built
    if not _is_int(batch_size) or batch_size < 1 or not (seq_len is None or (_is_int(seq_len) and seq_len >= 1)):
        raise ValueError(f"batch_size and seq_len must be integers >= 1, got {batch_size!r} and {seq_len!r}")
    t = config.n_pos_size if seq_len is None else seq_len
    inner = config.inner_dim
    # Per section at most every neuron fires once; each firing keeps a handful of (B, T, D) tensors,
    # each hop evaluates n_neighbors candidates through the dendrite chain.
    per_neuron = 3 + config.n_synapses + config.n_neighbors * max(config.n_dendritics, 1)
    tensors = config.n_sections * config.n_neurons * per_neuron + 8
    heads = config.n_attentive_neuron_heads if config.n_attentive_neurons else 0
    attention = config.n_sections * heads * t * t
    logits = config.n_vocab_size * 2 if config.n_output == "causal_lm" else 0
    activation = 4 * batch_size * t * (tensors * inner + attention // max(t, 1) + logits)
    estimate = SizeEstimate(parameter_breakdown(config))
    estimate["activation_bytes"] = int(activation)
    return estimate


DEFAULT_MAX_PARAMETERS = 400_000_000
DEFAULT_MAX_ACTIVATION_BYTES = 8 * 2**30


def check_size(
    config: GenesisConfig,
    max_parameters: int | None = DEFAULT_MAX_PARAMETERS,
    max_activation_bytes: int | None = DEFAULT_MAX_ACTIVATION_BYTES,
    batch_size: int = 8,
    seq_len: int | None = None,
) -> SizeEstimate:
    """Raise SizeError when the estimate is over a limit (None lifts that limit)."""
    estimate = estimate_size(config, batch_size=batch_size, seq_len=seq_len)
    if max_parameters is not None and estimate.total > max_parameters:
        raise SizeError(
            f"config has {human(estimate.total)} parameters, over the limit of {human(max_parameters)}; "
            "reduce n_dim, n_neurons, n_vocab_size or n_pos_size",
            estimate,
        )
    if max_activation_bytes is not None and estimate["activation_bytes"] > max_activation_bytes:
        raise SizeError(
            f"one forward at batch {batch_size} needs about {human(estimate['activation_bytes'])}B of activations, "
            f"over the limit of {human(max_activation_bytes)}B; reduce n_pos_size, n_dim or n_neurons",
            estimate,
        )
    return estimate


def smaller_config(
    config: GenesisConfig,
    max_parameters: int | None = DEFAULT_MAX_PARAMETERS,
    max_activation_bytes: int | None = DEFAULT_MAX_ACTIVATION_BYTES,
    batch_size: int = 8,
    seq_len: int | None = None,
) -> GenesisConfig | None:
    """A config like `config` that fits the limits (itself when it does), or None.

    Halves n_dim, n_neurons, n_sections or n_pos_size one at a time (the step that gets closest to
    the limits; at the end, the one that fits and keeps the most); the vocabulary is left alone (it belongs to the tokenizer). `seq_len` is
    capped by n_pos_size as it shrinks.
    """

    def overshoot(fields: dict[str, Any]) -> float:
        candidate = GenesisConfig(**fields)
        t = candidate.n_pos_size if seq_len is None else min(seq_len, candidate.n_pos_size)
        estimate = estimate_size(candidate, batch_size=batch_size, seq_len=t)
        ratios = [estimate.total / max_parameters if max_parameters else 0.0]
        ratios.append(estimate["activation_bytes"] / max_activation_bytes if max_activation_bytes else 0.0)
        return max(ratios)

    fields = config.user_dict()
    for _ in range(128):
        if overshoot(fields) <= 1:
            return GenesisConfig(**fields)
        options = [(overshoot(f), f) for f in (_halved(fields, name) for name in _SHRINKABLE) if f is not None]
        if not options:
            return None
        fitting = [option for option in options if option[0] <= 1]
        # The fitting option that keeps the most, else the step that gets closest to fitting.
        fields = max(fitting, key=lambda o: o[0])[1] if fitting else min(options, key=lambda o: o[0])[1]
    return None


_SHRINKABLE = ("n_dim", "n_neurons", "n_sections", "n_pos_size")


def _halved(fields: dict[str, Any], name: str) -> dict[str, Any] | None:
    """`fields` with `name` halved and the fields that depend on it adjusted, or None if invalid."""
    new = dict(fields, **{name: fields[name] // 2})
    if name == "n_dim" and new["n_section"] == "split":
        new["n_dim"] -= new["n_dim"] % new["n_sections"]
    if name == "n_neurons":
        new["n_attentive_neurons"] = min(new["n_attentive_neurons"], new["n_neurons"])
        new["n_neighbors"] = max(0, min(new["n_neighbors"], new["n_neurons"] - 1))
        if new["n_cross_attention"] and not new["n_attentive_neurons"]:
            new["n_attentive_neurons"] = 1
    if min(new["n_dim"], new["n_neurons"], new["n_sections"], new["n_pos_size"]) < 1:
        return None
    inner = new["n_dim"] // new["n_sections"] if new["n_section"] == "split" else new["n_dim"]
    if inner % new["n_attentive_neuron_heads"]:
        new["n_attentive_neuron_heads"] = math.gcd(new["n_attentive_neuron_heads"], inner)
    try:
        GenesisConfig(**new)
    except ConfigError:
        return None
    return new


def human(value: float) -> str:
    """1234567 -> '1.23M'."""
    if value < 1000:
        return str(int(value))
    exponent = min(int(math.log10(value) // 3), 4)
    return f"{value / 1000**exponent:.3g}{' KMGT'[exponent]}"


def plural(count: int, noun: str) -> str:
    """3, "step" -> '3 steps'; 1, "step" -> '1 step'."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def clip(text: str, width: int) -> str:
    """A text on one line, cut to `width` characters with an ellipsis (labels, table cells)."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Config fields in app URLs

_NULLS = ("None", "null", "")
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")
# ASCII digits only: int() also takes "64_0" and Arabic-Indic digits, and a 5,000-digit number
# raises Python's own message about sys.set_int_max_str_digits.
_INTEGER = re.compile(r"\s*[+-]?([0-9]+)\s*")


def field_value(name: str, raw: str) -> Any:
    """A query-parameter string as the type of the field (the original's defaults tell which).

    Raises ValueError naming the field for a value of the wrong type (a yes/no field takes only
    1/true/yes or 0/false/no: anything else would silently mean "no")."""
    default = getattr(GenesisConfig, name)
    if name == "n_causal" and raw in _NULLS:  # null, true or false
        return None
    if isinstance(default, bool) or name == "n_causal":
        if raw.lower() not in _TRUE + _FALSE:
            raise ValueError(f"{name}: must be true or false, got {clip(repr(raw), 60)}")
        return raw.lower() in _TRUE
    if isinstance(default, int):
        if not (match := _INTEGER.fullmatch(raw)):
            raise ValueError(f"{name}: must be an integer, got {clip(repr(raw), 60)}")
        if len(match[1]) > 100:  # the range check names the limits; the number itself is not shown
            low, high = INT_LIMITS.get(name, (None, None))
            raise ValueError(f"{name}: must be in [{low}, {high}], got a number of {len(match[1]):,} digits")
        return int(raw)
    return raw


def fields_from_query(
    params: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Config fields from a shared app URL's query parameters (a value or a list of values, the last
    counting) over `defaults` (the app preset's fields), and the messages of the invalid ones by name.
    Parameters that are not config fields are ignored."""
    fields = dict(preset("app").user_dict() if defaults is None else defaults)
    bad = {}
    for name in FIELDS:
        if name in params:
            raw = params[name]
            try:
                fields[name] = field_value(name, raw[-1] if isinstance(raw, list) else raw)
            except ValueError as e:
                bad[name] = str(e)
    return fields, bad


def changed_fields(fields: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The fields that differ from `defaults` (the app preset's), as the strings a URL carries."""
    defaults = preset("app").user_dict() if defaults is None else defaults
    return {name: str(value) for name, value in fields.items() if name in FIELDS and value != defaults.get(name)}
